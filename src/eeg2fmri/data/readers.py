"""Readers: BrainVision EEG via mne, NIfTI BOLD via nibabel, with errors that name the file."""

from __future__ import annotations

import configparser
import errno
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mne
import nibabel as nib
import numpy as np

from eeg2fmri.errors import InputError


@dataclass
class EEGRecording:
    data: np.ndarray | None  # [C, S] volts, float64; None when only the header was read
    fs: float
    ch_names: list[str]
    markers: dict[str, np.ndarray]  # description ("Type/Description" for BrainVision) -> onsets
    path: Path
    n_samples: int = 0
    format: str = ""

    def __post_init__(self) -> None:
        if self.data is not None:
            self.n_samples = self.data.shape[1]


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


def missing(path: Path, what: str) -> str:
    """Why `path` cannot be read as a file, in words: a link loop, a broken link, a folder, or
    nothing there."""
    try:
        path.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"{what} is a symbolic link loop"
        if path.is_symlink():
            return f"{what} is a broken symbolic link (to {os.readlink(path)})"
        if e.errno in (errno.EACCES, errno.EPERM):
            return f"{what} cannot be read: {e.strerror}"
        return f"{what} does not exist"
    return f"{what} is not a regular file" if not path.is_dir() else f"{what} is a folder"


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


_BV_BYTES = {"INT_16": 2, "UINT_16": 2, "INT_32": 4, "IEEE_FLOAT_32": 4}


def check_brainvision(path: Path, common: dict[str, str]) -> None:
    """The header agrees with itself and with its data file: channel count against the
    [Channel Infos] lines, data file size against channels x bytes per sample (and DataPoints=
    where the header states it)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        n_ch = int(common.get("NumberOfChannels", ""))
    except ValueError:
        raise InputError(path, "header has no valid NumberOfChannels= line") from None
    if n_ch < 1:
        raise InputError(path, f"header says NumberOfChannels={n_ch}: a recording needs at "
                               "least one channel")
    try:
        interval = float(common.get("SamplingInterval", ""))
    except ValueError:
        raise InputError(path, "header has no valid SamplingInterval= line (microseconds per "
                               "sample)") from None
    if not 0 < interval < float("inf"):
        raise InputError(path, f"header says SamplingInterval={common['SamplingInterval']}: "
                               "microseconds per sample must be positive")
    section = re.search(r"^\[Channel Infos\][^\n]*\n(.*?)(?=^\[|\Z)", text,
                        flags=re.MULTILINE | re.DOTALL)
    listed = len(re.findall(r"^Ch\d+=", section[1] if section else "", flags=re.MULTILINE))
    if listed != n_ch:
        raise InputError(path, f"header says NumberOfChannels={n_ch} but its [Channel Infos] "
                               f"section lists {listed} channels")
    fmt = re.search(r"^BinaryFormat=(\S+)", text, flags=re.MULTILINE)
    if (common.get("DataFormat", "BINARY").upper() != "BINARY" or fmt is None
            or fmt[1].upper() not in _BV_BYTES):
        return  # ASCII data or an unusual format: MNE checks what it can
    data_file, _ = _companion(path, common, "DataFile", (".eeg", ".dat"))
    frame = n_ch * _BV_BYTES[fmt[1].upper()]
    size = data_file.stat().st_size
    if size % frame:
        raise InputError(data_file, f"is {size:,} bytes, not a whole number of samples of "
                                    f"{n_ch} channels x {frame // n_ch} bytes (header "
                                    f"{path.name}): the file is truncated or the header wrong")
    n_samples = size // frame
    points = common.get("DataPoints")
    if points and points.strip().isdigit() and int(points) != n_samples:
        raise InputError(data_file, f"holds {n_samples:,} samples ({size:,} bytes) but "
                                    f"header {path.name} says DataPoints={int(points):,}: the "
                                    f"file is truncated or the header wrong")
    marker_file, _ = _companion(path, common, "MarkerFile", (".vmrk",))
    marks = re.findall(r"^(Mk\d+)=[^,\n]*,[^,\n]*,\s*(-?\d+)",
                       marker_file.read_text("utf-8", errors="replace"), flags=re.MULTILINE)
    before = [(name, int(p)) for name, p in marks if int(p) < 1]
    if before:
        raise InputError(marker_file, f"{len(before)} marker(s) lie before the recording's first "
                                      f"sample (the first: {before[0][0]} at position "
                                      f"{before[0][1]}; positions count from 1): the marker "
                                      "file is damaged or belongs to another recording")
    positions = [int(p) for _, p in marks]
    past = [p for p in positions if p - 1 >= n_samples]  # positions count from 1
    if past:
        raise InputError(data_file, f"holds {n_samples:,} samples ({size:,} bytes) but "
                                    f"{len(past)} of {len(positions)} markers in "
                                    f"{marker_file.name} lie past its end (last at sample "
                                    f"{max(past) - 1:,}): the data file is truncated or "
                                    "belongs to another recording")


def check_edf(path: Path) -> None:
    """An EDF/BDF file's size against its header (records x samples per record x bytes)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(256)
        try:
            header_bytes, n_records = int(head[184:192]), int(head[236:244])
            ns = int(head[252:256])
            if ns < 1 or header_bytes != 256 * (ns + 1) or size < header_bytes:
                raise ValueError(f"{ns} signals, {header_bytes}-byte header, {size}-byte file")
            f.seek(256 + ns * 216)
            per_record = sum(int(f.read(8)) for _ in range(ns))
        except ValueError as e:
            detail = f" ({e})" if "signals" in str(e) else ""
            raise InputError(path, f"not a valid EDF/BDF header{detail}: the file is truncated "
                                   "or not EDF") from None
    if n_records < 0:
        return  # unknown number of records (recording not closed): MNE counts them
    width = 3 if path.suffix.lower() == ".bdf" else 2
    expected = header_bytes + n_records * per_record * width
    if size < expected:
        raise InputError(path, f"is {size:,} bytes but its header ({n_records} records of "
                               f"{per_record} samples x {width} bytes) needs {expected:,}: the "
                               "file is truncated")


def check_eeglab(path: Path, raw: mne.io.BaseRaw) -> None:
    """An EEGLAB .set whose samples lie in a separate .fdt: the .fdt's size against the header
    (channels x samples x 4 bytes). MNE reads the header alone and fails only when the samples
    are read, asking for a bug report."""
    data = Path(raw.filenames[0])
    if data.suffix.lower() != ".fdt":
        return  # samples inside the .set
    if not data.is_file():
        raise InputError(data, f"does not exist, but {path.name} keeps its samples there")
    n_channels, n_samples = raw.info["nchan"], raw.n_times
    expected = n_channels * n_samples * 4
    size = data.stat().st_size
    if size != expected:
        raise InputError(data, f"is {size:,} bytes but {path.name} declares {n_channels} channels "
                               f"x {n_samples} samples x 4 bytes = {expected:,}: the file is "
                               f"{'truncated' if size < expected else 'longer than its header'}")


_MNE_READERS = {"brainvision": "read_raw_brainvision", "edf": "read_raw_edf",
                "bdf": "read_raw_bdf", "eeglab": "read_raw_eeglab", "fif": "read_raw_fif"}


@contextmanager
def open_raw(path: str | Path, fmt: str) -> Iterator[mne.io.BaseRaw]:
    """An MNE Raw (no samples read yet) of an EEG file whose header was checked against its
    size (MNE would guess); BrainVision headers with stale file names are repaired first."""
    path = Path(path)
    if fmt not in _MNE_READERS:
        raise InputError(path, f"unknown EEG format {fmt!r} (known: {', '.join(_MNE_READERS)}"
                               ", mat)")
    if not path.is_file():
        raise InputError(path, missing(path, "EEG file"))
    repaired = None
    if fmt == "brainvision":
        common = _vhdr_common(path)
        check_brainvision(path, common)
        repaired, fixes = _repaired_header(path, common)
        for fix in fixes:
            print(f"{path}: repaired header line {fix}", file=sys.stderr)
    elif fmt in ("edf", "bdf"):
        check_edf(path)
    try:
        try:
            raw = getattr(mne.io, _MNE_READERS[fmt])(repaired or path, preload=False,
                                                     verbose="error")
        except Exception as e:  # mne raises many types for malformed files
            raise InputError(path, f"could not be read as {fmt} EEG: {e}") from None
        if fmt == "eeglab":
            check_eeglab(path, raw)
        yield raw
    finally:
        if repaired is not None:
            shutil.rmtree(repaired.parent, ignore_errors=True)


def raw_markers(raw: mne.io.BaseRaw) -> dict[str, np.ndarray]:
    """Annotations as {description: onset samples} (BrainVision: "Type/Description")."""
    markers: dict[str, list[int]] = {}
    ann = raw.annotations
    onsets = raw.time_as_index(ann.onset, use_rounding=True, origin=ann.orig_time)
    for desc, onset in zip(ann.description, onsets, strict=True):
        markers.setdefault(str(desc), []).append(int(onset))
    return {k: np.asarray(v) for k, v in markers.items()}


def read_samples(raw: mne.io.BaseRaw, path: Path, channels: list[str], start: int = 0,
                 stop: int | None = None) -> np.ndarray:
    """Samples [start, stop) of `channels` (in that order), volts, checked finite."""
    names = list(raw.ch_names)
    try:
        data = raw.get_data(picks=[names.index(c) for c in channels], start=start, stop=stop)
    except Exception as e:
        raise InputError(path, f"samples could not be read: {e}") from None
    bad = ~np.isfinite(data)
    if bad.any():
        ch, s = np.argwhere(bad)[0]
        raise InputError(path, f"EEG contains {int(bad.sum())} NaN/inf samples (first: "
                               f"channel {channels[ch]!r}, sample {start + s})")
    return data


def read_eeg_file(path: str | Path, fmt: str, *, header_only: bool = False,
                  channels: list[str] | None = None) -> EEGRecording:
    """An EEG recording in any format MNE reads (volts), its markers as sample onsets; with
    `header_only` no samples are read; `channels` reads only those (by name, in that order)."""
    path = Path(path)
    with open_raw(path, fmt) as raw:
        names = list(raw.ch_names) if channels is None else list(channels)
        data = None if header_only else read_samples(raw, path, names)
        return EEGRecording(data, float(raw.info["sfreq"]),
                            names if not header_only else list(raw.ch_names), raw_markers(raw),
                            path, n_samples=int(raw.n_times), format=fmt)


def read_brainvision(path: str | Path) -> EEGRecording:
    """Read a BrainVision recording (header checked against the data file's size)."""
    return read_eeg_file(path, "brainvision")


def read_mat_eeg(path: str | Path, key: str, rows: int | None, fs: float,
                 scale: float = 1e-6, header_only: bool = False) -> EEGRecording:
    """EEG stored as a [channels, samples] matrix in a MATLAB file (Oddball's `EEG_noGA.mat`,
    microvolts at 1 kHz), first `rows` rows; returned in volts like the BrainVision reader."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "EEG .mat file does not exist")
    if header_only:
        try:
            shapes = {name: shape for name, shape, _ in scipy.io.whosmat(path)}
        except NotImplementedError:  # v7.3: read the matrix (transposed, as below)
            shapes = {k: v.shape for k, v in _read_mat73(path, key).items()}
        except Exception as e:
            raise InputError(path, f"could not be read as a MATLAB file: {e}") from None
        if key not in shapes or len(shapes[key]) != 2:
            raise InputError(path, f"has no 2-D variable {key!r}")
        n_rows = shapes[key][0] if rows is None else rows
        if shapes[key][0] < n_rows:
            raise InputError(path, f"{key} has {shapes[key][0]} rows, expected at least {rows}")
        return EEGRecording(None, fs, [f"EEG{i + 1:03d}" for i in range(n_rows)], {}, path,
                            n_samples=int(shapes[key][1]), format="mat")
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
    return EEGRecording(data * scale, fs, names, {}, path, format="mat")


def _read_mat73(path: Path, key: str) -> dict[str, np.ndarray]:
    try:
        import h5py
    except ImportError:
        raise InputError(path, "is a MATLAB v7.3 (HDF5) file; install h5py to read it") from None
    with h5py.File(path, "r") as f:
        return {key: np.asarray(f[key]).T} if key in f else {}


def find_markers(rec: EEGRecording, marker: str | None, marker_type: str | None = None
                 ) -> np.ndarray:
    """Onsets of a recording's markers with description `marker` and/or type `marker_type`."""
    return match_markers(rec.markers, marker, marker_type)


def match_markers(markers: dict[str, np.ndarray], marker: str | None,
                  marker_type: str | None = None) -> np.ndarray:
    """Sorted onsets of the markers with description `marker` and/or type `marker_type`.

    BrainVision markers reach us as "Type/Description" ("Response/R128"); `marker` may be
    either form. Whitespace inside descriptions is ignored ("S  1" == "S1")."""
    def norm(text: str) -> str:
        return re.sub(r"\s+", "", text)

    hits = []
    for key, onsets in markers.items():
        kind, _, desc = key.rpartition("/") if "/" in key else ("", "", key)
        if marker is not None and norm(key) != norm(marker) and norm(desc) != norm(marker):
            continue
        if marker_type is not None and norm(kind) != norm(marker_type) and (
                kind or marker is None):  # formats without marker types match by description
            continue
        hits.append(onsets)
    return np.sort(np.concatenate(hits)).astype(np.int64) if hits else np.zeros(0, np.int64)


@dataclass
class BoldHeader:
    shape: tuple[int, ...]
    tr: float  # from the NIfTI header (0 when it has none)
    sidecar_tr: float | None  # RepetitionTime of the BIDS sidecar, if there is one
    sidecar: Path | None
    path: Path


def read_bold_header(path: str | Path) -> BoldHeader:
    """Shape and TR of a NIfTI BOLD run without reading its voxels, and the TR of its BIDS
    sidecar (the .json beside it, else an inherited task-level one up the tree)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, missing(path, "BOLD file"))
    try:
        img = nib.load(path)
        shape = tuple(int(n) for n in img.shape)
        zooms = img.header.get_zooms()
        unit = img.header.get_xyzt_units()[1]
    except Exception as e:
        raise InputError(path, f"could not be read as NIfTI: {e}") from None
    tr = float(zooms[3]) if len(zooms) > 3 else 0.0
    if unit == "msec":
        tr /= 1000.0
    sidecar = _sidecar(path)
    sidecar_tr = None
    if sidecar is not None:
        try:
            value = json.loads(sidecar.read_text()).get("RepetitionTime")
        except ValueError as e:
            raise InputError(sidecar, f"not readable JSON ({e})") from None
        sidecar_tr = None if value is None else float(value)
    return BoldHeader(shape, tr, sidecar_tr, sidecar, path)


def _sidecar(path: Path) -> Path | None:
    """The BIDS JSON sidecar of a BOLD file: beside it, else the inherited task-level file
    (task-<label>_bold.json) in a parent folder."""
    stem = path.name.split(".nii")[0]
    own = path.with_name(stem + ".json")
    if own.is_file():
        return own
    task = re.search(r"_(task-[A-Za-z0-9]+)", stem)
    if task:
        for parent in list(path.parents)[:4]:
            inherited = parent / f"{task[1]}_bold.json"
            if inherited.is_file():
                return inherited
    return None


def read_bold(path: str | Path, expected_tr: float | None = None, tol: float = 1e-3) -> BoldRun:
    """Read a 4-D NIfTI BOLD run; checks it is 4-D, finite, and has the expected TR."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, missing(path, "BOLD file"))
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
