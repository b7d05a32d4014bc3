"""Train one model on one fold from the features store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eeg2fmri import config as config_mod
from eeg2fmri.device import pick_device
from eeg2fmri.models import build_model, count_parameters
from eeg2fmri.models.base import Model
from eeg2fmri.pairs import EEGNorm, PairDataset
from eeg2fmri.provenance import provenance
from eeg2fmri.record import save_record
from eeg2fmri.sequences import SequenceDataset, SequenceTasks
from eeg2fmri.store import SubjectFeatures, amplitude_uv, check_same_eeg, check_settings
from eeg2fmri.training.folds import Fold
from eeg2fmri.training.loop import clear_checkpoint, fit, seed_everything

# model settings a config may give per dataset, {dataset: value, default: value}: training
# resolves them for its features' dataset, and the record's params hold the value used
PER_DATASET = ("sample_steps",)


def per_dataset(params: dict[str, Any], dataset: str) -> dict[str, Any]:
    """`params` with each PER_DATASET setting given as a mapping replaced by the value for
    `dataset` (else the mapping's `default`)."""
    out = dict(params)
    for key in PER_DATASET:
        value = out.get(key)
        if isinstance(value, dict):
            if dataset not in value and "default" not in value:
                raise ValueError(f"{key} {value} names neither this dataset ({dataset!r}) nor "
                                 "a default")
            out[key] = value.get(dataset, value.get("default"))
    return out


def open_subjects(features_dir: Path, subjects: list[str] | tuple[str, ...]
                  ) -> list[SubjectFeatures]:
    return [SubjectFeatures.open(features_dir / s, s) for s in subjects]


def train_fold(spec: dict[str, Any], fold: Fold, features_dir: Path, out_dir: Path, *,
               device: str = "auto", stop_after_epoch: int | None = None,
               progress: bool = True, features_settings: dict[str, Any] | None = None
               ) -> dict[str, Any] | None:
    """Fit normalisation and model on the fold's training subjects, select on its validation
    subject, and write `model.pt` + `train_log.csv`. The test subject is never opened, unless
    the spec asks for the papers' protocol (`selection: test`): then the epochs are selected on
    the test subject(s) instead (normalisation still sees training subjects only). Every store
    must have been made with `features_settings` (this run's preprocessing config) where given,
    and all with the same settings."""
    t0 = time.time()
    feats = spec["features"]
    cfg = config_mod.train_config(spec)
    train_subj = open_subjects(features_dir, fold.train)
    test_selected = spec.get("selection") == "test"
    selected_on = list(fold.tests) if test_selected else [fold.val]
    if test_selected:
        print(f"{spec['name']} {fold.name}: epochs selected on the test subject(s) "
              f"{', '.join(selected_on)}, as the papers do ({config_mod.TEST_SELECTED})",
              flush=True)
    val_subj = open_subjects(features_dir, selected_on)
    check_settings(train_subj + val_subj, features_settings)
    check_same_eeg(train_subj + val_subj)
    norm = EEGNorm.fit(feats["eeg_norm"], train_subj)
    shuffle_seed = cfg.seed if spec["shuffle_eeg"] else None
    params = per_dataset(spec["params"], train_subj[0].meta.get("dataset", ""))
    sequence = None
    if config_mod.arch_kind(spec["arch"]) == "sequence":  # train on crops, select on runs
        sequence, params = SequenceTasks.split(params)
        train = SequenceDataset(train_subj, feats["context"], norm, sequence, crops=True,
                                shuffle_seed=shuffle_seed)
        val = SequenceDataset(val_subj, feats["context"], norm, sequence, crops=False,
                              shuffle_seed=shuffle_seed)
    else:
        train = PairDataset(train_subj, feats["context"], norm, shuffle_seed)
        val = PairDataset(val_subj, feats["context"], norm, shuffle_seed)
    _, n_channels, n_freqs = getattr(train_subj[0], norm.source).shape  # F bins or S samples
    out_shape = tuple(train_subj[0].bold.shape[1:])
    if norm.source == "raw":  # a model with its own EEG front end needs the sampling rate
        params["fs"] = float(train_subj[0].meta["fs"])
    seed_everything(cfg.seed)
    model = build_model(spec["arch"], n_channels=n_channels, n_freqs=n_freqs,
                        out_shape=out_shape, context=feats["context"], **params)
    if type(model).prepare is not Model.prepare:  # initialised from training volumes
        model.prepare(torch.from_numpy(train.sample_volumes(1024)))
        train.release()
    dev = pick_device(device)
    fp = config_mod.fingerprint({"spec": spec, "train": fold.train, "val": selected_on})
    summary = fit(model, train, val, cfg, checkpoint_dir=out_dir / "checkpoint",
                  log_path=out_dir / "train_log.csv", device=dev, fingerprint=fp,
                  stop_after_epoch=stop_after_epoch, progress=progress,
                  label=f"{spec['name']} {fold.name}")
    if summary.get("interrupted"):
        return None
    state = summary["best_state"]
    if sequence and sequence.with_known:  # the trust in the EEG between known frames
        model.load_state_dict(state)
        model.eval()
        summary["trust"] = model.calibrate((x.to(dev), y.to(dev)) for task in sequence.with_known
                                           for x, y in val.batches(1, task=task))
        state = model.state_dict()
    meta = train_subj[0].meta
    record = {
        "spec": spec, "arch": spec["arch"], "params": params,
        "state": {k: v.cpu() for k, v in state.items()},
        "eeg": {"channels": list(meta["channels"]), "fs": float(meta["fs"]),
                "tr": float(meta["tr"]), "window_samples": int(meta["window_samples"]),
                "bins": list(meta["bins"]), "input": "raw" if norm.source == "raw" else "spectra",
                "context": feats["context"], "norm": norm.state(),
                "marker": meta.get("marker"), "decimate": int(meta.get("decimate", 1)),
                "ingestion": meta.get("ingestion"),
                "amplitude_uv": float(np.median([amplitude_uv(s.raw) for s in train_subj]))},
        "volume": {"shape": list(out_shape), "affine": meta["affine"],
                   "coverage": meta.get("coverage", "")},
        "dataset": meta.get("dataset", ""), "shuffle_seed": shuffle_seed,
        "features_settings": meta.get("settings", {}),
        "sequence": sequence.state() if sequence else None,
        "fold": {"name": fold.name, "tests": fold.tests, "val": fold.val, "train": fold.train},
        "selected_on": selected_on,
        "summary": {"best_epoch": summary["best_epoch"], "epochs_run": summary["epochs_run"],
                    "best_val_loss": summary["best_val_loss"], "trust": summary.get("trust"),
                    "select_on": summary["select_on"],
                    "precision": summary.get("precision", "float32 (closed form)"),
                    **{k: summary[k] for k in ("best_val_score", "select_volumes")
                       if k in summary},
                    "n_parameters": count_parameters(model), "n_train_pairs": len(train.index),
                    "wall_s": time.time() - t0 + summary.get("resumed_wall_s", 0.0),
                    "device": str(dev)},
        "provenance": provenance(dev),
    }
    save_record(out_dir / "model.pt", record)
    clear_checkpoint(out_dir / "checkpoint")
    return record
