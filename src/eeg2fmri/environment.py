"""`eeg2fmri env`: what this machine gives a run, printed before a GPU test tier or a cluster
allocation (docs/running.md: 'Before a GPU or cluster run')."""

from __future__ import annotations

import platform

import torch

from eeg2fmri.device import cpu_bf16_support
from eeg2fmri.models.selective_scan import cuda_kernel_available
from eeg2fmri.provenance import PACKAGES, _version


def summary() -> str:
    lines = [f"python {platform.python_version()} on {platform.machine()}",
             *(f"{p} {_version(p) or 'not installed'}" for p in PACKAGES),
             f"torch build: CUDA {torch.version.cuda or 'none (CPU build)'}, cuDNN "
             f"{torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else '-'}"]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            p = torch.cuda.get_device_properties(i)
            lines.append(f"cuda:{i} {p.name}, compute {p.major}.{p.minor}, "
                         f"{free / 2**30:.1f} of {total / 2**30:.1f} GiB free, bf16 "
                         f"{'yes' if torch.cuda.is_bf16_supported() else 'no'}")
    else:
        lines.append("no CUDA GPU: runs on the CPU; `pytest -m gpu` skips")
    bf16 = cpu_bf16_support()
    lines.append(f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
                 f"threads, bf16 " + (f"yes ({bf16})" if bf16 else "emulated only (no AMX or "
                                                                     "AVX512-BF16)"))
    lines.append("selective scan: " + ("mamba-ssm's CUDA kernel" if cuda_kernel_available()
                                      else "the pure-PyTorch scan (mamba-ssm's kernel not "
                                           "importable here)"))
    return "\n".join(lines)
