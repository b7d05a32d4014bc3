"""MR artefacts in EEG recorded inside the scanner: their detection (inspect, preprocessing,
synthesis) and their correction, stages of the ingestion path (`preprocess.ingest`).

- **Gradient** (locked to every slice and volume, hundreds to thousands of microvolts): average
  artefact subtraction, AAS (Allen et al. 2000; the FASTR family, Niazy et al. 2005). Each
  volume's epoch is shifted to a common timing with sub-sample precision (its lag against the
  first volume, from the cross-correlation of a reference channel, refined parabolically, then by
  Newton steps against the mean of all the volumes), the `window` neighbouring volumes are
  averaged, and the average, shifted back to the volume's own timing and scaled to its
  amplitude (least squares per channel), is subtracted. Runs at the recording's rate, before
  decimation, volume block by volume block (the result does not depend on the blocks).
- **Ballistocardiogram** (locked to each heartbeat, tens of microvolts): every R-peak of the ECG
  channel, to a fraction of a sample (MNE's QRS detector, then a matched filter made of its
  detections), then for each beat its neighbouring beats' epochs, aligned and levelled on the
  stretch before the pulse arrives, give the template: their mean scaled to the beat's
  amplitude (`obs: k`: fitted per channel with their first k principal components, an optimal
  basis set), after decimation. When both artefacts are corrected, `ingest.Stages` runs the two
  stages twice, so that the BCG leaves the samples the gradient template averages.

- **Slice-wise OBS** (`SliceOBS`, FASTR's optimal basis set): where the slice timing is known,
  after the volume-wise AAS, each slice epoch minus its fit on the principal components of the
  residual epochs of the slices around it; chosen by measurement (`ingest.Stages`).
- **The gate** (`locked_power`, `residual_pct`): what stays locked to the slices, volumes and
  heartbeats after correction, over the features' band, as a % of the EEG's own power there;
  above `max_residual` a run is refused. Figures that cannot see (`ecg_problem`: a flat ECG,
  one that looks like EEG, a heart rate outside 30-200 bpm, beats missed or found twice, a
  count off the ECG's own period) are "not measurable (why)", never a number.

Detection measures per run: `gradient_db`, the power at the volume-frequency harmonics (slice
harmonics are among them) against the spectrum between them, in dB (clean EEG: a few dB); and
`bcg_index`, the RMS of the heartbeat-locked average against what averaging as many random
epochs leaves (clean EEG: about 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import fft, signal

GRADIENT_DB = 10.0  # a run above this has a gradient artefact
BCG_INDEX = 3.0  # a run above this has a ballistocardiogram
ACTIONS = ("detect", "correct", "keep")  # detect: refuse a run that has the artefact
RESIDUAL_PCT = 10.0  # a correction leaving more locked power than this (% of the EEG's) fails
HEART_BPM = (30.0, 200.0)  # a heart rate outside: the ECG's R-peaks were not found
QRS_PROMINENCE = 5.0  # an ECG's mean QRS over its robust SD (18-48); an EEG channel's: ~2


@dataclass(frozen=True)
class MRSettings:
    """A dataset's `mr_artefacts` entry (workflow/schemas/config.schema.yaml)."""

    gradient: str = "detect"
    bcg: str = "detect"
    ecg_channel: str | None = None  # default: the channel named ECG or EKG
    window: int = 31  # volumes averaged into a gradient template (FASTR: 30)
    beats: int = 31  # heartbeats averaged into a BCG template (its own left out)
    obs: int = 0  # principal components of those heartbeats fitted with their mean (OBS)
    slices: int = 0  # slices per volume where no slice markers say (0: from the markers)
    slice_obs: int = 12  # residual components fitted per slice epoch (slice-wise OBS; 0: off)
    max_residual: float = RESIDUAL_PCT  # locked residual accepted, % of the EEG's power

    def state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> MRSettings:
        return cls(**(state or {}))


# BrainVision Analyzer's transforms that remove each artefact, as an export's history names them
ANALYZER_STEPS = {"gradient": ("Scanner Artifact Correction", "MR Correction",
                               "Gradient Artifact Correction"),
                  "bcg": ("Pulse Artifact Correction", "CB Correction",
                          "Cardioballistic Artifact Correction")}


def corrected_in_export(steps: list[str]) -> dict[str, str]:
    """{artefact: the step that removed it} for the steps of an export's history."""
    out = {}
    for name, names in ANALYZER_STEPS.items():
        for step in steps:
            if step.lower() in {n.lower() for n in names}:
                out[name] = step
    return out


def export_history(path: Any, fmt: str) -> dict[str, str]:
    """What a recording's own history says was corrected before export (BrainVision)."""
    if fmt != "brainvision":
        return {}
    from eeg2fmri.data.formats.brainvision import history

    return corrected_in_export(history(path))


def find_ecg(names: list[str], wanted: str | None) -> str | None:
    """The ECG channel's name in a recording: `wanted`, else one named ECG or EKG."""
    lower = {n.lower(): n for n in names}
    for candidate in ([wanted] if wanted else ["ecg", "ekg"]):
        if candidate.lower() in lower:
            return lower[candidate.lower()]
    return None


def export_note(report: dict[str, Any]) -> str:
    """What the recording's own history says was corrected before export, in words."""
    done = report.get("corrected_in_export") or {}
    return "the export's history (BrainVision Analyzer) says: " + ", ".join(
        f"{'BCG' if k == 'bcg' else k} corrected ({v})" for k, v in done.items())


def mr_summary(report: dict[str, Any]) -> list[str]:
    """What the MR stages of a run measured and did, in words (log, meta.json notes)."""
    lines = [export_note(report)] if report.get("corrected_in_export") else []
    g = report.get("gradient_db")
    if g is not None:
        done = {"correct": f"corrected ({report.get('gradient_method', 'AAS')}), "
                           f"{report.get('gradient_db_after')} dB after",
                "keep": "KEPT in the EEG (mr_artefacts.gradient: keep, as the references)",
                "detect": "none found"}[report["gradient"]]
        lines.append(f"gradient artefact {g} dB at the volume harmonics: {done}")
    elif report.get("gradient_note"):
        lines.append(f"{report['gradient_note']}; mr_artefacts.gradient: {report['gradient']}")
    b = report.get("bcg_index")
    if b is None:
        why = report.get("bcg_note", "not measured (no ECG channel)")
        lines.append(f"ballistocardiogram {why}; bcg: {report['bcg']}")
    else:
        done = {"correct": f"corrected (AAS on {report.get('heartbeats')} heartbeats), "
                           f"{report.get('bcg_index_after')} after",
                "keep": "KEPT in the EEG (mr_artefacts.bcg: keep)",
                "detect": "none found"}[report["bcg"]]
        lines.append(f"ballistocardiogram index {b}: {done}")
    if report.get("residual_pct") is not None:
        lo, hi = report["residual_band_hz"]
        lines.append(f"left locked after correction: {report['residual_pct']} % of the EEG's "
                     f"power in {lo:g}-{hi:g} Hz (at most {report['max_residual']:g} %)")
    return lines


# --- detection -----------------------------------------------------------------------------


def gradient_db(data: np.ndarray, fs: float, tr: float) -> float:
    """Power at the harmonics of the volume frequency 1/TR (2 Hz to 0.4 fs; the slice
    frequency's are among them; not within 1.5 Hz of a 50 or 60 Hz power-line harmonic) against
    the power between them, in dB: the summed peak bins over the summed median bins between
    harmonics, the median over channels. `data` [C, n], n >= 8 TR (EEG: a few dB; a gradient
    artefact: tens of dB)."""
    n = data.shape[1]
    spec = np.abs(fft.rfft((data - data.mean(1, keepdims=True)) * np.hanning(n), axis=1)) ** 2
    df = fs / n
    lines, floors = np.zeros(len(data)), np.zeros(len(data))
    for k in range(1, int(0.4 * fs * tr) + 1):
        f = k / tr
        lo, hi = int(round((f + 0.25 / tr) / df)), int(round((f + 0.75 / tr) / df))
        mains = min(min(f % m, m - f % m) for m in (50.0, 60.0)) < 1.5  # power line harmonics
        if f < 2.0 or mains or hi <= lo or hi >= spec.shape[1]:
            continue
        lines += spec[:, max(int(round(f / df)) - 1, 0):int(round(f / df)) + 2].max(1)
        floors += np.median(spec[:, lo:hi], axis=1)
    if not floors.any():
        return float("nan")
    return float(10 * np.log10(np.median(lines / np.maximum(floors, 1e-300))))


def harmonic_power(data: np.ndarray, fs: float, f0: float, up_to: float = 200.0) -> float:
    """Power of `data` [C, n] at the harmonics of `f0` up to `up_to` Hz (three bins around
    each), summed over channels: what a gradient artefact (f0: the slice frequency) leaves."""
    n = data.shape[1]
    spec = np.abs(fft.rfft(data * np.hanning(n), axis=1)) ** 2
    bins = [round(k * f0 * n / fs) for k in range(1, int(up_to / f0))]
    return float(sum(spec[:, k - 1:k + 2].sum() for k in bins))


def _qrs_seeds(ecg: np.ndarray, fs: float) -> np.ndarray:
    """R-peak samples from MNE's QRS detector (it leaves out beats whose window looks unusual)."""
    from mne.preprocessing.ecg import qrs_detector

    if not np.ptp(ecg) > 0:
        return np.zeros(0, np.int64)  # a flat channel has no heartbeat
    try:
        beats = qrs_detector(fs, ecg.astype(np.float64), thresh_value="auto", verbose="error")
    except (ValueError, IndexError):  # too short or no crossing
        return np.zeros(0, np.int64)
    return np.asarray(beats, dtype=np.int64)


def heartbeats(ecg: np.ndarray, fs: float) -> np.ndarray:
    """R-peaks of an ECG, in samples with a fraction: MNE's QRS detector finds most beats; their
    mean QRS complex, as a matched filter on the ECG band-passed 5-35 Hz, finds every beat (MNE's
    detector drops some, and each beat missed leaves a whole BCG in the EEG) and times it to a
    fraction of a sample (parabolic peak), so that heartbeat epochs align better than the
    sample grid allows."""
    seeds = _qrs_seeds(ecg, fs)
    h = max(int(round(0.05 * fs)), 1)  # the QRS complex: +-50 ms
    if len(seeds) < 3 or len(ecg) < 4 * h:
        return seeds.astype(np.float64)
    sos = signal.butter(3, [5.0, min(35.0, 0.45 * fs)], "bandpass", fs=fs, output="sos")
    x = signal.sosfiltfilt(sos, ecg.astype(np.float64))
    seeds = seeds[(seeds >= h) & (seeds + h < len(x))]
    template = np.mean([x[t - h:t + h + 1] for t in seeds], axis=0)
    c = signal.correlate(x, template, mode="same")  # c[t]: the template centred on sample t
    peaks, _ = signal.find_peaks(c, height=0.5 * np.median(c[seeds]),
                                 distance=max(int(0.33 * fs), 1))  # at most 180 bpm
    k = peaks[(peaks > 0) & (peaks < len(c) - 1)]
    y0, y1, y2 = c[k - 1], c[k], c[k + 1]
    denom = y0 - 2 * y1 + y2
    frac = np.divide(0.5 * (y0 - y2), denom, out=np.zeros_like(denom), where=denom < 0)
    return k + np.clip(frac, -0.5, 0.5)


BCG_EPOCH_S = (-0.1, 0.75)  # around the R-peak: the pulse reaches the head ~0.15 s after it
BCG_BASELINE_S = 0.15  # each epoch's first 0.15 s (-0.1..0.05 s): its level without the BCG


def bcg_index(data: np.ndarray, beats: np.ndarray, fs: float) -> float:
    """RMS of the heartbeat-locked average of `data` [C, n] against the RMS that averaging as
    many epochs at random times leaves, the median over channels (about 1 without a BCG)."""
    a, b = (int(round(s * fs)) for s in BCG_EPOCH_S)
    beats = np.round(beats).astype(np.int64)
    beats = beats[(beats + a >= 0) & (beats + b <= data.shape[1])]
    if len(beats) < 8:
        return float("nan")
    x = data - data.mean(1, keepdims=True)
    epochs = np.stack([x[:, t + a:t + b] for t in beats])  # [N, C, L]
    locked = np.sqrt((epochs.mean(0) ** 2).mean(1))
    chance = x.std(1) / np.sqrt(len(beats))
    return float(np.median(locked / np.maximum(chance, 1e-30)))


# --- correction ----------------------------------------------------------------------------


def _shift(x: np.ndarray, delay: np.ndarray) -> np.ndarray:
    """Epochs [N, C, L] delayed by `delay` [N] samples (fractional, by phase rotation)."""
    spec = fft.rfft(x, axis=-1)
    f = np.fft.rfftfreq(x.shape[-1])
    return fft.irfft(spec * np.exp(-2j * np.pi * f[None, None] * delay[:, None, None]),
                     n=x.shape[-1], axis=-1)


class GradientAAS:
    """Average artefact subtraction of the gradient, at the recording's rate.

    `read(channels, start, stop)` gives the recording's samples (volts); `onsets` are the
    volume onsets (samples) of every volume acquired, one TR apart; `reference` is the channel
    whose artefact times the volumes."""

    PAD = 4  # samples read around each epoch at least (more: `search`)

    def __init__(self, read: Any, n_samples: int, onsets: np.ndarray, epoch: int,
                 reference: str, window: int = 31, lags: np.ndarray | None = None,
                 search: int = 3):
        self.read, self.epoch, self.window = read, int(epoch), int(window)
        self.search = max(int(search), 1)  # the lag search: +-search samples
        self.pad = max(self.PAD, self.search + 2)  # shifts never wrap artefact around
        onsets = np.asarray(onsets, dtype=np.int64)
        self.onsets = onsets[(onsets - self.pad >= 0)
                             & (onsets + self.epoch + self.pad <= n_samples)]
        if len(self.onsets) < 3:
            raise ValueError(f"{len(self.onsets)} volumes: too few for a gradient template")
        self.lags = self._lags(reference) if lags is None else np.asarray(lags, np.float64)
        if len(self.lags) != len(self.onsets):
            raise ValueError(f"{len(self.lags)} lags for {len(self.onsets)} volumes")

    def _epochs(self, channels: list[str], first: int, last: int) -> np.ndarray:
        """Epochs [last - first, C, epoch + 2 PAD] of volumes first..last-1, read at once."""
        a = int(self.onsets[first]) - self.pad
        x = self.read(channels, a, int(self.onsets[last - 1]) + self.epoch + self.pad)
        return self._cut(x, a, first, last)

    def _cut(self, x: np.ndarray, a: int, first: int, last: int) -> np.ndarray:
        """The epochs of volumes first..last-1 from samples `x` beginning at sample `a`."""
        w = self.epoch + 2 * self.pad
        return np.stack([x[:, o - self.pad - a:o - self.pad - a + w]
                         for o in self.onsets[first:last]])

    STEP = 256  # volumes of the reference channel read at once to time them
    NEWTON_STEPS = 4

    def _lags(self, reference: str) -> np.ndarray:
        """Each volume's delay (samples, fractional) against the first: the peak of the
        reference channel's cross-correlation with the first volume's epoch, refined
        parabolically, then by Newton steps on the cross-correlation with the mean of all the
        volumes aligned (the parabola alone leaves errors of a few hundredths of a sample, which
        the artefact's sharp edges, hundreds of times the EEG, turn into residual artefact)."""
        n, w, r = len(self.onsets), self.epoch + 2 * self.pad, self.search
        lags = np.zeros(n)
        f = np.fft.rfftfreq(w)
        weight = np.full(len(f), 2.0)  # a one-sided spectrum: the other side counts too
        weight[0] = 1.0
        if w % 2 == 0:
            weight[-1] = 1.0  # Nyquist
        ref, mean = None, np.zeros(len(f), complex)
        for i in range(0, n, self.STEP):
            spec = self._reference_spectra(reference, i)
            if ref is None:
                ref = np.conj(spec[0])
            xc = fft.irfft(spec * ref[None], n=w, axis=1)
            xc = np.concatenate([xc[:, -r:], xc[:, :r + 1]], axis=1)  # lags -r..r
            k = np.clip(np.argmax(xc, axis=1), 1, 2 * r - 1)
            y0, y1, y2 = (xc[np.arange(len(k)), k + d] for d in (-1, 0, 1))
            denom = y0 - 2 * y1 + y2
            frac = np.divide(0.5 * (y0 - y2), denom, out=np.zeros_like(denom),
                             where=np.abs(denom) > 1e-30)
            lags[i:i + len(k)] = (k - r) + np.clip(frac, -0.5, 0.5)
            mean += (spec * np.exp(2j * np.pi * f[None] * lags[i:i + len(k), None])).sum(0)
        target = np.conj(mean) * weight
        for i in range(0, n, self.STEP):
            z0 = self._reference_spectra(reference, i) * target[None]
            d = lags[i:i + len(z0)]
            for _ in range(self.NEWTON_STEPS):  # maximise Re sum z0 exp(2 pi i f d) over d
                z = z0 * np.exp(2j * np.pi * f[None] * d[:, None])
                g1 = -2 * np.pi * (f[None] * z.imag).sum(1)
                g2 = -4 * np.pi**2 * (f[None] ** 2 * z.real).sum(1)
                step = np.divide(g1, g2, out=np.zeros_like(g1), where=g2 < 0)
                d = d - np.clip(step, -0.5, 0.5)
            lags[i:i + len(d)] = d
        return lags

    def _reference_spectra(self, reference: str, first: int) -> np.ndarray:
        """rFFT of the reference channel's (mean-removed) epochs of volumes first.. first+STEP."""
        ep = self._epochs([reference], first, min(first + self.STEP, len(self.onsets)))[:, 0]
        return fft.rfft(ep - ep.mean(1, keepdims=True), axis=1)

    GROUP = 32  # volumes corrected at once (their neighbours' epochs are held together)

    def samples(self, channels: list[str], start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) of `channels` with the gradient artefact subtracted, from one
        read of the stretch the volumes' neighbours cover."""
        v = np.flatnonzero((self.onsets + self.epoch + self.pad > start)
                           & (self.onsets - self.pad < stop))
        if len(v) == 0:
            return self.read(channels, start, stop)
        n = len(self.onsets)
        lo = _neighbours(int(v[0]), self.window, n)[0]
        hi = _neighbours(int(v[-1]), self.window, n)[1]
        first = min(start, int(self.onsets[lo]) - self.pad)
        last = max(stop, int(self.onsets[hi - 1]) + self.epoch + self.pad)
        x = self.read(channels, first, last)
        out = x[:, start - first:stop - first].copy()
        for k in range(0, len(v), self.GROUP):
            self._subtract(out, x, first, start, stop, v[k:k + self.GROUP])
        return out

    def _subtract(self, out: np.ndarray, x: np.ndarray, first: int, start: int, stop: int,
                  v: np.ndarray) -> None:
        spans = {int(i): _neighbours(int(i), self.window, len(self.onsets)) for i in v}
        lo, hi = min(a for a, _ in spans.values()), max(b for _, b in spans.values())
        epochs = self._cut(x, first, lo, hi)
        aligned = _shift(epochs, -self.lags[lo:hi])  # every volume at the first one's timing
        cum = np.concatenate([np.zeros((1, *aligned.shape[1:])), np.cumsum(aligned, axis=0)])
        n = len(self.onsets)
        for i, (a, b) in spans.items():
            template = (cum[b - lo] - cum[a - lo]) / (b - a)
            full = _shift(template[None], self.lags[i:i + 1])[0]  # [C, epoch + 2 pad]
            template = full[:, self.pad:self.pad + self.epoch]
            # the volume's own amplitude (the artefact drifts slowly): least squares per channel
            own = epochs[i - lo][:, self.pad:self.pad + self.epoch]
            t0 = template - template.mean(1, keepdims=True)
            scale = (t0 * (own - own.mean(1, keepdims=True))).sum(1) / np.maximum(
                (t0**2).sum(1), 1e-300)
            # subtracted where the volume lies (its onset moved by its lag, whole samples), up
            # to where the next one begins: a volume late by tens of samples reaches into the
            # next epoch, and there the next volume's template has the wrong timing
            o = int(self.onsets[i])
            first = o + int(round(self.lags[i]))
            last = (int(self.onsets[i + 1]) + int(round(self.lags[i + 1])) if i + 1 < n
                    else first + self.epoch)
            first, last = max(first, o - self.pad), min(last, o + self.epoch + self.pad)
            s, e = max(first, start), min(last, stop)
            if e > s:
                out[:, s - start:e - start] -= (full[:, s - o + self.pad:e - o + self.pad]
                                                * scale[:, None])


class BCGSubtraction:
    """Ballistocardiogram subtraction on heartbeat epochs (-0.1..0.75 s around each R-peak,
    aligned to its fractional time, levelled on their first 0.15 s).

    For each beat, the average of its `n_beats` neighbours' epochs (not its own: that would
    hold its own EEG) is scaled to the beat's amplitude and subtracted: one factor for all the
    `channels` (the pulse that moves the head moves every electrode), fitted by least squares
    over them, so that the fit rests on every channel's BCG, not on one channel's EEG. With
    `components`, the epoch is instead projected per channel on the neighbours' mean and first
    principal components (an optimal basis set, Niazy et al. 2005), which takes some EEG too.
    `estimate` gives what is subtracted, `samples` the corrected samples; both depend neither on
    the blocks asked for nor on the channels (a beat's factor is always fitted on `channels`)."""

    PAD = 2  # samples read around each epoch, so that fractional shifts do not wrap around
    SCALE = (0.0, 2.0)  # a beat's factor is held within these

    def __init__(self, read: Any, n_samples: int, beats: np.ndarray, fs: float,
                 channels: list[str], n_beats: int = 31, components: int = 0):
        self.read, self.window, self.channels = read, int(n_beats), list(channels)
        self.components = int(components)
        self.a, self.b = (int(round(s * fs)) for s in BCG_EPOCH_S)
        self.baseline = max(int(round(BCG_BASELINE_S * fs)), 1)
        beats = np.asarray(beats, dtype=np.float64)
        start = np.floor(beats).astype(np.int64)
        ok = (start + self.a - self.PAD >= 0) & (start + self.b + self.PAD <= n_samples)
        self.start, self.frac = start[ok], beats[ok] - start[ok]

    def samples(self, channels: list[str], start: int, stop: int) -> np.ndarray:
        est, x = self._run(channels, start, stop, keep=True)
        assert x is not None
        return x - est

    def estimate(self, channels: list[str], start: int, stop: int) -> np.ndarray:
        """The BCG in samples [start, stop) of `channels` (zero where no beat's epoch is)."""
        return self._run(channels, start, stop, keep=False)[0]

    def _run(self, channels: list[str], start: int, stop: int, keep: bool
             ) -> tuple[np.ndarray, np.ndarray | None]:
        """The BCG estimate in [start, stop), and (`keep`) the samples themselves, from one
        read of the stretch the beats' neighbours cover."""
        out = np.zeros((len(channels), stop - start))
        v = np.flatnonzero((self.start + self.b > start) & (self.start + self.a < stop))
        if len(v) == 0 or len(self.start) < 3:
            return out, self.read(channels, start, stop) if keep else None
        spans = {int(i): _neighbours(int(i), self.window + 1, len(self.start)) for i in v}
        lo, hi = min(a for a, _ in spans.values()), max(b for _, b in spans.values())
        names = self.channels + [c for c in channels if c not in self.channels]
        first = int(self.start[lo]) + self.a - self.PAD
        last = int(self.start[hi - 1]) + self.b + self.PAD
        if keep:
            first, last = min(first, start), max(last, stop)
        x = self.read(names, first, last)
        epochs = self._epochs(x, first, lo, hi)
        rows = [names.index(c) for c in channels]
        fitted = slice(0, len(self.channels))
        inner = slice(self.PAD, epochs.shape[-1] - self.PAD)
        for i, (a, b) in spans.items():
            others = np.delete(epochs[a - lo:b - lo], i - a, axis=0)  # not its own EEG
            own = epochs[i - lo]
            if self.components:  # an optimal basis set, fitted to this beat per channel
                fit = _obs_fit(others[:, rows], own[rows], self.components)
            else:
                template = others.mean(0)
                tc = template[fitted, inner] - template[fitted, inner].mean(1, keepdims=True)
                ec = own[fitted, inner] - own[fitted, inner].mean(1, keepdims=True)
                scale = float(np.clip((tc * ec).sum() / max((tc**2).sum(), 1e-300),
                                      *self.SCALE))
                fit = template[rows] * scale
            fit = _shift(fit[None], self.frac[i:i + 1])[0][:, inner]  # back to the beat's time
            t0 = int(self.start[i]) + self.a
            # up to where the next beat's epoch begins (a fast heart's epochs overlap: each
            # sample is corrected by one beat's template)
            end = t0 + self.b - self.a
            if i + 1 < len(self.start):
                end = min(end, int(self.start[i + 1]) + self.a)
            s, e = max(t0, start), min(end, stop)
            if e > s:
                out[:, s - start:e - start] += fit[:, s - t0:e - t0]
        return out, x[rows, start - first:stop - first] if keep else None

    def _epochs(self, x: np.ndarray, first: int, lo: int, hi: int) -> np.ndarray:
        """Epochs [hi - lo, C, b - a + 2 PAD] of beats lo..hi-1 from samples `x` (beginning at
        sample `first`), each shifted to its R-peak's fractional time and levelled on the
        stretch before the pulse arrives (the EEG's offset and drift leave the template, the
        BCG's own mean stays: an epoch mean would take it out, leaving a step of that size at
        every epoch's edges)."""
        w = self.b - self.a + 2 * self.PAD
        epochs = np.stack([x[:, t + self.a - self.PAD - first:t + self.a - self.PAD - first + w]
                           for t in self.start[lo:hi]])
        epochs = _shift(epochs, -self.frac[lo:hi])
        base = slice(self.PAD, self.PAD + self.baseline)
        return epochs - epochs[..., base].mean(-1, keepdims=True)


def _neighbours(i: int, window: int, n: int) -> tuple[int, int]:
    """[a, b): the `window` epochs around epoch i (shifted inward at the ends)."""
    a = max(i - window // 2, 0)
    b = min(a + window, n)
    return max(b - window, 0), b


def _obs_fit(neighbours: np.ndarray, epoch: np.ndarray, k: int) -> np.ndarray:
    """Per channel, `epoch` [C, L] projected on the mean and the first `k` principal components
    of its `neighbours` [N, C, L] (an optimal basis set, Niazy et al. 2005): the artefact with
    the beat's own amplitude, which a plain average misses."""
    fit = np.empty_like(epoch)
    for c in range(epoch.shape[0]):
        x = neighbours[:, c]
        mean = x.mean(0)
        basis = [mean]
        if k:
            _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
            basis += list(vt[:k])
        b = np.array(basis).T  # [L, k + 1]
        coef, *_ = np.linalg.lstsq(b, epoch[c], rcond=None)
        fit[c] = b @ coef
    return fit


# --- what a correction left, and whether a figure can see ----------------------------------


def band_passed(x: np.ndarray, fs: float, band: tuple[float, float]) -> np.ndarray:
    """`x` [C, n] band-passed to `band` (Hz; a high-pass where its top reaches 0.45 fs)."""
    lo, hi = band
    if hi >= 0.45 * fs:
        sos = signal.butter(4, lo, "highpass", fs=fs, output="sos")
    else:
        sos = signal.butter(4, [lo, hi], "bandpass", fs=fs, output="sos")
    return signal.sosfiltfilt(sos, x - x.mean(1, keepdims=True), axis=1)


def _epoch_stats(x: np.ndarray, start: np.ndarray, length: int, base: slice | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Epochs [N, C, L] of `x` [C, n] at the whole samples `start`; what recurs in both halves
    of them (the odd and the even epochs), so that one epoch's transient does not count: their
    mean [C, L], the product of the halves' means (the square of what repeats; unbiased), the
    smaller of the halves' variances over the epochs [C, L]; and that variance's floor per
    channel [C], its median over the positions or its mean over `base`."""
    epochs = np.moveaxis(x[:, start[:, None] + np.arange(length)[None]], 1, 0)
    halves = epochs[0::2], epochs[1::2]
    square = halves[0].mean(0) * halves[1].mean(0)
    var = np.minimum(*(h.var(0, ddof=1) for h in halves))
    floor = np.median(var, axis=1) if base is None else var[:, base].mean(1)
    return epochs, epochs.mean(0), square, var, floor


def locked_power(x: np.ndarray, onsets: np.ndarray, length: int, fs: float,
                 band: tuple[float, float], base: slice | None = None,
                 z: float = 2.0) -> np.ndarray:
    """Per channel, the power in `band` of what in `x` [C, n] (at rate `fs`, not band-passed)
    is locked to the epochs of `length` samples at `onsets` (samples): the larger of
    - the part rebuilt from the epochs: what repeats in each (their mean, shrunk to what both
      halves of them share) and, at each position whose variance over the epochs exceeds its
      floor by more than `z` sampling SDs, that position's share of each epoch's deviation
      (what comes back at the same place with another size or timing each time: a misaligned
      sharp edge's residual, which after band-passing spreads over every position),
      band-passed;
    - for the band-passed epochs, what repeats plus their variance's excess over its floor,
      averaged over the positions (a smooth residual).
    What counts recurs in both halves of the epochs (`_epoch_stats`): one epoch's transient
    does not. The floor is the variance's median over the positions, or its mean over `base`
    (a heartbeat's positions before its pulse). nan with fewer than 8 epochs."""
    start = np.round(np.asarray(onsets, np.float64)).astype(np.int64)
    start = start[(start >= 0) & (start + length <= x.shape[1])]
    if len(start) < 8 or length < 4:
        return np.full(len(x), np.nan)
    n = len(start)
    x = x - x.mean(1, keepdims=True)
    _, _, square, var, floor = _epoch_stats(band_passed(x, fs, band), start, length, base)
    smooth = square.mean(1) + (var - floor[:, None]).mean(1)
    if band[0] > 0:  # the profile of what is not slow drift
        x = band_passed(x, fs, (band[0], fs))
    epochs, mean, square, var, floor = _epoch_stats(x, start, length, base)
    excess = var > floor[:, None] * (1 + z * np.sqrt(4 / n))  # the smaller half's SD
    share = np.where(excess, 1 - floor[:, None] / np.maximum(var, 1e-300), 0.0)
    mean = mean * np.clip(square / np.maximum(mean**2, 1e-300), 0, 1)
    part = mean[None] + share[None] * (epochs - mean[None])  # [N, C, L]
    rebuilt, count = np.zeros_like(x), np.zeros(x.shape[1])
    for k, t in enumerate(start):
        rebuilt[:, t:t + length] += part[k]
        count[t:t + length] += 1
    rebuilt /= np.maximum(count, 1)
    return np.fmax(band_passed(rebuilt, fs, band).var(1), smooth)


def residual_pct(locked: np.ndarray, total: np.ndarray) -> float:
    """The locked power (summed over channels) as a % of the rest, the EEG's own power."""
    locked_sum = float(np.nansum(np.clip(locked, 0, None)))
    eeg = float(np.sum(total)) - locked_sum
    if locked_sum <= 0:
        return 0.0
    return 100.0 * locked_sum / max(eeg, 1e-3 * float(np.sum(total)), 1e-300)


def ecg_period(ecg: np.ndarray, fs: float) -> float | None:
    """The ECG's own period (s): the highest peak of its QRS energy's autocorrelation between
    0.3 and 2 s (30-200 bpm), None where none stands out."""
    sos = signal.butter(3, [5.0, min(35.0, 0.45 * fs)], "bandpass", fs=fs, output="sos")
    e = signal.sosfiltfilt(sos, ecg - ecg.mean()) ** 2
    e = e - e.mean()
    n = len(e)
    ac = fft.irfft(np.abs(fft.rfft(e, 2 * n)) ** 2)[:n]
    if not ac[0] > 0:
        return None
    ac = ac / ac[0]
    lo, hi = int(0.3 * fs), min(int(2.0 * fs), n - 1)
    if hi <= lo + 2:
        return None
    peaks, props = signal.find_peaks(ac[lo:hi], height=0.1)
    if not len(peaks):
        return None
    best = peaks[np.argmax(props["peak_heights"])]
    first = peaks[props["peak_heights"] >= 0.8 * props["peak_heights"].max()][0]
    return float((lo + min(best, first)) / fs)


def qrs_prominence(ecg: np.ndarray, beats: np.ndarray, fs: float) -> float:
    """The peak of the ECG's mean QRS complex (5-35 Hz, +-50 ms around the R-peaks) over the
    band's robust SD (1.48 MAD): an ECG's stands far above (QRS of ~1 mV over ~20 uV), an EEG
    channel's peaks are picked from its own noise (~3-6)."""
    sos = signal.butter(3, [5.0, min(35.0, 0.45 * fs)], "bandpass", fs=fs, output="sos")
    x = signal.sosfiltfilt(sos, ecg - ecg.mean())
    h = max(int(round(0.05 * fs)), 1)
    k = np.round(beats).astype(np.int64)
    k = k[(k >= h) & (k + h < len(x))]
    if len(k) < 3:
        return 0.0
    mean = np.mean([x[t - h:t + h + 1] for t in k], axis=0)
    sd = 1.4826 * np.median(np.abs(x - np.median(x)))
    return float(np.abs(mean).max() / max(sd, 1e-300))


def ecg_problem(ecg: np.ndarray, beats: np.ndarray, fs: float) -> str | None:
    """Why the R-peaks `beats` found on `ecg` cannot be trusted (in words), or None: a flat
    channel, one that looks like EEG (no QRS stands out), a heart rate outside 30-200 bpm,
    intervals that say beats were missed or found twice, or a count that disagrees with the
    ECG's own periodicity."""
    seconds = len(ecg) / fs
    if not np.ptp(ecg) > 0:
        return "the ECG channel is flat"
    if len(beats) < 3:
        return f"{len(beats)} heartbeats found in {seconds:.0f} s"
    bpm = 60.0 * (len(beats) - 1) / max((beats[-1] - beats[0]) / fs, 1e-9)
    prominence = qrs_prominence(ecg, beats, fs)
    if prominence < QRS_PROMINENCE:
        return (f"the ECG channel looks like EEG: no QRS stands out of it (its mean QRS "
                f"{prominence:.1f} times its SD; an ECG's: > {QRS_PROMINENCE:g}): an EEG "
                "channel, or an ECG under an artefact")
    rr = np.diff(beats)
    odd = int(np.sum((rr > 1.6 * np.median(rr)) | (rr < 0.6 * np.median(rr))))
    if odd > max(2, 0.02 * len(rr)):
        return (f"{odd} of {len(rr)} intervals between the {len(beats)} heartbeats found are "
                "under 0.6 or over 1.6 times their median (beats missed or found twice)")
    if not HEART_BPM[0] <= bpm <= HEART_BPM[1]:
        return (f"{len(beats)} heartbeats in {seconds:.0f} s, {bpm:.0f} bpm: outside "
                f"{HEART_BPM[0]:g}-{HEART_BPM[1]:g} bpm")
    period = ecg_period(ecg, fs)
    if period is None:
        return "the ECG has no periodicity between 30 and 200 bpm"
    expected = 60.0 / period
    if abs(bpm / expected - 1) > 0.2:
        return (f"{len(beats)} heartbeats ({bpm:.0f} bpm) disagree with the ECG's own period "
                f"of {period:.2f} s ({expected:.0f} bpm)")
    return None


def slice_pattern(markers: dict[str, np.ndarray], onsets: np.ndarray, epoch: int,
                  slices: int = 0) -> np.ndarray | None:
    """The slices' onsets within a volume (samples from its onset, fractional): the median
    over the volumes of a marker that comes the same number of times (2 or more) in every
    volume (slice markers), else `slices` evenly over the volume, else None."""
    onsets = np.asarray(onsets, np.int64)
    if len(onsets) >= 3:
        for times in markers.values():
            times = np.sort(np.asarray(times, np.int64))
            k = np.searchsorted(times, onsets[:-1])
            counts = np.searchsorted(times, onsets[1:]) - k
            m = int(counts[0]) if len(counts) else 0
            if m < 2 or not np.all(counts == m) or (slices and m != slices):
                continue
            rel = np.stack([times[a:a + m] - o for a, o in zip(k, onsets[:-1], strict=True)])
            pattern = np.median(rel, axis=0).astype(np.float64)
            if pattern[0] >= 0 and pattern[-1] < epoch and np.all(np.diff(pattern) > 0):
                return pattern
    if slices >= 2:
        return np.arange(slices) * epoch / slices
    return None


class SliceOBS:
    """Slice-wise residual correction after the volume-wise AAS (FASTR's optimal basis set,
    Niazy et al. 2005): every slice epoch of what `read` gives (the AAS output) minus its least
    squares fit on the first `components` principal components of the residual epochs of the
    slices around it, per channel. What a volume's template cannot follow (each slice's own
    timing, to a fraction of a sample: a misaligned sharp edge leaves a residual shaped like
    its derivative; the edges of volumes whose onsets are off) repeats in those components.
    The components of slice s come from the block of BLOCK slices holding s and BLOCK / 2 on
    each side, so that the result depends neither on the blocks asked for nor on the
    channels."""

    BLOCK = 256

    HIGHPASS_HZ = 70.0  # the components are found above this (FASTR's high-pass)

    def __init__(self, read: Any, n_samples: int, slice_onsets: np.ndarray, length: int,
                 components: int = 4, fs: float = 0.0):
        self.read, self.length, self.k = read, int(length), int(components)
        start = np.round(np.asarray(slice_onsets, np.float64)).astype(np.int64)
        self.start = np.sort(start[(start >= 0) & (start + self.length <= n_samples)])
        if len(self.start) < 2 * self.k + 2:
            raise ValueError(f"{len(self.start)} slices: too few for {self.k} components")
        nxt = np.append(self.start[1:], self.start[-1] + self.length)
        self.stop = np.minimum(self.start + self.length, nxt)  # each sample corrected once
        # what is slow in an epoch: its projection on the cosines below HIGHPASS_HZ (3 at least)
        k = max(3, int(np.ceil(2 * self.length * self.HIGHPASS_HZ / fs)) if fs else 3)
        self.slow = np.cos(np.pi * (np.arange(self.length)[:, None] + 0.5)
                           * np.arange(min(k, self.length // 2))[None] / self.length)
        self.slow = np.linalg.qr(self.slow)[0]  # [L, k], orthonormal

    def samples(self, channels: list[str], start: int, stop: int) -> np.ndarray:
        v = np.flatnonzero((self.stop > start) & (self.start < stop))
        if len(v) == 0:
            return self.read(channels, start, stop)
        blocks = range(int(v[0]) // self.BLOCK, int(v[-1]) // self.BLOCK + 1)
        lo, hi = self._span(blocks[0])[0], self._span(blocks[-1])[1]
        first = min(start, int(self.start[lo]))
        last = max(stop, int(self.start[hi - 1]) + self.length)
        x = self.read(channels, first, last)
        out = x[:, start - first:stop - first].copy()
        for b in blocks:
            self._subtract(out, x, first, start, stop, b, v)
        return out

    def _span(self, block: int) -> tuple[int, int]:
        """[a, b): the slices whose residuals give block `block`'s components."""
        a = max(block * self.BLOCK - self.BLOCK // 2, 0)
        return a, min((block + 1) * self.BLOCK + self.BLOCK // 2, len(self.start))

    def _subtract(self, out: np.ndarray, x: np.ndarray, first: int, start: int, stop: int,
                  block: int, v: np.ndarray) -> None:
        a, b = self._span(block)
        idx = self.start[a:b, None] - first + np.arange(self.length)[None]
        epochs = np.moveaxis(x[:, idx], 1, 0)  # [N, C, L]
        fast = epochs - (epochs @ self.slow) @ self.slow.T
        mine = v[(v // self.BLOCK) == block]
        with _one_thread():  # small matrices: BLAS threads only contend
            for c in range(x.shape[0]):
                fit = self._fit(fast[:, c], epochs[:, c], mine - a)  # [M, L]
                for j, i in enumerate(mine):
                    s0, e0 = int(self.start[i]), int(self.stop[i])
                    s, e = max(s0, start), min(e0, stop)
                    if e > s:
                        out[c, s - start:e - start] -= fit[j, s - s0:e - s0]

    def _fit(self, fast: np.ndarray, epochs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The residual fitted to the epochs `rows` of one channel's block: the components are
        found on what is fast in each epoch (`fast`, without the epoch's slow course, the
        EEG's mostly), and each one's whole shape, slow part included, is its regression on
        the `epochs` over the block (the EEG, unrelated to them, averages out)."""
        _, vecs = np.linalg.eigh(fast.T @ fast)  # principal axes, ascending
        scores = fast @ vecs[:, ::-1][:, :self.k]  # [N, k]
        shapes = np.linalg.lstsq(scores, epochs - epochs.mean(0), rcond=None)[0]
        return scores[rows] @ shapes


def _one_thread() -> Any:
    """BLAS on one thread (threadpoolctl, which scikit-learn brings), where it is there."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(1)
