"""Training throughput of our E2fNet (width 256) against the same architecture assembled the way
the reference code does it: our encoder and decoder around diffusers' `UNet2DModel(256 -> 256,
layers_per_block=1, block_out_channels=(256, 256), DownBlock2D x 2 / UpBlock2D x 2)`.

    pip install diffusers   # for this benchmark only
    python benchmarks/e2fnet_throughput.py [--batch 8] [--steps 5] [--threads 2] [--device cpu]

Each variant runs warm-up + `--steps` AdamW steps of the papers' loss on the same random batch
(NODDI shapes: 20 windows x 64 electrodes x 249 bins -> 30 x 64 x 64), alternating variants in
one process. Prints samples/s and the ratio to the reference.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from eeg2fmri.models import build_model
from eeg2fmri.models.losses import ssim_mse_loss


class ReferenceE2fNet(nn.Module):
    """Our encoder/decoder, diffusers' U-Net in the middle (as in the reference repository)."""

    def __init__(self, ours: nn.Module):
        super().__init__()
        from diffusers import UNet2DModel

        self.encoder, self.decoder, self.out_shape = ours.encoder, ours.decoder, ours.out_shape
        self.unet = UNet2DModel(sample_size=64, in_channels=256, out_channels=256,
                                layers_per_block=1, block_out_channels=(256, 256),
                                down_block_types=("DownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "UpBlock2D"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(self.encoder(x), size=self.out_shape[1:], mode="bicubic",
                          align_corners=False)
        return torch.sigmoid(self.decoder(self.unet(h, 0).sample))


def samples_per_s(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int,
                  channels_last: bool = False) -> float:
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss = ssim_mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t0)
    return len(x) * len(times) / sum(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    x = torch.randn(a.batch, 20, 64, 249, device=dev)
    y = torch.rand(a.batch, 30, 64, 64, device=dev)

    def ours() -> nn.Module:
        return build_model("e2fnet", n_channels=64, n_freqs=249, out_shape=(30, 64, 64),
                           context=20, width=256).to(dev)

    results = {
        "reference (diffusers UNet2DModel)": samples_per_s(ReferenceE2fNet(ours()).to(dev), x,
                                                           y, a.steps),
        "ours": samples_per_s(ours(), x, y, a.steps),
        "ours, channels-last": samples_per_s(ours(), x, y, a.steps, channels_last=True),
    }
    ref = results["reference (diffusers UNet2DModel)"]
    print(f"| E2fNet width 256, batch {a.batch}, {a.device} | samples/s | vs reference |")
    print("|---|---|---|")
    for name, value in results.items():
        print(f"| {name} | {value:.2f} | {value / ref:.2f}x |")


if __name__ == "__main__":
    main()
