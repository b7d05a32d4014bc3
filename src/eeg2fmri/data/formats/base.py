"""What every EEG reader provides, and what they share: MNE's lazy Raw, markers as
"Type/Description" onsets, chunked sample reads, errors that name the file."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mne
import numpy as np

from eeg2fmri.data.formats import ReadOptions
from eeg2fmri.errors import InputError, missing


@dataclass
class Header:
    """A recording's header and markers (no samples read)."""

    fs: float
    ch_names: list[str]
    n_samples: int
    markers: dict[str, np.ndarray] = field(default_factory=dict)  # description -> onsets


class Reader:
    """One EEG format: the files it reads, their integrity checks, and an MNE Raw whose samples
    are read on demand. Subclasses set `mne_reader` (or override `_open`) and add `companions`
    and `check` where the format has them."""

    mne_reader: str = ""
    is_folder: bool = False  # the recording is a folder (EGI .mff)

    def __init__(self, name: str):
        self.name = name

    def companions(self, path: Path) -> list[Path]:
        """The files besides `path` that hold the recording (data, markers); for a path not
        written yet, the ones it will have by convention."""
        return []

    def check(self, path: Path) -> None:
        """Header against file sizes, before MNE reads anything (it would guess)."""

    def open(self, path: str | Path, options: ReadOptions | None = None) -> mne.io.BaseRaw:
        """The recording as an MNE Raw (samples not loaded), checked."""
        path = Path(path)
        exists = path.is_dir() if self.is_folder else path.is_file()
        if not exists:
            raise InputError(path, missing(path, "EEG file" if not self.is_folder else
                                           "EEG recording folder"))
        self.check(path)
        return self._open(path, options or ReadOptions())

    def header(self, path: str | Path, options: ReadOptions | None = None) -> Header:
        raw = self.open(path, options)
        return Header(float(raw.info["sfreq"]), list(raw.ch_names), int(raw.n_times),
                      raw_markers(raw))

    def _open(self, path: Path, options: ReadOptions) -> mne.io.BaseRaw:
        return mne_call(getattr(mne.io, self.mne_reader), path, self.name)


def mne_call(read: Callable[..., mne.io.BaseRaw], path: Path, fmt: str,
             **kwargs: object) -> mne.io.BaseRaw:
    try:
        return read(path, preload=False, verbose="error", **kwargs)
    except Exception as e:  # mne raises many types for malformed files
        raise InputError(path, f"could not be read as {fmt} EEG: {e}") from None


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
