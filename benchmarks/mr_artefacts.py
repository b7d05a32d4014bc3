"""MR artefact correction on the simulated scanner recording: accuracy against the clean truth,
throughput and peak memory on a long 64-channel 5-kHz recording, and a before/after figure.

    python benchmarks/mr_artefacts.py [--minutes 15] [--figure mr_artefacts.png]
        [--accuracy-only | --throughput-only | --grid N]

Prints a Markdown table. `--grid N`: the robustness grid (issue 34), N recordings drawn from the
grid of rates, hardware low-pass, slice timing, slice counts, gradient, BCG, QRS, heart rate
and EEG amplitudes, each corrected (gradient and BCG) or refused by the gate.

The downstream comparison (voxel corr. of models trained on clean, corrected and uncorrected
EEG) is a workflow run: benchmarks/mr_downstream.yaml, its commands in docs/mr-artefacts.md.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pybv
from scipy import signal

from eeg2fmri.data.sim_settings import SimConfig
from eeg2fmri.data.simulate import write_dataset
from eeg2fmri.preprocess.ingest import Ingestion, Stages, open_recording, windows
from eeg2fmri.preprocess.mr_artefacts import MRSettings, harmonic_power

CFG = SimConfig(n_subjects=3, n_volumes=160, n_channels=19, scanner=True)
EEG = "sub-01/eeg/sub-01_task-rest_eeg.vhdr"
CLEAN = "derivatives/truth/sub-01/eeg/sub-01_task-rest_desc-clean_eeg.vhdr"


# (recording, stages): the scanner recording, then each stage on a recording with only its artefact
CASES = (("both", "keep", "keep"), ("both", "correct", "keep"), ("both", "correct", "correct"),
         ("gradient only", "correct", "keep"), ("BCG only", "detect", "correct"))


def accuracy(roots: dict[str, Path], figure: Path | None) -> list[str]:
    return [row for name, root in roots.items()
            for row in _accuracy(name, root, [(g, b) for n, g, b in CASES if n == name],
                                 figure)]


def mne_obs(root: Path, components: tuple[int, ...] = (4, 1)) -> list[str]:
    """MNE's PCA-OBS (`mne.preprocessing.apply_pca_obs`) on the recording with a BCG only, on
    the R-peaks ours finds: the BCG step MNE has, against ours."""
    import mne

    from eeg2fmri.preprocess.mr_artefacts import heartbeats

    factor = int(CFG.scanner_fs / CFG.fs)
    with open_recording(root / EEG, "brainvision") as rec, \
            open_recording(root / CLEAN, "brainvision") as clean:
        picks, on = rec.ch_names[:-1], rec.markers["Response/R128"]
        a, b = int(on[0]) // factor, int(on[-1] + CFG.tr * rec.fs) // factor
        sos = signal.butter(4, [1, 40], "bandpass", fs=CFG.fs, output="sos")
        c = signal.sosfiltfilt(sos, Stages(clean, factor).read(picks, a, b), axis=1)
        x = Stages(rec, factor).read(rec.ch_names, 0, -(-rec.n_samples // factor))
    info = mne.create_info(rec.ch_names, CFG.fs, ["eeg"] * len(picks) + ["ecg"])
    raw = mne.io.RawArray(x, info, verbose="error")
    qrs = heartbeats(x[-1], CFG.fs) / CFG.fs
    rows = []
    for k in components:
        out = mne.preprocessing.apply_pca_obs(raw, picks, qrs_times=qrs, n_components=k,
                                              verbose="error")
        y = signal.sosfiltfilt(sos, out.get_data(picks)[:, a:b], axis=1)
        r = np.array([np.corrcoef(y[i], c[i])[0, 1] for i in range(len(picks))])
        rows.append(f"| BCG only | MNE `apply_pca_obs`, {k} component{'s' * (k > 1)} | "
                    f"{np.median(r):.3f} ({r.min():.3f}-{r.max():.3f}) | nan | | |")
    return rows


def _accuracy(name: str, root: Path, stages: list[tuple[str, str]], figure: Path | None
              ) -> list[str]:
    factor = int(CFG.scanner_fs / CFG.fs)
    rows = []
    with open_recording(root / EEG, "brainvision") as rec, \
            open_recording(root / CLEAN, "brainvision") as clean:
        picks, on = rec.ch_names[:-1], rec.markers["Response/R128"]
        span = (int(on[0]), int(on[-1] + CFG.tr * rec.fs))
        a, b = span[0] // factor, span[1] // factor
        sos = signal.butter(4, [1, 40], "bandpass", fs=CFG.fs, output="sos")
        c = signal.sosfiltfilt(sos, Stages(clean, factor).read(picks, a, b), axis=1)
        truth = clean.samples(picks, *span)
        slice_hz = CFG.grid[2] / CFG.tr

        def harmonics(z: np.ndarray) -> float:
            return harmonic_power(z, rec.fs, slice_hz)

        before = harmonics(rec.samples(picks, *span) - truth)
        for g, bcg in stages:
            st = Stages.build(rec, picks, Ingestion(500, (1, 61), factor,
                                                    MRSettings(gradient=g, bcg=bcg)), CFG.tr, on)
            x = signal.sosfiltfilt(sos, st.read(picks, a, b), axis=1)
            r = np.array([np.corrcoef(x[i], c[i])[0, 1] for i in range(len(picks))])
            residual = (harmonics(st.source(picks, *span) - truth) / before
                        if g == "correct" else float("nan"))
            rep = st.report
            g_after = rep.get("gradient_db_after", rep["gradient_db"])
            b_after = rep.get("bcg_index_after", rep.get("bcg_index"))
            rows.append(f"| {name} | gradient {g}, BCG {bcg} | {np.median(r):.3f} ({r.min():.3f}-"
                        f"{r.max():.3f}) | {residual:.1e} | {g_after} dB | {b_after} |")
            if figure is not None and g == bcg == "correct" and name == "both":
                _figure(figure, rec, clean, picks, on, st, factor)
    return rows


def _figure(path: Path, rec, clean, picks, on, st, factor) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ch = picks[0]
    a = int(on[40])
    n = int(4 * rec.fs)
    t = np.arange(n) / rec.fs
    raw = rec.samples([ch], a, a + n)[0] * 1e6
    fixed = st.source([ch], a, a + n)[0] * 1e6
    final = st.read([ch], a // factor, (a + n) // factor)[0] * 1e6
    truth = clean.samples([ch], a, a + n)[0] * 1e6
    fig, ax = plt.subplots(2, 2, figsize=(11, 6), constrained_layout=True)
    ax[0, 0].plot(t, raw, lw=0.5)
    ax[0, 0].set(title=f"{ch}: as recorded in the scanner", xlabel="s", ylabel="uV")
    ax[0, 1].plot(t, truth, lw=0.8, label="clean truth", color="k")
    ax[0, 1].plot(np.arange(len(final)) / (rec.fs / factor), final, lw=0.8,
                  label="gradient + BCG corrected", color="C3")
    ax[0, 1].set(title="after correction (decimated)", xlabel="s", ylabel="uV")
    ax[0, 1].legend(fontsize=8)
    seg = (int(on[0]), int(on[0] + 64 * rec.fs))
    for z, label in ((rec.samples([ch], *seg)[0], "recorded"),
                     (st.source([ch], *seg)[0], "gradient corrected"),
                     (clean.samples([ch], *seg)[0], "clean truth")):
        f, p = signal.welch(z * 1e6, fs=rec.fs, nperseg=4096)
        ax[1, 0].semilogy(f, p, lw=0.7, label=label)
    ax[1, 0].set(title="spectrum (Welch)", xlabel="Hz", ylabel="uV^2/Hz", xlim=(0, 150))
    ax[1, 0].legend(fontsize=8)
    ax[1, 1].plot(t, fixed - truth, lw=0.5)
    ax[1, 1].set(title="gradient-corrected minus clean: the BCG left",
                 xlabel="s", ylabel="uV")
    fig.suptitle("MR artefact correction on the simulated scanner recording")
    fig.savefig(path, dpi=110)


def throughput(minutes: float, bcg: bool) -> str:
    """A 64-channel 5-kHz recording with a gradient artefact on every slice, a BCG after every
    heartbeat and an ECG channel (EEG: noise), corrected in the ingestion path's blocks and
    decimated to 500 Hz: the gradient alone (AAS), or the gradient and the BCG (two passes)."""
    fs, tr, n_ch, slices = 5000.0, 1.28, 64, 30
    n = int(minutes * 60 * fs)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        period = int(tr * fs)
        onsets = np.arange(int(2 * fs), n - period, period)
        wave = np.zeros(period)
        for s in range(slices):
            k = s * period // slices
            wave[k:k + 20] += np.hanning(20) * 1000.0
        beats = np.arange(int(1.5 * fs), n - int(fs), int(0.9 * fs))
        pulse = 40.0 * np.hanning(int(0.3 * fs))  # uV, 0.1-0.4 s after each beat
        qrs = 800.0 * np.hanning(int(0.03 * fs))
        data = np.empty((n_ch + 1, n), np.float32)
        for c in range(n_ch + 1):
            x = rng.standard_normal(n).astype(np.float32) * 10
            for o in onsets:
                x[o:o + period] += wave * (0.5 + c / n_ch)
            for b in beats:
                if c == n_ch:
                    x[b - len(qrs) // 2:b - len(qrs) // 2 + len(qrs)] += qrs
                else:
                    x[b + int(0.1 * fs):b + int(0.1 * fs) + len(pulse)] += pulse * (c % 3 - 1)
            data[c] = x
        pybv.write_brainvision(data=data * 1e-6, sfreq=fs,
                               ch_names=[f"E{i}" for i in range(n_ch)] + ["ECG"],
                               fname_base="long", folder_out=tmp,
                               events=[{"onset": int(o), "description": 128,
                                        "type": "Response"} for o in onsets],
                               unit="µV", overwrite=True)
        del data
        # the correction in a process of its own, so that its peak RSS is its own
        args = [sys.executable, __file__, "--correct", str(Path(tmp) / "long.vhdr")]
        out = subprocess.run(args + (["--bcg"] if bcg else []), capture_output=True, text=True,
                             check=True).stdout.split()
        wall, rss = float(out[0]), float(out[1])
        what = "gradient + BCG (two passes)" if bcg else "gradient"
        return (f"| {minutes:g} min, 64 ch + ECG, 5 kHz ({n_ch * n * 4 / 1e9:.2f} GB float32) | "
                f"{what} | {wall:.1f} s ({minutes * 60 / wall:.1f}x real time) | {rss:.0f} MB |")


def correct(vhdr: Path, bcg: bool, tr: float = 1.28) -> None:
    """The correction and decimation by 10 over the whole recording, block by block as
    preprocessing reads it; prints wall seconds and peak RSS (MB)."""
    t0 = time.time()
    with open_recording(vhdr, "brainvision") as rec:
        picks = rec.ch_names[:-1]
        mr = MRSettings(gradient="correct", bcg="correct" if bcg else "keep")
        ing = Ingestion(640, (1, 250), 10, mr)
        st = Stages.build(rec, picks, ing, tr, rec.markers["Response/R128"])
        out = -(-rec.n_samples // 10)
        windows(rec, picks, np.arange(0, out - 640, 640), ing, read=st.read)  # as preprocessing
    print(time.time() - t0, _peak_mb())


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the
    parent that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


GRID = {  # the robustness grid; `--grid N` draws N cells from it (seeded), each a recording
    "scanner_fs": (1000.0, 2500.0, 5000.0),
    "lowpass": (0.0, 250.0),  # the amplifier's hardware low-pass (0: none, sharp edges)
    "timing": ("locked", "drift", "jittered"),
    "slices": (20, 46, 60),
    "interleaved": (False, True),
    "gradient_uv": (500.0, 1500.0, 5000.0),
    "bcg_uv": (20.0, 80.0, 200.0),
    "bcg_delay_s": (0.15, 0.25, 0.35),
    "qrs_ms": (1.0, 2.5, 10.0),  # R wave SD: QRS ~4, ~10, ~40 ms wide
    "heart_bpm": (45.0, 70.0, 120.0),
    "eeg_uv": (5.0, 15.0, 50.0),
}
TIMING = {"locked": {"clock_step": 0.0, "gradient_jitter": 0.0},
          "drift": {},  # the simulator's: 0.37 sample per volume, 0.1 sample jitter
          "jittered": {"slice_jitter": 0.3, "gradient_jitter": 1.0}}


def grid_cells(n: int, seed: int = 0) -> list[dict]:
    """`n` cells of GRID, each knob drawn in turn so that every value comes up (a Latin
    square per knob, shuffled), the first one the held-out recording's properties."""
    rng = np.random.default_rng(seed)
    held = {"scanner_fs": 2500.0, "lowpass": 0.0, "timing": "jittered", "slices": 46,
            "interleaved": False, "gradient_uv": 1500.0, "bcg_uv": 80.0, "bcg_delay_s": 0.25,
            "qrs_ms": 1.0, "heart_bpm": 70.0, "eeg_uv": 5.0}
    cells = [held]
    columns = {k: rng.permutation(np.resize(np.arange(len(v)), n - 1)) for k, v in GRID.items()}
    for i in range(n - 1):
        cells.append({k: GRID[k][columns[k][i]] for k in GRID})
    return cells


def _pink(rng: np.random.Generator, c: int, n: int, fs: float, uv: float) -> np.ndarray:
    """EEG [c, n] (volts) with a 1/f spectrum from 1 Hz to 100 Hz, `uv` RMS."""
    f = np.fft.rfftfreq(n, 1 / fs)
    spec = (rng.standard_normal((c, len(f))) + 1j * rng.standard_normal((c, len(f))))
    spec *= np.where((f >= 1) & (f <= 100), 1 / np.sqrt(np.maximum(f, 1)), 0)
    x = np.fft.irfft(spec, n, axis=1)
    return x / x.std(1, keepdims=True) * uv * 1e-6


def grid_cell(cell: dict, n_volumes: int = 40, channels: int = 6) -> dict:
    """One recording of the grid, corrected (gradient and BCG) or refused: the gate's figure,
    the artefact power left (% of what was there, 0.5-124.5 Hz, at the features' rate) and the
    corrected-vs-clean correlation of the log |FFT| features in 1-40 Hz (median over
    channels)."""
    import mne

    from eeg2fmri.data.scanner import SLICE_MARKER, scanner_recording
    from eeg2fmri.errors import InputError
    from eeg2fmri.preprocess.ingest import Recording

    cfg = SimConfig(n_subjects=1, n_volumes=n_volumes, n_channels=channels, scanner=True,
                    scanner_fs=cell["scanner_fs"], hardware_lowpass_hz=cell["lowpass"],
                    gradient_edge_ms=0.15, scanner_slices=cell["slices"],
                    interleaved=cell["interleaved"], slice_gain_spread=0.1,
                    gradient_uv=cell["gradient_uv"], bcg_uv=cell["bcg_uv"],
                    bcg_delay_s=cell["bcg_delay_s"], qrs_ms=cell["qrs_ms"],
                    heart_bpm=cell["heart_bpm"], **TIMING[cell["timing"]])
    rng = np.random.default_rng(1)
    n = int((n_volumes * cfg.tr + 6) * cfg.fs)
    onsets = (3 * cfg.fs + np.arange(n_volumes) * cfg.tr * cfg.fs).astype(np.int64)
    rec = scanner_recording(cfg, _pink(rng, channels, n, cfg.fs, cell["eeg_uv"]), onsets, 0)
    names = [f"E{i}" for i in range(channels)] + ["ECG"]
    raw = mne.io.RawArray(rec["eeg"], mne.create_info(names, rec["fs"], "eeg"), verbose="error")
    markers = {"Response/R128": rec["onsets"], SLICE_MARKER: rec["slices"]}
    recording = Recording(Path("grid.fif"), "fif", raw, rec["fs"], names, markers,
                          rec["eeg"].shape[1])
    factor = cfg.scanner_factor()
    ing = Ingestion(500, (1, 250), factor, MRSettings(gradient="correct", bcg="correct"))
    picks = names[:-1]
    out = {**cell, "refused": "", "residual_pct": None, "left_pct": None, "corr": None}
    t0 = time.time()
    try:
        st = Stages.build(recording, picks, ing, cfg.tr, rec["onsets"])
    except InputError as e:
        out["refused"] = e.problem.split(": ", 1)[-1]
        out["seconds"] = time.time() - t0
        st = None
    a, b = int(onsets[0]), int(onsets[-1] + cfg.tr * cfg.fs)
    clean = signal.resample_poly(rec["clean"][:-1], 1, factor, axis=1)[:, a:b]
    raw_out = signal.resample_poly(rec["eeg"][:-1], 1, factor, axis=1)[:, a:b]
    if st is not None:
        x = st.read(picks, a, b)
        out["seconds"] = time.time() - t0
        out["residual_pct"] = st.report["residual_pct"]
        out["method"] = st.report.get("gradient_method")
    elif "max_residual" in out["refused"]:  # what it would have given, the limit lifted
        st = Stages.build(recording, picks, Ingestion(500, (1, 250), factor, MRSettings(
            gradient="correct", bcg="correct", max_residual=1e9)), cfg.tr, rec["onsets"])
        x = st.read(picks, a, b)
        out["residual_pct"] = st.report["residual_pct"]
    else:
        x = None
    if x is not None:
        sos = signal.butter(4, [0.5, 124], "bandpass", fs=cfg.fs, output="sos")
        left, there = (signal.sosfiltfilt(sos, z - clean, axis=1) for z in (x, raw_out))
        out["left_pct"] = 100 * float((left**2).sum() / (there**2).sum())
        out["corr"] = _feature_corr(x, clean, 500)
    return out


def _feature_corr(x: np.ndarray, clean: np.ndarray, n_win: int) -> float:
    """Median over channels of the correlation of the log |FFT| of TR windows, 1-40 Hz."""
    k = x.shape[1] // n_win
    spec = [np.log(np.abs(np.fft.rfft(z[:, :k * n_win].reshape(len(z), k, n_win), axis=2))
                   [..., 2:81] + 1e-12) for z in (x, clean)]
    return float(np.median([np.corrcoef(spec[0][c].ravel(), spec[1][c].ravel())[0, 1]
                            for c in range(len(x))]))


def _fmt(v: float | None, f: str) -> str:
    return "" if v is None else format(v, f)


def grid(n: int) -> None:
    rows = [grid_cell(cell) for cell in grid_cells(n)]
    print("| fs kHz | low-pass | timing | slices | gradient mV | BCG uV | delay s | QRS ms | "
          "bpm | EEG uV | outcome | gate % | artefact left % | feature corr. 1-40 Hz |")
    print("|" + "---|" * 14)
    for r in rows:
        outcome = (f"refused: {r['refused'][:110]}" if r["refused"]
                   else f"corrected ({r['method']})")
        print(f"| {r['scanner_fs'] / 1000:g} | {r['lowpass'] or 'none'} | {r['timing']}"
              f"{' (interleaved)' if r['interleaved'] else ''} | {r['slices']} | "
              f"{r['gradient_uv'] / 1000:g} | {r['bcg_uv']:g} | {r['bcg_delay_s']:g} | "
              f"{4 * r['qrs_ms']:g} | {r['heart_bpm']:g} | {r['eeg_uv']:g} | {outcome} | "
              f"{_fmt(r['residual_pct'], '.1f')} | {_fmt(r['left_pct'], '.2g')} | "
              f"{_fmt(r['corr'], '.3f')} |")
    accepted = [r for r in rows if not r["refused"]]
    if accepted:
        worst = min(accepted, key=lambda r: r["corr"])
        print(f"\nworst accepted cell: feature corr. {worst['corr']:.3f}, artefact left "
              f"{worst['left_pct']:.2g} %, gate {worst['residual_pct']} % ({worst})")
    print(f"refused: {len(rows) - len(accepted)} of {len(rows)}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--figure", type=Path, default=None)
    p.add_argument("--correct", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--bcg", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--throughput-only", action="store_true")
    p.add_argument("--accuracy-only", action="store_true")
    p.add_argument("--grid", type=int, default=0, help="the robustness grid: N recordings")
    a = p.parse_args()
    if a.grid:
        grid(a.grid)
        return
    if a.correct:
        correct(a.correct, a.bcg)
        return
    header = "| recording | stages | correction + decimation | peak RSS |\n|---|---|---|---|"
    if a.throughput_only:
        print(header)
        print(throughput(a.minutes, bcg=False))
        print(throughput(a.minutes, bcg=True))
        return
    with tempfile.TemporaryDirectory() as tmp:
        roots = {"both": Path(tmp) / "both", "gradient only": Path(tmp) / "gradient",
                 "BCG only": Path(tmp) / "bcg"}
        write_dataset(CFG, roots["both"])
        write_dataset(replace(CFG, bcg_uv=0.0), roots["gradient only"])
        write_dataset(replace(CFG, gradient_uv=0.0), roots["BCG only"])
        rows = accuracy(roots, a.figure) + mne_obs(roots["BCG only"])
    print("| artefacts simulated | stages | corr. with clean EEG, 1-40 Hz (median, range over "
          "19 ch) | residual at slice harmonics (of before) | gradient_db after | bcg_index "
          "after |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    if a.accuracy_only:
        return
    print("\n" + header)
    print(throughput(a.minutes, bcg=False))
    print(throughput(a.minutes, bcg=True))


if __name__ == "__main__":
    main()
