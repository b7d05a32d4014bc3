"""The one EEG ingestion path: a recording file to the windows a model reads.

    reader (eeg2fmri.data.formats) -> channels (select, order, ambiguity) -> microvolts
        -> decimate -> onsets -> windows -> |FFT| spectra and raw samples

`inspect` uses its first steps (headers, channels), `preprocess` all of it for every run, and
`synthesize` replays it from the settings saved in the model record (`Ingestion.state()`), so
that synthesis computes what evaluation predicts by construction. Samples are read, decimated
and windowed in chunks of windows: an hour of 64-channel 5-kHz EEG is never held whole.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from eeg2fmri.data.formats import reader
from eeg2fmri.data.formats.base import Header, ReadOptions, raw_markers, read_samples
from eeg2fmri.errors import InputError
from eeg2fmri.preprocess.eeg import (
    FLOAT16_MAX,
    decimate,
    window_samples,
    window_sd,
    window_spectra,
)

UV = 1e6  # volts -> microvolts: every store and model works in microvolts
BLOCK_SAMPLES = 1 << 21  # source samples per channel read at once (16 MB per channel)


@dataclass(frozen=True)
class Ingestion:
    """How a run's samples become windows; saved in meta.json and the model record, replayed
    by synthesis. `window_samples` and `bins` are at the rate after `decimate`."""

    window_samples: int
    bins: tuple[int, int]
    decimate: int = 1

    def state(self) -> dict[str, Any]:
        return {"window_samples": self.window_samples, "bins": list(self.bins),
                "decimate": self.decimate}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Ingestion:
        return cls(int(state["window_samples"]), (int(state["bins"][0]), int(state["bins"][1])),
                   int(state.get("decimate", 1)))

    def output_onsets(self, onsets: np.ndarray) -> np.ndarray:
        """Window onsets at the recording's rate -> at the rate after decimation."""
        onsets = np.asarray(onsets, dtype=np.int64)
        return onsets if self.decimate == 1 else np.round(onsets / self.decimate).astype(np.int64)

    def output_length(self, n_samples: int) -> int:
        """Samples of a recording after decimation."""
        return -(-int(n_samples) // self.decimate)


@dataclass
class Recording:
    """An opened EEG file: header, markers and samples on demand (volts)."""

    path: Path
    format: str
    raw: Any  # mne.io.BaseRaw
    fs: float
    ch_names: list[str]
    markers: dict[str, np.ndarray]
    n_samples: int

    def samples(self, channels: list[str], start: int = 0, stop: int | None = None
                ) -> np.ndarray:
        return read_samples(self.raw, self.path, channels, start, stop)


def read_header(path: str | Path, fmt: str, options: ReadOptions | None = None) -> Header:
    """A recording's header and markers, no samples."""
    return reader(fmt).header(Path(path), options)


@contextmanager
def open_recording(path: str | Path, fmt: str, options: ReadOptions | None = None
                   ) -> Iterator[Recording]:
    path = Path(path)
    raw = reader(fmt).open(path, options)
    try:
        yield Recording(path, fmt, raw, float(raw.info["sfreq"]), list(raw.ch_names),
                        raw_markers(raw), int(raw.n_times))
    finally:
        raw.close()


def match_channels(wanted: list[str], have: list[str], path: Path, key: str = ""
                   ) -> list[str]:
    """The recording's names for `wanted` (in that order), matched regardless of case; names
    that differ only in case are ambiguous and every missing channel is named, in one error."""
    lower: dict[str, str] = {}
    wanted_lower = {w.lower() for w in wanted}
    for c in have:
        if c.lower() in lower and c.lower() in wanted_lower:
            raise InputError(path, f"channels {lower[c.lower()]!r} and {c!r} differ only in case: "
                                   f"which one is {c.lower()!r} is ambiguous; rename or remove "
                                   "one")
        lower.setdefault(c.lower(), c)
    missing = [c for c in wanted if c.lower() not in lower]
    if missing:
        whose = f"{key}'s" if key else "the"
        raise InputError(path, f"lacks {len(missing)} of {whose} {len(wanted)} channels: "
                               f"{', '.join(missing)} (it has: {', '.join(have)})")
    return [lower[c.lower()] for c in wanted]


@dataclass
class Windows:
    """A run's windows: |FFT| spectra [N, C, F] float32 and raw samples [N, C, S] float16, both
    microvolts (either may be left out), and each window's per-channel SD [N, C]."""

    spectra: np.ndarray | None
    raw: np.ndarray | None
    sd: np.ndarray

    @property
    def amplitude_uv(self) -> float:
        """Median SD of a channel's window: the recording's scale (compares units)."""
        return float(np.median(self.sd)) if self.sd.size else float("nan")


def windows(rec: Recording, channels: list[str], onsets: np.ndarray, ing: Ingestion, *,
            spectra: bool = True, raw: bool = True, transform: Any = None,
            progress: bool = False) -> Windows:
    """The windows starting at `onsets` (at the rate after decimation) of `channels`, read and
    decimated in blocks. `transform(x)` applies to each block of spectra or raw windows (the
    model's normalisation in synthesis)."""
    n_win, f = ing.window_samples, ing.decimate
    onsets = np.asarray(onsets, dtype=np.int64)
    chunk = max(1, BLOCK_SAMPLES // (n_win * f))
    spec_parts, raw_parts, sd_parts = [], [], []
    steps = range(0, len(onsets), chunk)
    for i in tqdm(steps, desc=f"windows of {rec.path.name}", unit="block", leave=False,
                  disable=not (progress and sys.stderr.isatty())):
        part = onsets[i:i + chunk]
        a, b = int(part.min()), int(part.max()) + n_win
        block = (rec.samples(channels, a, b) if f == 1 else _decimated(rec, channels, a, b, f))
        block = block * UV
        peak = float(np.abs(block).max()) if block.size else 0.0
        if raw and peak > FLOAT16_MAX:
            raise InputError(rec.path, f"EEG samples reach {peak:,.0f} uV, beyond the "
                                       f"{FLOAT16_MAX:,.0f} uV the raw windows are stored in "
                                       "(float16): an artefact or a unit error (volts written "
                                       "as microvolts?)")
        rel = part - a
        sd_parts.append(window_sd(block, rel, n_win))
        if spectra:
            x = window_spectra(block, rel, n_win, ing.bins)
            spec_parts.append(x if transform is None else transform(x))
        if raw:
            x = window_samples(block, rel, n_win)
            raw_parts.append(x if transform is None else transform(x))
    c = len(channels)
    return Windows(
        np.concatenate(spec_parts) if spec_parts else
        (np.zeros((0, c, ing.bins[1] - ing.bins[0]), np.float32) if spectra else None),
        np.concatenate(raw_parts) if raw_parts else
        (np.zeros((0, c, n_win), np.float16) if raw else None),
        np.concatenate(sd_parts) if sd_parts else np.zeros((0, c)))


def _decimated(rec: Recording, channels: list[str], a: int, b: int, factor: int) -> np.ndarray:
    """Samples [a, b) at the decimated rate, from the recording's samples around them only:
    resample_poly's filter reaches 10 x factor input samples to each side, so with a margin of
    12 x factor the kept samples equal those of decimating the whole recording."""
    pad = 12 * factor
    start = max(a * factor - pad, 0)
    stop = min(b * factor + pad, rec.n_samples)
    out = decimate(rec.samples(channels, start, stop), factor)
    skip = (a * factor - start) // factor
    return out[:, skip:skip + b - a]
