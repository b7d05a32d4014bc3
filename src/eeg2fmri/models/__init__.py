"""Model registry: `build_model(arch, ...)`. Models know nothing about files or folds.

Architectures are imported when first asked for, so that reading the registry (the workflow does
it at start-up) does not load every model's dependencies. A new model is its module, one line
here and a config entry; it subclasses `models.base.Model`, which declares its input and kind.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from eeg2fmri.models.base import Model

ARCHITECTURES: dict[str, str] = {  # name -> module:class
    "e2fnet": "e2fnet:E2fNet", "e2fgan": "e2fgan:E2fGAN", "spec2vol": "spec2vol:Spec2Vol",
    "ef_diffusion": "ef_diffusion:EFDiffusion", "cnn_tc": "cnn_tc:CNNTC", "ntvit": "ntvit:NTViT",
    "mean_volume": "controls:MeanVolume", "band_ridge": "ridge:BandRidge",
    "neural_frames": "neural_frames:NeuralFrames", "band_mlp": "band_mlp:BandMLP"}


def model_class(arch: str) -> type[Model]:
    try:
        module, name = ARCHITECTURES[arch].split(":")
    except KeyError:
        raise KeyError(f"unknown model architecture {arch!r}; known: "
                       f"{', '.join(sorted(ARCHITECTURES))}") from None
    return getattr(import_module(f"eeg2fmri.models.{module}"), name)


def build_model(arch: str, *, n_channels: int, n_freqs: int, out_shape: tuple[int, int, int],
                context: int, **params: Any) -> Model:
    return model_class(arch)(n_channels=n_channels, n_freqs=n_freqs, out_shape=tuple(out_shape),
                             context=context, **params)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
