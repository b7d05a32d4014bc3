"""Figures: slice montage (truth vs each model), time courses at the most variable voxel,
per-fold metric strips, training curves, and for sequence models the time courses of each
task."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from eeg2fmri.io import atomic_path  # noqa: E402
from eeg2fmri.preprocess.fmri import to_volumes  # noqa: E402
from eeg2fmri.reporting.aggregate import (  # noqa: E402
    CEILING,
    label,
    per_fold_table,
    roi_table,
    run_seed,
)
from eeg2fmri.sequences import TASKS  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def first_fold(metric_paths: list[Path]) -> list[tuple[dict, Path]]:
    """The first fold's metrics and paths, one per model: with several seeds, its first seed's."""
    runs = [(json.loads(Path(p).read_text()), Path(p)) for p in metric_paths]
    fold = sorted({m["fold"] for m, _ in runs})[0]
    chosen: dict[str, tuple[dict, Path]] = {}
    for m, p in sorted((r for r in runs if r[0]["fold"] == fold),
                       key=lambda r: run_seed(r[0]) or 0):
        chosen.setdefault(label(m), (m, p))
    order = list(dict.fromkeys(label(m) for m, _ in runs))
    return [chosen[name] for name in order if name in chosen]


def montage(metric_paths: list[Path], features: Path, path: Path, n_slices: int = 5) -> None:
    """Same test volume of the first fold: the truth, then every model's prediction."""
    runs = first_fold(metric_paths)
    fold = runs[0][0]["fold"]
    m0 = runs[0][0]
    idx = m0["n_volumes"] // 2
    subject, t = m0["pairs"][idx]
    truth = np.load(features / subject / "bold.npy", mmap_mode="r")
    rows = [("truth", np.asarray(truth[t]))]
    for m, p in runs:
        pred = nib.load(p.parent / "predictions.nii.gz").dataobj[..., idx]
        rows.append((label(m), to_volumes(np.asarray(pred))))
    depth = rows[0][1].shape[0]
    zs = np.linspace(depth * 0.2, depth * 0.8, n_slices).round().astype(int)
    fig, axes = plt.subplots(len(rows), n_slices, figsize=(1.6 * n_slices, 1.5 * len(rows)),
                             squeeze=False, layout="constrained")  # title close to the grid
    image = None
    for r, (name, vol) in enumerate(rows):
        for c, z in enumerate(zs):
            ax = axes[r, c]
            image = ax.imshow(vol[z].T, cmap="gray", vmin=0, vmax=1, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
            if r == 0:
                ax.set_title(f"slice {z}", fontsize=8)
    fig.suptitle(f"{fold}, {subject} volume {t}", fontsize=9)
    fig.colorbar(image, ax=axes, shrink=0.6, label="intensity (each volume scaled to 0..1)")
    _save(fig, path)


def timecourses(metric_paths: list[Path], features: Path, path: Path) -> None:
    """First fold, its test subject's most variable brain voxel: the measured time course and
    each model's, each as z-scores (its own mean and SD), with that voxel's correlation. What
    voxel corr. measures, seen: a model that uses the EEG follows the measured fluctuations, a
    control does not (a constant prediction is a flat line)."""
    runs = first_fold(metric_paths)
    fold = runs[0][0]["fold"]
    pairs = runs[0][0]["pairs"]
    subject = pairs[0][0]
    rows = [i for i, (s, _) in enumerate(pairs) if s == subject]
    bold = np.load(features / subject / "bold.npy", mmap_mode="r")
    mask = np.load(features / subject / "mask.npy")
    truth = np.asarray(bold[[pairs[i][1] for i in rows]])[:, mask]
    v = int(truth.std(0).argmax())
    where = tuple(int(a[v]) for a in np.nonzero(mask))

    def z(x: np.ndarray) -> tuple[np.ndarray, float]:
        x = x - x.mean()
        sd = x.std()
        return (x / sd if sd > 0 else x), sd

    t = np.arange(len(rows))
    fig, axes = plt.subplots(len(runs), 1, figsize=(8, 1.2 * len(runs) + 0.6), sharex=True,
                             squeeze=False, layout="constrained")
    measured, _ = z(truth[:, v])
    for ax, (m, p) in zip(axes[:, 0], runs, strict=True):
        pred = np.asarray(nib.load(p.parent / "predictions.nii.gz").dataobj)  # X, Y, Z, T
        series = pred[where[1], where[2], where[0], rows]
        model, sd = z(series)
        r = float(np.mean(measured * model)) if sd > 0 else 0.0
        ax.plot(t, measured, color="k", lw=1, label="measured")
        ax.plot(t, model, color="C3", lw=1, label="predicted")
        ax.set_ylabel(label(m), fontsize=7, rotation=0, ha="right", va="center")
        ax.text(1.01, 0.5, f"r = {r:.2f}", transform=ax.transAxes, fontsize=8, va="center")
        ax.set_yticks([])
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=2, loc="upper right")
    axes[-1, 0].set_xlabel(f"test volume of {subject}")
    fig.suptitle(f"{fold}: the most variable voxel {where} (z, x, y), each series z-scored",
                 fontsize=9)
    _save(fig, path)


def metric_strips(df: pd.DataFrame, path: Path) -> None:
    keys = [("ssim", "SSIM (2-D)"), ("psnr", "PSNR (dB)"), ("voxel_corr", "voxel corr.")]
    models = list(dict.fromkeys(df["model"]))
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4))
    for ax, (k, title) in zip(axes, keys, strict=True):
        data = [df.loc[df["model"] == m, k].dropna().to_numpy() for m in models]
        pos = np.arange(len(models))
        ok = [i for i, d in enumerate(data) if len(d) > 1 and np.ptp(d) > 0]
        if ok:
            ax.violinplot([data[i] for i in ok], positions=pos[ok], showextrema=False)
        for i, d in enumerate(data):
            jitter = np.random.default_rng(i).uniform(-0.08, 0.08, len(d))
            ax.scatter(i + jitter, d, s=12, color="k", zorder=3)
        ax.set_xticks(pos, [m if m != CEILING else "ceiling" for m in models], rotation=30,
                      ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Per-fold metrics of every model (one point per test subject)", fontsize=10,
                 fontweight="bold", y=1.04)
    _save(fig, path)


def training_curves(metric_paths: list[Path], path: Path) -> None:
    """Validation (solid) and training (dashed) loss per fold; closed-form models (the
    mean-volume baseline) as a horizontal line at their mean validation loss, the reference
    a trained model has to get below."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    colors: dict[str, str] = {}
    fixed: dict[str, list[float]] = {}
    for p in sorted(metric_paths):
        log = p.parent / "train_log.csv"
        model = label(json.loads(p.read_text()))
        if not log.is_file():
            continue
        df = pd.read_csv(log)
        if len(df) < 2:  # fitted in closed form: one validation loss
            fixed.setdefault(model, []).append(float(df["val_loss"].iloc[-1]))
            continue
        first = model not in colors
        color = colors.setdefault(model, f"C{len(colors)}")
        ax.plot(df["epoch"], df["val_loss"], color=color, alpha=0.7, lw=1,
                label=model if first else None)
        ax.plot(df["epoch"], df["train_loss"], color=color, alpha=0.3, lw=1, ls="--")
    for i, (model, losses) in enumerate(fixed.items()):
        ax.axhline(float(np.mean(losses)), color="k", lw=1, ls=(0, (1, 2 + i)),
                   label=f"{model} (closed form, validation)")
    ax.plot([], [], color="0.3", lw=1, label="solid: validation loss")
    ax.plot([], [], color="0.3", lw=1, ls="--", alpha=0.5, label="dashed: training loss")
    ax.set_xlabel("epoch")
    ax.set_yscale("log")  # models near the baseline (~0.02) and far from it (~0.5) both show
    ax.set_ylabel("loss (0.5·(1−SSIM) + 0.5·MSE), log scale")
    ax.set_title("Training curves, one line per fold", fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    _save(fig, path)


def task_timecourses(metric_paths: list[Path], path: Path) -> None:
    """Sequence models, first fold: per task, the most variable voxel's time course in the test
    run (truth, known frames, linear interpolation, each sequence model). Nothing without a
    sequence model."""
    with_tasks = [p for p in metric_paths if json.loads(Path(p).read_text()).get("tasks")]
    if not with_tasks:
        return
    runs = [m for m, _ in first_fold(with_tasks)]
    fold = runs[0]["fold"]
    tasks = [t for t in TASKS if t in runs[0]["tasks"]]
    fig, axes = plt.subplots(len(tasks), 1, figsize=(8, 2.5 * len(tasks)), squeeze=False)
    fig.subplots_adjust(hspace=0.5)
    for ax, task in zip(axes[:, 0], tasks, strict=True):
        tc = runs[0]["tasks"][task]["timecourse"]
        t = np.arange(len(tc["truth"]))
        known = np.array(tc["known"], dtype=bool)
        ax.plot(t, tc["truth"], color="k", lw=1.2, label="truth")
        if known.any():
            ax.plot(t, tc["linear_interp"], color="0.6", lw=1, ls="--", label="linear interp.")
            ax.scatter(t[known], np.asarray(tc["truth"])[known], s=10, color="k", zorder=3,
                       label="known frames")
        for i, m in enumerate(runs):
            if task in m["tasks"]:
                ax.plot(t, m["tasks"][task]["timecourse"]["model"], color=f"C{i}", lw=1,
                        label=label(m))
        ax.set_title(f"{task}: {fold}, voxel {tc['voxel']} (most variable)", fontsize=9)
        ax.set_ylabel("BOLD (scaled)", fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("frame (TR) in the test run")
    axes[0, 0].legend(fontsize=7, ncol=4, loc="upper right")
    _save(fig, path)


def roi_figure(metric_paths: list[Path], path: Path, ceiling_paths: Sequence[Path] = ()
               ) -> None:
    """Per region, each model's ROI time-series r (mean over folds, bars; folds as dots)."""
    table = roi_table(metric_paths, ceiling_paths)
    fig, ax = plt.subplots(figsize=(8, 3.2), layout="constrained")
    if table.empty:
        ax.text(0.5, 0.5, "no regions of interest declared for this dataset\n"
                "(dataset_settings.<name>.rois)", ha="center", va="center")
        ax.set_axis_off()
        _save(fig, path)
        return
    rois, models = list(dict.fromkeys(table["roi"])), list(dict.fromkeys(table["model"]))
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        sub = table[table["model"] == model].set_index("roi").reindex(rois)
        x = np.arange(len(rois)) + (i - (len(models) - 1) / 2) * width
        ax.bar(x, sub["r_mean"], width, yerr=sub["r_std"].fillna(0), label=model,
               color="0.6" if model == CEILING else None, capsize=2)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(np.arange(len(rois)), rois, fontsize=8)
    ax.set_ylabel("r, ROI-mean time series")
    ax.set_title("ROI time series: predicted vs measured (mean ± std across folds)", fontsize=9)
    ax.legend(fontsize=7, ncols=min(len(models), 4), loc="upper right")
    _save(fig, path)


def make_figures(metric_paths: list[Path], features: Path, out_dir: Path,
                 ceiling_paths: Sequence[Path] = ()) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    roi_figure(metric_paths, out_dir / "roi.png", ceiling_paths)
    montage(metric_paths, features, out_dir / "montage.png")
    timecourses(metric_paths, features, out_dir / "timecourse.png")
    metric_strips(per_fold_table(metric_paths, ceiling_paths), out_dir / "metrics.png")
    training_curves(metric_paths, out_dir / "curves.png")
    task_timecourses(metric_paths, out_dir / "tasks.png")
