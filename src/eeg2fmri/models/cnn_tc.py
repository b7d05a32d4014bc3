"""CNN-TC: temporal convolutions over the EEG context, then 3-D convolutions to the volume.

After Liu & Sajda (2019), a low-parameter baseline of the E2fNet papers. The original convolves
raw EEG in time with length-27 kernels over ~20 s; the details of its layers are not public. Our
choices, on the features store's spectra:

- the |FFT| spectrum of each window is pooled into `n_bands` contiguous frequency bands, so
  every (electrode, band) pair is one input channel of a time series over the `context` windows
  (20 windows = 40 s at TR 2 s, covering the haemodynamic response);
- 1-D convolutions along the windows (kernel `kernel`, "same" padding, BatchNorm, ReLU), then a
  learnt weighting of the windows collapses time (the model learns its own HRF);
- a linear map to a coarse volume (`base` channels at 1/8 resolution) and three upsampling 3-D
  convolution stages to the full grid, sigmoid output in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from eeg2fmri.models.base import Model


class CNNTC(Model):
    def __init__(self, n_channels: int, n_freqs: int, out_shape: tuple[int, int, int],
                 context: int = 20, n_bands: int = 8, temporal: int = 32, kernel: int = 7,
                 base: int = 32):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.n_bands = min(n_bands, n_freqs)
        c_in = n_channels * self.n_bands
        self.temporal = nn.Sequential(
            nn.Conv1d(c_in, temporal, kernel, padding=kernel // 2), nn.BatchNorm1d(temporal),
            nn.ReLU(inplace=True),
            nn.Conv1d(temporal, temporal, kernel, padding=kernel // 2),
            nn.BatchNorm1d(temporal), nn.ReLU(inplace=True))
        self.time_weights = nn.Parameter(torch.full((context,), 1.0 / context))
        self.coarse = tuple(max(1, math.ceil(s / 8)) for s in self.out_shape)
        self.base = base
        self.to_volume = nn.Linear(temporal, base * math.prod(self.coarse))
        stages = []
        c = base
        for _ in range(3):
            stages += [nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False),
                       nn.Conv3d(c, c // 2, 3, padding=1), nn.BatchNorm3d(c // 2),
                       nn.ReLU(inplace=True)]
            c //= 2
        self.decoder = nn.Sequential(*stages, nn.Conv3d(c, 1, 3, padding=1))

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        b, t, _, f = eeg.shape
        bands = F.adaptive_avg_pool1d(eeg.reshape(b * t, -1, f), self.n_bands)  # [BT, C, bands]
        series = bands.reshape(b, t, -1).transpose(1, 2)  # [B, C*bands, T]
        h = self.temporal(series) @ self.time_weights  # [B, temporal]
        vol = self.to_volume(h).reshape(b, self.base, *self.coarse)
        vol = self.decoder(vol)[:, 0]  # [B, 8*coarse]
        vol = vol[:, : self.out_shape[0], : self.out_shape[1], : self.out_shape[2]]
        return torch.sigmoid(vol)
