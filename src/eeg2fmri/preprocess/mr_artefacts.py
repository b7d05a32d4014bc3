"""MR artefacts in EEG recorded inside the scanner: their detection (inspect, preprocessing,
synthesis) and their correction, stages of the ingestion path (`preprocess.ingest`).

- **Gradient** (locked to every slice and volume, hundreds to thousands of microvolts): average
  artefact subtraction, AAS (Allen et al. 2000; the FASTR family, Niazy et al. 2005). Each
  volume's epoch is shifted to a common timing with sub-sample precision (its lag against the
  first volume, from the cross-correlation of a reference channel, refined parabolically), the
  `window` neighbouring volumes are averaged, and the average, shifted back to the volume's own
  timing and scaled to its amplitude (least squares per channel), is subtracted. Runs at the
  recording's rate, before decimation, volume block by volume block (the result does not
  depend on the blocks).
- **Ballistocardiogram** (locked to each heartbeat, tens of microvolts): R-peaks from the ECG
  channel with MNE's QRS detector, then for each beat its neighbouring beats' epochs, each
  levelled on the stretch before the pulse arrives, give the template: their mean fitted to the
  beat with their first `obs` principal components (an optimal basis set, Niazy et al. 2005;
  `obs: 0` subtracts the plain average), after decimation.

Detection measures per run: `gradient_db`, the power at the volume-frequency harmonics (slice
harmonics are among them) against the spectrum between them, in dB (clean EEG: a few dB); and
`bcg_index`, the RMS of the heartbeat-locked average against what averaging as many random
epochs leaves (clean EEG: about 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import fft

GRADIENT_DB = 10.0  # a run above this has a gradient artefact
BCG_INDEX = 3.0  # a run above this has a ballistocardiogram
ACTIONS = ("detect", "correct", "keep")  # detect: refuse a run that has the artefact


@dataclass(frozen=True)
class MRSettings:
    """A dataset's `mr_artefacts` entry (workflow/schemas/config.schema.yaml)."""

    gradient: str = "detect"
    bcg: str = "detect"
    ecg_channel: str | None = None  # default: the channel named ECG or EKG
    window: int = 21  # volumes averaged into a gradient template
    beats: int = 21  # heartbeats averaged into a BCG template
    obs: int = 0  # principal components of those heartbeats fitted with their mean (OBS)

    def state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> MRSettings:
        return cls(**(state or {}))


def find_ecg(names: list[str], wanted: str | None) -> str | None:
    """The ECG channel's name in a recording: `wanted`, else one named ECG or EKG."""
    lower = {n.lower(): n for n in names}
    for candidate in ([wanted] if wanted else ["ecg", "ekg"]):
        if candidate.lower() in lower:
            return lower[candidate.lower()]
    return None


def mr_summary(report: dict[str, Any]) -> list[str]:
    """What the MR stages of a run measured and did, in words (log, meta.json notes)."""
    lines = []
    g = report.get("gradient_db")
    if g is not None:
        done = {"correct": f"corrected (AAS), {report.get('gradient_db_after')} dB after",
                "keep": "KEPT in the EEG (mr_artefacts.gradient: keep, as the references)",
                "detect": "none found"}[report["gradient"]]
        lines.append(f"gradient artefact {g} dB at the volume harmonics: {done}")
    b = report.get("bcg_index")
    if b is None:
        lines.append(f"ballistocardiogram not measured (no ECG channel); bcg: {report['bcg']}")
    else:
        done = {"correct": f"corrected (AAS on {report.get('heartbeats')} heartbeats), "
                           f"{report.get('bcg_index_after')} after",
                "keep": "KEPT in the EEG (mr_artefacts.bcg: keep)",
                "detect": "none found"}[report["bcg"]]
        lines.append(f"ballistocardiogram index {b}: {done}")
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


def heartbeats(ecg: np.ndarray, fs: float) -> np.ndarray:
    """R-peak samples of an ECG (MNE's QRS detector)."""
    from mne.preprocessing.ecg import qrs_detector

    if not np.ptp(ecg) > 0:
        return np.zeros(0, np.int64)  # a flat channel has no heartbeat
    try:
        beats = qrs_detector(fs, ecg.astype(np.float64), thresh_value="auto", verbose="error")
    except (ValueError, IndexError):  # too short or no crossing
        return np.zeros(0, np.int64)
    return np.asarray(beats, dtype=np.int64)


BCG_EPOCH_S = (-0.1, 0.75)  # around the R-peak: the pulse reaches the head ~0.15 s after it
BCG_BASELINE_S = 0.15  # each epoch's first 0.15 s (-0.1..0.05 s): its level without the BCG


def bcg_index(data: np.ndarray, beats: np.ndarray, fs: float) -> float:
    """RMS of the heartbeat-locked average of `data` [C, n] against the RMS that averaging as
    many epochs at random times leaves, the median over channels (about 1 without a BCG)."""
    a, b = (int(round(s * fs)) for s in BCG_EPOCH_S)
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

    PAD = 4  # samples read around each epoch, so that shifts do not wrap artefact around

    def __init__(self, read: Any, n_samples: int, onsets: np.ndarray, epoch: int,
                 reference: str, window: int = 21):
        self.read, self.epoch, self.window = read, int(epoch), int(window)
        onsets = np.asarray(onsets, dtype=np.int64)
        self.onsets = onsets[(onsets - self.PAD >= 0)
                             & (onsets + self.epoch + self.PAD <= n_samples)]
        if len(self.onsets) < 3:
            raise ValueError(f"{len(self.onsets)} volumes: too few for a gradient template")
        self.lags = self._lags(reference)

    def _epochs(self, channels: list[str], first: int, last: int) -> np.ndarray:
        """Epochs [last - first, C, epoch + 2 PAD] of volumes first..last-1, read at once."""
        a = int(self.onsets[first]) - self.PAD
        b = int(self.onsets[last - 1]) + self.epoch + self.PAD
        x = self.read(channels, a, b)
        w = self.epoch + 2 * self.PAD
        return np.stack([x[:, o - self.PAD - a:o - self.PAD - a + w]
                         for o in self.onsets[first:last]])

    def _lags(self, reference: str) -> np.ndarray:
        """Each volume's delay (samples, fractional) against the first, from the reference
        channel's cross-correlation with the first volume's epoch, refined parabolically."""
        lags = np.zeros(len(self.onsets))
        step = 256
        ref = None
        for i in range(0, len(self.onsets), step):
            ep = self._epochs([reference], i, min(i + step, len(self.onsets)))[:, 0]
            ep = ep - ep.mean(1, keepdims=True)
            if ref is None:
                ref = np.conj(fft.rfft(ep[0]))
            xc = fft.irfft(fft.rfft(ep, axis=1) * ref[None], n=ep.shape[1], axis=1)
            xc = np.concatenate([xc[:, -3:], xc[:, :4]], axis=1)  # lags -3..3
            k = np.clip(np.argmax(xc, axis=1), 1, 5)
            y0, y1, y2 = (xc[np.arange(len(k)), k + d] for d in (-1, 0, 1))
            denom = y0 - 2 * y1 + y2
            frac = np.divide(0.5 * (y0 - y2), denom, out=np.zeros_like(denom),
                             where=np.abs(denom) > 1e-30)
            lags[i:i + len(k)] = (k - 3) + np.clip(frac, -0.5, 0.5)
        return lags

    GROUP = 32  # volumes corrected at once (their neighbours' epochs are held together)

    def samples(self, channels: list[str], start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) of `channels` with the gradient artefact subtracted."""
        out = self.read(channels, start, stop)
        v = np.flatnonzero((self.onsets + self.epoch > start) & (self.onsets < stop))
        for k in range(0, len(v), self.GROUP):
            self._subtract(out, channels, start, stop, v[k:k + self.GROUP])
        return out

    def _subtract(self, out: np.ndarray, channels: list[str], start: int, stop: int,
                  v: np.ndarray) -> None:
        spans = {int(i): _neighbours(int(i), self.window, len(self.onsets)) for i in v}
        lo, hi = min(a for a, _ in spans.values()), max(b for _, b in spans.values())
        epochs = self._epochs(channels, lo, hi)
        aligned = _shift(epochs, -self.lags[lo:hi])  # every volume at the first one's timing
        cum = np.concatenate([np.zeros((1, *aligned.shape[1:])), np.cumsum(aligned, axis=0)])
        for i, (a, b) in spans.items():
            template = (cum[b - lo] - cum[a - lo]) / (b - a)
            template = _shift(template[None], self.lags[i:i + 1])[0]
            template = template[:, self.PAD:self.PAD + self.epoch]
            # the volume's own amplitude (the artefact drifts slowly): least squares per channel
            own = epochs[i - lo][:, self.PAD:self.PAD + self.epoch]
            t0 = template - template.mean(1, keepdims=True)
            scale = (t0 * (own - own.mean(1, keepdims=True))).sum(1) / np.maximum(
                (t0**2).sum(1), 1e-300)
            template = template * scale[:, None]
            o = int(self.onsets[i])
            s, e = max(o, start), min(o + self.epoch, stop)
            out[:, s - start:e - start] -= template[:, s - o:e - o]


class BCGSubtraction:
    """Ballistocardiogram subtraction on heartbeat epochs (-0.1..0.75 s around the R-peak, each
    levelled on its first 0.15 s): for each beat, the average of its `beats` neighbouring beats'
    epochs is subtracted (AAS); with `components`, its projection on their mean and first
    principal components instead (an optimal basis set: follows each beat's amplitude, but
    more components take some EEG too)."""

    def __init__(self, read: Any, n_samples: int, beats: np.ndarray, fs: float,
                 n_beats: int = 21, components: int = 3):
        self.read, self.window = read, int(n_beats)
        self.components = int(components)
        self.a, self.b = (int(round(s * fs)) for s in BCG_EPOCH_S)
        self.baseline = max(int(round(BCG_BASELINE_S * fs)), 1)
        beats = np.asarray(beats, dtype=np.int64)
        self.beats = beats[(beats + self.a >= 0) & (beats + self.b <= n_samples)]

    def samples(self, channels: list[str], start: int, stop: int) -> np.ndarray:
        out = self.read(channels, start, stop)
        v = np.flatnonzero((self.beats + self.b > start) & (self.beats + self.a < stop))
        if len(v) == 0 or len(self.beats) < 3:
            return out
        spans = {int(i): _neighbours(int(i), self.window, len(self.beats)) for i in v}
        lo, hi = min(a for a, _ in spans.values()), max(b for _, b in spans.values())
        first, last = int(self.beats[lo]) + self.a, int(self.beats[hi - 1]) + self.b
        x = self.read(channels, first, last)
        epochs = np.stack([x[:, t + self.a - first:t + self.b - first]
                           for t in self.beats[lo:hi]])
        # each epoch's level from before the pulse arrives: the EEG's offset and drift leave the
        # template, the BCG's own mean stays in it (an epoch mean would take it out, leaving a
        # step of that size at every epoch's edges)
        epochs -= epochs[..., :self.baseline].mean(-1, keepdims=True)
        for i, (a, b) in spans.items():
            if self.components:  # an optimal basis set, fitted to this beat
                others = np.delete(epochs[a - lo:b - lo], int(i) - a, axis=0)  # not its own EEG
                fit = _obs_fit(others, epochs[int(i) - lo], self.components)
            else:  # their plain average (a fitted amplitude takes the EEG's slow drift too)
                fit = epochs[a - lo:b - lo].mean(0)
            t0 = int(self.beats[i]) + self.a
            s, e = max(t0, start), min(t0 + self.b - self.a, stop)
            out[:, s - start:e - start] -= fit[:, s - t0:e - t0]
        return out


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
