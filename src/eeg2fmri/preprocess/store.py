"""The features store: one directory per subject, each EEG window stored once.

    eeg.npy    [T, C, F] float32 |FFT| magnitudes (microvolts), memory-mappable
    raw.npy    [T, C, S] float16 raw EEG windows of S = fs*TR samples (microvolts)
    bold.npy   [T, Z, X, Y] float32, each volume min-max scaled to [0, 1]
    mask.npy   [Z, X, Y] bool brain mask (ground truth when simulated, else from the mean volume)
    clean.npy  [T, Z, X, Y] noise-free BOLD, same scaling (simulated data only)
    meta.json  shapes, sampling, alignment, runs and their [start, stop) segments, affine

Runs of a subject are concatenated; contexts never cross a run boundary.

The 20-window context for volume t is windows t-20 .. t-1, assembled by indexing at load time.
"""

from __future__ import annotations

import json
import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from eeg2fmri.data.datasets import PAPER_PAIRING, DatasetSpec
from eeg2fmri.data.readers import EEGRecording, read_bold, read_brainvision, read_mat_eeg
from eeg2fmri.errors import InputError
from eeg2fmri.io import save_npy, write_json
from eeg2fmri.preprocess import STORE_FILES
from eeg2fmri.preprocess.eeg import (
    decimate,
    select_channels,
    volume_onsets,
    window_samples,
    window_spectra,
)
from eeg2fmri.preprocess.fmri import dct_reduce, minmax_per_volume, to_volumes


def read_eeg(ds: DatasetSpec, path: Path) -> EEGRecording:
    """A run's EEG in volts, by the dataset's format, without its non-EEG channels."""
    if ds.eeg_format == "oddball_mat":
        assert ds.fs is not None
        rec = read_mat_eeg(path, "data_noGA", ds.eeg_rows, ds.fs)
    elif ds.eeg_format == "brainvision":
        rec = read_brainvision(path)
    else:
        raise ValueError(f"dataset {ds.name}: unknown EEG format {ds.eeg_format!r}")
    return select_channels(rec, ds.drop_channels)


def _run_features(ds: DatasetSpec, eeg_path: Path, bold_path: Path, *, n_bins: int,
                  alignment: str, drop: int) -> dict[str, Any]:
    """One run: align volumes to EEG windows, |FFT| spectra, volumes on the dataset's grid."""
    rec = read_eeg(ds, eeg_path)
    run = read_bold(bold_path, expected_tr=ds.tr)
    n_vol = run.data.shape[-1]
    onsets = volume_onsets(rec, ds.tr, n_vol, alignment=alignment, marker=ds.volume_marker)
    vol_index = np.arange(len(onsets))[drop:]  # dummy scans go with their windows
    onsets = onsets[drop:]
    data, fs = rec.data, rec.fs
    if ds.decimate > 1:
        data, fs = decimate(data, ds.decimate), fs / ds.decimate
        onsets = np.round(onsets / ds.decimate).astype(np.int64)
    n_win = int(round(fs * ds.tr))
    if n_bins > n_win // 2:
        raise InputError(eeg_path, f"features.n_bins = {n_bins} but a {n_win}-sample window "
                                   f"(fs {fs:g} Hz x TR {ds.tr:g} s) has {n_win // 2} bins "
                                   "above DC")
    keep = (onsets >= 0) & (onsets + n_win <= data.shape[1])  # windows the EEG covers
    onsets, vol_index = onsets[keep], vol_index[keep]
    if len(onsets) < 2:
        raise InputError(eeg_path, f"only {len(onsets)} volume(s) have a complete EEG window")
    vols, affine = run.data[..., vol_index], run.affine
    if ds.grid is not None and vols.shape[:3] != ds.grid:
        vols, affine = dct_reduce(vols, affine, ds.grid)
    return {
        "spectra": window_spectra(data * 1e6, onsets, n_win, (1, 1 + n_bins)),
        "raw": window_samples(data * 1e6, onsets, n_win),
        "vols": minmax_per_volume(to_volumes(vols)), "affine": affine, "fs": fs,
        "n_win": n_win, "channels": rec.ch_names, "vol_index": vol_index,
        "info": {"eeg": str(eeg_path), "bold": str(bold_path), "n_volumes_bold": n_vol,
                 "first_volume": int(vol_index[0]), "n_pairs": len(onsets),
                 "first_onset_sample": int(onsets[0]) * ds.decimate,
                 "bold_grid": list(run.data.shape[:3])},
    }


def preprocess_subject(ds: DatasetSpec, root: Path, subject: str, out_dir: Path, *,
                       n_bins: int, pairing: str = "markers", mask_threshold: float = 0.2
                       ) -> dict[str, Any]:
    """Read, align, window and transform every run of one subject; write its store.

    pairing "markers": the dataset's own alignment and dummy scans; "paper": the references'
    (EEG sample 0 is volume 0, the first 6 volumes dropped)."""
    root = Path(root)
    if pairing == "paper":
        alignment, drop = PAPER_PAIRING["alignment"], PAPER_PAIRING["drop_volumes"]
    elif pairing == "markers":
        alignment, drop = ds.alignment, ds.drop_volumes
    else:
        raise ValueError(f"pairing must be 'markers' or 'paper', not {pairing!r}")
    runs = []
    for run in ds.runs:
        eeg_path, bold_path = ds.run_paths(root, subject, run)
        runs.append(_run_features(ds, eeg_path, bold_path, n_bins=n_bins, alignment=alignment,
                                  drop=drop))
        if runs[-1]["channels"] != runs[0]["channels"]:
            raise InputError(eeg_path, f"channels differ from run {ds.runs[0]!r} of {subject}")
        if runs[-1]["vols"].shape[1:] != runs[0]["vols"].shape[1:]:
            raise InputError(bold_path, f"grid {runs[-1]['vols'].shape[1:]} differs from run "
                                        f"{ds.runs[0]!r}: {runs[0]['vols'].shape[1:]}")
    vols = np.concatenate([r["vols"] for r in runs])
    spectra = np.concatenate([r["spectra"] for r in runs])
    raw = np.concatenate([r["raw"] for r in runs])
    bounds = np.cumsum([0] + [len(r["vols"]) for r in runs])
    truth = ds.truth_paths(root, subject)
    if "mask" in truth:
        if not truth["mask"].is_file():
            raise InputError(truth["mask"], "brain mask file does not exist")
        mask = to_volumes(np.asarray(nib.load(truth["mask"]).dataobj) > 0.5)
    else:
        mask = vols.mean(0) > mask_threshold
    out_dir.mkdir(parents=True, exist_ok=True)
    if "clean" in truth:  # simulated: one run
        clean = read_bold(truth["clean"], expected_tr=ds.tr)
        save_npy(out_dir / "clean.npy",
                 minmax_per_volume(to_volumes(clean.data[..., runs[0]["vol_index"]])))
    save_npy(out_dir / "eeg.npy", spectra)
    save_npy(out_dir / "raw.npy", raw)
    save_npy(out_dir / "bold.npy", vols)
    save_npy(out_dir / "mask.npy", mask)
    first = runs[0]
    meta = {
        "dataset": ds.name, "subject": subject, "n_volumes": len(vols),
        "channels": first["channels"], "fs": first["fs"], "tr": ds.tr,
        "window_samples": first["n_win"], "bins": [1, 1 + n_bins],
        "bin_hz": [k / ds.tr for k in (1, n_bins)], "pairing": pairing,
        "alignment": alignment, "marker": ds.volume_marker if alignment == "markers" else None,
        "dropped_volumes": drop, "decimate": ds.decimate,
        "first_onset_sample": first["info"]["first_onset_sample"],
        "eeg_shape": list(spectra.shape), "bold_shape": list(vols.shape),
        "grid": list(vols.shape[1:]), "coverage": ds.coverage,
        "segments": [[int(a), int(b)] for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
        "runs": [{"run": name, **r["info"]} for name, r in zip(ds.runs, runs, strict=True)],
        "affine": first["affine"].tolist(),
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
    raw: np.ndarray
    clean: np.ndarray | None = None

    def release(self) -> None:
        """Unmap the pages read so far (see `release_pages`)."""
        for a in (self.eeg, self.raw, self.bold, self.clean):
            if a is not None:
                release_pages(a)

    @property
    def segments(self) -> list[tuple[int, int]]:
        """[start, stop) of each run in the concatenated store (contexts never cross runs)."""
        return [tuple(seg) for seg in self.meta.get("segments", [[0, self.eeg.shape[0]]])]

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
                   _load(d / "mask.npy", None), meta, _load(d / "raw.npy", "r"), clean)


def release_pages(array: np.ndarray) -> None:
    """Drop a memory-mapped array's pages from this process's resident set (they stay in the
    page cache), so that reading a large store does not grow the training process."""
    mm = getattr(array, "_mmap", None)
    if mm is not None and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)


def _load(path: Path, mmap_mode: str | None) -> np.ndarray:
    try:
        return np.load(path, mmap_mode=mmap_mode)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(path, f"not a readable .npy array ({e}); rerun the preprocess rule"
                         ) from e
