"""EEG windows -> per-volume spectra: fs*TR windows, |FFT| magnitudes, decimation."""

from __future__ import annotations

import numpy as np
from scipy import fft


def window_spectra(data: np.ndarray, onsets: np.ndarray, n_win: int, bins: tuple[int, int],
                   chunk: int = 64) -> np.ndarray:
    """|rFFT| of the `n_win`-sample window starting at each onset, bins [lo, hi), [T, C, F].

    Windows are rectangular and non-overlapping when onsets are n_win apart. They are copied
    slice by slice into a float32 buffer of `chunk` windows and transformed together, so memory
    stays bounded for long 5 kHz recordings.
    """
    lo, hi = bins
    if not 0 <= lo < hi <= n_win // 2 + 1:
        raise ValueError(f"frequency bins [{lo}, {hi}) do not fit a {n_win}-sample window "
                         f"(at most {n_win // 2 + 1} bins)")
    out = np.empty((len(onsets), data.shape[0], hi - lo), dtype=np.float32)
    buf = np.empty((min(chunk, len(onsets)), data.shape[0], n_win), dtype=np.float32)
    for start in range(0, len(onsets), chunk):
        part = onsets[start:start + chunk]
        for i, o in enumerate(part):
            buf[i] = data[:, o:o + n_win]
        spec = fft.rfft(buf[:len(part)], axis=-1, workers=-1)
        out[start:start + len(part)] = np.abs(spec[..., lo:hi])
    return out


def window_samples(data: np.ndarray, onsets: np.ndarray, n_win: int) -> np.ndarray:
    """The raw `n_win`-sample window at each onset, [T, C, n_win] float16 (for models with
    their own EEG front end, e.g. NT-ViT's log-mel spectrogram)."""
    out = np.empty((len(onsets), data.shape[0], n_win), dtype=np.float16)
    for i, o in enumerate(onsets):
        out[i] = data[:, o:o + n_win]
    return out


FLOAT16_MAX = 65504.0  # the raw windows' store holds float16 microvolts


def window_sd(data: np.ndarray, onsets: np.ndarray, n_win: int) -> np.ndarray:
    """Standard deviation of each channel in each window, [T, C], in float64."""
    return np.array([data[:, o:o + n_win].std(axis=-1) for o in onsets]).reshape(len(onsets), -1)


def decimate(data: np.ndarray, factor: int) -> np.ndarray:
    """Low-pass (FIR, zero phase) and keep every `factor`-th sample, per channel."""
    if factor == 1:
        return data
    from scipy import signal

    return signal.resample_poly(data, 1, factor, axis=-1)

