"""What every reference converter needs of a saved state_dict."""

from __future__ import annotations

import torch


def unwrap(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state_dict without the prefixes a wrapper adds to every key: `module.` (DataParallel,
    DistributedDataParallel) and `_orig_mod.` (torch.compile)."""
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k.removeprefix(prefix): v for k, v in state.items()}
    return state
