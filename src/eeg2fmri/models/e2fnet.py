"""E2fNet (Roos, Fukuda & Cap 2025, arXiv 2502.08025): spectral encoder, 2-D U-Net, decoder.

Input [B, context, C, F] (20 windows of |FFT| spectra, C electrodes, F frequencies), treated as
an image with `context` channels over (electrode, frequency). Output [B, D, H, W] in [0, 1].

Layer for layer the reference code (kgr20/E2fNet, models.py: EEGEncoder, a diffusers
UNet2DModel at timestep 0, fMRIDecoder) at width 256; smaller widths scale every layer by
width / 256 and keep the graph (below width 32 GroupNorm has fewer than the reference's 32
groups: `layers.groups_for`). The reference's U-Net embeds its timestep, always 0, into each
ResNet block; that embedding is a constant, so here it is folded into the bias of the block's
first convolution (`models.reference.e2fnet` converts the reference's weights): 15,740,062
parameters at NODDI shapes against the reference's 19,152,030, of which 3,411,968 are that
embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from eeg2fmri.models.base import Model
from eeg2fmri.models.layers import ResBlock, SelfAttention2d, groups_for


def _conv_bn_relu(c_in: int, c_out: int, kernel: tuple[int, int] | int,
                  stride: tuple[int, int] | int = 1,
                  padding: tuple[int, int] | None = None) -> list[nn.Module]:
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    padding = (k[0] // 2, k[1] // 2) if padding is None else padding
    return [nn.Conv2d(c_in, c_out, k, stride, padding=padding),
            nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class UNet2d(nn.Module):
    """The reference's diffusers UNet2DModel (block_out_channels (ch, ch), layers_per_block 1,
    DownBlock2D x 2, UpBlock2D x 2, a mid block with self-attention of ch / 8 heads of 8
    channels) at t = 0: ResNet blocks (GroupNorm + SiLU), each block's constant time embedding
    folded into its first convolution's bias."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv_in = nn.Conv2d(ch, ch, 3, padding=1)
        self.down1 = ResBlock(ch, ch)
        self.downsample = nn.Conv2d(ch, ch, 3, stride=2, padding=1)
        self.down2 = ResBlock(ch, ch)
        self.mid = nn.Sequential(ResBlock(ch, ch), SelfAttention2d(ch, head_dim=8),
                                 ResBlock(ch, ch))
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
        self.encoder = nn.Sequential(  # along frequency, padded (0, 3): F = 249 -> 126 -> 64
            *_conv_bn_relu(context, w // 8, (1, 5), (1, 2), (0, 3)),
            *_conv_bn_relu(w // 8, w // 4, (1, 5), (1, 2), (0, 3)),
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
        h = self.encoder(x)  # [B, w, C, 64] for F = 249
        if h.shape[-2:] != self.out_shape[1:]:
            h = F.interpolate(h, size=self.out_shape[1:], mode="bicubic", align_corners=False)
        return torch.sigmoid(self.decoder(self.unet(h)))
