# Helpers shared by the rules. Logic lives in the eeg2fmri package; rules only wire files.
import json

from eeg2fmri.config import train_spec
from eeg2fmri.data.datasets import get_dataset
from eeg2fmri.preprocess import STORE_FILES
from eeg2fmri.training.folds import loso_fold

DATA = config["data_root"]
RESULTS = config["results_root"]
RAW = f"{DATA}/raw"
FEATURES = f"{DATA}/features"
PKG = Path(workflow.basedir) / "src" / "eeg2fmri"
FEATURE_FILES = list(STORE_FILES)
# Software environment of every rule, used with --software-deployment-method conda.
ENV = str(Path(workflow.basedir) / "envs" / f"eeg2fmri-{config['software_env']}.yaml")


wildcard_constraints:
    dataset=r"[a-z0-9]+",
    subject=r"sub-[A-Za-z0-9]+",
    model=r"[A-Za-z0-9_]+",
    fold=r"fold-sub-[A-Za-z0-9]+",


def code(*parts):
    """The package's source files a rule runs, declared as inputs so edits rerun the rule."""
    files = [PKG / "__init__.py", PKG / "cli.py", PKG / "config.py", PKG / "io.py",
             PKG / "errors.py", PKG / "provenance.py"]
    for part in parts:
        p = PKG / part
        files += sorted(p.glob("*.py")) if p.is_dir() else [p]
    return [str(f) for f in files]


def dataset(name):
    return get_dataset(name, config)


def subjects(name):
    return list(dataset(name).subjects)


def test_subjects(name):
    """Test subjects of the folds to run: all, or those named by config `folds`."""
    chosen = config.get("folds")
    if not chosen:
        return subjects(name)
    chosen = [c.removeprefix("fold-") for c in chosen]
    unknown = sorted(set(chosen) - set(subjects(name)))
    if unknown:
        raise ValueError(f"config folds: {unknown} are not subjects of dataset {name!r}")
    return [s for s in subjects(name) if s in chosen]


def fold_of(wildcards):
    return loso_fold(subjects(wildcards.dataset), wildcards.fold.removeprefix("fold-"))


def features_of(dataset_name, subject_ids):
    return [f"{FEATURES}/{dataset_name}/{s}/{f}" for s in subject_ids for f in FEATURE_FILES]


def preprocess_settings():
    """The config that preprocessing depends on (and nothing else, so training edits don't
    rerun it)."""
    return json.dumps({"simulation": config["simulation"], "features": {
        "n_bins": config["features"]["n_bins"]}}, sort_keys=True)


def spec_json(wildcards):
    return json.dumps(train_spec(config, wildcards.model), sort_keys=True)


def raw_inputs(wildcards):
    """The subject's EEG header, BOLD run and (simulated data) ground-truth derivatives."""
    ds = dataset(wildcards.dataset)
    root = Path(RAW) / wildcards.dataset
    files = {"eeg": ds.eeg_path(root, wildcards.subject),
             "bold": ds.bold_path(root, wildcards.subject),
             **ds.truth_paths(root, wildcards.subject)}
    return {k: str(v) for k, v in files.items()}


def fold_metrics(wildcards):
    return expand(f"{RESULTS}/{wildcards.dataset}/{{model}}/fold-{{subject}}/metrics.json",
                  model=config["models"], subject=test_subjects(wildcards.dataset))
