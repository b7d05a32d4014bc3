"""Peak memory of E2fNet training on an Oddball-sized features store, for two dataset sizes.

    python benchmarks/memory_scale.py [--sizes 5 17] [--steps 3] [--width 256] [--batch 32]
                                      [--store /tmp/eeg2fmri-oddball-store]

The store is written once to disk in our format at Oddball's size: per subject 6 runs x 144
pairs (864 windows of 43 electrodes x 249 bins, float32) and 864 volumes of 32 x 64 x 64
(float32), about 0.5 GB per subject, plus the raw windows. The values are random (memory does
not depend on them); the simulator at this size would take far longer than the measurement.
Each size is measured in a fresh process that does what `eeg2fmri train` does: open the
training and validation subjects (memory-mapped), fit the EEG normalisation on the training
subjects, index the pairs, read one full epoch of shuffled batches, build E2fNet and take
`--steps` AdamW steps of the SSIM + MSE loss. Reported: peak resident memory (ru_maxrss) and
seconds per step, beside what the reference code would hold in RAM for the same subjects
(each window 20 times, float64).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RUNS, PAIRS, CH, FREQ, GRID = 6, 144, 43, 249, (32, 64, 64)
N = RUNS * PAIRS


def write_store(root: Path, n_subjects: int) -> None:
    from eeg2fmri.io import write_json

    rng = np.random.default_rng(0)
    for i in range(n_subjects):
        d = root / f"sub-{i + 1:03d}"
        if not (d / "raw.npy").is_file():  # raw windows (NT-ViT's input), 2000 samples at 1 kHz
            d.mkdir(parents=True, exist_ok=True)
            raw = np.lib.format.open_memmap(d / "raw.npy", "w+", np.float16, (N, CH, 2000))
            raw.flush()
            del raw
        if (d / "meta.json").is_file():
            continue
        eeg = np.lib.format.open_memmap(d / "eeg.npy", "w+", np.float32, (N, CH, FREQ))
        bold = np.lib.format.open_memmap(d / "bold.npy", "w+", np.float32, (N, *GRID))
        for s in range(0, N, 144):
            eeg[s:s + 144] = rng.gamma(2.0, 1.0, (144, CH, FREQ))
            bold[s:s + 144] = rng.random((144, *GRID), dtype=np.float32)
        eeg.flush()
        bold.flush()
        del eeg, bold
        np.save(d / "mask.npy", np.ones(GRID, dtype=bool))
        write_json(d / "meta.json", {"tr": 2.0, "n_volumes": N, "segments": [
            [r * PAIRS, (r + 1) * PAIRS] for r in range(RUNS)]})


def child(store: Path, n_subjects: int, steps: int, width: int, batch: int) -> dict:
    import torch

    from eeg2fmri.models import build_model
    from eeg2fmri.models.losses import ssim_mse_loss
    from eeg2fmri.pairs import EEGNorm, PairDataset
    from eeg2fmri.training.trainer import open_subjects

    torch.set_num_threads(2)
    subjects = [f"sub-{i + 1:03d}" for i in range(n_subjects)]
    train = open_subjects(store, subjects[:-2])  # a fold: n - 2 training subjects,
    norm = EEGNorm.fit("log_standard", train)
    data = PairDataset(train, 20, norm)
    PairDataset(open_subjects(store, subjects[-2:-1]), 20, norm)  # one validation subject
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t_epoch = time.perf_counter()
    for _ in data.batches(batch, torch.Generator().manual_seed(1)):  # a full epoch, data only
        pass
    t_epoch = time.perf_counter() - t_epoch
    rss_epoch = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model = build_model("e2fnet", n_channels=CH, n_freqs=FREQ, out_shape=GRID, context=20,
                        width=width)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    t0, times = None, []
    for i, (x, y) in enumerate(data.batches(batch, gen)):
        if i == steps:
            break
        t0 = time.perf_counter()
        loss = ssim_mse_loss(model(x), y, 0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return {"subjects": n_subjects, "pairs": len(data),
            "rss_after_data_mb": rss_data, "rss_after_epoch_mb": rss_epoch,
            "epoch_read_s": t_epoch,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "s_per_step": float(np.median(times[1:] or times))}


def reference_gb(n_subjects: int) -> tuple[float, float]:
    """What the reference code holds in RAM: every window 20 times and every volume, float64."""
    n = n_subjects * N
    return n * 20 * CH * FREQ * 8 / 1e9, n * np.prod(GRID) * 8 / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[5, 17])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--store", type=Path, default=Path("/tmp/eeg2fmri-oddball-store"))
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a.store, a.child, a.steps, a.width, a.batch)))
        return
    t0 = time.perf_counter()
    write_store(a.store, max(a.sizes))
    disk = sum(f.stat().st_size for f in a.store.rglob("*.npy")) / 1e9
    print(f"store: {max(a.sizes)} subjects, {disk:.1f} GB on disk "
          f"(written in {time.perf_counter() - t0:.0f} s or reused)\n")
    print(f"| subjects | training pairs | peak RSS after opening + normalisation | after a full "
          f"epoch of batches (data only; s) | after {a.steps} steps (E2fNet width {a.width}, "
          f"batch {a.batch}) | s / step | the reference in RAM (EEG + fMRI, float64) |")
    print("|---|---|---|---|---|---|---|")
    for n in a.sizes:
        out = subprocess.run([sys.executable, __file__, "--child", str(n), "--steps",
                              str(a.steps), "--width", str(a.width), "--batch", str(a.batch),
                              "--store", str(a.store)], capture_output=True, text=True)
        if out.returncode:
            sys.exit(out.stderr)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        eeg_gb, fmri_gb = reference_gb(n)
        print(f"| {n} | {r['pairs']} | {r['rss_after_data_mb'] / 1024:.2f} GB | "
              f"{r['rss_after_epoch_mb'] / 1024:.2f} GB ({r['epoch_read_s']:.0f} s) | "
              f"{r['peak_rss_mb'] / 1024:.2f} GB | {r['s_per_step']:.1f} | "
              f"{eeg_gb:.1f} + {fmri_gb:.1f} GB |")


if __name__ == "__main__":
    main()
