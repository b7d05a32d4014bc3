"""Which precision `training.amp` resolves to, on CPUs with and without bf16 units (the
detector's answer given, so that every machine checks every case)."""

from __future__ import annotations

import pytest
import torch

from eeg2fmri.device import cpu_bf16_support, resolve_precision
from eeg2fmri.errors import InputError

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
