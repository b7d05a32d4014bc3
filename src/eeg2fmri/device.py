"""The torch device a job runs on."""

from __future__ import annotations

import torch

from eeg2fmri.errors import InputError


def pick_device(requested: str = "auto") -> torch.device:
    """`auto`: CUDA when available, else the CPU; `cuda[:N]` must exist here (checked when the
    job starts, not at dry-run: a login node may lack the GPUs its jobs get)."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise InputError(None, f"config key 'device' is {requested!r} but this machine has "
                                   f"no usable CUDA GPU (torch {torch.__version__}, {build}); "
                                   "set device: auto or cpu")
        index = torch.device(requested).index
        if index is not None and index >= torch.cuda.device_count():
            raise InputError(None, f"config key 'device' is {requested!r} but this machine has "
                                   f"{torch.cuda.device_count()} CUDA GPU(s)")
    return torch.device(requested)
