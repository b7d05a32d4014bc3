"""Training throughput of our E2fNet (width 256) against the reference code's own E2fNet
(kgr20/E2fNet: `EEG2fMRINet` of its models.py, its `ssim_mse_loss` of losses.py), as its
train_E2fNet.py trains it: AdamW, gradient clipping at 1.0, float32.

    git clone https://github.com/kgr20/E2fNet /path/to/E2fNet
    pip install diffusers torchmetrics   # what the reference imports; for this benchmark only
    python benchmarks/e2fnet_throughput.py --reference /path/to/E2fNet \
        [--batch 8] [--steps 5] [--threads 2] [--device cpu] [--bf16]

Our model is loaded with the reference model's weights (`models.reference.e2fnet`), and the two
forwards are checked equal before timing. Each variant runs one warm-up step and `--steps`
optimiser steps on the same random batch (NODDI shapes: 20 windows x 64 electrodes x 249 bins ->
30 x 64 x 64), the variants taking turns step by step in one process so that a slower or faster
spell of the machine falls on all of them. `--bf16` adds ours under bfloat16 autocast. Prints
samples/s per variant (median step time) and the ratio to the reference.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from eeg2fmri.models import build_model
from eeg2fmri.models.losses import ssim_mse_loss
from eeg2fmri.models.reference import e2fnet_state


def reference_modules(root: Path) -> tuple[object, object]:
    """The reference repository's models.py and losses.py, imported from `root`."""
    found = []
    for name in ("models", "losses"):
        path = root / f"{name}.py"
        if not path.is_file():
            sys.exit(f"{root}: no {name}.py: give a clone of kgr20/E2fNet as --reference")
        spec = importlib.util.spec_from_file_location(f"e2fnet_reference_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found.append(module)
    return found[0], found[1]


class Variant:
    """One model, its loss and optimiser, stepped on demand."""

    def __init__(self, model: nn.Module, loss: Callable, x: torch.Tensor, y: torch.Tensor,
                 autocast: torch.dtype | None = None):
        self.model, self.loss, self.x, self.y, self.autocast = model.train(), loss, x, y, autocast
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        self.times: list[float] = []

    def step(self) -> None:
        t0 = time.perf_counter()
        ctx = (torch.autocast(self.x.device.type, dtype=self.autocast) if self.autocast
               else contextlib.nullcontext())
        with ctx:
            pred = self.model(self.x)
        loss = self.loss(pred.float(), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        if self.x.device.type == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - t0)

    def samples_per_s(self) -> float:
        return len(self.x) / statistics.median(self.times[1:])  # the first step warms up


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", type=Path, required=True,
                   help="a clone of kgr20/E2fNet (its models.py and losses.py)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="add ours under bfloat16 autocast")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    models, losses = reference_modules(a.reference)
    ref = models.EEG2fMRINet(models.EEGEncoder(20, 64), models.create_unet(256, 256),
                             models.fMRIDecoder(256, 30)).to(dev)
    state = {k: v.cpu() for k, v in ref.state_dict().items()}

    def ours() -> nn.Module:
        model = build_model("e2fnet", n_channels=64, n_freqs=249, out_shape=(30, 64, 64),
                            context=20, width=256)
        model.load_state_dict(e2fnet_state(dict(state)))
        return model.to(dev)

    x = torch.rand(a.batch, 20, 64, 249, device=dev)
    y = torch.rand(a.batch, 30, 64, 64, device=dev)
    with torch.no_grad():
        diff = float((ref.eval()(x[:2]) - ours().eval()(x[:2])).abs().max())
    print(f"forward max |reference - ours| (eval, float32): {diff:.1e}")
    ref_loss = losses.ssim_mse_loss(lambda_ssim=0.5, lambda_mes=0.5).to(dev)
    variants = {"reference (kgr20/E2fNet), float32": Variant(ref, ref_loss, x, y),
                "ours, float32": Variant(ours(), ssim_mse_loss, x, y)}
    if a.bf16:
        variants["ours, bf16 autocast"] = Variant(ours(), ssim_mse_loss, x, y, torch.bfloat16)
    for _ in range(a.steps + 1):
        for v in variants.values():
            v.step()
    base = variants["reference (kgr20/E2fNet), float32"].samples_per_s()
    print(f"| E2fNet width 256, batch {a.batch}, {a.device}, torch {torch.__version__} "
          "| samples/s | vs reference |")
    print("|---|---|---|")
    for name, v in variants.items():
        print(f"| {name} | {v.samples_per_s():.2f} | {v.samples_per_s() / base:.2f}x |")


if __name__ == "__main__":
    main()
