"""Known-frame completion for frame sequences: the measurement-consistent projection.

P samples the known frames of a sequence x [L, ...]. Completion is

    x <- x + W (y - P x)

with a lift W from the known frames to all frames that satisfies P W = I, so the result agrees
with the measured frames y exactly (up to float rounding) whatever the network predicted:
- `adjoint`: W = P^T, the plain null-space projection (known frames replaced, unknown kept);
- `interp`: W interpolates linearly in time between the nearest known frames (held constant
  before the first and after the last), so the correction at a known frame spreads to its
  unknown neighbours. With a network output constant in time this is exactly linear
  interpolation of the known frames, the baseline the model has to beat.
"""

from __future__ import annotations

import torch

LIFTS = ("interp", "adjoint")


def lift_weights(known: torch.Tensor, kind: str = "interp") -> torch.Tensor:
    """W [B, L, L] for known-frame masks [B, L] (bool): row j holds frame j's weights on the
    known frames; rows of known frames are unit vectors, rows are zero when nothing is known."""
    if kind not in LIFTS:
        raise ValueError(f"lift must be one of {LIFTS}, not {kind!r}")
    known = known.bool()
    b, n = known.shape
    if kind == "adjoint":
        return torch.eye(n, device=known.device) * known[:, None, :].float()
    idx = torch.arange(n, device=known.device).expand(b, n)
    prev, nxt = neighbours(known)
    has_prev, has_next = prev >= 0, nxt < n
    gap = (nxt - prev).clamp_min(1).float()
    alpha = torch.where(has_prev & has_next, (idx - prev).float() / gap, 0.0)
    w_prev = torch.where(has_prev, torch.where(has_next, 1 - alpha, 1.0), 0.0)
    w_next = torch.where(has_next, torch.where(has_prev, alpha, 1.0), 0.0)
    w = torch.zeros(b, n, n + 2, device=known.device)  # columns 0 and n+1 catch "none"
    w.scatter_add_(2, (prev + 1)[..., None], w_prev[..., None])
    w.scatter_add_(2, (nxt + 1)[..., None], w_next[..., None])
    return w[:, :, 1:n + 1]


def neighbours(known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per frame of masks [B, L]: the last known frame at or before it (-1: none) and the first
    at or after it (L: none)."""
    known = known.bool()
    n = known.shape[1]
    idx = torch.arange(n, device=known.device).expand_as(known)
    prev = torch.where(known, idx, -1).cummax(1).values
    nxt = torch.where(known, idx, n).flip(1).cummin(1).values.flip(1)
    return prev, nxt


def complete(x: torch.Tensor, frames: torch.Tensor, known: torch.Tensor,
             kind: str = "interp") -> torch.Tensor:
    """x [B, L, ...] made consistent with the known frames of `frames` [B, L, ...]."""
    w = lift_weights(known, kind).to(x.dtype)
    residual = (frames - x) * known.reshape(*known.shape, *([1] * (x.dim() - 2))).to(x.dtype)
    return x + torch.bmm(w, residual.flatten(2)).reshape(x.shape)


def interpolate(frames: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The linear-interpolation baseline: unknown frames from the known ones alone."""
    return complete(torch.zeros_like(frames), frames, known, "interp")
