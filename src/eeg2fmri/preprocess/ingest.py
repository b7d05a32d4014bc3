"""The one EEG ingestion path: a recording file to the windows a model reads.

    reader (eeg2fmri.data.formats) -> channels (select, order, ambiguity)
        -> [gradient artefact: AAS] -> decimate -> [ballistocardiogram: AAS]
        -> onsets -> windows -> microvolts -> |FFT| spectra and raw samples

`inspect` uses its first steps (headers, channels), `preprocess` all of it for every run, and
`synthesize` replays it from the settings saved in the model record (`Ingestion.state()`), so
that synthesis computes what evaluation predicts by construction. Samples are read, decimated
and windowed in chunks of windows: an hour of 64-channel 5-kHz EEG is never held whole.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from eeg2fmri.data.formats import reader
from eeg2fmri.data.formats.base import Header, ReadOptions, raw_markers, read_samples
from eeg2fmri.errors import InputError
from eeg2fmri.preprocess import mr_artefacts as mr
from eeg2fmri.preprocess.eeg import (
    FLOAT16_MAX,
    decimate,
    window_samples,
    window_sd,
    window_spectra,
)
from eeg2fmri.preprocess.mr_artefacts import MRSettings

UV = 1e6  # volts -> microvolts: every store and model works in microvolts
BLOCK_SAMPLES = 1 << 25  # source samples read at once over all channels (256 MB in float64)


@dataclass(frozen=True)
class Ingestion:
    """How a run's samples become windows; saved in meta.json and the model record, replayed
    by synthesis. `window_samples` and `bins` are at the rate after `decimate`."""

    window_samples: int
    bins: tuple[int, int]
    decimate: int = 1
    mr: MRSettings = MRSettings()  # the MR artefact stages (`preprocess.mr_artefacts`)

    def state(self) -> dict[str, Any]:
        return {"window_samples": self.window_samples, "bins": list(self.bins),
                "decimate": self.decimate, "mr": self.mr.state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Ingestion:
        return cls(int(state["window_samples"]), (int(state["bins"][0]), int(state["bins"][1])),
                   int(state.get("decimate", 1)), MRSettings.from_state(state.get("mr")))

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
            progress: bool = False, read: Callable[..., np.ndarray] | None = None) -> Windows:
    """The windows starting at `onsets` (at the rate after decimation) of `channels`, read and
    decimated in blocks (through `read`, samples at that rate with the MR stages applied, from
    `Stages`; default: none). `transform(x)` applies to each block of spectra or raw windows
    (the model's normalisation in synthesis)."""
    n_win, f = ing.window_samples, ing.decimate
    read = read or Stages(rec, f).read
    onsets = np.asarray(onsets, dtype=np.int64)
    chunk = max(1, BLOCK_SAMPLES // (n_win * f * max(len(channels), 1)))
    spec_parts, raw_parts, sd_parts = [], [], []
    steps = range(0, len(onsets), chunk)
    for i in tqdm(steps, desc=f"windows of {rec.path.name}", unit="block", leave=False,
                  disable=not (progress and sys.stderr.isatty())):
        part = onsets[i:i + chunk]
        a, b = int(part.min()), int(part.max()) + n_win
        block = read(channels, a, b) * UV
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


def _decimated(read: Callable[..., np.ndarray], n_samples: int, channels: list[str], a: int,
               b: int, factor: int) -> np.ndarray:
    """Samples [a, b) at the decimated rate, from the samples around them only (`read` at the
    recording's rate): resample_poly's filter reaches 10 x factor input samples to each side, so
    with a margin of 12 x factor the kept samples equal those of decimating the whole recording."""
    pad = 12 * factor
    start = max(a * factor - pad, 0)
    stop = min(b * factor + pad, n_samples)
    out = decimate(read(channels, start, stop), factor)
    skip = (a * factor - start) // factor
    return out[:, skip:skip + b - a]


class _Upsampled:
    """Samples at the recording's rate of a signal held at the decimated rate (`data` [C, n] of
    `channels`; zero for other channels), by linear interpolation: sample k lies at k / factor
    (decimation keeps every factor-th sample in place). The same whatever the blocks."""

    def __init__(self, data: np.ndarray, channels: list[str], factor: int):
        self.data, self.factor = data, factor
        self.rows = {c: i for i, c in enumerate(channels)}

    def __call__(self, channels: list[str], a: int, b: int) -> np.ndarray:
        out = np.zeros((len(channels), b - a))
        if b <= a:
            return out
        pos = np.arange(a, b) / self.factor
        j0, j1 = int(pos[0]), min(int(pos[-1]) + 2, self.data.shape[1])
        grid = np.arange(j0, j1)
        for k, c in enumerate(channels):
            if c in self.rows:
                out[k] = np.interp(pos, grid, self.data[self.rows[c], j0:j1])
        return out


class Stages:
    """The MR artefact stages of one run between the recording and its windows, and what each
    measured and did (`report`, written to meta.json and the sidecar). `read(channels, a, b)`
    gives samples at the rate after decimation (volts)."""

    SEGMENT_S = 64.0  # the stretch of the scan the detection figures are measured on
    # gradient_db resolves the volume harmonics from their floor on 8 TR or more; on a shorter
    # stretch an artefact can read a few dB and clean EEG more than GRADIENT_DB, so there only
    # a figure above CLEAR_DB counts (an artefact even there), else it is "too short to measure"
    GRADIENT_MIN_TR = 8
    CLEAR_DB = 2 * mr.GRADIENT_DB

    def __init__(self, rec: Recording, factor: int):
        self.rec, self.factor = rec, factor
        self.source = rec.samples  # at the recording's rate, after the gradient stage
        self.bcg: mr.BCGSubtraction | None = None
        self.aas: mr.GradientAAS | None = None
        self.report: dict[str, Any] = {}

    def read(self, channels: list[str], a: int, b: int) -> np.ndarray:
        if self.bcg is not None:
            return self.bcg.samples(channels, a, b)
        return self._decimated(channels, a, b)

    def _decimated(self, channels: list[str], a: int, b: int) -> np.ndarray:
        if self.factor == 1:
            return self.source(channels, a, b)
        return _decimated(self.source, self.rec.n_samples, channels, a, b, self.factor)

    @classmethod
    def build(cls, rec: Recording, picks: list[str], ing: Ingestion, tr: float,
              scan_onsets: np.ndarray | None, *, run: str = "", key: str = "mr_artefacts"
              ) -> Stages:
        """Measure the run's MR artefacts and set up the stages `ing.mr` asks for; a run with an
        artefact that its settings do not address (`detect`) is refused in one line naming the
        figure and the config key."""
        st, m = cls(rec, ing.decimate), ing.mr
        segment, stretch, g, found = cls.detect(rec, picks, tr, scan_onsets)
        st.report.update(found, gradient=m.gradient)
        if g > mr.GRADIENT_DB and m.gradient == "detect":  # nan: not measured
            raise InputError(rec.path, (
                f"{run}gradient artefact: the volume-frequency harmonics stand {g:.1f} dB above "
                f"the spectrum between them (EEG: < {mr.GRADIENT_DB:g} dB). Set {key}.gradient: "
                "correct (average artefact subtraction on the volume markers), or keep (as the "
                "reference code did)"))
        if m.gradient == "correct":
            if scan_onsets is None or len(scan_onsets) < 3:
                raise InputError(rec.path, f"{run}gradient correction needs the volume onsets "
                                           "(volume markers, or alignment start/offset)")
            reference = picks[int(np.argmax(stretch.std(1)))]  # the most artefacted channel
            aas = mr.GradientAAS(rec.samples, rec.n_samples, scan_onsets,
                                 int(round(rec.fs * tr)), reference, m.window)
            st.source, st.aas = aas.samples, aas
        st._bcg_stage(picks, ing, tr, scan_onsets, segment, run, key)
        if m.gradient == "correct" and found["gradient_db"] is not None:  # on the final source
            st.report["gradient_db_after"] = round(
                mr.gradient_db(st.source(picks, *segment), rec.fs, tr), 2)
        return st

    @classmethod
    def detect(cls, rec: Recording, picks: list[str], tr: float,
               scan_onsets: np.ndarray | None
               ) -> tuple[tuple[int, int], np.ndarray, float, dict[str, Any]]:
        """The stretch detection reads (segment, samples), the gradient figure (unrounded; what
        every gradient refusal compares) and the report's first entries: `gradient_db` (None,
        with a `gradient_note`, where the stretch is too short to measure it: the figure is then
        nan), and what the export's history says."""
        segment = cls(rec, 1)._segment(scan_onsets, tr)
        stretch = rec.samples(picks, *segment)
        g = mr.gradient_db(stretch, rec.fs, tr)
        found: dict[str, Any] = {"gradient_db": round(g, 2)}
        seconds, needs = (segment[1] - segment[0]) / rec.fs, cls.GRADIENT_MIN_TR * tr
        if seconds < needs and not g > cls.CLEAR_DB:
            g, found = float("nan"), {"gradient_db": None, "gradient_note": (
                f"too short to measure the gradient artefact ({seconds:.3g} s of scan; needs "
                f"{needs:g} s, {cls.GRADIENT_MIN_TR} TR)")}
        exported = mr.export_history(rec.path, rec.format)
        if exported:
            found["corrected_in_export"] = exported
        return segment, stretch, g, found

    def _bcg_stage(self, picks: list[str], ing: Ingestion, tr: float,
                   scan_onsets: np.ndarray | None, segment: tuple[int, int], run: str,
                   key: str) -> None:
        """Heartbeats, the BCG figure, and the BCG stage `ing.mr.bcg` asks for (with a second
        pass of both stages when the gradient is corrected too)."""
        rec, m = self.rec, ing.mr
        fs_out = rec.fs / ing.decimate
        ecg = mr.find_ecg(rec.ch_names, m.ecg_channel)
        self.report.update(bcg=m.bcg, ecg_channel=ecg)
        if ecg is None:
            if m.bcg == "correct" or m.ecg_channel:
                what = "correction" if m.bcg == "correct" else "detection"
                raise InputError(rec.path, f"{run}BCG {what} needs an ECG channel: none named "
                                           f"{m.ecg_channel or 'ECG or EKG'}; set "
                                           f"{key}.ecg_channel")
            self.report["bcg_index"] = None  # not measurable
            return
        n_out = -(-rec.n_samples // ing.decimate)
        beats = mr.heartbeats(self._decimated([ecg], 0, n_out)[0], fs_out)
        a, b = (int(x) // ing.decimate for x in segment)
        index = mr.bcg_index(self._decimated(picks, a, b), beats[(beats >= a) & (beats < b)] - a,
                             fs_out)
        self.report.update(bcg_index=round(index, 2), heartbeats=len(beats))
        if index > mr.BCG_INDEX and m.bcg == "detect":
            raise InputError(rec.path, (
                f"{run}ballistocardiogram: the heartbeat-locked average of the EEG is {index:.1f} "
                f"times what chance leaves (< {mr.BCG_INDEX:g} without one; {len(beats)} "
                f"heartbeats on {ecg}). Set {key}.bcg: correct (average artefact subtraction "
                "on the R-peaks), or keep"))
        if m.bcg == "correct":
            self.bcg = mr.BCGSubtraction(self._decimated, n_out, beats, fs_out, picks, m.beats,
                                         m.obs)
            if m.gradient == "correct":
                assert scan_onsets is not None
                self._second_pass(picks, n_out, scan_onsets, tr, m)
            self.report["bcg_index_after"] = round(mr.bcg_index(
                self.bcg.samples(picks, a, b), beats[(beats >= a) & (beats < b)] - a, fs_out), 2)

    def _second_pass(self, picks: list[str], n_out: int, scan_onsets: np.ndarray, tr: float,
                     m: MRSettings) -> None:
        """Gradient and BCG correction in two passes. The gradient template averages the
        neighbouring volumes, and with them the BCG they hold at random cardiac phases, which
        the BCG step cannot take out again; so the first pass's BCG estimate (the whole run at
        the decimated rate, float32) is taken out of the samples the gradient template is
        averaged from (and put back after), and the BCG is estimated again on the result."""
        first = self.bcg
        assert first is not None and self.aas is not None
        est = np.zeros((len(picks), n_out), np.float32)
        step = max(1, BLOCK_SAMPLES // (self.factor * len(picks)))
        for a in tqdm(range(0, n_out, step), desc=f"BCG, first pass: {self.rec.path.name}",
                      unit="block", leave=False, disable=not sys.stderr.isatty()):
            est[:, a:a + step] = first.estimate(picks, a, min(a + step, n_out))
        up = _Upsampled(est, picks, self.factor)
        rec = self.rec

        def without_bcg(channels: list[str], a: int, b: int) -> np.ndarray:
            return rec.samples(channels, a, b) - up(channels, a, b)

        aas = mr.GradientAAS(without_bcg, rec.n_samples, scan_onsets, int(round(rec.fs * tr)),
                             picks[0], m.window, lags=self.aas.lags)

        def source(channels: list[str], a: int, b: int) -> np.ndarray:
            return aas.samples(channels, a, b) + up(channels, a, b)

        self.source, self.aas = source, aas
        self.bcg = mr.BCGSubtraction(self._decimated, n_out, first.start + first.frac,
                                     rec.fs / self.factor, picks, m.beats, m.obs)

    @classmethod
    def measure(cls, rec: Recording, picks: list[str], tr: float,
                scan_onsets: np.ndarray | None, ecg_channel: str | None = None
                ) -> dict[str, Any]:
        """The detection figures alone (inspect): the gradient's, and the BCG's where the run
        has an ECG channel; under a gradient artefact (it would swamp the heartbeat's), on the
        stretch corrected by AAS over its own volumes, where the volume onsets are known."""
        segment, stretch, _, found = cls.detect(rec, picks, tr, scan_onsets)
        out: dict[str, Any] = {**found, "bcg_index": None}
        ecg = mr.find_ecg(rec.ch_names, ecg_channel)
        if ecg is None:
            return out
        ecg_samples = rec.samples([ecg], *segment)[0]
        if (out["gradient_db"] or 0) > mr.GRADIENT_DB:
            epoch = int(round(rec.fs * tr))
            on = (np.asarray(scan_onsets, np.int64) - segment[0]
                  if scan_onsets is not None else np.zeros(0, np.int64))
            on = on[(on - mr.GradientAAS.PAD >= 0)
                    & (on + epoch + mr.GradientAAS.PAD <= segment[1] - segment[0])]
            if len(on) < 3:
                return out  # no onsets to correct the stretch on: not measurable
            x = np.vstack([stretch, ecg_samples[None]])
            names = [*picks, ecg]
            aas = mr.GradientAAS(lambda ch, a, b: x[[names.index(c) for c in ch], a:b].copy(),
                                 x.shape[1], on, epoch, picks[int(np.argmax(stretch.std(1)))],
                                 min(MRSettings.window, len(on)))
            x = aas.samples(names, 0, x.shape[1])[:, on[0]:on[-1] + epoch]  # the volumes'
            stretch, ecg_samples = x[:-1], x[-1]
            out["bcg_measured_after"] = "gradient AAS on the stretch"
        beats = mr.heartbeats(ecg_samples, rec.fs)
        out["bcg_index"] = round(mr.bcg_index(stretch, beats, rec.fs), 2)
        return out

    def _segment(self, scan_onsets: np.ndarray | None, tr: float) -> tuple[int, int]:
        """[start, stop) of up to SEGMENT_S seconds (GRADIENT_MIN_TR TRs where more) in the
        middle of the scan (of the run)."""
        n = self.rec.n_samples
        lo, hi = ((int(scan_onsets[0]), min(int(scan_onsets[-1] + tr * self.rec.fs), n))
                  if scan_onsets is not None and len(scan_onsets) else (0, n))
        length = min(hi - lo, int(max(self.SEGMENT_S, self.GRADIENT_MIN_TR * tr) * self.rec.fs))
        start = lo + (hi - lo - length) // 2
        return start, start + length
