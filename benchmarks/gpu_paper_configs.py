"""Peak GPU memory and training step time of the papers' configurations at their batch sizes
(`config.yaml`: e2fnet at width 256, spec2vol_paper, ef_diffusion_paper, ntvit_paper), with AMP
as training uses it, at NODDI's shapes (64 electrodes, 249 bins, 20 windows, 30x64x64; NT-ViT
its reference's one raw window of 2.16 s at 512 Hz).

    python benchmarks/gpu_paper_configs.py [--steps 10]

Prints a Markdown table; needs a CUDA GPU (part of the GPU tier, docs/running.md: 'Before a GPU or
cluster run').
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml

from eeg2fmri.config import train_spec
from eeg2fmri.models import build_model, count_parameters
from eeg2fmri.training.trainer import per_dataset

REPO = Path(__file__).resolve().parents[1]
SHAPE, CHANNELS, BINS, CONTEXT = (30, 64, 64), 64, 249, 20
RAW_FS, RAW_SAMPLES = 512.0, 1106  # NT-ViT's reference input: one 2.16-s window at 512 Hz


def step_time(name: str, cfg: dict, steps: int, device: torch.device) -> str:
    spec = train_spec(cfg, name)
    params = per_dataset(spec["params"], "noddi")
    raw = spec["features"]["eeg_norm"] == "raw_standard"
    if raw:
        params["fs"] = RAW_FS
    f, context = (RAW_SAMPLES, 1) if raw else (BINS, CONTEXT)
    model = build_model(spec["arch"], n_channels=CHANNELS, n_freqs=f, out_shape=SHAPE,
                        context=context, **params).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = spec["training"]["batch_size"]
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    x = torch.randn(batch, context, CHANNELS, f, device=device)
    y = torch.rand(batch, *SHAPE, device=device)
    torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(steps + 2):
        torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=dtype):
            loss = model.training_loss(x, y)  # the hook the training loop calls
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        torch.cuda.synchronize(device)
        if i >= 2:  # the first steps compile kernels
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) / 2**30
    median = sorted(times)[len(times) // 2]
    return (f"| {name} | {spec['arch']} | {count_parameters(model) / 1e6:.1f} M | {batch} | "
            f"{median * 1e3:.0f} ms | {peak:.1f} GiB |")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=10)
    a = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU")
    device = torch.device("cuda")
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["model_settings"]["e2fnet_paper"] = {"arch": "e2fnet", "width": 256}
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}\n")
    print("| config | arch | parameters | batch | step (AMP, median) | peak GPU memory |")
    print("|---|---|---|---|---|---|")
    for name in ("e2fnet_paper", "spec2vol_paper", "ef_diffusion_paper", "ntvit_paper"):
        try:
            print(step_time(name, cfg, a.steps, device), flush=True)
        except torch.cuda.OutOfMemoryError:
            print(f"| {name} | out of GPU memory at its batch size |||||", flush=True)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
