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


def feature_band(ing: Ingestion, fs: float) -> tuple[float, float]:
    """The band (Hz) of the features' |FFT| bins, at the rate after decimation."""
    fs_out = fs / ing.decimate
    step = fs_out / ing.window_samples
    return (max(ing.bins[0], 1) * step, min((ing.bins[1] - 1) * step, 0.5 * fs_out))


def check_settings(m: MRSettings, path: Path, run: str, key: str) -> None:
    """Refuse settings that cannot work: more OBS components than the epochs averaged."""
    if m.obs >= m.beats:
        raise InputError(path, f"{run}{key}.obs: {m.obs} principal components from the "
                               f"{m.beats} heartbeats each template averages ({key}.beats): "
                               f"at most {m.beats - 1}")
    if m.slice_obs >= m.window:
        raise InputError(path, f"{run}{key}.slice_obs: {m.slice_obs} components per slice, "
                               f"not fewer than the {m.window} volumes averaged ({key}.window)")


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
        self.aas_source = rec.samples  # after the volumes' AAS alone (the ECG's)
        self.bcg: mr.BCGSubtraction | None = None
        self.aas: mr.GradientAAS | None = None
        self.report: dict[str, Any] = {}
        self.band = (0.5, rec.fs / factor / 2)  # the features' band (Hz)
        self.in_scanner = False  # a gradient artefact was found
        self.slice_onsets: np.ndarray | None = None  # where the slice timing is known
        self.slice_length, self.obs = 0, 0  # obs: slice-wise OBS's components where it runs
        self.beats = np.zeros(0)  # R-peaks at the decimated rate, where measured
        self.without_bcg: Callable[..., np.ndarray] | None = None  # the gradient gate's source

    def read(self, channels: list[str], a: int, b: int) -> np.ndarray:
        if self.bcg is not None:
            return self.bcg.samples(channels, a, b)
        return self._decimated(channels, a, b)

    def _decimated(self, channels: list[str], a: int, b: int) -> np.ndarray:
        if self.factor == 1:
            return self.source(channels, a, b)
        return _decimated(self.source, self.rec.n_samples, channels, a, b, self.factor)

    SEARCH_S = 0.02  # the gradient's timing is searched +-20 ms (+-20 samples at 1 kHz)

    @classmethod
    def build(cls, rec: Recording, picks: list[str], ing: Ingestion, tr: float,
              scan_onsets: np.ndarray | None, *, run: str = "", key: str = "mr_artefacts"
              ) -> Stages:
        """Measure the run's MR artefacts and set up the stages `ing.mr` asks for; a run with an
        artefact that its settings do not address (`detect`), or whose correction leaves more
        than `max_residual` (the gate, `check`), is refused in one line naming the figure and
        the config key."""
        st, m = cls(rec, ing.decimate), ing.mr
        check_settings(m, rec.path, run, key)
        segment, stretch, g, found = cls.detect(rec, picks, tr, scan_onsets)
        st.report.update(found, gradient=m.gradient)
        if g > mr.GRADIENT_DB and m.gradient == "detect":  # nan: not measured
            raise InputError(rec.path, (
                f"{run}gradient artefact: the volume-frequency harmonics stand {g:.1f} dB above "
                f"the spectrum between them (EEG: < {mr.GRADIENT_DB:g} dB). Set {key}.gradient: "
                "correct (average artefact subtraction on the volume markers), or keep (as the "
                "reference code did)"))
        st.band = feature_band(ing, rec.fs)
        st.in_scanner = bool(g > mr.GRADIENT_DB)
        if m.gradient == "correct":
            if scan_onsets is None or len(scan_onsets) < 3:
                raise InputError(rec.path, f"{run}gradient correction needs the volume onsets "
                                           "(volume markers, or alignment start/offset)")
            st._gradient_stage(picks, ing, tr, scan_onsets, segment,
                               picks[int(np.argmax(stretch.std(1)))])  # most artefacted
        st._bcg_stage(picks, ing, tr, scan_onsets, segment, run, key)
        if m.gradient == "correct" and found["gradient_db"] is not None:  # on the final source
            st.report["gradient_db_after"] = round(
                mr.gradient_db(st.source(picks, *segment), rec.fs, tr), 2)
        st.check(picks, segment, run, key, m)
        return st

    def _gradient_stage(self, picks: list[str], ing: Ingestion, tr: float,
                        scan_onsets: np.ndarray, segment: tuple[int, int], reference: str
                        ) -> None:
        """Volume-wise AAS, then slice-wise OBS where the slice timing is known (slice markers,
        or `slices`) and it measures better: where the locked residual it removes from the
        segment (features' band) exceeds the power it takes that is not locked (EEG)."""
        rec, m = self.rec, ing.mr
        epoch = int(round(rec.fs * tr))
        pattern = mr.slice_pattern(rec.markers, scan_onsets, epoch, m.slices)
        search = int(round(self.SEARCH_S * rec.fs))
        if pattern is not None:  # never a whole slice: its neighbour's artefact looks alike
            search = min(search, int(0.45 * np.diff(np.append(pattern, pattern[0] + epoch)).min()))
        aas = mr.GradientAAS(rec.samples, rec.n_samples, scan_onsets, epoch, reference,
                             m.window, search=max(search, 3))
        self.aas, self.source = aas, aas.samples
        self.aas_source = aas.samples
        self.report["gradient_method"] = "volume AAS"
        self.report["gradient_lag_range"] = round(float(np.ptp(aas.lags)), 2)
        if pattern is None:
            self.report["gradient_slices"] = ("no slice timing (no slice markers; "
                                              "mr_artefacts.slices)")
            return
        self.slice_length = int(np.floor(np.diff(np.append(pattern, pattern[0] + epoch)).min()))
        self.slice_onsets = (aas.onsets[:, None] + aas.lags[:, None] + pattern[None]).ravel()
        if not m.slice_obs:
            self.report["gradient_slices"] = f"{len(pattern)} per volume; slice_obs: 0"
            return
        obs = mr.SliceOBS(aas.samples, rec.n_samples, self.slice_onsets, self.slice_length,
                          m.slice_obs, rec.fs)
        vol, sl = (f(picks, *segment) for f in (aas.samples, obs.samples))
        r_vol, r_sl = (float(np.nansum(self._gradient_locked(x, segment[0])))
                       for x in (vol, sl))
        removed = float(mr.band_passed(vol - sl, rec.fs, self.band).var(1).sum())
        taken = max(removed - max(r_vol - r_sl, 0.0), 0.0)
        eeg = max(float(mr.band_passed(sl, rec.fs, self.band).var(1).sum()) - r_sl, 1e-300)
        self.report["gradient_slices"] = (
            f"{len(pattern)} per volume: slice-wise OBS ({m.slice_obs} components) would leave "
            f"{100 * r_sl / eeg:.1f} % of the EEG's power locked (volume AAS alone: "
            f"{100 * r_vol / eeg:.1f} %) and take {100 * taken / eeg:.1f} % that is not")
        if r_vol - r_sl > taken:
            self.report["gradient_method"] = f"volume AAS + slice-wise OBS ({m.slice_obs})"
            self.obs, self.source = m.slice_obs, obs.samples

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
        pass of both stages when the gradient is corrected too). A figure that cannot see
        (`_ecg_unusable`, a gradient residual hiding the BCG) is "not measurable (why)": refused
        where the BCG is to be corrected, or in a scanner recording left to `detect`."""
        rec, m = self.rec, ing.mr
        fs_out = rec.fs / ing.decimate
        ecg = mr.find_ecg(rec.ch_names, m.ecg_channel)
        self.report.update(bcg=m.bcg, ecg_channel=ecg)
        if ecg is None and (m.bcg == "correct" or m.ecg_channel):
            what = "correction" if m.bcg == "correct" else "detection"
            raise InputError(rec.path, f"{run}BCG {what} needs an ECG channel: none named "
                                       f"{m.ecg_channel or 'ECG or EKG'}; set {key}.ecg_channel")
        n_out = -(-rec.n_samples // ing.decimate)
        a, b = (int(x) // ing.decimate for x in segment)
        beats, why = np.zeros(0), "no ECG channel"
        if ecg is not None:  # gradient-corrected by the volumes' AAS alone: slice-wise OBS
            source, self.source = self.source, self.aas_source  # would take its sharp QRS
            ecg_out = self._decimated([ecg], 0, n_out)[0]
            self.source = source
            beats = mr.heartbeats(ecg_out, fs_out)
            why = self._ecg_unusable(ecg, picks, ecg_out, beats, fs_out, m)
        here = beats[(beats >= a) & (beats < b)] - a
        x = self._decimated(picks, a, b)
        if why is None:
            why = self._hidden(picks, segment, x, here)
        if why is not None:
            self._not_measurable(why, run, key, m)
            return
        self.beats = beats
        index = mr.bcg_index(x, here, fs_out)
        self.report.update(bcg_index=round(index, 2), heartbeats=len(beats))
        if index > mr.BCG_INDEX and m.bcg == "detect":
            raise InputError(rec.path, (
                f"{run}ballistocardiogram: the heartbeat-locked average of the EEG is {index:.1f} "
                f"times what chance leaves (< {mr.BCG_INDEX:g} without one; {len(beats)} "
                f"heartbeats on {ecg}). Set {key}.bcg: correct (average artefact subtraction "
                "on the R-peaks), or keep"))
        if m.bcg == "correct":
            if len(beats) < m.beats + 1:
                raise InputError(rec.path, f"{run}{len(beats)} heartbeats on {ecg}: too few for "
                                           f"{key}.beats: {m.beats} neighbours per template; "
                                           f"lower it, or set {key}.bcg: keep")
            self.bcg = mr.BCGSubtraction(self._decimated, n_out, beats, fs_out, picks, m.beats,
                                         m.obs)
            if m.gradient == "correct":
                assert scan_onsets is not None
                self._second_pass(picks, n_out, scan_onsets, tr, m)
            self.report["bcg_index_after"] = round(mr.bcg_index(
                self.bcg.samples(picks, a, b), here, fs_out), 2)

    def _ecg_unusable(self, ecg: str, picks: list[str], samples: np.ndarray,
                      beats: np.ndarray, fs: float, m: MRSettings) -> str | None:
        """Why the R-peaks found on the ECG channel cannot be trusted, or None."""
        if ecg in picks:
            return f"{ecg} is one of the EEG channels the features use, not an ECG"
        if self.in_scanner and m.gradient != "correct":
            return (f"{ecg} carries the gradient artefact ({self.report['gradient_db']} dB), "
                    "kept: R-peaks cannot be found under it (gradient: correct)")
        return mr.ecg_problem(samples, beats, fs)

    def _hidden(self, picks: list[str], segment: tuple[int, int], x: np.ndarray,
                beats: np.ndarray) -> str | None:
        """Why the BCG index cannot see on the (gradient-corrected) stretch `x` [C, n] of the
        segment at the decimated rate: a gradient residual larger than the smallest BCG the
        index finds (BCG_INDEX times what chance leaves of the EEG over the beats), or None."""
        if self.aas is None or len(beats) < 8:
            return None
        residual = float(np.nansum(np.clip(self._gradient_locked(
            self.source(picks, *segment), segment[0], slices_only=True), 0, None)))
        xb = mr.band_passed(x, self.rec.fs / self.factor, self.band)
        eeg = float(xb.var(1).sum()) - residual
        smallest = mr.BCG_INDEX**2 * max(eeg, 0.0) / len(beats)
        if residual > smallest:
            return (f"a gradient residual of {np.sqrt(residual / len(x)) * UV:.2g} uV RMS is "
                    f"larger than the smallest BCG the index finds "
                    f"({np.sqrt(smallest / len(x)) * UV:.2g} uV)")
        return None

    def _not_measurable(self, why: str, run: str, key: str, m: MRSettings) -> None:
        """The BCG figure is not measurable: said so (report, log); refused where the BCG is to
        be corrected, or left to `detect` in a scanner recording (a decision is asked for)."""
        self.report.update(bcg_index=None, bcg_note=f"not measurable ({why})")
        if m.bcg == "correct":
            fix = ("correct the gradient first" if "gradient" in why else
                   f"name the ECG channel ({key}.ecg_channel)")
            raise InputError(self.rec.path, (
                f"{run}BCG correction cannot run: {why}. Fix it ({fix}), or set {key}.bcg: "
                "keep"))
        if m.bcg == "detect" and self.in_scanner:
            raise InputError(self.rec.path, (
                f"{run}ballistocardiogram could not be measured in this scanner recording "
                f"(gradient artefact {self.report['gradient_db']} dB): {why}. Decide: "
                f"{key}.bcg: keep (it stays in, stated), or name the ECG channel "
                f"({key}.ecg_channel) and correct it"))

    def _gradient_locked(self, x: np.ndarray, first: int, slices_only: bool = False
                         ) -> np.ndarray:
        """Per channel, the power in the features' band of what in `x` [C, n] (at the
        recording's rate, from sample `first`) is locked to the volumes or, where their timing
        is known, the slices: the larger (`mr.locked_power`); `slices_only` where the slices'
        timing is known (the samples still hold a BCG, whose beats may fall in step with the
        volumes)."""
        assert self.aas is not None
        known = self.slice_onsets is not None and self.slice_length >= 4
        slices = (mr.locked_power(x, self.slice_onsets - first, self.slice_length,
                                  self.rec.fs, self.band) if known else None)
        if slices is not None and slices_only:
            return slices
        on = self.aas.onsets + self.aas.lags - first
        locked = mr.locked_power(x, on, self.aas.epoch, self.rec.fs, self.band)
        return locked if slices is None else np.fmax(locked, slices)

    def check(self, picks: list[str], segment: tuple[int, int], run: str, key: str,
              m: MRSettings) -> None:
        """The gate: what stays locked to the volumes (slices) and heartbeats after the
        corrections asked for, over the features' band of the segment, as a % of the EEG's own
        power there (`mr.residual_pct`); above `max_residual` the run is refused."""
        gradient = m.gradient == "correct" and self.in_scanner  # none found: none to check
        if not gradient and self.bcg is None:
            return
        fs = self.rec.fs / self.factor
        a, b = (int(x) // self.factor for x in segment)
        x = self.read(picks, a, b)
        total = mr.band_passed(x, fs, self.band).var(1)
        parts = {}
        if gradient:  # on the samples without the BCG (a heart at 45 bpm and a TR of 2 s:
            # three beats every two volumes, which the volumes' epochs would read as locked)
            source = self.without_bcg or self.source
            parts["gradient"] = self._gradient_locked(source(picks, *segment), segment[0])
        if self.bcg is not None:
            lo, hi = (int(round(s * fs)) for s in mr.BCG_EPOCH_S)
            base = slice(0, max(int(round(mr.BCG_BASELINE_S * fs)), 4))
            parts["BCG"] = mr.locked_power(x, self.beats - a + lo, hi - lo, fs, self.band,
                                           base)
        pct = mr.residual_pct(sum(np.clip(v, 0, None) for v in parts.values()), total)
        self.report.update(
            residual_pct=round(pct, 1), residual_band_hz=[round(x, 2) for x in self.band],
            **{f"residual_{k.lower()}_pct": round(mr.residual_pct(v, total), 1)
               for k, v in parts.items()}, max_residual=m.max_residual)
        if pct > m.max_residual:
            each = ", ".join(f"{k} {self.report[f'residual_{k.lower()}_pct']:g} %"
                             for k in parts)
            raise InputError(self.rec.path, (
                f"{run}MR artefact correction failed: what stays locked to the "
                f"{' and '.join(parts)} after it is {pct:.1f} % of the EEG's own power in "
                f"{self.band[0]:g}-{self.band[1]:g} Hz ({each}; at most {m.max_residual:g} %). "
                f"Set {key}.max_residual: {np.ceil(pct):g} to accept it, or keep the "
                "artefacts (gradient/bcg: keep)"))

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
                             picks[0], m.window, lags=self.aas.lags, search=self.aas.search)
        corrected = aas.samples
        if self.obs:
            assert self.slice_onsets is not None
            corrected = mr.SliceOBS(aas.samples, rec.n_samples, self.slice_onsets,
                                    self.slice_length, self.obs, rec.fs).samples

        def source(channels: list[str], a: int, b: int) -> np.ndarray:
            return corrected(channels, a, b) + up(channels, a, b)

        self.source, self.aas, self.without_bcg = source, aas, corrected
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
            out["bcg_note"] = "not measurable (no ECG channel)"
            return out
        ecg_samples = rec.samples([ecg], *segment)[0]
        if (out["gradient_db"] or 0) > mr.GRADIENT_DB:
            epoch = int(round(rec.fs * tr))
            on = (np.asarray(scan_onsets, np.int64) - segment[0]
                  if scan_onsets is not None else np.zeros(0, np.int64))
            on = on[(on - mr.GradientAAS.PAD >= 0)
                    & (on + epoch + mr.GradientAAS.PAD <= segment[1] - segment[0])]
            if len(on) < 3:  # no onsets to correct the stretch on: not measurable
                out["bcg_note"] = "not measurable (under the gradient, no volume onsets)"
                return out
            x = np.vstack([stretch, ecg_samples[None]])
            names = [*picks, ecg]
            aas = mr.GradientAAS(lambda ch, a, b: x[[names.index(c) for c in ch], a:b].copy(),
                                 x.shape[1], on, epoch, picks[int(np.argmax(stretch.std(1)))],
                                 min(MRSettings.window, len(on)))
            x = aas.samples(names, 0, x.shape[1])[:, on[0]:on[-1] + epoch]  # the volumes'
            stretch, ecg_samples = x[:-1], x[-1]
            out["bcg_measured_after"] = "gradient AAS on the stretch"
        beats = mr.heartbeats(ecg_samples, rec.fs)
        why = (f"{ecg} is one of the EEG channels the features use" if ecg in picks
               else mr.ecg_problem(ecg_samples, beats, rec.fs))
        if why is not None:
            out["bcg_note"] = f"not measurable ({why})"
            return out
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
