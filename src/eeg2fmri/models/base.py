"""The model contract: what a model declares about itself and the hooks the generic training
loop, evaluation and synthesis call. Every registered architecture subclasses `Model`; a hook a
model does not override has the default written here, so callers never probe.

A model is built as `cls(n_channels=, n_freqs=, out_shape=(D, H, W), context=, **settings)`:
`n_freqs` is the number of |FFT| bins per window for `input = "spectra"` and the number of
samples per window for `input = "raw"`. Its forward pass maps EEG [B, context, C, n_freqs] to
volumes [B, D, H, W], in [0, 1] but where a reference's output is unbounded and kept so
(Spec2Vol's `output: linear`) (`kind = "sequence"`: a `SequenceBatch` to frames [B, L, D, H,
W]). Models know nothing about files, folds or datasets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from eeg2fmri.models.losses import ssim_mse_loss

Step = Callable[[str, torch.Tensor], None]  # step(optimiser group, loss): backward + update


@dataclass
class SequenceBatch:
    """A sequence model's input: EEG windows [B, L + context - 1, C, F], the frames [B, L, D, H, W]
    with every unknown frame zeroed (the model cannot see them), and the mask `known` [B, L]."""

    eeg: torch.Tensor
    frames: torch.Tensor
    known: torch.Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SequenceBatch:
        return SequenceBatch(*(t.to(device, non_blocking=non_blocking)
                               for t in (self.eeg, self.frames, self.known)))

    def __len__(self) -> int:
        return len(self.eeg)


class Model(nn.Module):
    """Base class of every architecture in the registry."""

    input: ClassVar[str] = "spectra"  # "spectra" (|FFT| bins) or "raw" (the windows' samples)
    kind: ClassVar[str] = "pair"  # "pair", "sequence" (frame sequences) or "closed_form"

    def prepare(self, volumes: torch.Tensor) -> None:
        """Before training: initialise from training volumes [N, D, H, W] (default: nothing)."""

    def fit_closed_form(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """`kind = "closed_form"`: fit in one pass over the training batches."""
        raise NotImplementedError(f"{type(self).__name__} is not a closed-form model")

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters per optimiser; each gets its own AdamW, schedule and clipping."""
        return {"model": list(self.parameters())}

    def training_loss(self, x: Any, y: torch.Tensor, ssim_weight: float = 0.5) -> torch.Tensor:
        """The training objective (default: the papers' SSIM + MSE on the forward pass)."""
        return ssim_mse_loss(self(x), y, ssim_weight)

    def training_step(self, x: Any, y: torch.Tensor, step: Step, ssim_weight: float = 0.5
                      ) -> torch.Tensor:
        """One optimisation step; calls `step(group, loss)` for each update (a GAN: two)."""
        loss = self.training_loss(x, y, ssim_weight)
        step("model", loss)
        return loss

    def after_step(self) -> None:
        """After each optimisation step (e.g. an EMA update; default: nothing)."""

    def validation_loss(self, x: Any, y: torch.Tensor, ssim_weight: float = 0.5
                        ) -> torch.Tensor:
        """The model-selection loss on the validation subject (default: SSIM + MSE)."""
        return ssim_mse_loss(self(x), y, ssim_weight)

    def calibrate(self, batches: Iterable[tuple[SequenceBatch, torch.Tensor]]) -> float | None:
        """`kind = "sequence"`: fit what selection fixes on the validation subject's known-frame
        tasks (default: nothing)."""
        return None

    def sampling_info(self) -> dict[str, Any] | None:
        """Generative models: how predictions are sampled (default: None, deterministic)."""
        return None

    def reseed(self, seed: int) -> None:
        """Generative models: restart the sampling noise from `seed` (default: nothing)."""
