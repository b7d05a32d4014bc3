"""Which precision `training.amp` resolves to, on CPUs with and without bf16 units (the
detector's answer given, so that every machine checks every case), and every architecture
training under bf16 autocast on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eeg2fmri.device import cpu_bf16_support, resolve_precision
from eeg2fmri.errors import InputError
from eeg2fmri.models import ARCHITECTURES, model_class
from eeg2fmri.training.folds import loso_fold
from eeg2fmri.training.trainer import train_fold

from .conftest import arch_spec

SUBJECTS = ["sub-01", "sub-02", "sub-03", "sub-04"]

CPU = torch.device("cpu")


def test_the_detector_reads_the_cpu_flags():
    assert cpu_bf16_support({"avx2", "amx_bf16", "amx_tile"}) == "AMX"
    assert cpu_bf16_support({"avx512f", "avx512_bf16"}) == "AVX512-BF16"
    assert cpu_bf16_support({"avx2", "avx512f"}) is None
    assert cpu_bf16_support(set()) is None


@pytest.mark.parametrize("support", ["AMX", "AVX512-BF16"])
def test_auto_is_bf16_on_a_cpu_with_bf16_units(support):
    dtype, why = resolve_precision("auto", CPU, support)
    assert dtype is torch.bfloat16 and support in why


def test_auto_stays_float32_on_a_cpu_without_them():
    """Emulated bf16 is slower than float32: auto must not pick it."""
    dtype, why = resolve_precision("auto", CPU, None)
    assert dtype is None and "float32" in why


def test_off_and_explicit_settings():
    assert resolve_precision("off", CPU, "AMX")[0] is None
    dtype, why = resolve_precision("bf16", CPU, None)
    assert dtype is torch.bfloat16 and "emulated" in why
    with pytest.raises(InputError, match="fp16.*needs a CUDA GPU"):
        resolve_precision("fp16", CPU, "AMX")
    with pytest.raises(InputError, match="training.amp"):
        resolve_precision("half", CPU, None)


def test_booleans_of_the_former_schema_still_read():
    from eeg2fmri.config import TrainConfig

    assert TrainConfig(amp=True).amp == "cuda" and TrainConfig(amp=False).amp == "off"
    assert resolve_precision(True, CPU, "AMX")[0] is None  # cuda: float32 on the CPU


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_trains_under_bf16_on_the_cpu(arch, tiny_features, tmp_path):
    """Two epochs under `training.amp: bf16` (emulated where the CPU lacks bf16 units): the
    losses stay finite, the record's weights are float32 and the record says the precision.
    (The selective scan keeps its state in float32 under autocast.)"""
    spec = arch_spec(arch, epochs=2, amp="bf16")
    record = train_fold(spec, loso_fold(SUBJECTS, "sub-01"), tiny_features, tmp_path,
                        progress=False)
    assert np.isfinite(record["summary"]["best_val_loss"])
    assert all(v.dtype in (torch.float32, torch.int64, torch.bool) or not v.is_floating_point()
               for v in record["state"].values())
    if model_class(arch).kind != "closed_form":
        assert record["summary"]["precision"].startswith("bf16 autocast")


def test_e2fnets_loss_falls_under_bf16(tiny_features, tmp_path):
    import csv

    spec = arch_spec("e2fnet", epochs=4, amp="bf16")
    train_fold(spec, loso_fold(SUBJECTS, "sub-01"), tiny_features, tmp_path, progress=False)
    with open(tmp_path / "train_log.csv") as f:
        losses = [float(r["train_loss"]) for r in csv.DictReader(f)]
    assert losses[-1] < losses[0]
