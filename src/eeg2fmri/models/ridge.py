"""Band-power ridge regression: a linear reference model, fitted in closed form.

Each EEG context window's spectrum is averaged into `n_bands` equal-width frequency bands; the
standardised band powers of all windows and electrodes are regressed (ridge, `alpha`) onto the
top `n_components` principal components of the training volumes. It shows how much of the target
a simple linear reading of the EEG explains, beside the deep models and the controls. Memory
grows with (training pairs x voxels), so it suits the simulated and other small grids.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from eeg2fmri.models.base import Model


class BandRidge(Model):
    kind = "closed_form"

    def __init__(self, n_channels: int, n_freqs: int, out_shape: tuple[int, int, int],
                 context: int, n_bands: int = 8, n_components: int = 32, alpha: float = 1000.0):
        super().__init__()
        self.out_shape, self.n_bands, self.alpha = tuple(out_shape), n_bands, alpha
        p = context * n_channels * n_bands
        v = out_shape[0] * out_shape[1] * out_shape[2]
        for name, shape in (("x_mean", (p,)), ("x_std", (p,)), ("weights", (p, n_components)),
                            ("y_mean", (v,)), ("components", (n_components, v))):
            self.register_buffer(name, torch.zeros(shape))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        return F.adaptive_avg_pool1d(x.reshape(-1, 1, x.shape[-1]), self.n_bands).reshape(b, -1)

    @torch.no_grad()
    def fit_closed_form(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        xs, ys = zip(*[(self.features(x).double(), y.flatten(1).double()) for x, y in batches],
                     strict=True)
        x, y = torch.cat(xs), torch.cat(ys)
        self.x_mean.copy_(x.mean(0))
        self.x_std.copy_(x.std(0).clamp_min(1e-8))
        self.y_mean.copy_(y.mean(0))
        yc = y - y.mean(0)
        k = min(self.components.shape[0], len(y))
        comps = torch.linalg.svd(yc, full_matrices=False).Vh[:k]
        xs_ = (x - x.mean(0)) / self.x_std.double()
        gram = xs_.T @ xs_ + self.alpha * torch.eye(xs_.shape[1], dtype=torch.float64)
        w = torch.linalg.solve(gram, xs_.T @ (yc @ comps.T))
        self.components.zero_()
        self.weights.zero_()
        self.components[:k] = comps.float()
        self.weights[:, :k] = w.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (self.features(x) - self.x_mean) / self.x_std
        y = self.y_mean + (z @ self.weights) @ self.components
        return y.clamp(0, 1).view(-1, *self.out_shape)
