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
                            training data's volume marker), decimate, ingestion (the
                            ingestion path's settings, `preprocess.ingest.Ingestion`),
                            amplitude_uv (the training EEG's scale)
    volume                  shape [D, H, W] (the store's [Z, X, Y]), affine (4x4 list), coverage
    dataset, fold {name, tests, val, train}, shuffle_seed, sequence (task settings or None)
    summary, provenance     how training went and what ran it
    imported                (only a record `eeg2fmri import` wrote) where its weights
                            came from: the reference code, the state_dict file and its SHA-256,
                            the EEG range of its normalisation and where that came from

`save_record` checks a record holds nothing else; `load_record` refuses anything that would run
code, and an older or newer version, with a one-line error.
"""

from __future__ import annotations

import hashlib
import json
import math
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


REQUIRED = {"arch": str, "params": dict, "state": dict, "spec": dict, "eeg": dict,
            "volume": dict, "fold": dict}
REQUIRED_EEG = ("channels", "fs", "tr", "window_samples", "bins", "input", "context", "norm")


def digest(record: dict[str, Any]) -> str:
    """SHA-256 of everything in a record but its `digest`: tensors by dtype, shape and bytes,
    other values as JSON. Any edit after training changes it."""
    h = hashlib.sha256()

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            h.update(b"{")
            for key in sorted(obj):
                if key != "digest":
                    h.update(json.dumps(key).encode() + b":")
                    walk(obj[key])
            h.update(b"}")
        elif isinstance(obj, list | tuple):
            h.update(b"[")
            for value in obj:
                walk(value)
            h.update(b"]")
        elif isinstance(obj, torch.Tensor):
            t = obj.detach().cpu().contiguous().reshape(-1)
            h.update(f"T{t.dtype}{tuple(obj.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
        else:
            h.update(json.dumps(obj).encode())

    walk(record)
    return h.hexdigest()


def save_record(path: str | Path, record: dict[str, Any]) -> None:
    """Write a record (atomically), stamped with the format, version, package version and the
    digest of all of it."""
    full = plain({**record, "format": FORMAT, "version": VERSION,
                  "package_version": __version__})
    full["digest"] = digest(full)
    with atomic_path(path) as tmp:
        torch.save(full, tmp)


def check_record(path: Path, record: dict[str, Any]) -> None:
    """A loaded record is whole, unedited and usable: its digest, the keys and types readers
    need, a known architecture, finite weights and normalisation. One line naming the file."""
    if "digest" in record and record["digest"] != digest(record):
        raise InputError(path, "was changed after training (its digest differs from its "
                               "contents): retrain it, or restore the file training wrote")
    for key, kind in REQUIRED.items():
        if not isinstance(record.get(key), kind):
            raise InputError(path, f"model record lacks {key!r} (or it is not a "
                                   f"{kind.__name__}): retrain it")
    missing = [k for k in REQUIRED_EEG if k not in record["eeg"]]
    if missing:
        raise InputError(path, f"model record's 'eeg' lacks {missing}: retrain it")
    from eeg2fmri.models import ARCHITECTURES

    if record["arch"] not in ARCHITECTURES:
        raise InputError(path, f"unknown architecture {record['arch']!r} (known: "
                               f"{', '.join(sorted(ARCHITECTURES))})")
    norm_a, channels = record["eeg"]["norm"].get("a"), record["eeg"]["channels"]
    if isinstance(norm_a, torch.Tensor) and norm_a.ndim == 2 and norm_a.shape[0] != len(channels):
        raise InputError(path, f"eeg.norm was fitted on {norm_a.shape[0]} channels but "
                               f"eeg.channels lists {len(channels)}: retrain it")
    for where, tree in (("state", record["state"]), ("eeg.norm", record["eeg"]["norm"])):
        for name, value in _leaves(tree):
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(
                    torch.isfinite(value).all()):
                raise InputError(path, f"{where}.{name} holds NaN/inf values: retrain it")
            if isinstance(value, float) and not math.isfinite(value):
                raise InputError(path, f"{where}.{name} is {value}: retrain it")


def _leaves(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(tree, dict):
        return [leaf for k, v in tree.items()
                for leaf in _leaves(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(tree, list):
        return [leaf for i, v in enumerate(tree) for leaf in _leaves(v, f"{prefix}[{i}]")]
    return [(prefix, tree)]


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
        raise InputError(path, f"model record version {record.get('version')!r} (written by "
                               f"eeg2fmri {record.get('package_version')}) is not the version "
                               f"{VERSION} this eeg2fmri {__version__} reads: retrain, or use "
                               "the eeg2fmri that wrote it")
    check_record(path, record)
    return record


def load_model(path: str | Path, device: torch.device) -> tuple[Model, dict[str, Any]]:
    """The model of a record (see `eeg2fmri.record`), on `device`, in eval mode."""
    record = load_record(path)
    eeg = record["eeg"]
    n_freqs = (eeg["window_samples"] if eeg["input"] == "raw"
               else eeg["bins"][1] - eeg["bins"][0])
    try:
        model = build_model(record["arch"], n_channels=len(eeg["channels"]), n_freqs=n_freqs,
                            out_shape=tuple(record["volume"]["shape"]), context=eeg["context"],
                            **record["params"])
        model.load_state_dict(record["state"])
    except (RuntimeError, TypeError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise InputError(path, f"its weights do not fit its settings ({first}): retrain it"
                         ) from None
    return model.to(device).eval(), record
