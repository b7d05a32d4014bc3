"""Time and memory of the pure-PyTorch selective scan against the naive per-step loop.

Forward + backward, float32, CPU, at VM-UNet shapes: batch 4, four scan directions (groups),
d_inner channels per direction, d_state 16. Each measurement runs in a fresh process so that
peak resident memory (above the process's baseline after creating the inputs) is its own.

    python benchmarks/selective_scan.py                 # L = 256, 1024; d_inner = 96, 192
    python benchmarks/selective_scan.py --lengths 256 --dims 96 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(impl: str, length: int, d_inner: int, repeats: int, threads: int) -> dict:
    import torch

    from eeg2fmri.models.selective_scan import selective_scan_reference, selective_scan_torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    b, k, n = 4, 4, 16
    d = k * d_inner

    def leaf(*shape):
        return torch.randn(*shape).requires_grad_(True)

    u, delta = leaf(b, d, length), leaf(b, d, length)
    a = (-torch.exp(torch.log(torch.arange(1, n + 1.0)).repeat(d, 1))).requires_grad_(True)
    bb, cc = leaf(b, k, n, length), leaf(b, k, n, length)
    dd, bias = leaf(d), leaf(d)
    fn = selective_scan_torch if impl == "torch" else selective_scan_reference
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        y = fn(u, delta, a, bb, cc, dd, None, bias, True)
        y.sum().backward()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": sorted(times)[len(times) // 2], "peak_mb": (peak - base) / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--dims", type=int, nargs="+", default=[96, 192])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--one", nargs=3, metavar=("IMPL", "L", "D"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        impl, length, d = a.one
        print(json.dumps(measure(impl, int(length), int(d), a.repeats, a.threads)))
        return
    print("| L | d_inner | torch scan (s) | naive loop (s) | speed-up "
          "| torch peak MB | naive peak MB |")
    print("|---|---|---|---|---|---|---|")
    for length in a.lengths:
        for d in a.dims:
            r = {}
            for impl in ("torch", "naive"):
                out = subprocess.run([sys.executable, __file__, "--one", impl, str(length), str(d),
                                      "--repeats", str(a.repeats), "--threads", str(a.threads)],
                                     capture_output=True, text=True, check=True)
                r[impl] = json.loads(out.stdout)
            t, nv = r["torch"], r["naive"]
            speedup = nv["seconds"] / t["seconds"]
            print(f"| {length} | {d} | {t['seconds']:.3f} | {nv['seconds']:.3f} | {speedup:.1f}x "
                  f"| {t['peak_mb']:.0f} | {nv['peak_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
