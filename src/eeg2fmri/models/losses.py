"""The papers' loss: 0.5 * (1 - SSIM) + 0.5 * MSE, SSIM per slice over [B, D, H, W]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim


def ssim_mse_loss(pred: torch.Tensor, target: torch.Tensor, ssim_weight: float = 0.5
                  ) -> torch.Tensor:
    pred, target = pred.float(), target.float()
    s = ssim(pred, target, data_range=1.0, size_average=True, win_size=11)
    return ssim_weight * (1 - s) + (1 - ssim_weight) * F.mse_loss(pred, target)
