"""Readers: BrainVision EEG via mne, NIfTI BOLD via nibabel, with errors that name the file."""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass
from pathlib import Path

import mne
import nibabel as nib
import numpy as np

from eeg2fmri.errors import InputError


@dataclass
class EEGRecording:
    data: np.ndarray  # [C, S] volts, float64
    fs: float
    ch_names: list[str]
    markers: dict[str, np.ndarray]  # description -> onset samples
    path: Path


@dataclass
class BoldRun:
    data: np.ndarray  # [X, Y, Z, T]
    affine: np.ndarray
    tr: float
    path: Path


def _vhdr_common(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    body = text.split("\n", 1)[1] if "\n" in text else ""  # skip the "Brain Vision ..." title
    parser = configparser.ConfigParser(interpolation=None, strict=False, comment_prefixes=(";",))
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    try:
        parser.read_string(body)
    except configparser.Error as e:
        raise InputError(path, f"not a readable BrainVision header ({e})") from None
    if "Common Infos" not in parser:
        raise InputError(path, "not a BrainVision header: no [Common Infos] section")
    return dict(parser["Common Infos"])


def read_brainvision(path: str | Path) -> EEGRecording:
    """Read a BrainVision recording; checks the data file exists and the samples are finite."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "EEG header file does not exist")
    common = _vhdr_common(path)
    for key in ("DataFile", "MarkerFile"):
        name = common.get(key)
        if not name:
            raise InputError(path, f"header has no {key}= line")
        if not (path.parent / name).is_file():
            raise InputError(path, f"{key}={name} names a file that does not exist in "
                                   f"{path.parent}")
    try:
        raw = mne.io.read_raw_brainvision(path, preload=True, verbose="error")
    except Exception as e:  # mne raises many types for malformed files
        raise InputError(path, f"could not be read as BrainVision EEG: {e}") from None
    data = raw.get_data()
    bad = ~np.isfinite(data)
    if bad.any():
        ch, s = np.argwhere(bad)[0]
        raise InputError(path, f"EEG contains {int(bad.sum())} NaN/inf samples (first: channel "
                               f"{raw.ch_names[ch]!r}, sample {s})")
    markers: dict[str, list[int]] = {}
    onsets = raw.time_as_index(raw.annotations.onset, use_rounding=True)
    for desc, onset in zip(raw.annotations.description, onsets, strict=True):
        markers.setdefault(str(desc), []).append(int(onset))
    return EEGRecording(data, float(raw.info["sfreq"]), list(raw.ch_names),
                        {k: np.asarray(v) for k, v in markers.items()}, path)


def find_markers(rec: EEGRecording, marker: str) -> np.ndarray:
    """Onsets of the markers whose description is `marker` ("Type/Desc") or ends with "/marker"."""
    hits = [v for k, v in rec.markers.items()
            if k == marker or re.sub(r"\s+", "", k.split("/", 1)[-1]) == re.sub(r"\s+", "", marker)]
    return np.sort(np.concatenate(hits)) if hits else np.zeros(0, dtype=int)


def read_bold(path: str | Path, expected_tr: float | None = None, tol: float = 1e-3) -> BoldRun:
    """Read a 4-D NIfTI BOLD run; checks it is 4-D, finite, and has the expected TR."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "BOLD file does not exist")
    try:
        img = nib.load(path)
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as e:
        raise InputError(path, f"could not be read as NIfTI: {e}") from None
    if data.ndim != 4:
        raise InputError(path, f"BOLD must be 4-D (x, y, z, time); got shape {data.shape}")
    zooms = img.header.get_zooms()
    tr = float(zooms[3]) if len(zooms) > 3 else 0.0
    if img.header.get_xyzt_units()[1] == "msec":
        tr /= 1000.0
    if expected_tr is not None and abs(tr - expected_tr) > tol:
        raise InputError(path, f"TR in the NIfTI header is {tr:g} s but the dataset says "
                               f"{expected_tr:g} s")
    if not np.isfinite(data).all():
        raise InputError(path, "BOLD contains NaN/inf voxels")
    return BoldRun(data, img.affine, tr, path)
