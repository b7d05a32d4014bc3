"""Regions of interest on a features store's grid: a dataset's label image (or 4-D maps), read
with nibabel and resampled (nearest neighbour, nilearn) where its grid or affine differ from the
store's; the ROI time-series metric (`evaluation.metrics.roi_correlations`) reads them.

A label image holds non-negative whole numbers (0: no region), in any dtype; 4-D maps hold one
probability map (0..1) per region. Labels are renumbered 1..n in ascending order (the store's
int16), each keeping its name: the table's (a BIDS dseg.tsv: a header with columns index and
name, each index once, each name once; index 0 is "no region"), else "region <label>". A label
of the image that the table does not name is refused, as is anything else (`read_rois`), by
inspect and preprocessing alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from eeg2fmri.data.datasets import DatasetSpec
from eeg2fmri.errors import InputError
from eeg2fmri.preprocess.fmri import reduced_affine, to_volumes

PROBABILITY = 0.25  # 4-D maps: a voxel belongs to its most probable region above this
MAX_REGIONS = int(np.iinfo(np.int16).max)  # the store keeps labels as int16


@dataclass
class Rois:
    """A checked ROI image on its own grid: labels 1..n (0: none) and their names."""

    image: Path
    labels: np.ndarray  # (X, Y, Z) int
    affine: np.ndarray
    names: list[str]
    notes: list[str] = field(default_factory=list)


def read_rois(ds: DatasetSpec, root: Path) -> Rois | None:
    """The dataset's regions, checked and renumbered 1..n, or None where it declares none."""
    files = ds.roi_files(root)
    if files is None:
        return None
    image, table = files
    key = f"{ds.key('rois')}.image"
    try:
        img = nib.load(image)
        data = np.asarray(img.dataobj, dtype=np.float64)
    except Exception as e:
        raise InputError(image, f"the ROI image ({key}) could not be read: {e}") from None
    if not np.isfinite(data).all():
        raise InputError(image, f"the ROI image ({key}) holds NaN or infinite values")
    if data.ndim == 4:
        if data.min() < 0 or data.max() > 1:
            raise InputError(image, (
                f"a 4-D ROI image ({key}) holds one probability map (0..1) per region, but its "
                f"values run from {data.min():g} to {data.max():g}: give a 3-D label image"))
        found = np.arange(1, data.shape[-1] + 1)
        labels = np.where(data.max(-1) > PROBABILITY, data.argmax(-1) + 1, 0)
    elif data.ndim == 3:
        found, labels = _labels(data, image, key)
    else:
        raise InputError(image, f"an ROI image ({key}) must be 3-D labels or 4-D maps, not "
                                f"{data.ndim}-D")
    if len(found) > MAX_REGIONS:
        raise InputError(image, f"the ROI image ({key}) has {len(found)} regions; at most "
                                f"{MAX_REGIONS} are kept")
    names = (_names(table, found, image, ds) if table is not None
             else [f"region {k}" for k in found])
    renumbered = np.zeros(labels.shape, np.int16)
    renumbered[labels > 0] = np.searchsorted(found, labels[labels > 0]) + 1
    return Rois(image, renumbered, img.affine, names)


def _labels(data: np.ndarray, image: Path, key: str) -> tuple[np.ndarray, np.ndarray]:
    """The labels present (ascending, 0 left out) and the label image as integers, after a
    check that every value is a non-negative whole number."""
    odd = np.flatnonzero((data < 0) | (data != np.round(data)))
    if len(odd):
        where = np.unravel_index(odd[0], data.shape)
        value = data[where]
        why = ("a negative label" if value < 0 else
               "a probability map (values 0..1), not labels: give 4-D maps (one per region) or "
               "threshold it yourself" if data.min() >= 0 and data.max() <= 1 else
               "labels that are not whole numbers (rounding would merge regions)")
        raise InputError(image, (
            f"the ROI image ({key}) holds {value:g} at voxel {tuple(int(i) for i in where)} "
            f"({len(odd):,} voxels not a non-negative whole number): {why}; a label image holds "
            "0 (no region) and region numbers 1, 2, ..."))
    labels = data.astype(np.int64)
    found = np.unique(labels)
    return found[found > 0], labels


def _names(table: Path, found: np.ndarray, image: Path, ds: DatasetSpec) -> list[str]:
    """The table's name of each label in `found` (a BIDS dseg.tsv: header index, name)."""
    key = f"{ds.key('rois')}.labels"
    try:
        lines = [ln.rstrip("\r").split("\t") for ln in table.read_text().splitlines()
                 if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(table, f"the ROI table ({key}) could not be read: {e}") from None
    header = [h.strip().lower() for h in lines[0]] if lines else []
    if "index" not in header or "name" not in header:
        raise InputError(table, (
            f"the ROI table ({key}) must begin with a header naming its columns index and name "
            f"(tab-separated, as a BIDS dseg.tsv); its first line is {chr(9).join(header)!r}"))
    i, n = header.index("index"), header.index("name")
    names: dict[int, str] = {}
    for line_no, row in enumerate(lines[1:], start=2):
        try:
            index, name = int(row[i]), row[n].strip()
            if not name:
                raise ValueError
        except (ValueError, IndexError):
            raise InputError(table, f"line {line_no} of the ROI table ({key}) is not an index "
                                    f"(a whole number) and a name: {chr(9).join(row)!r}") from None
        if index in names:
            raise InputError(table, f"the ROI table ({key}) names index {index} twice: "
                                    f"{names[index]!r} and {name!r} (line {line_no})")
        if name in names.values():
            raise InputError(table, f"the ROI table ({key}) gives the name {name!r} to two "
                                    f"indices (line {line_no}); each region needs its own")
        names[index] = name
    unnamed = [int(k) for k in found if int(k) not in names]
    if unnamed:
        raise InputError(table, (
            f"labels {unnamed[:10]}{' ...' if len(unnamed) > 10 else ''} of the ROI image "
            f"{image.name} have no row in the ROI table ({key}): name every label of the image"))
    return [names[int(k)] for k in found]


def on_grid(rois: Rois, ds: DatasetSpec, grid: tuple[int, int, int], affine: np.ndarray
            ) -> tuple[np.ndarray, list[str], list[str]]:
    """(labels [Z, X, Y] 0 = none, region names, notes) on the store's grid (X, Y, Z) and
    affine: resampled (nearest) where the image's grid differs."""
    labels, notes = rois.labels, []
    if labels.shape != tuple(grid) or not np.allclose(rois.affine, affine, atol=1e-3):
        from nilearn.image import resample_img

        moved = resample_img(nib.Nifti1Image(labels, rois.affine), target_affine=affine,
                             target_shape=tuple(grid), interpolation="nearest",
                             force_resample=True, copy_header=True)
        notes.append(f"ROI image {rois.image.name} resampled (nearest) from grid {labels.shape} "
                     f"to the store's {tuple(grid)}")
        labels = np.rint(np.asarray(moved.dataobj)).astype(np.int16)
    if not (labels > 0).any():
        raise InputError(rois.image, f"no region of {ds.key('rois')}.image lies on the BOLD's "
                                     "grid (another space? the regions must be on the dataset's "
                                     "grid, e.g. an atlas registered to the subjects' template)")
    return to_volumes(labels), rois.names, notes


def store_grid(ds: DatasetSpec, shape: tuple[int, ...], affine: np.ndarray
               ) -> tuple[tuple[int, int, int], np.ndarray]:
    """The grid (X, Y, Z) and affine of the store made from BOLD of this shape and affine: the
    dataset's `grid` (`fmri.dct_reduce`) where it gives one."""
    grid = tuple(int(n) for n in shape[:3])
    if ds.grid is None or grid == tuple(ds.grid):
        return grid, affine
    return tuple(ds.grid), reduced_affine(affine, grid, ds.grid)


def roi_labels(ds: DatasetSpec, root: Path, grid: tuple[int, int, int], affine: np.ndarray
               ) -> tuple[np.ndarray, list[str], list[str]] | None:
    """`read_rois` on the store's grid (`on_grid`), or None when the dataset declares none."""
    rois = read_rois(ds, root)
    return None if rois is None else on_grid(rois, ds, grid, affine)
