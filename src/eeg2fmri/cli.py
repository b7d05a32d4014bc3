"""The `eeg2fmri` console script; every workflow rule calls one of its verbs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from eeg2fmri.errors import InputError


def _json(text: str) -> Any:
    return json.loads(text)


def _prepare_device(device: str, threads: int | None) -> None:
    """Lease a GPU (one per job, see gpu_lease) before CUDA starts, and set CPU threads."""
    if device in ("auto", "cuda"):  # an explicit cuda:N is the user's choice
        from eeg2fmri.gpu_lease import lease_gpu

        gpu = lease_gpu()
        if gpu is not None:
            print(f"leased GPU {gpu}", file=sys.stderr)
    if threads:
        import torch

        torch.set_num_threads(threads)


def cmd_simulate(a: argparse.Namespace) -> None:
    from eeg2fmri.data.datasets import sim_config
    from eeg2fmri.data.simulate import write_dataset

    subjects = write_dataset(sim_config({"simulation": a.settings}), a.out)
    print(f"simulated {len(subjects)} subjects under {a.out}")


def cmd_preprocess(a: argparse.Namespace) -> None:
    from eeg2fmri.data.datasets import get_dataset
    from eeg2fmri.preprocess.store import preprocess_subject

    cfg = a.config
    ds = get_dataset(a.dataset, cfg)
    feats = cfg.get("features", {})
    truth = ds.truth_paths(a.raw, a.subject)
    meta = preprocess_subject(
        ds.eeg_path(a.raw, a.subject), ds.bold_path(a.raw, a.subject), a.out, tr=ds.tr,
        n_bins=feats.get("n_bins", 249), alignment=ds.alignment, marker=ds.volume_marker,
        clean_path=truth.get("clean"), mask_path=truth.get("mask"))
    print(f"{a.subject}: {meta['n_volumes']} volumes, EEG {meta['eeg_shape']}, "
          f"first volume at EEG sample {meta['first_onset_sample']}")


def cmd_train(a: argparse.Namespace) -> None:
    from eeg2fmri.training.folds import loso_fold
    from eeg2fmri.training.run import train_fold

    _prepare_device(a.device, a.threads)
    fold = loso_fold(a.subjects, a.test)
    record = train_fold(a.spec, fold, a.features, a.out, device=a.device,
                        progress=not a.no_progress)
    assert record is not None
    s = record["summary"]
    print(f"{a.spec['name']} {fold.name}: best epoch {s['best_epoch']} of {s['epochs_run']}, "
          f"val loss {s['best_val_loss']:.4f}, {s['n_parameters']} parameters, "
          f"{s['wall_s']:.0f} s on {s['device']}")


def cmd_evaluate(a: argparse.Namespace) -> None:
    from eeg2fmri.evaluation.predict import evaluate_fold

    _prepare_device(a.device, a.threads)
    r = evaluate_fold(a.model, a.test_features, a.metrics, a.predictions, device=a.device)
    print(f"{r['model']} {r['fold']}: " + ", ".join(f"{k} {v:.4f}" for k, v in r["mean"].items()))


def cmd_aggregate(a: argparse.Namespace) -> None:
    from eeg2fmri.reporting.aggregate import aggregate
    from eeg2fmri.reporting.figures import make_figures

    table = aggregate(a.metrics, a.out)
    make_figures(a.metrics, a.features, a.out)
    print(table)


def cmd_params(a: argparse.Namespace) -> None:
    from eeg2fmri.models import build_model, count_parameters

    model = build_model(a.arch, n_channels=a.channels, n_freqs=a.freqs,
                        out_shape=tuple(a.shape), context=a.context, **a.params)
    print(f"{a.arch}: {count_parameters(model):,} trainable parameters")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eeg2fmri", description=__doc__)
    sub = p.add_subparsers(dest="verb", required=True)

    s = sub.add_parser("simulate", help="write the simulated BIDS-like dataset")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--settings", type=_json, default={}, help="JSON of simulation settings")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("preprocess", help="one subject: raw EEG + BOLD -> features store")
    s.add_argument("--dataset", required=True)
    s.add_argument("--raw", type=Path, required=True, help="the dataset's raw root")
    s.add_argument("--subject", required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--config", type=_json, default={}, help="JSON of the workflow config")
    s.set_defaults(func=cmd_preprocess)

    s = sub.add_parser("train", help="train one model on one leave-one-subject-out fold")
    s.add_argument("--features", type=Path, required=True, help="the dataset's features dir")
    s.add_argument("--subjects", nargs="+", required=True, help="all subjects of the dataset")
    s.add_argument("--test", required=True, help="the fold's test subject (never read)")
    s.add_argument("--spec", type=_json, required=True, help="JSON training spec")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="predict a fold's test subject and score it")
    s.add_argument("--model", type=Path, required=True)
    s.add_argument("--test-features", type=Path, required=True)
    s.add_argument("--metrics", type=Path, required=True)
    s.add_argument("--predictions", type=Path, required=True)
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=None)
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("aggregate", help="per-fold metrics -> tables and figures")
    s.add_argument("--metrics", type=Path, nargs="+", required=True)
    s.add_argument("--features", type=Path, required=True, help="the dataset's features dir")
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_aggregate)

    s = sub.add_parser("params", help="count a model's parameters")
    s.add_argument("--arch", required=True)
    s.add_argument("--channels", type=int, default=64)
    s.add_argument("--freqs", type=int, default=249)
    s.add_argument("--shape", type=int, nargs=3, default=[30, 64, 64], metavar=("D", "H", "W"))
    s.add_argument("--context", type=int, default=20)
    s.add_argument("--params", type=_json, default={}, help='JSON, e.g. \'{"width": 256}\'')
    s.set_defaults(func=cmd_params)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except InputError as e:
        print(f"eeg2fmri {args.verb}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
