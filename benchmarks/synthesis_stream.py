"""`eeg2fmri synthesize` on a long recording: volumes per second and peak RSS.

A 1-hour, 64-channel, 1 kHz BrainVision recording (float32, 0.9 GB, one R128 marker every
TR = 2 s) and an E2fNet of the paper's width (256) in a model record of NODDI's shapes
(64 channels, bins 1..249, 20 windows of context, 30 x 64 x 64). The weights are untrained: this
measures speed and memory, not quality. The synthesis runs in its own process; its peak RSS is
that process's.

    python benchmarks/synthesis_stream.py [--minutes 60] [--width 256] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pybv
import torch

from eeg2fmri.models import build_model
from eeg2fmri.record import save_record

FS, TR, CONTEXT, BINS, GRID = 1000.0, 2.0, 20, (1, 250), (30, 64, 64)


def write_recording(path: Path, minutes: float, n_ch: int) -> int:
    """Random-noise EEG with a marker per TR; written in blocks (bounded memory here too)."""
    n = int(minutes * 60 * FS)
    names = [f"E{i:02d}" for i in range(n_ch)]
    rng = np.random.default_rng(0)
    pybv.write_brainvision(data=np.zeros((n_ch, 2)), sfreq=FS, ch_names=names,
                           folder_out=path.parent, fname_base=path.stem, overwrite=True)
    with open(path.with_suffix(".eeg"), "wb") as f:  # MULTIPLEXED float32 microvolts
        for a in range(0, n, 600_000):
            block = (rng.standard_normal((min(600_000, n - a), n_ch)) * 10).astype("<f4")
            f.write(block.tobytes())
    n_vol = int(n / (FS * TR)) - 1
    lines = ["Brain Vision Data Exchange Marker File, Version 1.0", "", "[Common Infos]",
             "Codepage=UTF-8", f"DataFile={path.stem}.eeg", "", "[Marker Infos]"]
    lines += [f"Mk{k + 1}=Response,R128,{int(1000 + k * TR * FS) + 1},1,0" for k in range(n_vol)]
    path.with_suffix(".vmrk").write_text("\n".join(lines) + "\n")
    return n_vol


def write_model(path: Path, width: int, n_ch: int) -> None:
    n_freqs = BINS[1] - BINS[0]
    model = build_model("e2fnet", n_channels=n_ch, n_freqs=n_freqs, out_shape=GRID,
                        context=CONTEXT, width=width)
    spec = {"name": "e2fnet", "arch": "e2fnet", "shuffle_eeg": False, "params": {"width": width},
            "features": {"n_bins": n_freqs, "context": CONTEXT, "eeg_norm": "log_standard"},
            "training": {}}
    save_record(path, {
        "spec": spec, "arch": "e2fnet", "params": {"width": width}, "state": model.state_dict(),
        "eeg": {"channels": [f"E{i:02d}" for i in range(n_ch)], "fs": FS, "tr": TR,
                "window_samples": int(FS * TR), "bins": list(BINS), "input": "spectra",
                "context": CONTEXT, "norm": {"mode": "log_standard",
                                             "a": np.full((n_ch, n_freqs), 5.0, np.float32),
                                             "b": np.ones((n_ch, n_freqs), np.float32)},
                "marker": "R128", "decimate": 1},
        "volume": {"shape": list(GRID), "affine": np.diag([3.0, 3.0, 4.0, 1.0]).tolist(),
                   "coverage": "whole brain"},
        "dataset": "benchmark", "shuffle_seed": None, "sequence": None,
        "fold": {"name": "fold-sub-00", "tests": ["sub-00"], "val": "sub-01",
                 "train": ["sub-02"]},
        "summary": {}, "provenance": {}})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n_vol = write_recording(root / "rec.vhdr", a.minutes, a.channels)
        write_model(root / "model.pt", a.width, a.channels)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "eeg2fmri.cli", "synthesize", "--model",
                        str(root / "model.pt"), "--eeg", str(root / "rec.vhdr"), "--out",
                        str(root / "out.nii.gz"), "--device", a.device, "--no-progress"],
                       check=True)
        wall = time.perf_counter() - t0
        rss_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
        side = json.loads((root / "out.json").read_text())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {a.device}")
    print("| recording | markers | volumes written | wall (s) | volumes/s (all) | "
          "model s/volume | peak RSS (GB) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {a.minutes:g} min, {a.channels} ch, {FS:g} Hz | {n_vol} | {side['n_volumes']} | "
          f"{wall:.0f} | {side['n_volumes'] / wall:.1f} | {side['predict_s_per_volume']:.3f} | "
          f"{rss_gb:.2f} |")


if __name__ == "__main__":
    main()
