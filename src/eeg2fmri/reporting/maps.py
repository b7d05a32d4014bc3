"""Voxel-wise maps: each model's voxel corr. map (correlation of predicted and measured time
courses within runs, `evaluation.metrics.voxel_corr_map`) averaged over folds, as NIfTI on the
dataset's grid and affine, and a slice figure drawn with nilearn over the dataset's mean volume;
on simulated data the ceiling's map (noise-free vs measured BOLD) beside them."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

from eeg2fmri.io import atomic_path, save_nifti  # noqa: E402
from eeg2fmri.preprocess.fmri import from_volumes  # noqa: E402
from eeg2fmri.reporting.aggregate import CEILING, label  # noqa: E402


def fold_maps(metric_paths: list[Path], ceiling_paths: Sequence[Path] = ()
              ) -> tuple[dict[str, list[np.ndarray]], dict[str, str], np.ndarray]:
    """model (as tables name it) -> its folds' (and seeds') maps [X, Y, Z], the ceiling's
    (`ceiling_voxel_corr.nii.gz` beside each ceiling.json) under CEILING; each one's file name
    stem (the model's entry name, or "ceiling"); and the affine."""
    maps: dict[str, list[np.ndarray]] = {}
    stems: dict[str, str] = {}
    files = []
    for p in metric_paths:
        m = json.loads(Path(p).read_text())
        files.append((label(m), m["model"], Path(p).with_name("voxel_corr.nii.gz")))
    files += [(CEILING, "ceiling", Path(p).with_name("ceiling_voxel_corr.nii.gz"))
              for p in ceiling_paths]
    affine = None
    for model, stem, path in files:
        img = nib.load(path)
        data = np.asarray(img.dataobj, dtype=np.float64)
        maps.setdefault(model, []).append(data if data.ndim == 3 else data[..., 0])
        stems[model] = stem
        affine = img.affine if affine is None else affine
    return maps, stems, affine


def voxel_maps(metric_paths: list[Path], features: Path, out_dir: Path,
               ceiling_paths: Sequence[Path] = ()) -> list[Path]:
    """Write `voxel_corr_<model>.nii.gz` (mean over folds) and `voxel_corr_maps.png`."""
    maps, stems, affine = fold_maps([Path(p) for p in metric_paths], ceiling_paths)
    means, written = {}, []
    for model, folds in maps.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # voxels NaN in every fold
            means[model] = np.nanmean(np.array(folds), axis=0)
        path = out_dir / f"voxel_corr_{stems[model]}.nii.gz"
        save_nifti(path, means[model], affine)
        written.append(path)
    order = ([CEILING] if CEILING in means else []) + [m for m in means if m != CEILING]
    _figure({m: means[m] for m in order}, affine, _background(metric_paths, features),
            out_dir / "voxel_corr_maps.png")
    return written


def _background(metric_paths: list[Path], features: Path) -> nib.Nifti1Image:
    """The first fold's test subject's mean volume, on the dataset's grid."""
    subject = json.loads(Path(metric_paths[0]).read_text())["test_subjects"][0]
    bold = np.load(features / subject / "bold.npy", mmap_mode="r")
    meta = json.loads((features / subject / "meta.json").read_text())
    mean = from_volumes(np.asarray(bold, dtype=np.float32).mean(0, keepdims=True))[..., 0]
    return nib.Nifti1Image(mean, np.asarray(meta["affine"]))


def _figure(means: dict[str, np.ndarray], affine: np.ndarray, background: nib.Nifti1Image,
            path: Path) -> None:
    from nilearn import plotting

    depth = next(iter(means.values())).shape[2]
    cuts = [float((affine @ [0, 0, k, 1])[2]) for k in (0.3 * depth, 0.5 * depth, 0.7 * depth)]
    fig, axes = plt.subplots(len(means), 1, figsize=(7.5, 1.9 * len(means)), squeeze=False)
    for ax, (model, data) in zip(axes[:, 0], means.items(), strict=True):
        img = nib.Nifti1Image(np.nan_to_num(data).astype(np.float32), affine)
        inside = np.isfinite(data)
        value = float(np.nanmean(data[inside])) if inside.any() else float("nan")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "empty mask": a map of zeros
            plotting.plot_stat_map(img, bg_img=background, display_mode="z", cut_coords=cuts,
                                   axes=ax, vmax=1.0, colorbar=True, annotate=False,
                                   draw_cross=False, black_bg=False, cmap="RdBu_r",
                                   symmetric_cbar=True,
                                   title=f"{model} (brain mean {value:.2f})")
    fig.suptitle("voxel corr.: predicted vs measured time course per voxel, mean over folds "
                 "(the same three axial slices in every row)", fontsize=9, y=1.0)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
