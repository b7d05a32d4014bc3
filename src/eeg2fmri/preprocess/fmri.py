"""fMRI volumes: layout [T, Z, X, Y] and min-max normalisation to [0, 1], per volume (the
papers') or per run."""

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


def minmax_per_run(vols: np.ndarray) -> np.ndarray:
    """Scale a run's volumes [T, Z, X, Y] to [0, 1] by the run's min and max: each voxel keeps
    its own fluctuations (per volume, every voxel is divided by its volume's range, so all
    regions carry the fluctuations of the brightest voxel)."""
    flat = vols.astype(np.float64)
    lo, hi = flat.min(), flat.max()
    return ((flat - lo) / max(hi - lo, 1e-12)).astype(np.float32)


SCALINGS = {"volume": minmax_per_volume, "run": minmax_per_run}


def degenerate(vols: np.ndarray, scaled: np.ndarray) -> str | None:
    """Why volumes [T, Z, X, Y] (and `scaled`, their min-max scaling) hold nothing to predict or
    score, or None: a constant volume, or no temporal variance once each volume is scaled (a
    constant run, or every volume an affine copy of one image)."""
    flat = vols.reshape(len(vols), -1)
    flat_range = flat.max(1) - flat.min(1)
    constant = np.flatnonzero(flat_range <= 1e-6 * max(float(np.abs(flat).max()), 1e-30))
    if len(constant):
        return (f"{len(constant)} of {len(vols)} volume(s) are constant (the first: volume "
                f"{int(constant[0])}); SSIM and PSNR of a constant volume are undefined")
    spread = float(scaled.std(0).max()) if len(scaled) > 1 else 0.0
    if spread < 1e-6:
        return (f"no voxel varies over the run's {len(vols)} volumes once each volume is "
                f"min-max scaled (largest temporal SD {spread:.1e}): a constant run, or every "
                "volume a scaled copy of one image; there are no fluctuations to predict")
    return None


def dct_reduce(data: np.ndarray, affine: np.ndarray, shape: tuple[int, int, int]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Reduce (X, Y, Z[, T]) volumes to `shape` by keeping the low-frequency corner of their
    orthonormal 3-D DCT-II (the references' CN-EPFL reduction), intensities kept on the same
    scale. The affine is rescaled so that the smaller grid spans the same field of view."""
    from scipy import fft

    old = data.shape[:3]
    reduced = reduced_affine(affine, old, shape)
    coef = fft.dctn(data.astype(np.float64), type=2, norm="ortho", axes=(0, 1, 2), workers=-1)
    coef = coef[: shape[0], : shape[1], : shape[2]]
    out = fft.idctn(coef, type=2, norm="ortho", axes=(0, 1, 2), workers=-1)
    out *= np.sqrt(np.prod(shape) / np.prod(old))  # the mean intensity survives the cut
    return out.astype(np.float32), reduced


def reduced_affine(affine: np.ndarray, old: tuple[int, ...], shape: tuple[int, int, int]
                   ) -> np.ndarray:
    """The affine of a grid `old` reduced to `shape` (`dct_reduce`): the same field of view."""
    if any(n > o for n, o in zip(shape, old, strict=True)):
        raise ValueError(f"cannot reduce a {tuple(old)} grid to a larger {tuple(shape)}")
    step = np.array(old, dtype=np.float64) / np.array(shape)
    scale = np.eye(4)
    scale[:3, :3] = np.diag(step)
    scale[:3, 3] = (step - 1) / 2  # new voxel centres in old voxel coordinates
    return affine @ scale
