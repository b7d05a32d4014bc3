"""One GPU per job on a multi-GPU workstation.

Snakemake's `--resources gpu=K` only counts GPU jobs; it never says which GPU a job gets, so K
jobs would all land on GPU 0. Each train/evaluate process therefore leases a GPU itself: an
exclusive `flock` on `<lock dir>/gpu-<i>.lock`, held for the life of the process (the kernel
drops it when the process exits, crashes or is killed), and narrows `CUDA_VISIBLE_DEVICES` to
that GPU before CUDA starts. Where a scheduler already chose (Slurm sets `CUDA_VISIBLE_DEVICES`
for a `--gpus` job) or the user did, nothing is leased.

`EEG2FMRI_GPUS` (e.g. `0,2`) restricts the GPUs leased; otherwise `nvidia-smi` lists them.
`EEG2FMRI_GPU_LOCK_DIR` moves the lock files (default: a per-user directory in /tmp).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

_held: list[IO] = []  # open lock files: the leases live as long as the process


def machine_gpus() -> list[str]:
    """Indices of this machine's GPUs, without initialising CUDA in this process."""
    chosen = os.environ.get("EEG2FMRI_GPUS")
    if chosen is not None:
        return [g.strip() for g in chosen.split(",") if g.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return out.stdout.split() if out.returncode == 0 else []


def lock_dir() -> Path:
    default = Path(tempfile.gettempdir()) / f"eeg2fmri-gpu-locks-{os.getuid()}"
    return Path(os.environ.get("EEG2FMRI_GPU_LOCK_DIR", default))


def lease_gpu(poll_s: float = 2.0) -> str | None:
    """Lease a free GPU for this process and make it the only visible one.

    Returns the GPU index leased, or None when there is nothing to lease (no GPU, or
    `CUDA_VISIBLE_DEVICES` already set). Waits while every GPU is leased by other jobs.
    """
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return None
    gpus = machine_gpus()
    if not gpus:
        return None
    folder = lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        for gpu in gpus:
            f = open(folder / f"gpu-{gpu}.lock", "a+")  # noqa: SIM115 - held until exit
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()}\n")
            f.flush()
            _held.append(f)
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            return gpu
        if not waited:
            print(f"all GPUs ({', '.join(gpus)}) are leased by other jobs (locks in {folder});"
                  " waiting. Run with --resources gpu=K, K at most the number of GPUs.",
                  file=sys.stderr, flush=True)
            waited = True
        time.sleep(poll_s)
