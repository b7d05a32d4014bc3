"""E2fGAN: the E2fNet generator trained against a 2-D patch discriminator.

The discriminator sees a volume [B, D, H, W] as an image with D channels: 4x4 stride-2
convolutions to 64, 64, 128, 128 channels (LeakyReLU 0.2, BatchNorm after the first), then a
3x3 convolution to a one-channel map of patch logits. Training alternates, per batch, a
discriminator step (BCE-with-logits, real volumes vs detached generator output) and a generator
step (adversarial BCE + the papers' SSIM + MSE loss), each with its own optimiser and schedule;
the generic loop runs both through `training_step` and checkpoints both.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from eeg2fmri.models.base import Model
from eeg2fmri.models.e2fnet import E2fNet
from eeg2fmri.models.losses import ssim_mse_loss


class PatchDiscriminator(nn.Module):
    def __init__(self, depth: int, width: int = 64):
        super().__init__()
        chans = [depth, width, width, 2 * width, 2 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            layers.append(nn.Conv2d(chans[i], chans[i + 1], 4, stride=2, padding=1))
            if i > 0:
                layers.append(nn.BatchNorm2d(chans[i + 1]))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        layers.append(nn.Conv2d(chans[-1], 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, vol: torch.Tensor) -> torch.Tensor:
        return self.net(vol)


class E2fGAN(Model):
    def __init__(self, n_channels: int, n_freqs: int, out_shape: tuple[int, int, int],
                 context: int = 20, width: int = 256, disc_width: int = 64,
                 adv_weight: float = 1.0):
        super().__init__()
        self.generator = E2fNet(n_channels, n_freqs, out_shape, context, width)
        self.discriminator = PatchDiscriminator(out_shape[0], disc_width)
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
