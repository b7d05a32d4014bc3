"""Evaluate a trained fold on its test subject: predictions as NIfTI, metrics as JSON."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eeg2fmri.config import fingerprint
from eeg2fmri.device import pick_device
from eeg2fmri.errors import InputError
from eeg2fmri.evaluation import metrics
from eeg2fmri.evaluation.sequence import evaluate_tasks
from eeg2fmri.io import save_nifti, write_json
from eeg2fmri.made_with import refuse_if_differs
from eeg2fmri.pairs import EEGNorm, Frames, PairDataset
from eeg2fmri.preprocess.fmri import from_volumes
from eeg2fmri.provenance import provenance
from eeg2fmri.record import load_model
from eeg2fmri.sequences import SequenceDataset, SequenceTasks
from eeg2fmri.store import SubjectFeatures, check_same_eeg, check_settings


@torch.no_grad()
def predict(model: torch.nn.Module, data: PairDataset, device: torch.device,
            batch_size: int = 16) -> np.ndarray:
    out = [model(x.to(device)).float().cpu().numpy() for x, _ in data.batches(batch_size)]
    return np.concatenate(out)


def test_mask(tests: list[SubjectFeatures], fold: str) -> np.ndarray:
    """The union of the test subjects' brain masks (they must share a grid)."""
    masks = [t.mask for t in tests]
    if any(m.shape != masks[0].shape for m in masks):
        raise ValueError(f"test subjects of {fold} have different grids")
    return np.logical_or.reduce(masks)


def score(pred: np.ndarray, targets: np.ndarray, tests: list[SubjectFeatures],
          mask: np.ndarray, runs: np.ndarray, maps_path: Path | None) -> dict[str, Any]:
    """`pred` against `targets` within runs: the per-volume metrics and their means, the ROI r
    where the stores name regions, and the voxel corr. map (NIfTI at `maps_path`)."""
    result = metrics.compute(pred, targets, mask, groups=runs)
    if all(t.rois is not None for t in tests):  # ROI-mean time series, per region
        # lists of [region, r]: the regions' order survives JSON's sorted keys
        result["roi_r"] = list(metrics.roi_correlations(
            pred, targets, tests[0].rois, mask, tests[0].meta["rois"], runs).items())
    if maps_path is not None:
        save_nifti(maps_path, from_volumes(metrics.voxel_corr_map(pred, targets, mask,
                                                                  runs)[None]),
                   np.asarray(tests[0].meta["affine"]))
    return result


def evaluate_fold(model_path: Path, test_dirs: list[Path], metrics_path: Path, pred_path: Path,
                  *, device: str = "auto", features_settings: dict[str, Any] | None = None,
                  spec: dict[str, Any] | None = None, maps_path: Path | None = None
                  ) -> dict[str, Any]:
    """Predict every pair of the fold's test subject(s); predictions are concatenated in time.
    The record must have been trained with `spec` and the stores made with `features_settings`
    (this run's config) where given, and the stores with the settings the model was trained on."""
    t0 = time.time()
    dev = pick_device(device)
    model, record = load_model(model_path, dev)
    if spec is not None:
        refuse_if_differs(model_path, "the model", record["spec"], spec,
                          "It belongs to another experiment sharing results_root, or to an "
                          "earlier config: retrain it (snakemake --forcerun train)", prefix="spec")
    tests = [SubjectFeatures.open(d) for d in test_dirs]
    check_settings(tests, features_settings)
    if record.get("features_settings") is not None:
        for t in tests:
            refuse_if_differs(t.directory / "meta.json", f"{t.subject}'s features store",
                              t.meta["settings"], record["features_settings"],
                              "Preprocess and train anew with one config (snakemake --forcerun "
                              "preprocess)", other=f"the stores {model_path} was trained on")
    expected = record["fold"]["tests"]
    if sorted(t.subject for t in tests) != sorted(expected):
        raise InputError(model_path, f"was trained for fold {record['fold']['name']} (test "
                                     f"subjects {', '.join(expected)}), not for "
                                     f"{', '.join(t.subject for t in tests)}")
    check_same_eeg(tests, record["eeg"], f"the model it was trained as ({model_path})")
    mask = test_mask(tests, record["fold"]["name"])
    norm = EEGNorm.from_state(record["eeg"]["norm"])
    tasks = None
    if record.get("sequence"):  # a sequence model: whole runs, every task; synthesis is the main
        settings, _ = SequenceTasks.split(record["sequence"])
        data = SequenceDataset(tests, record["eeg"]["context"], norm, settings, crops=False,
                               shuffle_seed=record["shuffle_seed"])
        targets = data.targets()
        # the time per volume is the synthesis pass alone; each task records its own
        pred, pred_s, tasks = evaluate_tasks(model, data, settings.evaluated, targets, mask, dev)
    else:
        data = PairDataset(tests, record["eeg"]["context"], norm, record["shuffle_seed"])
        t_pred = time.time()
        pred = predict(model, data, dev)
        pred_s = time.time() - t_pred
        targets = data.targets()
    result = score(pred, targets, tests, mask, data.run, maps_path)
    if tasks:
        result["tasks"] = tasks
    test = tests[0]
    tr = float(test.meta["tr"])
    save_nifti(pred_path, from_volumes(pred), np.asarray(test.meta["affine"]), tr)
    result.update({
        "model": record["spec"]["name"], "arch": record["arch"], "fold": record["fold"]["name"],
        "test_subject": "+".join(t.subject for t in tests),
        "test_subjects": [t.subject for t in tests], "n_volumes": int(len(pred)),
        "pairs": [[tests[i].subject, int(t)] for i, t in data.index], "train": record["summary"],
        "predict_s_per_volume": pred_s / max(len(pred), 1), "eval_wall_s": time.time() - t0,
        "spec": record["spec"], "spec_hash": fingerprint(record["spec"]),
        "provenance": provenance(dev), "train_provenance": record["provenance"],
    })
    if sampling := model.sampling_info():  # generative models: how predictions were sampled
        result["sampling"] = sampling
    write_json(metrics_path, result)
    return result


def evaluate_ceiling(test_dirs: list[Path], fold: str, context: int, out_path: Path,
                     maps_path: Path, *, features_settings: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
    """Simulated data: the noise-free BOLD scored as a prediction of the measured BOLD, once
    per fold, on the volumes every model is scored on (those with a full EEG context): its
    metrics, ROI r and voxel corr. map, the bound of what the EEG can explain."""
    t0 = time.time()
    tests = [SubjectFeatures.open(d) for d in test_dirs]
    check_settings(tests, features_settings)
    if any(t.clean is None for t in tests):
        raise InputError(test_dirs[0], "has no noise-free BOLD (clean.npy): the ceiling exists "
                                       "for simulated data only")
    data = Frames(tests, context, None)
    clean, targets = data.targets("clean"), data.targets()
    scores = score(clean, targets, tests, test_mask(tests, fold), data.run, maps_path)
    result: dict[str, Any] = {"fold": fold, "test_subject": "+".join(t.subject for t in tests),
                              "test_subjects": [t.subject for t in tests],
                              "n_volumes": int(len(targets)), "mean": scores["mean"],
                              # what made it, for the summary to compare with its config
                              "made_with": {"features": tests[0].meta["settings"],
                                            "context": context}}
    if "roi_r" in scores:
        result["roi_r"] = scores["roi_r"]
    result["eval_wall_s"] = time.time() - t0
    write_json(out_path, result)
    return result
