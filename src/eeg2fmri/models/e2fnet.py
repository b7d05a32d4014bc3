"""E2fNet (EEG-to-fMRI network): spectral encoder, 2-D U-Net, convolutional decoder.

Input [B, context, C, F] (20 windows of |FFT| spectra, C electrodes, F frequencies), treated as
an image with `context` channels over (electrode, frequency). Output [B, D, H, W] in [0, 1].
At width 256 this is the published model (~19 M parameters); smaller widths keep the layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from eeg2fmri.models.base import Model
from eeg2fmri.models.layers import ResBlock, SelfAttention2d, groups_for


def _conv_bn_relu(c_in: int, c_out: int, kernel: tuple[int, int] | int,
                  stride: tuple[int, int] | int = 1) -> list[nn.Module]:
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    return [nn.Conv2d(c_in, c_out, k, stride, padding=(k[0] // 2, k[1] // 2)),
            nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class UNet2d(nn.Module):
    """One-level U-Net: ResNet blocks (GroupNorm + SiLU), self-attention in the middle."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv_in = nn.Conv2d(ch, ch, 3, padding=1)
        self.down1 = ResBlock(ch, ch)
        self.downsample = nn.Conv2d(ch, ch, 3, stride=2, padding=1)
        self.down2 = ResBlock(ch, ch)
        self.mid = nn.Sequential(ResBlock(ch, ch), SelfAttention2d(ch), ResBlock(ch, ch))
        self.up2 = nn.ModuleList([ResBlock(2 * ch, ch), ResBlock(2 * ch, ch)])
        self.upsample = nn.Conv2d(ch, ch, 3, padding=1)
        self.up1 = nn.ModuleList([ResBlock(2 * ch, ch), ResBlock(2 * ch, ch)])
        self.out = nn.Sequential(nn.GroupNorm(groups_for(ch), ch), nn.SiLU(),
                                 nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = self.conv_in(x)
        s1 = self.down1(s0)
        s2 = self.downsample(s1)
        s3 = self.down2(s2)
        h = self.mid(s3)
        h = self.up2[0](torch.cat([h, s3], 1))
        h = self.up2[1](torch.cat([h, s2], 1))
        h = self.upsample(F.interpolate(h, size=s1.shape[-2:], mode="nearest"))
        h = self.up1[0](torch.cat([h, s1], 1))
        h = self.up1[1](torch.cat([h, s0], 1))
        return self.out(h)


class E2fNet(Model):
    def __init__(self, n_channels: int, n_freqs: int, out_shape: tuple[int, int, int],
                 context: int = 20, width: int = 256):
        super().__init__()
        if width % 8:
            raise ValueError(f"E2fNet width must be a multiple of 8, got {width}")
        w = width
        self.out_shape = tuple(out_shape)
        self.encoder = nn.Sequential(
            *_conv_bn_relu(context, w // 8, (1, 5), (1, 2)),  # along frequency: F -> F/2
            *_conv_bn_relu(w // 8, w // 4, (1, 5), (1, 2)),  # F/2 -> F/4
            *_conv_bn_relu(w // 4, w // 2, 3),
            nn.Conv2d(w // 2, w, 3, padding=1),
        )
        self.unet = UNet2d(w)
        depth = self.out_shape[0]
        self.decoder = nn.Sequential(
            *_conv_bn_relu(w, w // 2, 3), *_conv_bn_relu(w // 2, w // 4, 3),
            *_conv_bn_relu(w // 4, w // 8, 3), nn.Conv2d(w // 8, depth, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)  # [B, w, C, F/4]
        if h.shape[-2:] != self.out_shape[1:]:
            h = F.interpolate(h, size=self.out_shape[1:], mode="bicubic", align_corners=False)
        return torch.sigmoid(self.decoder(self.unet(h)))
