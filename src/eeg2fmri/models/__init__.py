"""Model registry: `build_model(arch, ...)`. Models know nothing about files or folds."""

from __future__ import annotations

from typing import Any

from torch import nn

from eeg2fmri.models.cnn_tc import CNNTC
from eeg2fmri.models.controls import MeanVolume
from eeg2fmri.models.e2fgan import E2fGAN
from eeg2fmri.models.e2fnet import E2fNet
from eeg2fmri.models.ef_diffusion import EFDiffusion
from eeg2fmri.models.neural_frames import NeuralFrames
from eeg2fmri.models.ntvit import NTViT
from eeg2fmri.models.ridge import BandRidge
from eeg2fmri.models.spec2vol import Spec2Vol

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "e2fnet": E2fNet, "e2fgan": E2fGAN, "spec2vol": Spec2Vol, "ef_diffusion": EFDiffusion,
    "cnn_tc": CNNTC, "ntvit": NTViT, "mean_volume": MeanVolume, "band_ridge": BandRidge,
    "neural_frames": NeuralFrames}


def build_model(arch: str, *, n_channels: int, n_freqs: int, out_shape: tuple[int, int, int],
                context: int, **params: Any) -> nn.Module:
    try:
        cls = ARCHITECTURES[arch]
    except KeyError:
        raise KeyError(f"unknown model architecture {arch!r}; known: "
                       f"{', '.join(sorted(ARCHITECTURES))}") from None
    return cls(n_channels=n_channels, n_freqs=n_freqs, out_shape=tuple(out_shape),
               context=context, **params)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
