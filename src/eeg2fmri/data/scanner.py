"""The EEG as an amplifier records it inside an MR scanner (`simulation.scanner: true`): the
simulated clean EEG upsampled to the scanner rate, plus

- the gradient artefact: a waveform locked to every slice (spikes at the gradient switching
  times and a readout oscillation), ~`gradient_uv` at its peak (>= 100x the EEG), scaled per
  channel (gains of both signs), with the variation real ones have from volume to volume: the
  slices' timing against the EEG clock drifts by fractions of a sample (`clock_step` per
  volume, `gradient_jitter` per volume, `slice_jitter` per slice), and the amplitude drifts
  slowly; `gradient_edge_ms` sharpens its switching spikes and `hardware_lowpass_hz` filters
  it as an amplifier's analogue low-pass does (only the artefact: the truth stays the EEG);
- the ballistocardiogram: a channel-specific waveform after each heartbeat (R-peak + ~0.2 s),
  ~`bcg_uv`, with beat-to-beat amplitude variation;
- an ECG channel (R-peaks at a heart rate with variability) that carries the gradient too;
- slice and volume markers as a SyncBox writes them ("Response/R  1" per slice, "Response/R128"
  per volume).

The clean EEG (and ECG) at the scanner rate is the truth a correction is scored against.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from eeg2fmri.data.sim_settings import SimConfig

SLICE_MARKER = "Response/R  1"


def heartbeats(cfg: SimConfig, rng: np.random.Generator, duration_s: float) -> np.ndarray:
    """R-peak times (s): RR intervals around 60/heart_bpm with slow variability `hrv`."""
    rr0 = 60.0 / cfg.heart_bpm
    n = int(duration_s / rr0 * 1.5) + 2
    wander = signal.lfilter([0.3], [1, -0.7], rng.standard_normal(n))
    rr = rr0 * (1 + cfg.hrv * wander / wander.std())
    t = 0.3 + np.cumsum(np.clip(rr, 0.4 * rr0, 1.6 * rr0))
    return t[t < duration_s - 1.0]


def _ecg(t: np.ndarray, beats: np.ndarray, qrs_ms: float = 10.0) -> np.ndarray:
    """An ECG (volts): Q, R, S and T waves after each beat; `qrs_ms` the R wave's SD (Q and S
    scale with it; 10 ms: a QRS complex of ~60 ms)."""
    k = qrs_ms / 10.0
    out = np.zeros_like(t)
    for b in beats:
        for lag, width, amp in ((-0.02 * k, 0.008 * k, -0.1e-3), (0.0, 0.01 * k, 1.0e-3),
                                (0.025 * k, 0.01 * k, -0.25e-3), (0.25, 0.04, 0.25e-3)):
            near = np.abs(t - b - lag) < 5 * width
            out[near] += amp * np.exp(-0.5 * ((t[near] - b - lag) / width) ** 2)
    return out


def _slice_waveform(tau: np.ndarray, period: float, edge_s: float = 0.0) -> np.ndarray:
    """The gradient artefact of one slice (peak 1) at times `tau` (s) since the slice's onset:
    switching spikes (derivatives of the gradient ramps; SD `edge_s`, default 2 % of the period)
    and a readout oscillation."""
    out = np.zeros_like(tau)
    inside = (tau >= 0) & (tau < period)
    x = tau[inside] / period
    for centre, sign, width in ((0.05, 1, 0.02), (0.12, -1, 0.02), (0.30, 1, 0.025),
                                (0.80, -1, 0.025), (0.88, 1, 0.02)):
        w = edge_s / period if edge_s > 0 else width
        out[inside] += sign * np.exp(-0.5 * ((x - centre) / w) ** 2) * 0.8
    # the readout's oscillation, under a smooth window (the amplifier's anti-aliasing filter
    # band-limits the real artefact too)
    readout = np.exp(-0.5 * ((x - 0.55) / 0.09) ** 2)
    out[inside] += 0.35 * readout * np.sin(2 * np.pi * 22 * x)
    return out


def slice_order(n: int, interleaved: bool) -> np.ndarray:
    """The position of each slice in acquisition order: 0..n-1, or 0, 2, 4, ..., 1, 3, ..."""
    order = np.arange(n)
    return np.concatenate([order[::2], order[1::2]]) if interleaved else order


def scanner_recording(cfg: SimConfig, clean: np.ndarray, onsets: np.ndarray, index: int
                      ) -> dict[str, object]:
    """EEG [C, S] (volts) at `cfg.fs`, its volume onsets (samples) -> the scanner recording at
    `cfg.scanner_fs`: EEG + ECG channel with artefacts, the clean EEG + ECG, markers."""
    factor = cfg.scanner_factor()
    rng = np.random.default_rng([cfg.seed, index, 30_000])
    fs = cfg.fs * factor
    eeg = signal.resample_poly(clean, factor, 1, axis=-1)
    n = eeg.shape[1]
    t = np.arange(n) / fs
    beats = heartbeats(cfg, rng, n / fs)
    ecg = _ecg(t, beats, cfg.qrs_ms)

    # ballistocardiogram: each channel's own waveform, 0.15-0.6 s after each R-peak
    c = len(eeg)
    lags = cfg.bcg_delay_s + 0.15 * rng.random((c, 3))
    widths = 0.04 + 0.04 * rng.random((c, 3))
    amps = rng.standard_normal((c, 3)) * cfg.bcg_uv * 1e-6 / 1.5
    bcg = np.zeros_like(eeg)
    for b in beats:
        scale = 1 + 0.1 * rng.standard_normal()
        near = slice(int((b + 0.05) * fs), min(int((b + 0.8) * fs), n))
        tau = t[near] - b
        for k in range(3):
            bcg[:, near] += scale * amps[:, k:k + 1] * np.exp(
                -0.5 * ((tau[None] - lags[:, k:k + 1]) / widths[:, k:k + 1]) ** 2)

    # gradient artefact: every slice of every volume; its timing against the EEG clock moves
    # by fractions of a sample (a slow phase drift plus jitter, per volume and per slice), its
    # amplitude drifts slowly
    n_slices = cfg.scanner_slices or cfg.grid[2]
    period = cfg.tr / n_slices
    vol_onsets = onsets * factor  # samples at the scanner rate
    gains = rng.uniform(1.0, 2.0, c + 1) * rng.choice([-1, 1], c + 1)
    gains[-1] = 2.0  # the ECG electrode's leads pick up more
    position = slice_order(n_slices, cfg.interleaved)
    slice_gain = 1 + cfg.slice_gain_spread * (2 * position / max(n_slices - 1, 1) - 1)
    grad = np.zeros((c + 1, n))
    slice_onsets = []
    for v, onset in enumerate(vol_onsets):
        shift = (cfg.clock_step * v) % 1.0 + cfg.gradient_jitter * rng.standard_normal()
        level = 1 + cfg.gradient_drift * np.sin(2 * np.pi * (onset / fs) / 120.0)
        jitter = (cfg.slice_jitter * rng.standard_normal(n_slices) if cfg.slice_jitter
                  else np.zeros(n_slices))
        for s in range(n_slices):
            start = onset + shift + jitter[s] + s * period * fs  # fractional sample
            slice_onsets.append(int(np.floor(onset + s * period * fs)))
            a, b = max(int(np.floor(start)), 0), min(int(np.ceil(start + period * fs)) + 1, n)
            wave = _slice_waveform((np.arange(a, b) - start) / fs, period,
                                   cfg.gradient_edge_ms * 1e-3)
            grad[:, a:b] += (level * slice_gain[s] * cfg.gradient_uv * 1e-6 * gains[:, None]
                             * wave[None])
    if cfg.hardware_lowpass_hz:  # the amplifier's analogue filter, before sampling (causal)
        sos = signal.butter(5, cfg.hardware_lowpass_hz, fs=fs, output="sos")
        grad = signal.sosfilt(sos, grad, axis=1)
    noisy = np.vstack([eeg + bcg, ecg[None]]) + grad
    return {"eeg": noisy, "clean": np.vstack([eeg, ecg[None]]), "fs": fs,
            "onsets": vol_onsets.astype(np.int64), "slices": np.asarray(slice_onsets),
            "beats": beats}
