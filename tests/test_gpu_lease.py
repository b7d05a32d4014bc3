"""GPU leases: concurrent jobs on a multi-GPU workstation each get their own GPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from eeg2fmri import gpu_lease
from eeg2fmri.cli import main
from eeg2fmri.device import pick_device
from eeg2fmri.errors import InputError

from .conftest import tool_env

HOLDER = (
    "import os, time; from eeg2fmri.gpu_lease import lease_gpu; g = lease_gpu(poll_s=0.05); "
    "print(g, os.environ.get('CUDA_VISIBLE_DEVICES'), flush=True); time.sleep(120)"
)


def _holder(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture
def fake_gpus(tmp_path):
    env = tool_env(EEG2FMRI_GPUS="0,1", EEG2FMRI_GPU_LOCK_DIR=str(tmp_path / "locks"))
    procs: list[subprocess.Popen] = []
    yield env, procs
    for p in procs:
        p.kill()
        p.wait()


def test_concurrent_jobs_get_distinct_gpus_and_a_killed_job_frees_its_gpu(fake_gpus):
    env, procs = fake_gpus
    procs += [_holder(env), _holder(env)]
    seen = [procs[0].stdout.readline().split(), procs[1].stdout.readline().split()]
    assert sorted(g for g, _ in seen) == ["0", "1"]
    assert all(g == visible for g, visible in seen)  # the job sees only its GPU

    third = _holder(env)  # every GPU is leased: it waits ...
    procs.append(third)
    time.sleep(1.0)
    assert third.poll() is None
    victim = 0 if seen[0][0] == "0" else 1
    os.kill(procs[victim].pid, signal.SIGKILL)  # ... until a job dies, even uncleanly
    assert third.stdout.readline().split() == ["0", "0"]
    third.kill()
    assert "all GPUs (0, 1) are leased" in third.stderr.read()


def test_no_lease_when_the_scheduler_chose_or_there_is_no_gpu(monkeypatch, tmp_path):
    monkeypatch.setenv("EEG2FMRI_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # e.g. Slurm's --gpus allocation
    monkeypatch.setenv("EEG2FMRI_GPUS", "0,1")
    assert gpu_lease.lease_gpu() is None
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("EEG2FMRI_GPUS", "")
    assert gpu_lease.lease_gpu() is None
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it_is_one_line_naming_device(capsys):
    with pytest.raises(InputError, match="config key 'device' is 'cuda' but this machine has no"):
        pick_device("cuda")
    code = main(["evaluate", "--model", "x.pt", "--test-features", "x", "--metrics", "m.json",
                 "--predictions", "p.nii.gz", "--device", "cuda:0"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "device" in err
