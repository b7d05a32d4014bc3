"""E2fGAN (Roos, Fukuda & Cap 2025): the E2fNet generator trained against a discriminator.

The discriminator is the reference's (kgr20/E2fNet, models.py `Discriminator`): it sees a
volume [B, D, H, W] as an image with D channels, 4x4 stride-2 convolutions to 64, 64, 128, 128
channels (LeakyReLU 0.2, BatchNorm after all but the first), then a 4x4 valid convolution to
one logit per 64x64 volume. Volumes smaller than 64x64 (the simulated data's 16x16 or 32x32)
leave a map of (H/16)x(W/16) after the four halvings, too small for that 4x4 convolution; there
(an extension of ours) the last convolution covers the whole map, so each volume still gets one
logit. Volumes larger than 64x64 get the reference's 4x4 convolution and a map of logits.
`disc_width` scales the channels (64 is the reference's, which has no such setting).

Training alternates, per batch, a discriminator step (BCE-with-logits, real volumes vs detached
generator output) and a generator step (adversarial BCE + the papers' SSIM + MSE loss), each
with its own optimiser and schedule; the generic loop runs both through `training_step` and
checkpoints both.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from eeg2fmri.models.base import Model
from eeg2fmri.models.e2fnet import E2fNet
from eeg2fmri.models.losses import ssim_mse_loss


class Discriminator(nn.Module):
    def __init__(self, depth: int, width: int = 64, size: tuple[int, int] = (64, 64)):
        super().__init__()
        if min(size) < 16:
            raise ValueError(f"the E2fGAN discriminator needs volumes of at least 16x16 "
                             f"(four stride-2 convolutions), not {size[0]}x{size[1]}")
        chans = [depth, width, width, 2 * width, 2 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            layers.append(nn.Conv2d(chans[i], chans[i + 1], 4, stride=2, padding=1))
            if i > 0:
                layers.append(nn.BatchNorm2d(chans[i + 1]))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        last = (min(4, size[0] // 16), min(4, size[1] // 16))  # 4x4: the reference's
        layers.append(nn.Conv2d(chans[-1], 1, last))
        self.net = nn.Sequential(*layers)

    def forward(self, vol: torch.Tensor) -> torch.Tensor:
        return self.net(vol)


class E2fGAN(Model):
    def __init__(self, n_channels: int, n_freqs: int, out_shape: tuple[int, int, int],
                 context: int = 20, width: int = 256, disc_width: int = 64,
                 adv_weight: float = 1.0):
        super().__init__()
        self.generator = E2fNet(n_channels, n_freqs, out_shape, context, width)
        self.discriminator = Discriminator(out_shape[0], disc_width, tuple(out_shape[1:]))
        self.adv_weight = adv_weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator(x)

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"generator": list(self.generator.parameters()),
                "discriminator": list(self.discriminator.parameters())}

    def training_step(self, x: torch.Tensor, y: torch.Tensor,
                      step: Callable[[str, torch.Tensor], None],
                      ssim_weight: float = 0.5) -> torch.Tensor:
        """One discriminator step, then one generator step; returns the generator's loss."""
        fake = self.generator(x)
        real_logits = self.discriminator(y)
        fake_logits = self.discriminator(fake.detach())
        d_loss = 0.5 * (F.binary_cross_entropy_with_logits(real_logits,
                                                           torch.ones_like(real_logits))
                        + F.binary_cross_entropy_with_logits(fake_logits,
                                                             torch.zeros_like(fake_logits)))
        step("discriminator", d_loss)
        logits = self.discriminator(fake)
        adversarial = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        g_loss = self.adv_weight * adversarial + ssim_mse_loss(fake, y, ssim_weight)
        step("generator", g_loss)
        return g_loss
