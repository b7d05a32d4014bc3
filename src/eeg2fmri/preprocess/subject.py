"""Preprocessing one subject into its features store (see `eeg2fmri.store` for the layout and
the reader): pairing planned from headers and markers, EEG windows -> |FFT| spectra, volumes
scaled, all runs concatenated."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from eeg2fmri.data.bold import read_bold
from eeg2fmri.data.datasets import PAPER_PAIRING, DatasetSpec
from eeg2fmri.errors import InputError
from eeg2fmri.io import atomic_dir, save_npy, write_json
from eeg2fmri.made_with import plain_json
from eeg2fmri.preprocess.fmri import SCALINGS, dct_reduce, degenerate, to_volumes
from eeg2fmri.preprocess.ingest import Ingestion, Stages, open_recording, windows
from eeg2fmri.preprocess.mr_artefacts import MRSettings, mr_summary
from eeg2fmri.preprocess.pairing import (
    RunPlan,
    amplitude_problems,
    consistency,
    mr_key,
    plan_run,
    run_amplitude,
    shared_files,
)
from eeg2fmri.preprocess.rois import on_grid, read_rois


def subject_plans(ds: DatasetSpec, root: Path, subject: str, pairing: str = "markers"
                  ) -> tuple[list[RunPlan], list[str]]:
    """Every run's pairing plan for one subject, and the files found but not paired; refused
    (the first problem) as inspect refuses them: a run's own problems, runs that disagree,
    files shared with or copied from another subject, an EEG amplitude off the dataset's."""
    runs, unpaired = ds.subject_runs(root, subject)
    if not runs:
        raise InputError(Path(root) / subject, f"no runs with both EEG and BOLD found for "
                                               f"{subject} ({'; '.join(unpaired) or 'no files'})")
    for line in unpaired:
        print(f"{subject}: {line}", file=sys.stderr)
    everyone = {}
    for other in ds.subjects:  # headers only: no other subject may read the same files
        try:
            everyone[other] = runs if other == subject else ds.subject_runs(root, other)[0]
        except InputError:
            pass  # that subject's own preprocessing names it
    for problem in shared_files(ds, Path(root), everyone, only=subject)[:1]:
        raise InputError(problem.path, problem.message)
    plans = [plan_run(ds, subject, r, pairing) for r in runs]
    for plan in plans:
        plan.raise_first()
    for problem in consistency(ds, plans)[:1]:
        raise InputError(problem.path, problem.message)
    # the EEG's amplitude against the dataset's (each other subject's first measured run)
    every, amplitudes = list(plans), [run_amplitude(ds, p) for p in plans]
    for other, other_runs in everyone.items():
        for run in other_runs if other != subject else []:
            every.append(plan_run(ds, other, run, pairing))
            try:
                amplitudes.append(run_amplitude(ds, every[-1]))
            except InputError:
                amplitudes.append(None)  # that subject's own preprocessing names it
            if amplitudes[-1] and np.isfinite(amplitudes[-1]):
                break
    for problem in amplitude_problems(ds, every, amplitudes, only=subject)[:1]:
        raise InputError(problem.path, problem.message)
    return plans, unpaired


def _run_features(ds: DatasetSpec, plan: RunPlan, *, n_bins: int, scaling: str = "volume"
                  ) -> dict[str, Any]:
    """One run, paired as planned, through the ingestion path (`preprocess.ingest`): |FFT|
    spectra and raw samples of the EEG windows; volumes on the grid, min-max scaled per volume
    or per run (`scaling`)."""
    run = read_bold(plan.bold)
    fs = plan.fs / ds.decimate
    n_win = int(round(fs * plan.tr))
    if n_bins > n_win // 2:
        raise InputError(plan.eeg, f"features.n_bins = {n_bins} but a {n_win}-sample window "
                                   f"(fs {fs:g} Hz x TR {plan.tr:g} s) has {n_win // 2} bins "
                                   "above DC")
    ing = Ingestion(n_win, (1, 1 + n_bins), ds.decimate, MRSettings(**ds.mr_settings()))
    with open_recording(plan.eeg, plan.format, ds.read_options()) as rec:
        if run.data.shape[-1] != plan.n_volumes or rec.n_samples != plan.n_samples:
            raise InputError(plan.eeg, "the files changed while being read; rerun")
        stages = Stages.build(rec, plan.channels, ing, plan.tr, plan.scan_onsets,
                              run=f"{plan.subject} {plan.run}: ".replace(" : ", ": "),
                              key=mr_key(ds))
        for line in mr_summary(stages.report):
            print(f"{plan.subject} {plan.run or 'run'}: {line}", file=sys.stderr)
        onsets = ing.output_onsets(plan.onsets)
        onsets = np.minimum(onsets, ing.output_length(rec.n_samples) - n_win)  # rounding
        win = windows(rec, plan.channels, onsets, ing, read=stages.read)
    vols, affine = run.data[..., plan.volumes], run.affine
    if ds.grid is not None and vols.shape[:3] != ds.grid:
        vols, affine = dct_reduce(vols, affine, ds.grid)
    scaled = SCALINGS[scaling](to_volumes(vols))
    if why := degenerate(to_volumes(vols), scaled):
        raise InputError(plan.bold, f"{why}. Leave this run out (its files, or "
                                    f"{ds.key('subjects')})")
    return {
        "spectra": win.spectra, "raw": win.raw, "ingestion": ing.state(),
        "vols": scaled, "affine": affine, "fs": fs,
        "n_win": n_win, "channels": list(plan.channels), "vol_index": plan.volumes,
        "info": {"eeg": str(plan.eeg), "bold": str(plan.bold), "n_volumes_bold": plan.n_volumes,
                 "amplitude_uv": win.amplitude_uv, "mr_artefacts": stages.report,
                 "first_volume": int(plan.volumes[0]), "n_pairs": plan.n_pairs,
                 "first_onset_sample": int(plan.onsets[0]), "tr": plan.tr,
                 "n_markers": plan.n_markers, "notes": plan.notes,
                 "bold_grid": list(run.data.shape[:3])},
    }


def preprocess_subject(ds: DatasetSpec, root: Path, subject: str, out_dir: Path, *,
                       n_bins: int, pairing: str = "markers", mask_threshold: float = 0.2,
                       settings: dict[str, Any] | None = None, scaling: str = "volume"
                       ) -> dict[str, Any]:
    """Read, align, window and transform every run of one subject; write its store.

    pairing "markers": the dataset's own alignment and dummy scans; "paper": the references'
    (EEG sample 0 is volume 0, the first 6 volumes dropped). `scaling` "volume" scales each
    volume to [0, 1] (the papers' target), "run" each run. Any problem of the pairing plan
    (see `pairing.plan_run`) stops here, naming the file; its notes go to stderr. `settings`
    (the workflow config preprocessing depends on) are recorded in meta.json, for its readers
    to compare with theirs (`eeg2fmri.store.check_settings`)."""
    root = Path(root)
    plans, unpaired = subject_plans(ds, root, subject, pairing)
    for plan in plans:
        for note in plan.notes:
            print(f"{subject} {plan.run or 'run'}: {note}", file=sys.stderr)
    regions = read_rois(ds, root)  # checked before the runs' features are made
    first = plans[0]
    runs = []
    for plan in plans:
        runs.append(_run_features(ds, plan, n_bins=n_bins, scaling=scaling))
        if runs[-1]["vols"].shape[1:] != runs[0]["vols"].shape[1:]:
            raise InputError(plan.bold, f"grid {runs[-1]['vols'].shape[1:]} differs from run "
                                        f"{first.run!r}: {runs[0]['vols'].shape[1:]}")
    vols = np.concatenate([r["vols"] for r in runs])
    spectra = np.concatenate([r["spectra"] for r in runs])
    raw = np.concatenate([r["raw"] for r in runs])
    bounds = np.cumsum([0] + [len(r["vols"]) for r in runs])
    truth = ds.truth_paths(root, subject)
    if "mask" in truth:
        if not truth["mask"].is_file():
            raise InputError(truth["mask"], "brain mask file does not exist")
        mask = to_volumes(np.asarray(nib.load(truth["mask"]).dataobj) > 0.5)
    else:
        mask = vols.mean(0) > mask_threshold
    rois = None if regions is None else on_grid(
        regions, ds, tuple(vols.shape[1:][i] for i in (1, 2, 0)), runs[0]["affine"])
    for note in rois[2] if rois else []:
        print(f"{subject}: {note}", file=sys.stderr)
    clean = None
    if "clean" in truth:  # simulated: one run
        clean = read_bold(truth["clean"], expected_tr=first.tr)
        clean = SCALINGS[scaling](to_volumes(clean.data[..., runs[0]["vol_index"]]))
    meta = {
        "dataset": ds.name, "subject": subject, "n_volumes": len(vols),
        "channels": runs[0]["channels"], "fs": runs[0]["fs"], "tr": first.tr,
        "window_samples": runs[0]["n_win"], "bins": [1, 1 + n_bins],
        "bin_hz": [k / first.tr for k in (1, n_bins)], "pairing": pairing,
        "bold_scaling": scaling,
        "alignment": first.alignment,
        "marker": ds.volume_marker if first.alignment == "markers" else None,
        "dropped_volumes": (ds.skip_volumes if pairing == "markers"
                            else PAPER_PAIRING["skip_volumes"]),
        "decimate": ds.decimate, "ingestion": runs[0]["ingestion"],
        "first_onset_sample": runs[0]["info"]["first_onset_sample"],
        "eeg_shape": list(spectra.shape), "raw_shape": list(raw.shape),
        "bold_shape": list(vols.shape), "grid": list(vols.shape[1:]), "coverage": ds.coverage,
        "segments": [[int(a), int(b)] for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
        "runs": [{"run": p.run, **r["info"]} for p, r in zip(plans, runs, strict=True)],
        "unpaired_files": unpaired, "affine": runs[0]["affine"].tolist(),
        "settings": plain_json(settings or {}),
        "rois": rois[1] if rois else None,
    }
    # all files or none: a full disk or a kill leaves the previous store (or none), never a mix
    with atomic_dir(out_dir) as tmp:
        if clean is not None:
            save_npy(tmp / "clean.npy", clean)
        save_npy(tmp / "eeg.npy", spectra)
        save_npy(tmp / "raw.npy", raw)
        save_npy(tmp / "bold.npy", vols)
        save_npy(tmp / "mask.npy", mask)
        if rois:
            save_npy(tmp / "rois.npy", rois[0])
        write_json(tmp / "meta.json", meta)
    return meta
