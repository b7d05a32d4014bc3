"""Shared fixtures: a tiny simulated dataset and its features store."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from eeg2fmri.data.datasets import get_dataset
from eeg2fmri.data.sim_settings import SimConfig
from eeg2fmri.data.simulate import write_dataset
from eeg2fmri.preprocess.store import preprocess_subject


def tool_env(**extra: str) -> dict[str, str]:
    """The environment for workflow subprocesses: this Python's scripts (`eeg2fmri`) on PATH, as
    after activating the venv, and no inherited GPU choice."""
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"

TINY = SimConfig(n_subjects=4, n_volumes=40, n_channels=8, grid=(16, 16, 8),
                 voxel_mm=(12.0, 12.0, 16.0), bold_change=0.06, seed=3)


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    write_dataset(TINY, root)
    return root


@pytest.fixture(scope="session")
def tiny_features(tiny_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("features")
    ds = get_dataset("sim", {"simulation": asdict(TINY)})
    for s in ds.subjects:
        preprocess_subject(ds, tiny_raw, s, out / s, n_bins=60)
    return out


def tiny_spec(arch: str = "e2fnet", **training: object) -> dict:
    return {"name": arch, "arch": arch, "shuffle_eeg": False,
            "params": {"width": 8} if arch == "e2fnet" else {},
            "features": {"n_bins": 60, "context": 5, "eeg_norm": "log_standard"},
            "training": {"epochs": 3, "batch_size": 8, "warmup_steps": 2, "restart_epochs": 2,
                         **training}}
