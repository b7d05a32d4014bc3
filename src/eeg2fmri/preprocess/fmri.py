"""fMRI volumes: layout [T, Z, X, Y] and per-volume min-max normalisation to [0, 1]."""

from __future__ import annotations

import numpy as np


def to_volumes(data: np.ndarray) -> np.ndarray:
    """NIfTI order (X, Y, Z[, T]) -> model order ([T,] Z, X, Y)."""
    return data.transpose(3, 2, 0, 1) if data.ndim == 4 else data.transpose(2, 0, 1)


def from_volumes(vols: np.ndarray) -> np.ndarray:
    """Model order [T, Z, X, Y] -> NIfTI order (X, Y, Z, T)."""
    return vols.transpose(2, 3, 1, 0)


def minmax_per_volume(vols: np.ndarray) -> np.ndarray:
    """Scale each volume [.., Z, X, Y] to [0, 1] by its own min and max (the papers' target)."""
    flat = vols.reshape(vols.shape[0], -1).astype(np.float64)
    lo, hi = flat.min(1, keepdims=True), flat.max(1, keepdims=True)
    out = (flat - lo) / np.maximum(hi - lo, 1e-12)
    return out.reshape(vols.shape).astype(np.float32)
