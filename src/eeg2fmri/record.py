"""The model record: what training writes to `model.pt` and evaluation and synthesis read.

One versioned dictionary of plain values (str, int, float, bool, None, lists, dicts) and
tensors, so that `torch.load(path, weights_only=True)` loads it without running any code from the
file. Version 1 holds:

    format, version, package_version
    arch, params            the architecture and its constructor settings (see models.build_model)
    state                   the weights {name: tensor}
    spec                    the workflow's training spec (name, features, training settings)
    eeg                     what the model reads: channels (names, in order), fs (Hz, after any
                            decimation), tr (s), window_samples, bins [lo, hi) of the |rFFT|,
                            input ("spectra" or "raw"), context (windows before a volume),
                            norm {mode, a, b} (fitted on the training subjects), marker (the
                            training data's volume marker), decimate
    volume                  shape [D, H, W] (the store's [Z, X, Y]), affine (4x4 list), coverage
    dataset, fold {name, tests, val, train}, shuffle_seed, sequence (task settings or None)
    summary, provenance     how training went and what ran it

`save_record` checks a record holds nothing else; `load_record` refuses anything that would run
code, and an older or newer version, with a one-line error.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eeg2fmri import __version__
from eeg2fmri.errors import InputError
from eeg2fmri.io import atomic_path
from eeg2fmri.models import build_model
from eeg2fmri.models.base import Model

FORMAT = "eeg2fmri-model"
VERSION = 1


def plain(obj: Any) -> Any:
    """`obj` with numpy values turned into tensors / Python numbers and tuples into lists."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"a model record holds plain values and tensors, not {type(obj).__name__}")


def save_record(path: str | Path, record: dict[str, Any]) -> None:
    """Write a record (atomically), stamped with the format, version and package version."""
    full = plain({**record, "format": FORMAT, "version": VERSION,
                  "package_version": __version__})
    with atomic_path(path) as tmp:
        torch.save(full, tmp)


def load_record(path: str | Path) -> dict[str, Any]:
    """A record written by `save_record`, loaded without running code from the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "model file does not exist")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(path, f"refused: not a plain model record, loading it would run code "
                               f"from the file ({first[:160]})") from None
    except Exception as e:  # truncated or not a torch file at all
        raise InputError(path, f"not a readable model record ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:160] if str(e) else ''})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise InputError(path, "not an eeg2fmri model record")
    if record.get("version") != VERSION:
        raise InputError(path, f"model record version {record.get('version')} (written by "
                               f"eeg2fmri {record.get('package_version')}); this is eeg2fmri "
                               f"{__version__}, which reads version {VERSION}: retrain, or use "
                               "the version that wrote it")
    return record


def load_model(path: str | Path, device: torch.device) -> tuple[Model, dict[str, Any]]:
    """The model of a record (see `eeg2fmri.record`), on `device`, in eval mode."""
    record = load_record(path)
    eeg = record["eeg"]
    n_freqs = (eeg["window_samples"] if eeg["input"] == "raw"
               else eeg["bins"][1] - eeg["bins"][0])
    model = build_model(record["arch"], n_channels=len(eeg["channels"]), n_freqs=n_freqs,
                        out_shape=tuple(record["volume"]["shape"]), context=eeg["context"],
                        **record["params"])
    model.load_state_dict(record["state"])
    return model.to(device).eval(), record
