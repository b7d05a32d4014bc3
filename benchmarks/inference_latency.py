"""Inference latency per volume of each model in its paper configuration (batch 1, median).

    python benchmarks/inference_latency.py [--threads 2] [--repeats 5] [--device cpu]

Input as on NODDI: 64 electrodes x 249 frequency bins x 20 windows (NT-ViT: its reference's
input, one raw window of 2.16 s at 512 Hz, 1106 samples) -> a 30 x 64 x 64 volume. The
sequence model (neural_frames) completes a whole NODDI run (300 frames, half of them known):
its time is per frame of that run.
Prints a Markdown table: parameters, median seconds per volume, and whether that is below one
TR of CN-EPFL (1.28 s), the shortest TR of the papers' datasets.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import yaml

from eeg2fmri.config import arch_kind
from eeg2fmri.models import build_model, count_parameters
from eeg2fmri.sequences import SequenceBatch, SequenceTasks
from eeg2fmri.training.trainer import per_dataset

CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"
PAPER = {  # model_settings entries of config.yaml in their published configuration
    "e2fnet (width 256)": {"arch": "e2fnet", "width": 256},
    "spec2vol_paper": "spec2vol_paper",
    "ef_diffusion_paper": "ef_diffusion_paper",
    "e2fgan_paper": "e2fgan_paper",
    "ntvit_paper": "ntvit_paper",
    "neural_frames": "neural_frames",
}
RUN_FRAMES = 300  # a NODDI run, for the sequence model
RAW_SAMPLES, FS = 1106, 512.0  # NT-ViT reads one raw window: NODDI's 2.16 s at 512 Hz
TR_S = 1.28


def settings(entry: str | dict) -> dict:
    if isinstance(entry, dict):
        return dict(entry)
    params = dict(yaml.safe_load(CONFIG.read_text())["model_settings"][entry])
    params.pop("training", None)
    return per_dataset(params, "noddi")  # e.g. EF-Diffusion's DDIM steps on NODDI


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", nargs="+", default=list(PAPER), help="a subset of the models")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    print(f"| model | parameters | s / volume (median of {a.repeats}) | < 1 TR (1.28 s) |")
    print("|---|---|---|---|")
    for name in a.models:
        params = settings(PAPER[name])
        arch = params.pop("arch")
        frames = 1
        if arch_kind(arch) == "sequence":
            _, params = SequenceTasks.split(params)
            frames = RUN_FRAMES
        n = RAW_SAMPLES if arch == "ntvit" else 249
        context = 1 if arch == "ntvit" else 20
        if arch == "ntvit":
            params["fs"] = FS
        model = build_model(arch, n_channels=64, n_freqs=n, out_shape=(30, 64, 64),
                            context=context, **params).to(dev).eval()
        x = torch.randn(1, context, 64, n, device=dev)
        if frames > 1:
            known = (torch.arange(frames, device=dev) % 2 == 0)[None]
            x = SequenceBatch(torch.randn(1, frames + 19, 64, n, device=dev),
                              torch.rand(1, frames, 30, 64, 64, device=dev)
                              * known[..., None, None, None], known)
        times = []
        with torch.no_grad():
            model(x)  # warm-up
            for _ in range(a.repeats):
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                model(x)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
        med = statistics.median(times) / frames
        extra = f" ({params['sample_steps']} DDIM steps)" if "sample_steps" in params else ""
        print(f"| {name}{extra} | {count_parameters(model):,} | {med:.3f} | "
              f"{'yes' if med < TR_S else 'no'} |", flush=True)


if __name__ == "__main__":
    main()
