"""Readers: BrainVision EEG via mne, NIfTI BOLD via nibabel, with errors that name the file."""

from __future__ import annotations

import configparser
import re
import shutil
import sys
import tempfile
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


_COMPANIONS = (("DataFile", (".eeg", ".dat")), ("MarkerFile", (".vmrk",)))


def _companion(path: Path, common: dict[str, str], key: str, exts: tuple[str, ...]
               ) -> tuple[Path, bool]:
    """The file a header's DataFile=/MarkerFile= line should name, and whether it names it.

    Some public headers (NODDI exports, CN-EPFL) still name the acquisition files after the data
    were renamed; then the file with the header's stem and the right extension is used."""
    name = common.get(key)
    if not name:
        raise InputError(path, f"header has no {key}= line")
    if (path.parent / name).is_file():
        return path.parent / name, True
    for e in exts:
        if path.with_suffix(e).is_file():
            return path.with_suffix(e), False
    raise InputError(path, f"{key}={name} names a file that does not exist in {path.parent}, "
                           f"and there is no {' or '.join(path.stem + e for e in exts)} beside it")


def brainvision_files(path: str | Path) -> list[Path]:
    """The data and marker files a BrainVision header refers to (after repair)."""
    path = Path(path)
    common = _vhdr_common(path)
    return [_companion(path, common, key, exts)[0] for key, exts in _COMPANIONS]


def _repaired_header(path: Path, common: dict[str, str]) -> tuple[Path | None, list[str]]:
    """A temporary copy of the header whose DataFile=/MarkerFile= lines name files that exist;
    (None, []) when the header is fine."""
    raw = path.read_bytes()  # bytes: the header's own code page is kept
    fixes = []
    for key, exts in _COMPANIONS:
        target, ok = _companion(path, common, key, exts)
        if not ok:
            line = f"{key}={target.resolve()}".encode()
            raw = re.sub(rb"^" + key.encode() + rb"=[^\r\n]*", lambda _m, b=line: b, raw,
                         count=1, flags=re.MULTILINE)
            fixes.append(f"{key}={common[key]} -> {target.name}")
    if not fixes:
        return None, []
    tmp = Path(tempfile.mkdtemp(prefix="vhdr-")) / path.name
    tmp.write_bytes(raw)
    return tmp, fixes


def read_brainvision(path: str | Path) -> EEGRecording:
    """Read a BrainVision recording; checks the data file exists and the samples are finite."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "EEG header file does not exist")
    common = _vhdr_common(path)
    repaired, fixes = _repaired_header(path, common)
    for fix in fixes:
        print(f"{path}: repaired header line {fix}", file=sys.stderr)
    try:
        return _read_brainvision(path, repaired or path)
    finally:
        if repaired is not None:
            shutil.rmtree(repaired.parent, ignore_errors=True)


def _read_brainvision(path: Path, header: Path) -> EEGRecording:
    try:
        raw = mne.io.read_raw_brainvision(header, preload=True, verbose="error")
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


def read_mat_eeg(path: str | Path, key: str, rows: int | None, fs: float,
                 scale: float = 1e-6) -> EEGRecording:
    """EEG stored as a [channels, samples] matrix in a MATLAB file (Oddball's `EEG_noGA.mat`,
    microvolts at 1 kHz), first `rows` rows; returned in volts like the BrainVision reader."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "EEG .mat file does not exist")
    try:
        mat = scipy.io.loadmat(path, variable_names=[key])
    except NotImplementedError:  # MATLAB v7.3 files are HDF5
        mat = _read_mat73(path, key)
    except Exception as e:
        raise InputError(path, f"could not be read as a MATLAB file: {e}") from None
    if key not in mat:
        raise InputError(path, f"has no variable {key!r}")
    data = np.asarray(mat[key], dtype=np.float64)
    if data.ndim != 2:
        raise InputError(path, f"{key} must be a 2-D [channels, samples] matrix, got shape "
                               f"{data.shape}")
    if rows is not None:
        if data.shape[0] < rows:
            raise InputError(path, f"{key} has {data.shape[0]} rows, expected at least {rows}")
        data = data[:rows]
    if not np.isfinite(data).all():
        raise InputError(path, f"{key} contains NaN/inf samples")
    names = [f"EEG{i + 1:03d}" for i in range(data.shape[0])]
    return EEGRecording(data * scale, fs, names, {}, path)


def _read_mat73(path: Path, key: str) -> dict[str, np.ndarray]:
    try:
        import h5py
    except ImportError:
        raise InputError(path, "is a MATLAB v7.3 (HDF5) file; install h5py to read it") from None
    with h5py.File(path, "r") as f:
        return {key: np.asarray(f[key]).T} if key in f else {}


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
