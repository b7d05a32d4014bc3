"""Spec2VolCAMU-Net: MD-TF-CAE spectral encoder + VM-UNet decoder (arXiv 2505.09521), layer for
layer the authors' `Spectrogram2fMRI` (hdy6438/Spec2VolCAMU-Net, `Spectrogram2fMRI.py`, read at
commit 7b27545; `models.reference.spec2vol` converts its weights). At its settings (embed 256,
8 heads, two encoder blocks, dims 96-768, depths 2-2-9-2 / 2-9-2-2, 20 windows in, 30 slices out)
it has its 45,927,230 parameters.

Input [B, context, C, F] (context windows as channels over electrode x frequency), output
[B, D, H, W].

Encoder: 3x3 conv context -> embed + SiLU; per block three parallel convolutions ((3,1), (1,3),
(3,3), `branch` = 32 channels each, the reference's fixed width) + SiLU, concatenated, 1x1
fusion + SiLU, residual, LayerNorm over channels; multi-head self-attention along one axis,
residual, LayerNorm; stride-2 (1,3) convolution along that axis.

Documented choices:
- Axis: the reference runs its self-attention and its stride-2 downsampling along the frequency
  axis (its comments say "time"); `axis="frequency"` (default) does the same, `axis="electrode"`
  runs both along the electrodes instead.
- Grid: the encoder's (electrode x frequency) map is zero-padded to the fMRI in-plane grid as in
  the reference (which pads to 64 x 64); a side longer than the grid is resized to it instead
  (bilinear), where the reference's padding would crop it (its data never has more than 64
  electrodes, and 249 frequencies leave 63).
- Output: `output="linear"` is the reference's (no output activation, unbounded predictions, as
  in the `spec2vol_paper` entry; the reference applies a sigmoid only for a one-slice output);
  `output="sigmoid"` (the default, and the small CPU entry's) bounds predictions to the [0, 1]
  of the min-max scaled targets, as the model contract describes, and starts them at 0.5: on the
  tests' tiny simulated features (embed 16, dims 8-16, 2026-12-07) it learnt faster (6 epochs,
  4 LOSO folds: test PSNR 7.14 vs 3.66 dB, RMSE 0.440 vs 0.656, SSIM 0.046 vs 0.044; 25 epochs,
  one fold: PSNR 7.75 vs 5.40, SSIM 0.097 vs 0.035). Not measured at the paper's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from eeg2fmri.models.base import Model
from eeg2fmri.models.vmunet import VMUNet


class ChannelNorm(nn.Module):
    """LayerNorm over the channel axis of [B, C, H, W]."""

    def __init__(self, ch: int):
        super().__init__()
        self.norm = nn.LayerNorm(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class EncoderBlock(nn.Module):
    """Three directional convolutions ((3,1), (1,3), (3,3)) in parallel, fused point-wise
    (+ SiLU), residual + LayerNorm; self-attention along one axis, residual + LayerNorm; stride-2
    downsampling along that axis."""

    def __init__(self, ch: int, heads: int, axis: str, branch: int = 32):
        super().__init__()
        self.branches = nn.ModuleList([nn.Conv2d(ch, branch, k, padding=(k[0] // 2, k[1] // 2))
                                       for k in ((3, 1), (1, 3), (3, 3))])
        self.fuse = nn.Conv2d(3 * branch, ch, 1)
        self.norm1 = ChannelNorm(ch)
        self.attn = nn.MultiheadAttention(ch, heads, batch_first=True)
        self.norm2 = ChannelNorm(ch)
        self.axis = axis
        k, s = ((1, 3), (1, 2)) if axis == "frequency" else ((3, 1), (2, 1))
        self.down = nn.Conv2d(ch, ch, k, stride=s, padding=(k[0] // 2, k[1] // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([F.silu(b(x)) for b in self.branches], 1)
        x = self.norm1(x + F.silu(self.fuse(y)))
        b, c, h, w = x.shape  # h: electrodes, w: frequencies
        if self.axis == "frequency":
            seq = x.permute(0, 2, 3, 1).reshape(b * h, w, c)
        else:
            seq = x.permute(0, 3, 2, 1).reshape(b * w, h, c)
        out, _ = self.attn(seq, seq, seq, need_weights=False)
        if self.axis == "frequency":
            out = out.view(b, h, w, c).permute(0, 3, 1, 2)
        else:
            out = out.view(b, w, h, c).permute(0, 3, 2, 1)
        return self.down(self.norm2(x + out))


class Spec2Vol(Model):
    def __init__(self, n_channels: int, n_freqs: int, out_shape: tuple[int, int, int],
                 context: int = 20, embed: int = 256, heads: int = 8, n_blocks: int = 2,
                 axis: str = "frequency", dims: tuple[int, ...] = (96, 192, 384, 768),
                 depths: tuple[int, ...] = (2, 2, 9, 2),
                 dec_depths: tuple[int, ...] = (2, 9, 2, 2), drop_path: float = 0.2,
                 output: str = "sigmoid", branch: int = 32):
        super().__init__()
        if axis not in ("frequency", "electrode"):
            raise ValueError(f"axis must be 'frequency' or 'electrode', not {axis!r}")
        if output not in ("sigmoid", "linear"):
            raise ValueError(f"output must be 'sigmoid' or 'linear', not {output!r}")
        self.output = output
        self.out_shape = tuple(out_shape)
        self.proj = nn.Sequential(nn.Conv2d(context, embed, 3, padding=1), nn.SiLU())
        self.blocks = nn.Sequential(*[EncoderBlock(embed, heads, axis, branch)
                                      for _ in range(n_blocks)])
        self.decoder = VMUNet(embed, self.out_shape[0], tuple(dims), tuple(depths),
                              tuple(dec_depths), drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.proj(x))
        th, tw = self.out_shape[1:]
        if h.shape[-2] > th or h.shape[-1] > tw:
            h = F.interpolate(h, size=(min(h.shape[-2], th), min(h.shape[-1], tw)),
                              mode="bilinear", align_corners=False)
        h = F.pad(h, (0, tw - h.shape[-1], 0, th - h.shape[-2]))
        y = self.decoder(h)
        return torch.sigmoid(y) if self.output == "sigmoid" else y
