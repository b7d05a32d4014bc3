"""Shared fixtures: a tiny simulated dataset and its features store."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pytest

from eeg2fmri.data.datasets import get_dataset
from eeg2fmri.data.sim_settings import SimConfig
from eeg2fmri.data.simulate import write_dataset
from eeg2fmri.preprocess.subject import preprocess_subject


def read_eeg(path: str | Path, fmt: str = "brainvision") -> SimpleNamespace:
    """A whole recording through the ingestion path's reader: data (volts), fs, channel names,
    markers ("Type/Description" -> onsets)."""
    from eeg2fmri.preprocess.ingest import open_recording

    with open_recording(path, fmt) as rec:
        return SimpleNamespace(data=rec.samples(rec.ch_names), fs=rec.fs,
                               ch_names=rec.ch_names, markers=rec.markers)


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


def sim_stores(root: Path, n_bins: int, **settings: object) -> Path:
    """Two simulated subjects (`settings`: SimConfig fields) under root/raw, preprocessed to
    root/features/<subject> with `n_bins` bins."""
    cfg = SimConfig(n_subjects=2, n_volumes=30, seed=1, **settings)
    write_dataset(cfg, root / "raw")
    ds = get_dataset("sim", {"simulation": asdict(cfg)}, root / "raw")
    for s in ds.subjects:
        preprocess_subject(ds, root / "raw", s, root / "features" / s, n_bins=n_bins)
    return root


def tiny_spec(arch: str = "e2fnet", **training: object) -> dict:
    return {"name": arch, "arch": arch, "shuffle_eeg": False,
            "params": {"width": 8} if arch == "e2fnet" else {},
            "features": {"n_bins": 60, "context": 5, "eeg_norm": "log_standard"},
            "training": {"epochs": 3, "batch_size": 8, "warmup_steps": 2, "restart_epochs": 2,
                         **training}}


# Small settings of every registered architecture for the tiny simulated data (contract and
# synthesis tests run each of them).
TINY_PARAMS: dict[str, dict] = {
    "e2fnet": {"width": 8},
    "e2fgan": {"width": 8, "disc_width": 8},
    "spec2vol": {"embed": 8, "heads": 2, "dims": [8, 16], "depths": [1, 1], "dec_depths": [1, 1]},
    "ef_diffusion": {"eeg_dim": 8, "channels": [4, 8], "attn_levels": 1, "eeg_conv_channels": 4,
                     "attn_heads": 2, "sample_steps": 3},
    "cnn_tc": {},
    "ntvit": {"dim": 16, "depth": 1, "dec_depth": 1, "heads": 2, "mlp_dim": 16, "ff_dim": 32,
              "n_positions": 128, "patch": [4, 4]},
    "mean_volume": {},
    "band_ridge": {},
    "band_mlp": {"hidden": 16, "rank": 8},
    "neural_frames": {"dim": 16, "levels": 2, "rank": 8, "hidden": 8, "seq_len": 8,
                      "seq_stride": 4},
}


def arch_spec(arch: str, **training: object) -> dict:
    """A tiny training spec of `arch` (raw-input models read the raw windows)."""
    spec = tiny_spec(arch, **training)
    spec.update(name=arch, params=dict(TINY_PARAMS[arch]))
    if arch == "ntvit":
        spec["features"]["eeg_norm"] = "raw_standard"
    return spec
