"""Band-power MLP: the nonlinear counterpart of `band_ridge`, trained by gradient descent.

Each context window's spectrum (already normalised) is averaged into `n_bands` equal-width bands;
the band values of all windows and electrodes go through a small MLP (`hidden` units, GELU,
dropout) to `rank` coefficients of a learned spatial basis, added to a learned mean volume and
squashed to [0, 1]. The mean volume starts at the training subjects' mean (`prepare`), so the
model begins where the mean-volume control ends and can only gain by reading the EEG.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from eeg2fmri.models.base import Model


class BandMLP(Model):
    def __init__(self, n_channels: int, n_freqs: int, out_shape: tuple[int, int, int],
                 context: int, n_bands: int = 8, hidden: int = 128, rank: int = 32,
                 dropout: float = 0.1):
        super().__init__()
        self.out_shape, self.n_bands = tuple(out_shape), n_bands
        voxels = out_shape[0] * out_shape[1] * out_shape[2]
        self.mlp = nn.Sequential(nn.Linear(context * n_channels * n_bands, hidden), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, rank))
        self.basis = nn.Parameter(torch.randn(rank, voxels) * 0.01)
        self.mean = nn.Parameter(torch.zeros(voxels))  # logit of the mean volume

    @torch.no_grad()
    def prepare(self, volumes: torch.Tensor) -> None:
        m = volumes.float().mean(0).flatten().clamp(1e-4, 1 - 1e-4)
        self.mean.copy_(torch.logit(m))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        bands = F.adaptive_avg_pool1d(x.reshape(-1, 1, x.shape[-1]), self.n_bands).reshape(b, -1)
        return torch.sigmoid(self.mean + self.mlp(bands) @ self.basis).reshape(b, *self.out_shape)
