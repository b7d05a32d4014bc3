"""Small building blocks shared by the models."""

from __future__ import annotations

import torch
from torch import nn


def groups_for(channels: int, min_per_group: int = 1) -> int:
    """GroupNorm groups: 32 as in the references when it divides, else the largest of
    16/8/4/2/1 that does and leaves at least `min_per_group` channels per group. (With one
    channel per group GroupNorm is an instance norm: it erases each sample's per-channel offset.)
    """
    return next(g for g in (32, 16, 8, 4, 2, 1)
                if g == 1 or (channels % g == 0 and channels // g >= min_per_group))


class ResBlock(nn.Module):
    """Pre-activation residual block: (GroupNorm, SiLU, 3x3 conv) x 2, 1x1 skip if needed."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(groups_for(c_in), c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
            nn.GroupNorm(groups_for(c_out), c_out), nn.SiLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1),
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, with a residual."""

    def __init__(self, channels: int, head_dim: int = 32):
        super().__init__()
        self.norm = nn.GroupNorm(groups_for(channels), channels)
        self.attn = nn.MultiheadAttention(channels, max(1, channels // head_dim), batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = self.norm(x).flatten(2).transpose(1, 2)  # [B, HW, C]
        out, _ = self.attn(t, t, t, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)
