"""Model registry: `build_model(arch, ...)`. Models know nothing about files or folds.

Architectures are imported when first asked for, so that reading the registry (the workflow does
it at start-up) does not load every model's dependencies. A new model is its module, one line
here and a config entry; it subclasses `models.base.Model`, which declares its input and kind.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from eeg2fmri.models.base import Model

ARCHITECTURES: dict[str, str] = {  # name -> module:class
    "e2fnet": "e2fnet:E2fNet", "e2fgan": "e2fgan:E2fGAN", "spec2vol": "spec2vol:Spec2Vol",
    "ef_diffusion": "ef_diffusion:EFDiffusion", "cnn_tc": "cnn_tc:CNNTC", "ntvit": "ntvit:NTViT",
    "mean_volume": "controls:MeanVolume", "band_ridge": "ridge:BandRidge",
    "neural_frames": "neural_frames:NeuralFrames", "band_mlp": "band_mlp:BandMLP"}


BUILD_ARGS = ("self", "n_channels", "n_freqs", "out_shape", "context")  # given by the data


@dataclass(frozen=True)
class ArchInfo:
    """What an architecture declares, read from its source without importing it (or torch):
    the config is validated by the workflow at start-up."""

    kind: str  # "pair", "sequence" or "closed_form" (models.base.Model.kind)
    input: str  # "spectra" or "raw"
    settings: tuple[str, ...]  # its constructor's settings, less what the data give


@cache
def describe(arch: str) -> ArchInfo:
    """An architecture's kind, input and settings, from the class statement in its module (a
    test keeps this equal to the imported class)."""
    if arch not in ARCHITECTURES:
        raise KeyError(f"unknown model architecture {arch!r}; known: "
                       f"{', '.join(sorted(ARCHITECTURES))}")
    module, name = ARCHITECTURES[arch].split(":")
    defaults = _class_body(Path(__file__).with_name("base.py"), "Model")
    body = _class_body(Path(__file__).with_name(f"{module}.py"), name)
    init = next(n for n in body["__init__"] if isinstance(n, ast.FunctionDef))
    args = [a.arg for a in init.args.posonlyargs + init.args.args + init.args.kwonlyargs]
    return ArchInfo(body.get("kind", defaults["kind"])[0], body.get("input", defaults["input"])[0],
                    tuple(a for a in args if a not in BUILD_ARGS))


def _class_body(path: Path, name: str) -> dict[str, list[Any]]:
    """A class's string attributes (name -> [value]) and methods (name -> [node])."""
    tree = ast.parse(path.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)
    out: dict[str, list[Any]] = {}
    for node in cls.body:
        target = (node.targets[0] if isinstance(node, ast.Assign) else
                  node.target if isinstance(node, ast.AnnAssign) else None)
        if isinstance(target, ast.Name) and isinstance(getattr(node, "value", None),
                                                       ast.Constant):
            out[target.id] = [node.value.value]
        elif isinstance(node, ast.FunctionDef):
            out[node.name] = [node]
    return out


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
