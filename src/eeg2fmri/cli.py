"""The `eeg2fmri` console script; every workflow rule calls one of its verbs."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eeg2fmri.errors import InputError, missing


class _JSON(str):
    """A JSON option's text, parsed and checked in `main` (a problem: one line naming it)."""


def _schema() -> str:
    schema = Path(__file__).with_name("config.schema.yaml")  # installed beside the package
    if not schema.is_file():
        raise InputError(schema, "the config schema is missing from this installation: "
                                 "reinstall eeg2fmri (pip install .)")
    return str(schema)


def _config_file(path: Path) -> dict[str, Any]:
    """A workflow config file, validated like the workflow does (one line per problem)."""
    import yaml

    from eeg2fmri.config import config_errors

    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise InputError(path, f"not a readable YAML config ({e})") from None
    problems = config_errors(cfg, _schema())
    if problems:
        raise InputError(path, "; ".join(problems))
    return cfg


def _option(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _specs_errors(option: str, specs: Any, schema: str) -> list[str]:
    from eeg2fmri.config import spec_errors

    if not isinstance(specs, dict):
        return [f"{option} must be a JSON object {{model: training spec}}"]
    return [line for name, spec in specs.items()
            for line in spec_errors(f"{option} model {name!r}", spec, schema)]


def _ceiling_errors(option: str, made: Any, schema: str) -> list[str]:
    from eeg2fmri.config import option_errors

    context = made.get("context") if isinstance(made, dict) else None
    if not (isinstance(made, dict) and set(made) == {"features", "context"}
            and isinstance(context, int) and context >= 1):
        return [f'{option} must be a JSON object {{"features": preprocessing settings, '
                '"context": an integer >= 1}']
    return option_errors(f"{option} features", made["features"], schema)


def _splits_errors(option: str, splits: Any, schema: str) -> list[str]:
    ok = isinstance(splits, dict) and all(
        isinstance(tests, list) and tests and all(isinstance(t, str) for t in tests)
        for tests in splits.values())
    return [] if ok else [f'{option} must be a JSON object {{"name": ["sub-01", ...]}}: each '
                          "fixed split's test subjects"]


def _checks() -> dict[str, Callable[[str, Any, str], list[str]]]:
    """What each JSON option holds, as a check (option, value, schema) -> one line a problem."""
    from eeg2fmri.config import option_errors, spec_errors

    return {"config": option_errors, "expect_features": option_errors,
            "settings": lambda o, v, s: option_errors(o, v, s, "simulation"),
            "urls": lambda o, v, s: option_errors(o, v, s, "download_urls"),
            "expect_seeds": lambda o, v, s: option_errors(o, v, s, "seeds") if v else [],
            "spec": spec_errors, "expect_spec": spec_errors, "expect_specs": _specs_errors,
            "expect_ceiling": _ceiling_errors, "splits": _splits_errors}


MINIMUM = {"context": 1, "channels": 1, "freqs": 1, "threads": 1, "seed": 0, "start": 0}


def _check_options(args: argparse.Namespace) -> None:
    """Parse the JSON options and check them, and the numbers, before the verb runs."""
    problems = []
    for dest, value in vars(args).items():
        if isinstance(value, _JSON):
            try:
                setattr(args, dest, json.loads(value))
            except json.JSONDecodeError as e:
                problems.append(f"{_option(dest)}: not valid JSON ({e})")
    if problems:
        raise InputError(None, "; ".join(problems))
    if getattr(args, "configfile", None) is not None:
        args.config = _config_file(args.configfile)
    for dest, check in _checks().items():
        if getattr(args, dest, None) is not None:
            problems += check(_option(dest), getattr(args, dest), _schema())
    problems += [f"{_option(dest)} must be at least {low}, not {value:g}"
                 for dest, low in MINIMUM.items()
                 if (value := getattr(args, dest, None)) is not None and value < low]
    problems += [f"--shape must be at least 1 voxel each way, not {' '.join(map(str, shape))}"
                 for shape in [getattr(args, "shape", None) or []] if min(shape, default=1) < 1]
    if problems:
        raise InputError(None, "; ".join(problems))


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
    from eeg2fmri.data.datasets import get_dataset, sim_config
    from eeg2fmri.data.fetch import verify_manifest
    from eeg2fmri.data.sim_settings import check_simulated_tree
    from eeg2fmri.preprocess.subject import preprocess_subject

    cfg = a.config
    ds = get_dataset(a.dataset, cfg, a.raw)
    if ds.simulated:
        check_simulated_tree(a.raw, sim_config(cfg))
    if a.manifest is not None:
        verify_manifest(a.manifest, a.raw)
    feats = cfg.get("features", {})
    n_bins = min(feats.get("n_bins", 249), ds.n_bins or 1 << 30)
    meta = preprocess_subject(ds, a.raw, a.subject, a.out, n_bins=n_bins,
                              pairing=feats.get("pairing", "markers"), settings=cfg,
                              scaling=feats.get("bold_scaling", "volume"))
    print(f"{a.subject}: {meta['n_volumes']} volumes in {len(meta['runs'])} run(s), EEG "
          f"{meta['eeg_shape']}, first volume at EEG sample {meta['first_onset_sample']}")


def cmd_inspect(a: argparse.Namespace) -> int:
    from eeg2fmri.data.datasets import get_dataset, sim_config
    from eeg2fmri.data.sim_settings import check_simulated_tree
    from eeg2fmri.preprocess.inspect import inspect_dataset, write_tables

    ds = get_dataset(a.dataset, a.config, a.raw)
    root = a.raw or (Path(ds.root) if ds.root else None)
    if root is None:
        raise InputError(None, f"inspect {a.dataset}: give --raw (its root folder)")
    if ds.simulated:
        check_simulated_tree(root, sim_config(a.config))
    out = a.out or Path(f"{a.dataset}-inspect.tsv")
    if out.suffix != ".tsv" or out.is_dir():
        raise InputError(out, "--out must name the table to write, a .tsv file (its .md "
                              "summary goes beside it)")
    for written in (out, out.with_suffix(".md")):  # links followed: where the bytes would go
        if written.resolve().is_relative_to(Path(root).resolve()):
            raise InputError(written, f"lies inside the dataset's root {root} (followed to "
                                      f"{written.resolve()}): inspect never writes into a "
                                      "dataset; choose an --out elsewhere")
    pairing = a.config.get("features", {}).get("pairing", "markers")
    rows, problems = inspect_dataset(ds, root, pairing)
    print(write_tables(rows, problems, out))
    print(f"\ntable: {out} ({out.with_suffix('.md')})")
    return 1 if problems and not a.table_only else 0


def cmd_fetch(a: argparse.Namespace) -> None:
    from eeg2fmri.data.datasets import get_dataset
    from eeg2fmri.data.fetch import fetch_index, fetch_subject

    ds = get_dataset(a.dataset, a.config, a.raw)
    if a.index:
        index = fetch_index(ds, a.raw, urls=a.urls, strict=a.strict)
        print(f"{ds.name}: subjects listed in {index}")
        return
    if not a.subject or not a.manifest:
        raise InputError(None, "fetch needs --subject and --manifest (or --index)")
    files = fetch_subject(ds, a.subject, a.raw, a.manifest, urls=a.urls,
                          local=a.local, progress=not a.no_progress, strict=a.strict)
    print(f"{ds.name} {a.subject}: {len(files)} files verified under {a.raw}")


def cmd_train(a: argparse.Namespace) -> None:
    from eeg2fmri.training.folds import fold_by_name
    from eeg2fmri.training.trainer import train_fold

    try:
        fold = fold_by_name(a.subjects, a.fold, a.splits)
    except ValueError as e:
        raise InputError(None, f"--fold {a.fold}: {e}") from None
    _prepare_device(a.device, a.threads)
    record = train_fold(a.spec, fold, a.features, a.out, device=a.device,
                        progress=not a.no_progress, features_settings=a.expect_features)
    assert record is not None
    s = record["summary"]
    print(f"{a.spec['name']} {fold.name}: best epoch {s['best_epoch']} of {s['epochs_run']}, "
          f"val loss {s['best_val_loss']:.4f}, {s['n_parameters']} parameters, "
          f"{s['wall_s']:.0f} s on {s['device']}")


def cmd_evaluate(a: argparse.Namespace) -> None:
    from eeg2fmri.evaluation.predict import evaluate_fold

    _prepare_device(a.device, a.threads)
    r = evaluate_fold(a.model, list(a.test_features), a.metrics, a.predictions, device=a.device,
                      features_settings=a.expect_features, spec=a.expect_spec,
                      maps_path=a.maps)
    print(f"{r['model']} {r['fold']}: " + ", ".join(f"{k} {v:.4f}" for k, v in r["mean"].items()))


def cmd_ceiling(a: argparse.Namespace) -> None:
    from eeg2fmri.evaluation.predict import evaluate_ceiling

    r = evaluate_ceiling(list(a.test_features), a.fold, a.context, a.out, a.maps,
                         features_settings=a.expect_features)
    print(f"ceiling {a.fold}: " + ", ".join(f"{k} {v:.4f}" for k, v in r["mean"].items()))


def cmd_synthesize(a: argparse.Namespace) -> None:
    from eeg2fmri.evaluation.synthesize import synthesize

    _prepare_device(a.device, a.threads)
    side = synthesize(a.model, a.eeg, a.out, start=a.start, marker=a.marker, fmt=a.format,
                      seed=a.seed, device=a.device, progress=not a.no_progress,
                      accept_amplitude=a.accept_amplitude)
    print(f"{a.out}: {side['n_volumes']} volumes from {side['n_windows']} windows "
          f"({side['windows']}), model {side['model_name']} {side['fold']}")


def cmd_aggregate(a: argparse.Namespace) -> None:
    from eeg2fmri.reporting.aggregate import aggregate
    from eeg2fmri.reporting.figures import make_figures

    if not a.features.is_dir():
        raise InputError(a.features, "--features is not a folder (the dataset's features, a "
                                     "folder per subject)")
    beside = {"--metrics": ["predictions.nii.gz", *["voxel_corr.nii.gz"] * a.maps],
              "--ceiling": ["ceiling_voxel_corr.nii.gz"] * a.maps}
    for paths, option, keys in ((a.metrics, "--metrics", METRICS_KEYS),
                                (a.ceiling, "--ceiling", METRICS_KEYS[1:4])):
        for path in paths:
            _json_file(path, option, keys)
            for other in (path.with_name(name) for name in beside[option]):
                if not other.is_file():
                    raise InputError(other, missing(other, f"this file, read beside {option} "
                                                           f"{path.name},"))
    table = aggregate(a.metrics, a.out, a.expect_specs, a.expect_seeds, a.ceiling,
                      a.expect_ceiling)
    make_figures(a.metrics, a.features, a.out, a.ceiling)
    if a.maps:
        from eeg2fmri.reporting.maps import voxel_maps

        voxel_maps(a.metrics, a.features, a.out, a.ceiling)
    print(table)


METRICS_KEYS = ("model", "fold", "test_subject", "mean", "train")  # of a metrics.json


def _json_file(path: Path, option: str, keys: tuple[str, ...]) -> None:
    """`path` (given to `option`) is a JSON object with `keys`, or one line says why not."""
    if not path.is_file():
        raise InputError(path, missing(path, f"this {option} file"))
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(path, f"this {option} file is not readable JSON ({e})") from None
    lacking = [k for k in keys if k not in obj] if isinstance(obj, dict) else list(keys)
    if lacking:
        raise InputError(path, f"this {option} file lacks {', '.join(lacking)}: not one that "
                               f"eeg2fmri {'evaluate' if option == '--metrics' else 'ceiling'} "
                               "wrote")


def cmd_env(a: argparse.Namespace) -> None:
    from eeg2fmri.environment import summary

    print(summary())


def cmd_params(a: argparse.Namespace) -> None:
    from eeg2fmri.config import MODEL_KEYS, option_errors
    from eeg2fmri.models import ARCHITECTURES, build_model, count_parameters

    if a.arch not in ARCHITECTURES:
        raise InputError(None, f"--arch {a.arch!r} is not an architecture (known: "
                               f"{', '.join(sorted(ARCHITECTURES))})")
    if not isinstance(a.params, dict):
        raise InputError(None, '--params must be a JSON object of settings, e.g. {"width": 256}')
    problems = [f"--params key {k!r} is not a setting of {a.arch} (it is a key of a "
                "model_settings entry)" for k in a.params if k in MODEL_KEYS]
    problems = problems or option_errors("--params", {**a.params, "arch": a.arch}, _schema(),
                                         "model_settings.params")
    if problems:
        raise InputError(None, "; ".join(problems))
    try:
        model = build_model(a.arch, n_channels=a.channels, n_freqs=a.freqs,
                            out_shape=tuple(a.shape), context=a.context, **a.params)
    except (ValueError, AssertionError) as e:  # the model's (or torch's) check of its settings
        raise InputError(None, f"{a.arch} with --params {json.dumps(a.params)}: {e}") from None
    from eeg2fmri.models.reference import parameter_note

    print(f"{a.arch}: {count_parameters(model):,} trainable parameters{parameter_note(model)}")


def cmd_import(a: argparse.Namespace) -> None:
    """A checkpoint saved by a reference code's training script -> our model record, with the
    EEG layout and volume grid of one of our features stores (`--like`)."""
    from eeg2fmri.record import save_record
    from eeg2fmri.training.imported import import_checkpoint

    record, line = import_checkpoint(
        a.arch, a.state_dict, a.like, a.out, disc_path=a.discriminator,
        eeg_range=tuple(a.eeg_range) if a.eeg_range else None, run_args=a.run_args,
        tests=a.tests, name=a.name)
    save_record(a.out, record)
    print(line)
    if a.arch == "e2fgan" and a.discriminator is None:
        print(f"{a.out}: the discriminator is freshly initialised (train_E2fGAN.py saves only "
              "the generator; give --discriminator to import one)", file=sys.stderr)


EXPECT_FEATURES = ("JSON of the preprocessing settings (as given to preprocess --config) every "
                   "features store must have been made with")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eeg2fmri", description=__doc__)
    sub = p.add_subparsers(dest="verb", required=True)

    s = sub.add_parser("simulate", help="write the simulated BIDS-like dataset")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--settings", type=_JSON, default={}, help="JSON of simulation settings")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("preprocess", help="one subject: raw EEG + BOLD -> features store")
    s.add_argument("--dataset", required=True)
    s.add_argument("--raw", type=Path, required=True, help="the dataset's raw root")
    s.add_argument("--subject", required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--config", type=_JSON, default={}, help="JSON of the workflow config")
    s.add_argument("--manifest", type=Path, help="verify the raw files' SHA-256 against this")
    s.set_defaults(func=cmd_preprocess)

    s = sub.add_parser("fetch", help="one subject of a real dataset: download (or find a local "
                                     "copy), verify, record SHA-256 in a manifest")
    s.add_argument("--dataset", required=True)
    s.add_argument("--subject")
    s.add_argument("--index", action="store_true",
                   help="instead of a subject: the dataset's participants.tsv")
    s.add_argument("--raw", type=Path, required=True, help="the dataset's raw root")
    s.add_argument("--manifest", type=Path)
    s.add_argument("--urls", type=_JSON, default={}, help="JSON of download base URLs")
    s.add_argument("--local", action="store_true",
                   help="the raw root is an existing copy: never download, only verify")
    s.add_argument("--config", type=_JSON, default={},
                   help="JSON of the workflow config (dataset_settings, subjects)")
    s.add_argument("--strict", action="store_true",
                   help="refuse files whose source publishes no checksum")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_fetch)

    s = sub.add_parser("inspect", help="a dataset's pairing from headers and markers: one row "
                                       "per subject and run, every problem in words")
    s.add_argument("--dataset", required=True)
    s.add_argument("--raw", type=Path, help="the dataset's root (default: its config root)")
    s.add_argument("--config", type=_JSON, default={},
                   help="JSON of the workflow config (dataset_settings, subjects, features)")
    s.add_argument("--configfile", type=Path, help="a workflow config file (YAML) instead")
    s.add_argument("--out", type=Path, help="the table (TSV; a .md summary beside it)")
    s.add_argument("--table-only", action="store_true",
                   help="exit 0 even with problems (they are in the table)")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("train", help="train one model on one fold (LOSO or a fixed split)")
    s.add_argument("--features", type=Path, required=True, help="the dataset's features dir")
    s.add_argument("--subjects", nargs="+", required=True, help="all subjects of the dataset")
    s.add_argument("--fold", required=True,
                   help="fold-<test subject> or split-<name>; test subjects are never read")
    s.add_argument("--splits", type=_JSON, default={},
                   help="JSON {name: [test subjects]} of the dataset's fixed splits")
    s.add_argument("--spec", type=_JSON, required=True, help="JSON training spec")
    s.add_argument("--expect-features", type=_JSON, help=EXPECT_FEATURES)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="predict a fold's test subject and score it")
    s.add_argument("--model", type=Path, required=True)
    s.add_argument("--test-features", type=Path, nargs="+", required=True,
                   help="features dir of each test subject of the fold")
    s.add_argument("--metrics", type=Path, required=True)
    s.add_argument("--predictions", type=Path, required=True)
    s.add_argument("--maps", type=Path, help="the voxel corr. map (NIfTI) to write")
    s.add_argument("--expect-features", type=_JSON, help=EXPECT_FEATURES)
    s.add_argument("--expect-spec", type=_JSON,
                   help="JSON training spec the model must have been trained with")
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=None)
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("synthesize", help="fMRI volumes from an EEG-only recording with a "
                                          "trained model (a 4-D NIfTI and a JSON sidecar)")
    s.add_argument("--model", type=Path, required=True, help="a trained model.pt")
    s.add_argument("--eeg", type=Path, required=True, help="the recording (any format MNE reads)")
    s.add_argument("--out", type=Path, required=True, help="the NIfTI to write (.nii.gz)")
    s.add_argument("--start", type=float, default=0.0,
                   help="without volume markers: the first window's start (s); default 0")
    s.add_argument("--marker", help="volume marker (default: the training data's; an error "
                                    "if the recording lacks it; 'none' to ignore markers and "
                                    "window every TR from --start)")
    s.add_argument("--format", help="EEG format, if not clear from the extension")
    s.add_argument("--seed", type=int, help="seed of a generative model's sampling noise")
    s.add_argument("--accept-amplitude", action="store_true",
                   help="synthesize EEG whose amplitude is >10x off the training EEG's")
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_synthesize)

    s = sub.add_parser("ceiling", help="simulated data: the noise-free BOLD scored as a "
                                       "prediction, once per fold (the ceiling row and map)")
    s.add_argument("--test-features", type=Path, nargs="+", required=True,
                   help="the fold's test subjects' features dirs")
    s.add_argument("--fold", required=True)
    s.add_argument("--context", type=int, required=True, help="features.context")
    s.add_argument("--out", type=Path, required=True, help="ceiling.json to write")
    s.add_argument("--maps", type=Path, required=True, help="its voxel corr. map (NIfTI)")
    s.add_argument("--expect-features", type=_JSON, help=EXPECT_FEATURES)
    s.set_defaults(func=cmd_ceiling)

    s = sub.add_parser("aggregate", help="per-fold metrics -> tables and figures")
    s.add_argument("--metrics", type=Path, nargs="+", required=True)
    s.add_argument("--features", type=Path, required=True, help="the dataset's features dir")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--expect-specs", type=_JSON,
                   help="JSON {model: training spec} the metrics must have been made with")
    s.add_argument("--ceiling", type=Path, nargs="*", default=[],
                   help="simulated data: each fold's ceiling.json (eeg2fmri ceiling)")
    s.add_argument("--expect-ceiling", type=_JSON,
                   help='JSON {"features": preprocessing settings, "context": n} the ceilings '
                        "must have been made with")
    s.add_argument("--expect-seeds", type=_JSON, default=[],
                   help="JSON list of the run's seeds (several: replicates; a metrics file's "
                        "spec may carry any of them)")
    s.add_argument("--maps", action="store_true",
                   help="average each model's voxel corr. maps (voxel_corr.nii.gz beside each "
                        "metrics.json) over folds: NIfTI and a slice figure")
    s.set_defaults(func=cmd_aggregate)

    s = sub.add_parser("env", help="what this machine gives a run: versions, the device, "
                                   "mamba-ssm's kernel or the fallback, free GPU memory")
    s.set_defaults(func=cmd_env)

    s = sub.add_parser("params", help="count a model's parameters")
    s.add_argument("--arch", required=True)
    s.add_argument("--channels", type=int, default=64)
    s.add_argument("--freqs", type=int, default=249)
    s.add_argument("--shape", type=int, nargs=3, default=[30, 64, 64], metavar=("D", "H", "W"))
    s.add_argument("--context", type=int, default=20)
    s.add_argument("--params", type=_JSON, default={}, help='JSON, e.g. \'{"width": 256}\'')
    s.set_defaults(func=cmd_params)

    s = sub.add_parser("import", help="a checkpoint saved by a reference code's training "
                                      "script -> a model record (E2fNet, E2fGAN, "
                                      "Spec2VolCAMU-Net, NT-ViT)")
    s.add_argument("--arch", required=True, choices=["e2fnet", "e2fgan", "spec2vol", "ntvit"])
    s.add_argument("--state-dict", type=Path, required=True,
                   help="what the reference's training script saved: train_E2fNet.py / "
                        "train_E2fGAN.py / train_Spectrogram2fMRI.py (*.pth), NT-ViT's "
                        "train.py (a Lightning *.ckpt)")
    s.add_argument("--like", type=Path, required=True,
                   help="a subject's features folder: the EEG layout (channels, rate, TR, "
                        "bins) and volume grid the imported model will read and write")
    s.add_argument("--out", type=Path, required=True, help="the model record to write")
    s.add_argument("--eeg-range", type=float, nargs=2, metavar=("MIN", "MAX"),
                   help="the reference run's min_eeg and max_eeg (default: from --run-args, "
                        "else the reference's values for --like's dataset)")
    s.add_argument("--run-args", type=Path,
                   help="the reference run's commandline_args.txt (its min_eeg, max_eeg)")
    s.add_argument("--discriminator", type=Path,
                   help="e2fgan: a state_dict of the reference's Discriminator")
    s.add_argument("--tests", nargs="+", help="our names of the reference run's test "
                                              "subjects (the fold `eeg2fmri evaluate` scores)")
    s.add_argument("--name", help="the model's name in outputs (default: <arch>_reference)")
    s.set_defaults(func=cmd_import)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        _check_options(args)
        return args.func(args) or 0
    except InputError as e:
        print(f"eeg2fmri {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file the system refused (read-only folder, full disk): one line
        if e.filename is None:
            raise
        print(f"eeg2fmri {args.verb}: error: {e.filename}: cannot be written or read: "
              f"{e.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
