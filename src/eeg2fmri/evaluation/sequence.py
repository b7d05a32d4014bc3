"""Scoring a sequence model on its tasks: every test run as one sequence, with the same fixed
known frames for every model; metrics on the unknown frames only, beside linear interpolation of
the known frames (the baseline of imputation and super-resolution)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from eeg2fmri.evaluation import metrics
from eeg2fmri.models.completion import interpolate
from eeg2fmri.sequences import SequenceDataset

# What the tasks table reports per frame (the volumetric SSIM is in the main table only).
TASK_PER_VOLUME = ("ssim", "psnr", "rmse")


@torch.no_grad()
def predict_task(model: torch.nn.Module, data: SequenceDataset, task: str,
                 device: torch.device) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(model frames, linear interpolation, known mask) of all test frames in `index` order, and
    the seconds spent in the model."""
    preds, interp, known, seconds = [], [], [], 0.0
    for x, _ in data.batches(1, task=task):
        t0 = time.perf_counter()
        preds.append(model(x.to(device)).float().cpu().numpy()[0])
        seconds += time.perf_counter() - t0
        interp.append(interpolate(x.frames, x.known).numpy()[0])
        known.append(x.known.numpy()[0])
    return np.concatenate(preds), np.concatenate(interp), np.concatenate(known), seconds


def score_task(pred: np.ndarray, targets: np.ndarray, known: np.ndarray, mask: np.ndarray,
               runs: np.ndarray) -> dict[str, Any]:
    """Per-frame SSIM/PSNR/RMSE on unknown frames, voxel temporal correlation over each run's
    unknown frames, and the largest deviation from a known frame (0 up to float rounding)."""
    unknown = ~known
    scores = metrics.compute(pred[unknown], targets[unknown], mask, groups=runs[unknown],
                             per_volume=TASK_PER_VOLUME)
    err = float(np.abs(pred[known] - targets[known]).max()) if known.any() else 0.0
    return {**scores["mean"], "known_max_abs_err": err}


def evaluate_tasks(model: torch.nn.Module, data: SequenceDataset, tasks: tuple[str, ...],
                   targets: np.ndarray, mask: np.ndarray, device: torch.device
                   ) -> tuple[np.ndarray, float, dict[str, Any]]:
    """Synthesis predictions of all frames and their model time (s), and per task the scores of
    the model and (where frames are known) of linear interpolation."""
    results, synthesis, synthesis_s = {}, None, 0.0
    for task in tasks:
        pred, interp, known, seconds = predict_task(model, data, task, device)
        entry = {"n_known": int(known.sum()), "n_unknown": int((~known).sum()),
                 "predict_s_per_frame": seconds / max(len(pred), 1),
                 "model": score_task(pred, targets, known, mask, data.run)}
        if known.any():
            entry["linear_interp"] = score_task(interp, targets, known, mask, data.run)
        entry["timecourse"] = _timecourse(pred, interp, targets, known, data.run)
        results[task] = entry
        if task == "synthesis":
            synthesis, synthesis_s = pred, seconds
    return synthesis, synthesis_s, results


def _timecourse(pred: np.ndarray, interp: np.ndarray, targets: np.ndarray, known: np.ndarray,
                runs: np.ndarray) -> dict[str, Any]:
    """The first run's time course at its most variable voxel, for the report's figure
    (interpolation only where frames are known)."""
    first = runs == runs[0]
    flat = targets[first].reshape(first.sum(), -1)
    v = int(flat.std(0).argmax())

    def pick(a: np.ndarray) -> list[float]:
        return [round(float(u), 5) for u in a[first].reshape(first.sum(), -1)[:, v]]

    out = {"voxel": int(v), "truth": pick(targets), "model": pick(pred),
           "known": [bool(k) for k in known[first]]}
    if known[first].any():
        out["linear_interp"] = pick(interp)
    return out
