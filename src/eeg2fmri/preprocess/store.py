"""The features store: one directory per subject, each EEG window stored once.

    eeg.npy    [T, C, F] float32 |FFT| magnitudes (microvolts), memory-mappable
    bold.npy   [T, Z, X, Y] float32, each volume min-max scaled to [0, 1]
    mask.npy   [Z, X, Y] bool brain mask (ground truth when simulated, else from the mean volume)
    clean.npy  [T, Z, X, Y] noise-free BOLD, same scaling (simulated data only)
    meta.json  shapes, sampling, alignment, affine, provenance

The 20-window context for volume t is windows t-20 .. t-1, assembled by indexing at load time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from eeg2fmri.data.readers import read_bold, read_brainvision
from eeg2fmri.errors import InputError
from eeg2fmri.io import save_npy, write_json
from eeg2fmri.preprocess import STORE_FILES
from eeg2fmri.preprocess.eeg import volume_onsets, window_spectra
from eeg2fmri.preprocess.fmri import minmax_per_volume, to_volumes


def preprocess_subject(eeg_path: Path, bold_path: Path, out_dir: Path, *, tr: float,
                       n_bins: int, alignment: str, marker: str | None,
                       clean_path: Path | None = None, mask_path: Path | None = None,
                       mask_threshold: float = 0.2) -> dict[str, Any]:
    """Read one subject's EEG and BOLD, align, window, transform and write the store."""
    rec = read_brainvision(eeg_path)
    run = read_bold(bold_path, expected_tr=tr)
    n_vol = run.data.shape[-1]
    n_win = int(round(rec.fs * tr))
    onsets = volume_onsets(rec, tr, n_vol, alignment=alignment, marker=marker)
    if n_bins > n_win // 2:
        raise InputError(eeg_path, f"features.n_bins = {n_bins} but a {n_win}-sample window "
                                   f"(fs {rec.fs:g} Hz x TR {tr:g} s) has {n_win // 2} bins "
                                   "above DC")
    onsets = onsets[onsets + n_win <= rec.data.shape[1]]  # volumes whose window the EEG covers
    n = len(onsets)
    if n < 2:
        raise InputError(eeg_path, f"only {n} volume(s) have a complete EEG window")
    spectra = window_spectra(rec.data * 1e6, onsets, n_win, (1, 1 + n_bins))
    vols = minmax_per_volume(to_volumes(run.data[..., :n]))
    if mask_path is not None:
        if not Path(mask_path).is_file():
            raise InputError(mask_path, "brain mask file does not exist")
        mask = to_volumes(np.asarray(nib.load(mask_path).dataobj) > 0.5)
    else:
        mask = vols.mean(0) > mask_threshold
    out_dir.mkdir(parents=True, exist_ok=True)
    if clean_path is not None:
        clean = read_bold(clean_path, expected_tr=tr)
        save_npy(out_dir / "clean.npy", minmax_per_volume(to_volumes(clean.data[..., :n])))
    save_npy(out_dir / "eeg.npy", spectra)
    save_npy(out_dir / "bold.npy", vols)
    save_npy(out_dir / "mask.npy", mask)
    meta = {
        "n_volumes": n, "n_volumes_bold": n_vol, "channels": rec.ch_names, "fs": rec.fs, "tr": tr,
        "window_samples": n_win, "bins": [1, 1 + n_bins],
        "bin_hz": [k / tr for k in (1, n_bins)], "alignment": alignment, "marker": marker,
        "first_onset_sample": int(onsets[0]), "eeg_shape": list(spectra.shape),
        "bold_shape": list(vols.shape), "affine": run.affine.tolist(),
        "source": {"eeg": str(eeg_path), "bold": str(bold_path)},
    }
    write_json(out_dir / "meta.json", meta)
    return meta


@dataclass
class SubjectFeatures:
    """One subject's store, memory-mapped."""

    subject: str
    eeg: np.ndarray
    bold: np.ndarray
    mask: np.ndarray
    meta: dict[str, Any]
    clean: np.ndarray | None = None

    @classmethod
    def open(cls, directory: str | Path, subject: str | None = None) -> SubjectFeatures:
        d = Path(directory)
        for name in STORE_FILES:
            if not (d / name).is_file():
                raise InputError(d / name, "features file missing; run the preprocess rule")
        try:
            meta = json.loads((d / "meta.json").read_text())
        except (ValueError, OSError) as e:
            raise InputError(d / "meta.json", f"not readable JSON ({e}); rerun preprocess") from e
        clean = _load(d / "clean.npy", "r") if (d / "clean.npy").is_file() else None
        return cls(subject or d.name, _load(d / "eeg.npy", "r"), _load(d / "bold.npy", "r"),
                   _load(d / "mask.npy", None), meta, clean)


def _load(path: Path, mmap_mode: str | None) -> np.ndarray:
    try:
        return np.load(path, mmap_mode=mmap_mode)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(path, f"not a readable .npy array ({e}); rerun the preprocess rule"
                         ) from e
