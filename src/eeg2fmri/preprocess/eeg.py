"""EEG -> per-volume spectra: marker-based alignment, fs*TR windows, |FFT| magnitudes."""

from __future__ import annotations

import numpy as np
from scipy import fft

from eeg2fmri.data.readers import EEGRecording, find_markers
from eeg2fmri.errors import InputError


def volume_onsets(rec: EEGRecording, tr: float, n_volumes: int, *, alignment: str,
                  marker: str | None, tol: float = 0.01) -> np.ndarray:
    """EEG sample index of each volume's onset.

    "markers": from the scanner's volume markers (the first `n_volumes` of them);
    "start": the references' assumption that EEG sample 0 is the first volume's onset.
    """
    spv = rec.fs * tr
    if alignment == "start":
        return np.round(np.arange(n_volumes) * spv).astype(np.int64)
    if alignment != "markers" or not marker:
        raise ValueError(f"alignment must be 'markers' (with a marker) or 'start', "
                         f"not {alignment!r}")
    onsets = find_markers(rec, marker)
    if onsets.size == 0:
        found = ", ".join(sorted(rec.markers)) or "none"
        raise InputError(rec.path, f"no volume markers {marker!r} found (markers present: "
                                   f"{found}); set alignment: start to assume EEG starts at "
                                   f"volume 0")
    if onsets.size > 1:
        spacing = float(np.median(np.diff(onsets)))
        if abs(spacing - spv) > tol * spv:
            raise InputError(rec.path, f"volume markers {marker!r} are {spacing:g} samples apart "
                                       f"but fs*TR = {spv:g}; wrong TR or marker?")
    return onsets[:n_volumes].astype(np.int64)


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


def decimate(data: np.ndarray, factor: int) -> np.ndarray:
    """Low-pass (FIR, zero phase) and keep every `factor`-th sample, per channel."""
    if factor == 1:
        return data
    from scipy import signal

    return signal.resample_poly(data, 1, factor, axis=-1)


def select_channels(rec: EEGRecording, drop: tuple[str, ...]) -> EEGRecording:
    """The recording without the named non-EEG channels (case-insensitive)."""
    dropped = {d.lower() for d in drop}
    keep = [i for i, c in enumerate(rec.ch_names) if c.lower() not in dropped]
    if len(keep) == len(rec.ch_names):
        return rec
    return EEGRecording(rec.data[keep], rec.fs, [rec.ch_names[i] for i in keep], rec.markers,
                        rec.path)
