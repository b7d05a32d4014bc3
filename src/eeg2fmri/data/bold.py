"""BOLD runs: 4-D NIfTI via nibabel (shape and TR from the header, checked against the BIDS
sidecar), with errors that name the file."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from eeg2fmri.errors import InputError, missing


@dataclass
class BoldRun:
    data: np.ndarray  # [X, Y, Z, T]
    affine: np.ndarray
    tr: float
    path: Path


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
    sidecar = sidecar_of(path)
    sidecar_tr = None
    if sidecar is not None:
        try:
            value = json.loads(sidecar.read_text()).get("RepetitionTime")
        except ValueError as e:
            raise InputError(sidecar, f"not readable JSON ({e})") from None
        sidecar_tr = None if value is None else float(value)
    return BoldHeader(shape, tr, sidecar_tr, sidecar, path)


def sidecar_of(path: Path) -> Path | None:
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
