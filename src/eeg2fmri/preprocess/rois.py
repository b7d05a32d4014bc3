"""Regions of interest on a features store's grid: a dataset's label image (or 4-D maps), read
with nibabel and resampled (nearest neighbour, nilearn) where its grid or affine differ from the
store's; the ROI time-series metric (`evaluation.metrics.roi_correlations`) reads them."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from eeg2fmri.data.datasets import DatasetSpec
from eeg2fmri.errors import InputError
from eeg2fmri.preprocess.fmri import to_volumes

PROBABILITY = 0.25  # 4-D maps: a voxel belongs to its most probable region above this


def roi_labels(ds: DatasetSpec, root: Path, grid: tuple[int, int, int], affine: np.ndarray
               ) -> tuple[np.ndarray, list[str], list[str]] | None:
    """(labels [Z, X, Y] 0 = none, region names, notes) on the store's grid (X, Y, Z) and
    affine, or None when the dataset declares no regions."""
    files = ds.roi_files(root)
    if files is None:
        return None
    image, table = files
    try:
        img = nib.load(image)
        data = np.asarray(img.dataobj, dtype=np.float64)
    except Exception as e:
        raise InputError(image, f"the ROI image ({ds.key('rois')}.image) could not be read: "
                                f"{e}") from None
    if data.ndim == 4:
        labels = np.where(data.max(-1) > PROBABILITY, data.argmax(-1) + 1, 0)
        n = data.shape[-1]
    elif data.ndim == 3:
        labels = np.rint(data).astype(int)
        n = int(labels.max())
    else:
        raise InputError(image, f"an ROI image must be 3-D labels or 4-D maps, not {data.ndim}-D")
    names = _names(table, n, ds)
    notes = []
    if labels.shape != tuple(grid) or not np.allclose(img.affine, affine, atol=1e-3):
        from nilearn.image import resample_img

        moved = resample_img(nib.Nifti1Image(labels.astype(np.int16), img.affine),
                             target_affine=affine, target_shape=tuple(grid),
                             interpolation="nearest", force_resample=True, copy_header=True)
        notes.append(f"ROI image {image.name} resampled (nearest) from grid {labels.shape} to "
                     f"the store's {tuple(grid)}")
        labels = np.rint(np.asarray(moved.dataobj)).astype(int)
    if not (labels > 0).any():
        raise InputError(image, f"no region of {ds.key('rois')}.image lies on the BOLD's grid "
                                "(another space? the regions must be on the dataset's grid, "
                                "e.g. an atlas registered to the subjects' template)")
    return to_volumes(labels.astype(np.int16)), names, notes


def _names(table: Path | None, n: int, ds: DatasetSpec) -> list[str]:
    if table is None:
        return [f"region {i + 1}" for i in range(n)]
    try:
        rows = [line.split("\t") for line in table.read_text().splitlines() if line.strip()]
        names = {int(r[0]): r[1].strip() for r in rows[1:]}
    except (OSError, ValueError, IndexError) as e:
        raise InputError(table, f"the ROI table ({ds.key('rois')}.labels) must hold columns "
                                f"index and name ({e})") from None
    return [names.get(i + 1, f"region {i + 1}") for i in range(n)]
