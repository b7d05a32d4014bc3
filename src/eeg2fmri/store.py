"""The features store's reader: one directory per subject, each EEG window stored once.

    eeg.npy    [T, C, F] float32 |FFT| magnitudes (microvolts), memory-mappable
    raw.npy    [T, C, S] float16 raw EEG windows of S = fs*TR samples (microvolts)
    bold.npy   [T, Z, X, Y] float32, each volume min-max scaled to [0, 1]
    mask.npy   [Z, X, Y] bool brain mask (ground truth when simulated, else from the mean volume)
    clean.npy  [T, Z, X, Y] noise-free BOLD, same scaling (simulated data only)
    rois.npy   [Z, X, Y] int16 region labels (0: none; names in meta.json "rois"), where the
               dataset declares regions of interest (the simulated one always)
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

import numpy as np

from eeg2fmri.errors import InputError
from eeg2fmri.made_with import refuse_if_differs

# Every subject's store holds these (the workflow declares them as outputs); simulated data also
# `clean.npy`.
STORE_FILES = ("eeg.npy", "raw.npy", "bold.npy", "mask.npy", "meta.json")
OPTIONAL_FILES = ("clean.npy", "rois.npy")


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
    directory: Path | None = None
    rois: np.ndarray | None = None  # [Z, X, Y] region labels (0: none), meta["rois"] names

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
        rois = _load(d / "rois.npy", None) if (d / "rois.npy").is_file() else None
        subj = cls(subject or d.name, _load(d / "eeg.npy", "r"), _load(d / "bold.npy", "r"),
                   _load(d / "mask.npy", None), meta, _load(d / "raw.npy", "r"), clean, d, rois)
        subj._check_shapes()
        return subj

    def _check_shapes(self) -> None:
        """The arrays are the ones meta.json describes (not another writer's)."""
        for name, array in (("eeg", self.eeg), ("raw", self.raw), ("bold", self.bold)):
            stated = self.meta.get(f"{name}_shape")
            if stated is not None and list(array.shape) != list(stated):
                raise InputError(_where(self), f"says {name}.npy is {stated} but it is "
                                               f"{list(array.shape)}: the store mixes two "
                                               "preprocessing runs; rerun the preprocess rule")


def check_settings(subjects: list[SubjectFeatures], expected: dict[str, Any] | None = None
                   ) -> None:
    """Every store was made with the same preprocessing settings, and with `expected` (the
    settings this run's config gives) where known: one line naming the store, the settings that
    differ and what to do (two experiments sharing data_root, a stale store)."""
    remedy = ("It belongs to another experiment sharing data_root, or to an earlier config "
              "or eeg2fmri (code: the digest of the preprocessing code): give this experiment a "
              "data_root of its own, or preprocess anew (snakemake --forcerun preprocess)")
    for subj in subjects:
        made = subj.meta.get("settings")
        if made is None:
            raise InputError(_where(subj), "does not record the settings it was made with (an "
                                           "older eeg2fmri): preprocess anew (snakemake "
                                           "--forcerun preprocess)")
        if expected is not None:
            refuse_if_differs(_where(subj), f"{subj.subject}'s features store", made, expected,
                              remedy)
        elif subj is not subjects[0]:
            refuse_if_differs(_where(subj), f"{subj.subject}'s features store", made,
                              subjects[0].meta.get("settings"), remedy,
                              other=f"{subjects[0].subject}'s store")


def layout_differences(ours: dict[str, Any], ref: dict[str, Any], key: str
                       ) -> tuple[list[str], list[str]]:
    """The one EEG layout check: (differences, remedies) between two layouts {channels, fs, tr,
    window_samples, bins} (runs of a dataset, subjects' stores, a store and a model record);
    keys either lacks are not compared. Channel names compare regardless of case, and the
    messages keep the files' spelling. `key` is the dataset's config key."""
    problems, hints = [], []
    if "channels" in ours and "channels" in ref:
        a, b = ([c.lower() for c in x["channels"]] for x in (ours, ref))
        if a != b:
            if sorted(a) == sorted(b):
                i = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
                problems.append(f"channels in another order (position {i}: "
                                f"{ours['channels'][i]} vs {ref['channels'][i]})")
            else:
                missing = [c for c in ref["channels"] if c.lower() not in a]
                extra = [c for c in ours["channels"] if c.lower() not in b]
                problems.append(f"{len(a)} channels vs {len(b)} (missing {missing[:5]}, "
                                f"extra {extra[:5]})")
            hints.append(f"one channel list in one order for every subject: {key}.keep_channels")
    one_rate = (f"one sampling rate: resample the recordings to one rate ({key}.decimate "
                "divides every subject's rate by one factor)")
    for name, unit, tol, hint in (
            ("fs", " Hz", 1e-6, one_rate), ("window_samples", " samples", 0, one_rate),
            ("tr", " s", 1e-3, "one TR: runs scanned with different TRs cannot share a model")):
        if name in ours and name in ref and abs(float(ours[name]) - float(ref[name])) > tol:
            problems.append(f"{name} {ours[name]:g}{unit} vs {ref[name]:g}{unit}")
            hints.append(hint)
    if "bins" in ours and "bins" in ref and list(ours["bins"]) != list(ref["bins"]):
        problems.append(f"frequency bins {ours['bins']} vs {ref['bins']}")
        hints.append("one features.n_bins: rerun preprocessing for every subject")
    return problems, list(dict.fromkeys(hints))


def check_same_eeg(subjects: list[SubjectFeatures], reference: dict[str, Any] | None = None,
                   reference_name: str = "") -> None:
    """Subjects whose windows go through one model must mean the same thing by them: the same
    layout (`layout_differences`) as the first subject (or as `reference`, a model record's
    "eeg"). Each subject is preprocessed on its own, so nothing else compares them; a mismatch
    is one error naming both and the key to set."""
    if not subjects:
        return
    if reference is None:
        first, subjects = subjects[0], subjects[1:]
        reference, reference_name = first.meta, f"{first.subject} ({_where(first)})"
    for subj in subjects:
        key = f"dataset_settings.{subj.meta.get('dataset') or '<dataset>'}"
        problems, hints = layout_differences(subj.meta, reference, key)
        if problems:
            raise InputError(_where(subj), (
                f"{subj.subject}'s EEG windows do not match {reference_name}: "
                f"{'; '.join(problems)}. Preprocess every subject alike ({'; '.join(hints)}), "
                "then rerun"))


def _where(subj: SubjectFeatures) -> Path:
    return (subj.directory or Path(subj.subject)) / "meta.json"


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


def amplitude_uv(windows: np.ndarray, max_windows: int = 256) -> float:
    """The EEG's typical amplitude: the median over windows and channels of each window's
    standard deviation, for raw windows [N, C, S] in microvolts (up to `max_windows` of them,
    evenly spread). Compares recordings' scales (volts labelled as microvolts differ by 1e6);
    `preprocess.eeg.window_sd` gives the same figure from samples."""
    if len(windows) == 0:
        return float("nan")
    pick = np.unique(np.linspace(0, len(windows) - 1, min(len(windows), max_windows)).astype(int))
    return float(np.median(np.asarray(windows[pick], dtype=np.float64).std(axis=-1)))
