"""Per-volume metrics on [N, D, H, W] volumes in [0, 1].

`ssim` is the papers' figure: torchmetrics' 2-D SSIM (Gaussian 11, sigma 1.5, data_range 1) with
the D slices as channels, i.e. the mean SSIM over slices. `ssim3d` is the volumetric SSIM
(pytorch-msssim, valid borders).
`voxel_corr` asks whether the EEG was used: per brain voxel, the correlation over test volumes of
predicted and true time courses after removing each voxel's mean; a prediction that does not vary
(e.g. the mean-volume baseline) scores 0.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from pytorch_msssim import ssim as ms_ssim3d
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

PER_VOLUME = ("ssim", "ssim3d", "psnr", "rmse")
ALL = (*PER_VOLUME, "voxel_corr")


def ssim2d(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return tm_ssim(pred, target, data_range=1.0, reduction="none")


def ssim3d(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The volumetric SSIM of pytorch-msssim (Gaussian 11^3, sigma 1.5, data range 1): the
    separable Gaussian over valid positions only, i.e. the mean of the SSIM map without the
    5-voxel border that a reflect-padded SSIM (torchmetrics) includes (tests: equal to
    torchmetrics' map on that interior). An axis shorter than 11 voxels is not smoothed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Skipping Gaussian Smoothing" (short axis)
        return ms_ssim3d(pred.unsqueeze(1), target.unsqueeze(1), data_range=1.0,
                         size_average=False)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    mse = ((pred - target) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def rmse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((pred - target) ** 2).flatten(1).mean(1).sqrt()


def voxel_corr(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Mean over mask voxels of corr_t(pred_v(t), target_v(t)); zero-variance voxels count as 0.
    NaN (undefined) where no target voxel varies: there is nothing to correlate with."""
    p = pred[:, mask].astype(np.float64)
    t = target[:, mask].astype(np.float64)
    p -= p.mean(0)
    t -= t.mean(0)
    if not (np.abs(t) > 1e-9).any():
        return float("nan")
    denom = np.sqrt((p**2).sum(0) * (t**2).sum(0))
    r = np.divide((p * t).sum(0), denom, out=np.zeros(p.shape[1]), where=denom > 1e-12)
    return float(r.mean())


def voxel_corr_map(pred: np.ndarray, target: np.ndarray, mask: np.ndarray,
                   groups: np.ndarray | None = None) -> np.ndarray:
    """Each brain voxel's correlation of predicted and true time courses within each group
    (run), averaged over groups, [D, H, W]; a prediction that does not vary scores 0, NaN
    outside the mask and where the truth does not vary."""
    groups = np.zeros(len(pred)) if groups is None else groups
    maps = []
    for g in np.unique(groups):
        p = pred[groups == g][:, mask].astype(np.float64)
        t = target[groups == g][:, mask].astype(np.float64)
        p -= p.mean(0)
        t -= t.mean(0)
        denom = np.sqrt((p**2).sum(0) * (t**2).sum(0))
        r = np.divide((p * t).sum(0), denom, out=np.zeros(p.shape[1]), where=denom > 1e-12)
        r[(t**2).sum(0) <= 1e-18] = np.nan  # a constant prediction scores 0, a flat truth NaN
        maps.append(r)
    out = np.full(mask.shape, np.nan)
    with np.errstate(all="ignore"):
        out[mask] = np.nanmean(np.array(maps), axis=0) if len(maps) > 1 else maps[0]
    return out


def roi_correlations(pred: np.ndarray, target: np.ndarray, labels: np.ndarray,
                     mask: np.ndarray, names: list[str], groups: np.ndarray | None = None
                     ) -> dict[str, float]:
    """Per region: Pearson r of the predicted and measured ROI-mean time series (the mean over
    the region's brain voxels) within each group (run), averaged over groups; a constant
    prediction scores 0 (as in `voxel_corr`), NaN where the measured series does not vary."""
    groups = np.zeros(len(pred)) if groups is None else groups
    out = {}
    for k, name in enumerate(names, start=1):
        region = (labels == k) & mask
        if not region.any():
            out[name] = float("nan")
            continue
        rs = []
        for g in np.unique(groups):
            p = pred[groups == g][:, region].astype(np.float64).mean(1)
            t = target[groups == g][:, region].astype(np.float64).mean(1)
            p, t = p - p.mean(), t - t.mean()
            denom = np.sqrt((p**2).sum() * (t**2).sum())
            rs.append(float((p * t).sum() / denom) if denom > 1e-12 else
                      0.0 if (t**2).sum() > 1e-18 else float("nan"))
        out[name] = float(np.mean(rs))
    return out


def compute(pred: np.ndarray, target: np.ndarray, mask: np.ndarray, batch: int = 64,
            groups: np.ndarray | None = None,
            per_volume: tuple[str, ...] = PER_VOLUME) -> dict[str, object]:
    """Metrics: per-volume lists for `per_volume` (default all of PER_VOLUME; ssim3d costs more
    than the rest together), and their means plus voxel_corr. With `groups` (a label per volume:
    subject or run), voxel_corr is the mean over groups of the within-group correlation, so
    baseline differences between runs do not count as signal."""
    fns = {k: {"ssim": ssim2d, "ssim3d": ssim3d, "psnr": psnr, "rmse": rmse}[k]
           for k in per_volume}
    per: dict[str, list[float]] = {k: [] for k in fns}
    with torch.no_grad():
        for s in range(0, len(pred), batch):
            p = torch.from_numpy(np.array(pred[s:s + batch], dtype=np.float32))
            t = torch.from_numpy(np.array(target[s:s + batch], dtype=np.float32))
            flat = t.flatten(1)
            constant = (flat.amax(1) - flat.amin(1)) <= 1e-9  # SSIM, PSNR undefined
            for k, fn in fns.items():
                per[k].extend(fn(p, t).double().masked_fill(constant, float("nan")).tolist())
    mean = {k: float(np.mean(v)) for k, v in per.items()}  # NaN if any volume is undefined
    if groups is None:
        mean["voxel_corr"] = voxel_corr(pred, target, mask)
    else:
        mean["voxel_corr"] = float(np.mean([voxel_corr(pred[groups == g], target[groups == g],
                                                       mask) for g in np.unique(groups)]))
    return {"mean": mean, "per_volume": per}
