"""Honest controls. The shuffled-EEG control is any model trained on time-permuted EEG (a data
option, see training.data); this module holds the one that ignores EEG altogether."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from eeg2fmri.models.base import Model


class MeanVolume(Model):
    """Predicts the mean training volume for every input: anatomy only, no EEG."""

    kind = "closed_form"

    def __init__(self, n_channels: int, n_freqs: int, out_shape: tuple[int, int, int],
                 context: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(out_shape))

    def fit_closed_form(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        total, n = torch.zeros_like(self.mean, dtype=torch.float64), 0
        for _, v in batches:  # volumes [B, D, H, W]
            total += v.double().sum(0)
            n += v.shape[0]
        self.mean.copy_((total / max(n, 1)).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mean.expand(x.shape[0], *self.mean.shape)
