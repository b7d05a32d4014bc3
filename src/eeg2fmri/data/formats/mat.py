"""EEG stored as a [channels, samples] matrix in a MATLAB file (Oddball's `EEG_noGA.mat`,
microvolts), first `eeg_rows` rows, at the sampling rate the dataset entry states; channels
are named EEG001, EEG002, ... MATLAB v7.3 files (HDF5) need h5py."""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np

from eeg2fmri.data.formats import ReadOptions, base
from eeg2fmri.errors import InputError, missing

SCALE = 1e-6  # the matrix holds microvolts


class Reader(base.Reader):
    def header(self, path: str | Path, options: ReadOptions | None = None) -> base.Header:
        """Shape from the file's directory of variables: the matrix is not read."""
        import scipy.io

        path, options = Path(path), options or ReadOptions()
        fs = _fs(path, options)
        if not path.is_file():
            raise InputError(path, missing(path, "EEG .mat file"))
        key = options.mat_variable
        try:
            shapes = {name: shape for name, shape, _ in scipy.io.whosmat(path)}
        except NotImplementedError:  # v7.3: read the matrix (transposed, as below)
            shapes = {k: v.shape for k, v in _read_mat73(path, key).items()}
        except Exception as e:
            raise InputError(path, f"could not be read as a MATLAB file: {e}") from None
        if key not in shapes or len(shapes[key]) != 2:
            raise InputError(path, f"has no 2-D variable {key!r}")
        n_rows = _rows(path, key, shapes[key][0], options.eeg_rows)
        return base.Header(fs, _names(n_rows), int(shapes[key][1]), {})

    def _open(self, path: Path, options: ReadOptions) -> mne.io.BaseRaw:
        import scipy.io

        fs, key = _fs(path, options), options.mat_variable
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
        data = data[:_rows(path, key, data.shape[0], options.eeg_rows)]
        if not np.isfinite(data).all():
            raise InputError(path, f"{key} contains NaN/inf samples")
        info = mne.create_info(_names(len(data)), fs, "eeg", verbose="error")
        return mne.io.RawArray(data * SCALE, info, verbose="error")


def _fs(path: Path, options: ReadOptions) -> float:
    if options.fs is None:
        raise InputError(path, f".mat EEG has no sampling rate: set {options.fs_key}")
    return float(options.fs)


def _rows(path: Path, key: str, have: int, rows: int | None) -> int:
    if rows is not None and have < rows:
        raise InputError(path, f"{key} has {have} rows, expected at least {rows}")
    return have if rows is None else rows


def _names(n: int) -> list[str]:
    return [f"EEG{i + 1:03d}" for i in range(n)]


def _read_mat73(path: Path, key: str) -> dict[str, np.ndarray]:
    try:
        import h5py
    except ImportError:
        raise InputError(path, "is a MATLAB v7.3 (HDF5) file; install h5py to read it") from None
    with h5py.File(path, "r") as f:
        return {key: np.asarray(f[key]).T} if key in f else {}
