"""EEG window spectra of one CN-EPFL-sized run: ours against the references' loop and the floor.

64 channels x 5 kHz x 8 min, TR 1.28 s (6400-sample windows, 375 volumes), |FFT| bins 1..249.
  - ours: `eeg2fmri.preprocess.eeg.window_spectra` (chunked, batched rFFT over gathered windows)
  - loop: one rFFT per channel per window, as the reference code does
  - floor: a single batched float32 rFFT of the reshaped contiguous array (no gathering)

    python benchmarks/preprocess.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import fft

from eeg2fmri.preprocess.eeg import window_spectra


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    fs, tr, channels, minutes = 5000, 1.28, 64, 8
    n_win = int(fs * tr)
    n_vol = int(minutes * 60 / tr)
    data = np.random.default_rng(0).standard_normal((channels, n_vol * n_win + 1000))
    onsets = np.arange(n_vol) * n_win

    def ours():
        return window_spectra(data, onsets, n_win, (1, 250))

    def loop():
        out = np.empty((n_vol, channels, 249), dtype=np.float32)
        for t, o in enumerate(onsets):
            for c in range(channels):
                out[t, c] = np.abs(np.fft.rfft(data[c, o:o + n_win]))[1:250]
        return out

    def floor():  # float32 like ours; the reshape is a view, so nothing is gathered
        x = data[:, :n_vol * n_win].reshape(channels, n_vol, n_win).astype(np.float32)
        return np.abs(fft.rfft(x, axis=-1, workers=-1))[..., 1:250].transpose(1, 0, 2)

    ref = loop()
    for fn in (ours, floor):
        np.testing.assert_allclose(fn(), ref, rtol=0, atol=1e-5 * float(ref.max()))  # float32
    times = {}
    for name, fn in (("ours", ours), ("loop", loop), ("floor", floor)):
        runs = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t0)
        times[name] = sorted(runs)[len(runs) // 2]
    print("| method | seconds | vs ours |")
    print("|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {t:.3f} | {t / times['ours']:.2f}x |")


if __name__ == "__main__":
    main()
