"""A real training process killed with SIGKILL resumes from its checkpoint when rerun and ends
with the same weights as an uninterrupted run (same seed, CPU)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import torch

from .conftest import TINY, tiny_spec


def _cmd(features, out, spec):
    return [sys.executable, "-m", "eeg2fmri.cli", "train", "--features", str(features),
            "--subjects", *TINY.subject_ids(), "--fold", "fold-sub-04", "--spec", json.dumps(spec),
            "--out", str(out), "--threads", "1", "--device", "cpu"]


def test_sigkill_then_rerun_matches_an_uninterrupted_run(tiny_features, tmp_path):
    spec = tiny_spec(epochs=8)
    straight = subprocess.run(_cmd(tiny_features, tmp_path / "a", spec), capture_output=True,
                              text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr

    proc = subprocess.Popen(_cmd(tiny_features, tmp_path / "b", spec),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = tmp_path / "b" / "checkpoint" / "last.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert ckpt.exists() and not (tmp_path / "b" / "model.pt").exists(), "killed too late"

    resumed = subprocess.run(_cmd(tiny_features, tmp_path / "b", spec), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["state"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
