"""Model records from checkpoints trained elsewhere: what the authors' reference code saved,
converted (`models.reference`) into a record that `eeg2fmri evaluate` and `synthesize` use.

A record needs more than weights: the EEG layout, sampling rate, TR, window and volume grid come
from one of our features stores (`like`, a subject's folder), checked against what the weights
fix; the EEG normalisation is the one the reference trained with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from eeg2fmri.errors import InputError, missing
from eeg2fmri.io import sha256sum
from eeg2fmri.models import build_model, count_parameters
from eeg2fmri.models import reference as ref
from eeg2fmri.store import SubjectFeatures, amplitude_uv

ARCHS = ("e2fnet", "e2fgan", "spec2vol", "ntvit")


@dataclass
class Reading:
    """What a checkpoint fixes and what the store must give it."""

    params: dict[str, Any]
    context: int
    n_freqs: int  # |FFT| bins or samples per window
    weights: dict[str, dict[str, torch.Tensor]]  # by sub-network ("" the model itself)
    eeg: dict[str, Any]  # the record's bins, input, norm
    source: str
    notes: dict[str, Any] = field(default_factory=dict)  # for the record's `imported`
    say: str = ""  # the summary line's description of the input


def load_state(path: Path) -> dict[str, Any]:
    """A state_dict (or a checkpoint holding one under `state_dict`), read without running code."""
    if not path.is_file():
        raise InputError(path, missing(path, "this state_dict"))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, or one that would run code
        first = str(e).strip().splitlines()[0][:160] if str(e) else ""
        raise InputError(path, f"not a readable state_dict ({type(e).__name__}: {first})"
                         ) from None
    inner = state.get("state_dict") if isinstance(state, dict) else None
    tensors = inner if isinstance(inner, dict) else state
    if not (isinstance(tensors, dict) and tensors
            and all(isinstance(v, torch.Tensor) for v in tensors.values())):
        raise InputError(path, "not a state_dict (a dictionary of tensors) nor a checkpoint "
                               "holding one under 'state_dict'")
    return state


def _spectra(arch: str, state: dict[str, Any], state_path: Path, disc: dict[str, Any] | None,
             disc_path: Path | None, store: SubjectFeatures, like: Path,
             eeg_range: tuple[float, float] | None, run_args: Path | None) -> Reading:
    """E2fNet, E2fGAN and Spec2VolCAMU-Net (a fork of E2fNet's code): the same input, |FFT|
    bins 1..249 z-scored across channels, then one min-max with the run's EEG range."""
    meta = store.meta
    try:
        if arch == "spec2vol":
            found = dict(ref.spec2vol.spec2vol_settings(state))
            weights = ref.spec2vol.spec2vol_state(state)
        else:
            found, weights = ref.e2fnet_settings(state), ref.e2fnet_state(state)
    except ValueError as e:
        raise InputError(state_path, str(e)) from None
    try:
        disc_weights = ref.discriminator_state(disc) if disc is not None else None
    except ValueError as e:
        raise InputError(disc_path, str(e)) from None
    depth, grid = found["depth"], store.bold.shape[1:]
    if list(grid) != [depth, 64, 64]:
        raise InputError(like, f"volumes of {' x '.join(map(str, grid))}, but the reference "
                               f"model predicts {depth} x 64 x 64: give a store of the dataset "
                               "it was trained on")
    if list(meta.get("bins", [])) != [1, 250]:
        raise InputError(like, f"|FFT| bins {meta.get('bins')}, but the reference reads bins "
                               "1..249 of each window: preprocess with features.n_bins: 249")
    if eeg_range:
        (lo, hi), source = eeg_range, "--eeg-range"
    elif run_args:
        try:
            run = json.loads(run_args.read_text())
            lo, hi, source = float(run["min_eeg"]), float(run["max_eeg"]), str(run_args)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(run_args, f"not the reference run's commandline_args.txt with "
                                       f"min_eeg and max_eeg ({e})") from None
    elif meta.get("dataset") in ref.EEG_RANGES:
        (lo, hi), source = ref.EEG_RANGES[meta["dataset"]], "the reference's inference.ipynb"
    else:
        raise InputError(None, "give --eeg-range MIN MAX (or --run-args): the reference's EEG "
                               "min and max, printed by its training script and saved in "
                               "commandline_args.txt")
    if not lo < hi:
        raise InputError(None, f"the EEG range must have min < max, not {lo:g}, {hi:g}")
    if arch == "spec2vol":
        params = {k: v for k, v in found.items() if k not in ("context", "depth")}
        what = f"embed {params['embed']}, VM-UNet {params['dims']}"
    else:
        params = {"width": found["width"]}
        what = f"width {found['width']}"
    weights_by = {"generator" if arch == "e2fgan" else "": weights}
    if arch == "e2fgan":
        params["disc_width"] = ref.discriminator_width(disc) if disc is not None else 64
        if disc_weights is not None:
            weights_by["discriminator"] = disc_weights
    return Reading(
        params=params, context=found["context"], n_freqs=249, weights=weights_by,
        eeg={"bins": [1, 250], "input": "spectra",
             "norm": {"mode": "paper", "a": float(lo), "b": float(hi)}},
        source=("hdy6438/Spec2VolCAMU-Net (no licence stated; He, Li, Jiang & Yan)"
                if arch == "spec2vol" else "kgr20/E2fNet (MIT, Copyright (c) 2025 Kristofer Roos)"),
        notes={"discriminator": str(disc_path) if disc_path else None,
               "eeg_range": [float(lo), float(hi)], "eeg_range_from": source},
        say=(f"{what}, {found['context']} windows of "
             f"{len(meta['channels'])} channels x 249 bins; EEG z-scored across channels, then "
             f"min-max with [{lo:g}, {hi:g}] ({source})"))


def _ntvit(state: dict[str, Any], state_path: Path, store: SubjectFeatures,
           like: Path) -> Reading:
    meta = store.meta
    grid = tuple(int(n) for n in store.bold.shape[1:])
    n_channels, fs = len(meta["channels"]), float(meta["fs"])
    samples = int(meta["window_samples"])
    given = ref.ntvit.reference_input(state)
    for key, ours, what in (("fs", fs, "sampling rate (Hz)"),
                            ("samples", samples, "samples per window"),
                            ("channels", n_channels, "EEG channels"),
                            ("out_shape", grid, "volume grid")):
        if key in given and given[key] != ours:
            raise InputError(like, f"{what} {ours}, but the reference model was trained on "
                                   f"{given[key]}: give a store made like its data (NT-ViT: "
                                   "one 2.16-s window per volume at 512 Hz)")
    try:
        settings = ref.ntvit.ntvit_settings(state, n_channels=n_channels, depth=grid[0])
        weights = ref.ntvit.ntvit_state(state, fs=fs)
    except ValueError as e:
        raise InputError(state_path, str(e)) from None
    return Reading(
        params={**settings, "fs": fs}, context=1, n_freqs=samples, weights={"": weights},
        eeg={"bins": list(meta.get("bins", [])), "input": "raw",
             "norm": {"mode": "window_minmax", "a": -1.0, "b": 1.0}},
        source="rom42pla/ntvit (no licence file; Romeo Lanzino, all rights reserved)",
        say=(f"one window of {n_channels} channels x {samples} samples at {fs:g} Hz, each "
             "channel of each window min-max scaled to [-1, 1]"))


def import_checkpoint(arch: str, state_path: Path, like: Path, out: Path, *,
                      disc_path: Path | None = None,
                      eeg_range: tuple[float, float] | None = None,
                      run_args: Path | None = None, tests: list[str] | None = None,
                      name: str | None = None) -> tuple[dict[str, Any], str]:
    """The model record of a reference checkpoint and a line describing it (not yet saved)."""
    from eeg2fmri.provenance import provenance
    from eeg2fmri.training.folds import fold_name

    if arch not in ARCHS:
        raise InputError(None, f"--arch {arch!r}: checkpoints import for {', '.join(ARCHS)}")
    if disc_path and arch != "e2fgan":
        raise InputError(None, "--discriminator is for --arch e2fgan")
    if (eeg_range or run_args) and arch == "ntvit":
        raise InputError(None, "--eeg-range and --run-args are for the E2fNet and "
                               "Spec2VolCAMU-Net references")
    for given in (state_path, disc_path):
        if given and out.exists() and given.exists() and out.samefile(given):
            raise InputError(out, "is an input (--out would overwrite it): choose another")
    state = load_state(state_path)
    disc = load_state(disc_path) if disc_path else None
    store = SubjectFeatures.open(like)
    meta = store.meta
    if arch == "ntvit":
        r = _ntvit(state, state_path, store, like)
    else:
        r = _spectra(arch, state, state_path, disc, disc_path, store, like, eeg_range, run_args)
    grid = tuple(int(n) for n in store.bold.shape[1:])
    torch.manual_seed(0)  # e2fgan without --discriminator: a fresh discriminator
    model = build_model(arch, n_channels=len(meta["channels"]), n_freqs=r.n_freqs,
                        out_shape=grid, context=r.context, **r.params)
    for part, weights in r.weights.items():
        net = getattr(model, part) if part else model
        try:
            net.load_state_dict(weights)
        except RuntimeError as e:
            path = disc_path if part == "discriminator" else state_path
            raise InputError(path, f"does not fit {arch} with the layout of {like} "
                                   f"({str(e).splitlines()[0]})") from None
    name = name or f"{arch}_reference"
    tests = list(tests or [])
    norm_mode = r.eeg["norm"]["mode"]
    record = {
        "spec": {"name": name, "arch": arch, "params": r.params, "shuffle_eeg": False,
                 "features": {"context": r.context, "eeg_norm": norm_mode,
                              **({"n_bins": r.n_freqs} if r.eeg["input"] == "spectra" else {})},
                 "training": {}},
        "arch": arch, "params": r.params, "state": model.state_dict(),
        "eeg": {"channels": list(meta["channels"]), "fs": float(meta["fs"]),
                "tr": float(meta["tr"]), "window_samples": int(meta["window_samples"]),
                **r.eeg, "context": r.context,
                "marker": meta.get("marker"), "decimate": int(meta.get("decimate", 1)),
                "ingestion": meta.get("ingestion"), "amplitude_uv": amplitude_uv(store.raw)},
        "volume": {"shape": list(grid), "affine": meta["affine"],
                   "coverage": meta.get("coverage", "")},
        "dataset": meta.get("dataset", ""), "shuffle_seed": None,
        "features_settings": meta.get("settings", {}), "sequence": None,
        "fold": {"name": fold_name(tests[0]) if len(tests) == 1 else "split-reference",
                 "tests": tests, "val": None, "train": []},
        "selected_on": [],
        "summary": {"best_epoch": None, "epochs_run": None, "best_val_loss": None,
                    "trust": None, "n_parameters": count_parameters(model),
                    "n_train_pairs": None, "wall_s": 0.0, "device": "imported"},
        "provenance": provenance(torch.device("cpu")),
        "imported": {"from": r.source, "state_dict": str(state_path),
                     "sha256": sha256sum(state_path), **r.notes, "like": str(like)},
    }
    line = (f"{out}: {arch} ({count_parameters(model):,} parameters), {r.say} -> "
            f"{' x '.join(map(str, grid))}; layout of {like}")
    return record, line
