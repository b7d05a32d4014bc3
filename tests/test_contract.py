"""The model contract, checked for every registered architecture (tiny shapes), and the package's
layers and single sources of truth. A new model is checked here without anyone remembering to."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from eeg2fmri.config import FEATURE_DEFAULTS, TrainConfig, accepted_settings, config_errors
from eeg2fmri.device import pick_device
from eeg2fmri.models import ARCHITECTURES, model_class
from eeg2fmri.models.base import Model
from eeg2fmri.pairs import EEGNorm, PairDataset
from eeg2fmri.record import load_model, load_record
from eeg2fmri.sequences import SequenceDataset, SequenceTasks
from eeg2fmri.sources import PKG, VERB_MODULES, import_closure
from eeg2fmri.store import SubjectFeatures
from eeg2fmri.training.folds import loso_fold
from eeg2fmri.training.trainer import train_fold

from .conftest import REPO, TINY_PARAMS, arch_spec

SUBJECTS = ["sub-01", "sub-02", "sub-03", "sub-04"]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def test_every_architecture_has_tiny_settings_it_accepts():
    assert sorted(TINY_PARAMS) == sorted(ARCHITECTURES)
    for arch, params in TINY_PARAMS.items():
        assert set(params) <= set(accepted_settings(arch)), arch


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_model_contract(arch, tiny_features, tmp_path):
    """Declares input and kind; trains a few steps through the generic loop; its record loads
    with weights_only=True and predicts the right shapes; a run killed after one epoch and
    resumed ends with the same weights as one that was not."""
    cls = model_class(arch)
    assert issubclass(cls, Model) and cls.input in ("spectra", "raw")
    assert cls.kind in ("pair", "sequence", "closed_form")
    spec = arch_spec(arch, epochs=2)
    fold = loso_fold(SUBJECTS, "sub-01")
    straight = train_fold(spec, fold, tiny_features, tmp_path / "a", progress=False)
    assert np.isfinite(straight["summary"]["best_val_loss"])
    model, record = load_model(tmp_path / "a" / "model.pt", pick_device("cpu"))
    assert torch.load(tmp_path / "a" / "model.pt", weights_only=True)["arch"] == arch
    assert record["eeg"]["input"] == cls.input
    test = [SubjectFeatures.open(tiny_features / "sub-01")]
    norm = EEGNorm.from_state(record["eeg"]["norm"])
    if cls.kind == "sequence":
        settings, _ = SequenceTasks.split(record["sequence"])
        x, y = next(SequenceDataset(test, 5, norm, settings, crops=False).batches(1))
    else:
        x, y = next(PairDataset(test, 5, norm).batches(3))
    with torch.no_grad():
        out = model(x)
    assert out.shape == y.shape and torch.isfinite(out).all()
    # resume after a kill ends identical
    assert train_fold(spec, fold, tiny_features, tmp_path / "b", stop_after_epoch=1,
                      progress=False) is None or cls.kind == "closed_form"
    resumed = train_fold(spec, fold, tiny_features, tmp_path / "b", progress=False)
    a = load_record(tmp_path / "a" / "model.pt")["state"]
    b = load_record(tmp_path / "b" / "model.pt")["state"]
    assert resumed is not None and a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"{arch}: {k}")


def test_schema_defaults_are_the_code_defaults():
    schema = yaml.safe_load(SCHEMA.read_text())["properties"]
    training = {k: v["default"] for k, v in schema["training"]["properties"].items()}
    assert training == dataclasses.asdict(TrainConfig())
    features = {k: v["default"] for k, v in schema["features"]["properties"].items()}
    assert features == FEATURE_DEFAULTS
    entries = schema["model_settings"]["default"]
    assert {e["arch"] for e in entries.values() if "arch" in e} <= set(ARCHITECTURES)


@pytest.mark.parametrize("entry, message", [
    ({"e2fnet": {"arch": "e2fnet", "widht": 32}},
     "'model_settings.e2fnet.widht' is not a setting of e2fnet (it accepts: width)"),
    ({"e2fnet": {"arch": "e2fnet", "heads": 4}},
     "'model_settings.e2fnet.heads' is not a setting of e2fnet"),
    ({"mean_volume": {"arch": "mean_volume", "width": 8}},
     "'model_settings.mean_volume.width' is not a setting of mean_volume (it accepts: none)"),
    ({"a": {"same_as": "b"}, "b": {"same_as": "a"}},
     "'model_settings.a.same_as': a loop (a -> b -> a)"),
    ({"a": {"same_as": "nope"}}, "'model_settings.a.same_as': 'nope' is not an entry"),
    ({"x": {"arch": "e2fnett"}}, "'model_settings.x.arch': 'e2fnett' is not an architecture"),
])
def test_model_settings_are_checked_against_each_architecture(entry, message):
    lines = config_errors({"model_settings": entry}, str(SCHEMA))
    assert any(message in line for line in lines), lines
    assert all("\n" not in line for line in lines)


# --- layers ---------------------------------------------------------------------------------

# package (or module) -> the packages of ours it must not import
FORBIDDEN = {
    "models": ("training", "evaluation", "reporting", "preprocess", "data", "cli", "pairs",
               "sequences", "store", "record"),
    "store": ("training", "evaluation", "reporting", "preprocess", "data", "cli"),
    "pairs": ("training", "evaluation", "reporting", "preprocess", "data", "cli"),
    "sequences": ("training", "evaluation", "reporting", "preprocess", "data", "cli"),
    "record": ("training", "evaluation", "reporting", "preprocess", "data", "cli"),
    "training": ("evaluation", "reporting", "preprocess", "data", "cli"),
    "evaluation": ("training", "reporting", "cli"),
    "reporting": ("training", "cli"),
}


def _imports(path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m.split(".")[1] for m in found if m.startswith("eeg2fmri.")}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_point_downward(layer):
    files = sorted((PKG / layer).glob("*.py")) if (PKG / layer).is_dir() else [PKG / f"{layer}.py"]
    for f in files:
        bad = _imports(f) & set(FORBIDDEN[layer])
        assert not bad, f"{f.relative_to(PKG)} imports {sorted(bad)}"


def test_importing_a_model_loads_neither_mne_nor_the_training_code():
    code = ("import sys, eeg2fmri.models.e2fnet, eeg2fmri.models.ntvit; "
            "bad = [m for m in sys.modules if m == 'mne' or m.startswith(('eeg2fmri.training', "
            "'eeg2fmri.data', 'eeg2fmri.preprocess', 'eeg2fmri.evaluation'))]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("verb", sorted(VERB_MODULES))
def test_each_rules_code_digest_covers_what_its_verb_imports(verb):
    """The digest a rule passes covers every package file the verb loads when it runs."""
    code = (f"import sys, eeg2fmri.cli; [__import__(m) for m in {VERB_MODULES[verb]!r}]; "
            "print('\\n'.join(m.__file__ for n, m in list(sys.modules.items()) "
            "if n.startswith('eeg2fmri') and getattr(m, '__file__', None)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {p for p in out.stdout.split()}
    covered = {str(p) for p in import_closure(VERB_MODULES[verb])}
    assert loaded <= covered, sorted(loaded - covered)


def test_what_the_config_check_reads_from_the_sources_is_what_the_classes_say():
    """Validating a config reads each architecture's kind, input and settings from its source
    (no torch); here against the imported classes."""
    import dataclasses
    import inspect

    from eeg2fmri.config import SEQUENCE_SETTINGS
    from eeg2fmri.models import ARCHITECTURES, BUILD_ARGS, describe, model_class
    from eeg2fmri.sequences import SequenceTasks

    for arch in ARCHITECTURES:
        cls, info = model_class(arch), describe(arch)
        params = [n for n, p in inspect.signature(cls.__init__).parameters.items()
                  if n not in BUILD_ARGS and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        assert (info.kind, info.input, list(info.settings)) == (cls.kind, cls.input, params)
    assert SEQUENCE_SETTINGS == tuple(f.name for f in dataclasses.fields(SequenceTasks))


def test_validating_the_config_and_building_the_dag_import_neither_torch_nor_mne():
    code = ("import sys, yaml; from eeg2fmri.config import config_errors, train_spec; "
            "cfg = yaml.safe_load(open('config.yaml')); "
            "assert not config_errors(cfg, 'workflow/schemas/config.schema.yaml'); "
            "[train_spec(cfg, m) for m in cfg['model_settings']]; "
            "import eeg2fmri.data.datasets, eeg2fmri.store, eeg2fmri.sources, eeg2fmri.io; "
            "bad = [m for m in ('torch', 'mne') if m in sys.modules]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_every_cli_verb_has_its_code_digest():
    from eeg2fmri.cli import parser

    verbs = parser()._subparsers._group_actions[0].choices  # noqa: SLF001
    assert set(VERB_MODULES) == set(verbs)
    assert "eeg2fmri.preprocess.subject" in VERB_MODULES["preprocess"]
