"""The torch device a job runs on."""

from __future__ import annotations

import torch

from eeg2fmri.errors import InputError


def pick_device(requested: str = "auto") -> torch.device:
    """`auto`: CUDA when available, else the CPU; `cuda[:N]` must exist here (checked when the
    job starts, not at dry-run: a login node may lack the GPUs its jobs get)."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise InputError(None, f"config key 'device' is {requested!r} but this machine has "
                                   f"no usable CUDA GPU (torch {torch.__version__}, {build}); "
                                   "set device: auto or cpu")
        index = torch.device(requested).index
        if index is not None and index >= torch.cuda.device_count():
            raise InputError(None, f"config key 'device' is {requested!r} but this machine has "
                                   f"{torch.cuda.device_count()} CUDA GPU(s)")
    return torch.device(requested)


PRECISIONS = ("cuda", "auto", "off", "bf16", "fp16")


def cpu_bf16_support(flags: set[str] | None = None) -> str | None:
    """The CPU's bfloat16 matrix support that makes bf16 autocast pay ("AMX" or "AVX512-BF16"),
    or None (then bf16 on the CPU is emulated and slower than float32). `flags`: the CPU's
    feature flags (default: /proc/cpuinfo's; none where it is absent, e.g. macOS)."""
    if flags is None:
        flags = _cpu_flags()
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    return None


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def resolve_precision(setting: str | bool, device: torch.device,
                      cpu_support: str | None | bool = False) -> tuple[torch.dtype | None, str]:
    """The autocast dtype of `training.amp` on `device` (None: float32) and why, in words.
    cuda (the default): bf16 on a GPU that supports it, fp16 (with a gradient scaler) on an
    older GPU, float32 on the CPU; auto: as cuda, and bf16 on a CPU with AMX or AVX512-BF16;
    off: float32; bf16 / fp16: as asked (fp16 only on a GPU). `cpu_support`: the CPU's bf16
    support (default: detected)."""
    if isinstance(setting, bool):  # the schema's former true / false
        setting = "cuda" if setting else "off"
    if setting not in PRECISIONS:
        raise InputError(None, f"config key 'training.amp' is {setting!r}: one of "
                               f"{', '.join(PRECISIONS)}")
    if setting == "off":
        return None, "float32 (training.amp: off)"
    if device.type == "cuda":
        bf16_ok = torch.cuda.is_bf16_supported()
        if setting == "bf16" or (setting == "auto" and bf16_ok):
            return torch.bfloat16, f"bf16 autocast (training.amp: {setting}, CUDA)"
        return torch.float16, f"fp16 autocast with a gradient scaler (training.amp: {setting})"
    if setting == "cuda":
        return None, "float32 (training.amp: cuda, on the CPU)"
    if setting == "fp16":
        raise InputError(None, "config key 'training.amp' is 'fp16', which needs a CUDA GPU; "
                               f"this job runs on {device.type}: set auto, bf16 or off")
    support = cpu_bf16_support() if cpu_support is False else cpu_support
    if setting == "bf16":
        how = f"this CPU has {support}" if support else "emulated: this CPU has no bf16 units"
        return torch.bfloat16, f"bf16 autocast (training.amp: bf16; {how})"
    if support:
        return torch.bfloat16, f"bf16 autocast (training.amp: auto; this CPU has {support})"
    return None, "float32 (training.amp: auto; this CPU has no AMX or AVX512-BF16)"
