"""VM-UNet: a U-Net of Visual State Space (VSS) blocks (Ruan et al. 2024), as Spec2VolCAMU-Net's
reference code builds it (hdy6438/Spec2VolCAMU-Net, `vmunet/vmamba.py`, class `VSSM`). Feature
maps are channels-last [B, H, W, C] inside the network.

VSS block: x + DropPath(SS2D(LayerNorm(x))). SS2D: linear to 2 x d_inner (x, z); x -> depthwise
3x3 conv (with bias) -> SiLU -> four scans (row-major, reversed row-major, column-major, reversed
column-major), each a selective scan with its own x_proj (dt_rank + 2 d_state) and dt_proj;
A = -exp(A_log), A_log = log(1..d_state), D = 1, dt bias such that softplus(dt) lies in
[1e-3, 0.1]; the four outputs are summed, LayerNorm'ed, gated by SiLU(z) and projected back to d.
d_state 16, expand 2, dt_rank ceil(d / 16); every LayerNorm has eps 1e-5.

U-Net: patch embedding (4x4 stride-4 conv + LayerNorm); encoder stages of VSS blocks, each but
the last followed by patch merging (dims double); decoder stages of VSS blocks, from the coarsest:
after stage s (all but the last) the *input* of the matching encoder stage is added and the sum
is expanded x2 (linear + pixel shuffle + LayerNorm) to the next width, so the skips join at token
grids 2, 4, 8 for a 64 x 64 input (the patch embedding's 16 x 16 output is never added); after
the last stage a x4 expansion to dims[0] / 4 channels and a 1 x 1 convolution to the output.
Stochastic depth ramps linearly from 0 to `drop_path` over the encoder's blocks and from
`drop_path` down to 0 over the decoder's. Linear layers start trunc-normal (std 0.02) with zero
bias, LayerNorms at 1 / 0, the x_proj weights at the uniform (+-1/sqrt(d_inner)) of a default
nn.Linear, convolutions at PyTorch's default. One deviation, at shapes the reference cannot run:
patch merging pads an odd token grid by one row / column, where the reference crops it (and its
skips then no longer fit).
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from eeg2fmri.models.selective_scan import selective_scan


class DropPath(nn.Module):
    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty(x.shape[0], *([1] * (x.dim() - 1))).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class SS2D(nn.Module):
    def __init__(self, d_model: int, d_state: int = 16, expand: int = 2,
                 dt_min: float = 1e-3, dt_max: float = 0.1):
        super().__init__()
        di = expand * d_model
        self.d_inner, self.d_state = di, d_state
        self.dt_rank = math.ceil(d_model / 16)
        k = 4  # scan directions
        self.in_proj = nn.Linear(d_model, 2 * di, bias=False)
        self.conv = nn.Conv2d(di, di, 3, padding=1, groups=di)
        self.x_proj_weight = nn.Parameter(  # a default nn.Linear(di, ...) weight, per scan
            torch.empty(k, self.dt_rank + 2 * d_state, di).uniform_(-1, 1) / math.sqrt(di))
        self.dt_proj_weight = nn.Parameter(
            torch.empty(k, di, self.dt_rank).uniform_(-1, 1) * self.dt_rank**-0.5)
        dt = torch.exp(torch.rand(k, di) * (math.log(dt_max) - math.log(dt_min))
                       + math.log(dt_min)).clamp_min(1e-4)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1.0)).repeat(k * di, 1))
        self.D = nn.Parameter(torch.ones(k * di))
        self.out_norm = nn.LayerNorm(di)
        self.out_proj = nn.Linear(di, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        length = h * w
        xz = self.in_proj(x)
        x, z = xz.chunk(2, dim=-1)
        x = F.silu(self.conv(x.permute(0, 3, 1, 2)))  # [b, di, h, w]
        rows = x.flatten(2)
        cols = x.transpose(2, 3).flatten(2)
        xs = torch.stack([rows, cols], 1)
        xs = torch.cat([xs, xs.flip(-1)], 1)  # [b, 4, di, L]
        x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight)
        dts, bs, cs = x_dbl.split([self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_proj_weight)
        y = selective_scan(
            xs.reshape(b, -1, length).float(), dts.reshape(b, -1, length).float(),
            -torch.exp(self.A_log.float()), bs.float().contiguous(), cs.float().contiguous(),
            self.D.float(), None, self.dt_bias.reshape(-1).float(), True,
        ).view(b, 4, self.d_inner, length)
        inv = y[:, 2:].flip(-1)  # undo the reversal
        col = y[:, 1].view(b, self.d_inner, w, h).transpose(2, 3).reshape(b, self.d_inner, length)
        inv_col = inv[:, 1].view(b, self.d_inner, w, h).transpose(2, 3).reshape(b, self.d_inner,
                                                                                 length)
        y = y[:, 0] + inv[:, 0] + col + inv_col  # the reference's order of the sum
        y = y.transpose(1, 2).reshape(b, h, w, self.d_inner)
        return self.out_proj(self.out_norm(y.to(x.dtype)) * F.silu(z))


class VSSBlock(nn.Module):
    def __init__(self, dim: int, drop_path: float = 0.0, d_state: int = 16):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.ss2d = SS2D(dim, d_state)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.ss2d(self.norm(x)))


class PatchMerging(nn.Module):
    """[B, H, W, C] -> [B, H/2, W/2, 2C]."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class PatchExpand(nn.Module):
    """[B, H, W, C] -> [B, sH, sW, C_out] by a linear layer and pixel shuffle."""

    def __init__(self, dim: int, scale: int, dim_out: int):
        super().__init__()
        self.scale, self.dim_out = scale, dim_out
        self.expand = nn.Linear(dim, scale * scale * dim_out, bias=False)
        self.norm = nn.LayerNorm(dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        s, c = self.scale, self.dim_out
        x = self.expand(x).view(b, h, w, s, s, c).permute(0, 1, 3, 2, 4, 5)
        return self.norm(x.reshape(b, h * s, w * s, c))


class VMUNet(nn.Module):
    """[B, C_in, H, W] -> [B, C_out, H, W]; H and W divisible by 4 * 2^(stages - 1); dims double
    from stage to stage and dims[0] is divisible by 4."""

    def __init__(self, in_ch: int, out_ch: int, dims: tuple[int, ...] = (96, 192, 384, 768),
                 depths: tuple[int, ...] = (2, 2, 9, 2), dec_depths: tuple[int, ...] = (2, 9, 2, 2),
                 drop_path: float = 0.2, d_state: int = 16):
        super().__init__()
        if not len(dims) == len(depths) == len(dec_depths):
            raise ValueError("dims, depths and dec_depths must have one entry per stage")
        if any(b != 2 * a for a, b in pairwise(dims)) or dims[0] % 4:
            raise ValueError(f"dims must double from stage to stage, starting at a multiple of "
                             f"4 (as 96, 192, 384, 768), not {list(dims)}")
        self.patch_embed = nn.Conv2d(in_ch, dims[0], 4, stride=4)
        self.embed_norm = nn.LayerNorm(dims[0])
        rates = torch.linspace(0, drop_path, sum(depths), device="cpu").tolist()
        self.enc, self.merge = nn.ModuleList(), nn.ModuleList()
        i = 0
        for s, (dim, depth) in enumerate(zip(dims, depths, strict=True)):
            self.enc.append(nn.Sequential(*[VSSBlock(dim, rates[i + j], d_state)
                                            for j in range(depth)]))
            i += depth
            self.merge.append(PatchMerging(dim) if s < len(dims) - 1 else nn.Identity())
        rates = torch.linspace(0, drop_path, sum(dec_depths), device="cpu").tolist()[::-1]
        self.dec, self.expand = nn.ModuleList(), nn.ModuleList()
        rdims = dims[::-1]
        i = 0
        for s, (dim, depth) in enumerate(zip(rdims, dec_depths, strict=True)):
            self.dec.append(nn.Sequential(*[VSSBlock(dim, rates[i + j], d_state)
                                            for j in range(depth)]))
            i += depth
            self.expand.append(PatchExpand(dim, 2, rdims[s + 1]) if s < len(dims) - 1
                               else PatchExpand(dim, 4, dim // 4))
        self.head = nn.Conv2d(dims[0] // 4, out_ch, 1)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed_norm(self.patch_embed(x).permute(0, 2, 3, 1))
        skips = []  # the input of each encoder stage
        for blocks, merge in zip(self.enc, self.merge, strict=True):
            skips.append(x)
            x = merge(blocks(x))
        last = len(self.dec) - 1
        for s, (blocks, expand) in enumerate(zip(self.dec, self.expand, strict=True)):
            x = blocks(x)
            x = expand(x + skips[last - s] if s < last else x)
        return self.head(x.permute(0, 3, 1, 2))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
