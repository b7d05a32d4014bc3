"""What a stored thing was made with (eeg2fmri.made_with): a simulated tree, a features store and
a model record carry their settings, and their readers refuse other settings in one line."""

from __future__ import annotations

import errno
import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from eeg2fmri.cli import main
from eeg2fmri.data.simulate import write_dataset
from eeg2fmri.errors import InputError
from eeg2fmri.made_with import differences
from eeg2fmri.store import SubjectFeatures, check_settings

from .conftest import TINY, tiny_spec

SMALL = replace(TINY, n_subjects=3, n_volumes=30)


def _settings(n_bins: int, seed: int = SMALL.seed) -> dict:
    sim = {k: v for k, v in asdict(replace(SMALL, seed=seed)).items() if k != "subjects"}
    return {"simulation": sim, "features": {"n_bins": n_bins, "pairing": "markers"}}


def _preprocess(raw: Path, out: Path, settings: dict, subject: str = "sub-01") -> int:
    return main(["preprocess", "--dataset", "sim", "--raw", str(raw), "--subject", subject,
                 "--out", str(out / subject), "--config", json.dumps(settings)])


@pytest.fixture(scope="module")
def sim_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shared-raw")
    write_dataset(SMALL, root)
    return root


def test_differences_name_each_leaf_setting():
    assert differences({"a": {"b": 1, "c": [1, 2]}}, {"a": {"b": 1.0, "c": (1, 3)}}) == [
        ("a.c", [1, 2], [1, 3])]
    assert differences({"a": 1}, {}) == [("a", 1, "<not set>")]


def test_a_tree_simulated_with_another_seed_is_refused(sim_raw, tmp_path, capsys):
    """A second experiment with simulation.seed 2 sharing the first's data_root."""
    code = _preprocess(sim_raw, tmp_path, _settings(30, seed=SMALL.seed + 1))
    err = capsys.readouterr().err
    assert code == 2 and "dataset_description.json" in err
    assert f"simulation.seed {SMALL.seed} (made with) vs {SMALL.seed + 1}" in err
    assert "data_root" in err and "--forcerun simulate" in err
    assert not (tmp_path / "sub-01").exists()
    code = main(["inspect", "--dataset", "sim", "--raw", str(sim_raw), "--out",
                 str(tmp_path / "i.tsv"), "--config", json.dumps(_settings(30, seed=9))])
    assert code == 2 and "simulation.seed" in capsys.readouterr().err


def test_a_store_made_with_other_features_is_refused_by_train_and_evaluate(sim_raw, tmp_path,
                                                                           capsys):
    """60-bin stores of one experiment, read by another that asks for 30 bins."""
    made = _settings(60)
    for s in ("sub-01", "sub-02", "sub-03"):
        assert _preprocess(sim_raw, tmp_path, made, s) == 0
    store = SubjectFeatures.open(tmp_path / "sub-01")
    assert store.meta["settings"]["features"]["n_bins"] == 60
    check_settings([store], made)  # the settings it was made with pass
    with pytest.raises(InputError, match=r"features.n_bins 60 \(made with\) vs 30"):
        check_settings([store], _settings(30))
    spec = {**tiny_spec("mean_volume"), "params": {}}
    spec["features"]["n_bins"] = 60
    args = ["train", "--features", str(tmp_path), "--subjects", "sub-01", "sub-02", "sub-03",
            "--fold", "fold-sub-03", "--spec", json.dumps(spec), "--out", str(tmp_path / "m"),
            "--device", "cpu", "--no-progress"]
    assert main([*args, "--expect-features", json.dumps(_settings(30))]) == 2
    err = capsys.readouterr().err
    assert "features.n_bins 60 (made with) vs 30" in err and "--forcerun preprocess" in err
    assert not (tmp_path / "m" / "model.pt").exists()
    assert main([*args, "--expect-features", json.dumps(made)]) == 0
    evaluate = ["evaluate", "--model", str(tmp_path / "m" / "model.pt"), "--test-features",
                str(tmp_path / "sub-03"), "--metrics", str(tmp_path / "m" / "metrics.json"),
                "--predictions", str(tmp_path / "m" / "p.nii.gz"), "--device", "cpu"]
    assert main([*evaluate, "--expect-features", json.dumps(_settings(30))]) == 2
    assert "features.n_bins 60" in capsys.readouterr().err
    other_spec = {**spec, "training": {**spec["training"], "epochs": 9}}
    assert main([*evaluate, "--expect-spec", json.dumps(other_spec)]) == 2
    err = capsys.readouterr().err
    assert "spec.training.epochs 3 (made with) vs 9" in err and "--forcerun train" in err
    assert main([*evaluate, "--expect-spec", json.dumps(spec),
                 "--expect-features", json.dumps(made)]) == 0
    # the test subject's store made anew with other settings: the model was trained on others
    assert _preprocess(sim_raw, tmp_path, _settings(30), "sub-03") == 0
    assert main(evaluate) == 2
    assert "the stores" in capsys.readouterr().err


def test_a_store_mixing_two_writers_is_refused(tiny_features, tmp_path):
    d = tmp_path / "sub-01"
    d.mkdir()
    for f in (tiny_features / "sub-01").iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    eeg = np.load(d / "eeg.npy")
    np.save(d / "eeg.npy", eeg[:, :, :30])  # another run's eeg.npy beside this meta.json
    with pytest.raises(InputError, match=r"says eeg.npy is .* mixes two preprocessing runs"):
        SubjectFeatures.open(d)


def test_a_full_disk_while_preprocessing_keeps_the_previous_store(sim_raw, tmp_path,
                                                                  monkeypatch):
    assert _preprocess(sim_raw, tmp_path, _settings(60)) == 0
    before = {f.name: f.read_bytes() for f in (tmp_path / "sub-01").iterdir()}
    from eeg2fmri.preprocess import subject as writer

    real = writer.save_npy

    def full(path, array):
        if Path(path).name == "bold.npy":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, array)

    monkeypatch.setattr(writer, "save_npy", full)
    with pytest.raises(InputError, match="cannot be written: No space left"):
        writer.preprocess_subject(*_subject_args(sim_raw), tmp_path / "sub-01", n_bins=30,
                                  settings=_settings(30))
    after = {f.name: f.read_bytes() for f in (tmp_path / "sub-01").iterdir()}
    assert after == before  # eeg.npy is not the new bins beside the old meta.json
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub-01"]  # no temporary folder


def _subject_args(raw: Path) -> tuple:
    from eeg2fmri.data.datasets import get_dataset

    return get_dataset("sim", _settings(30)), raw, "sub-01"


@pytest.mark.parametrize("text, message", [
    ("training: {lr: 1.0e12}\n", "'training.lr': '1.0e12' is text, not a number: YAML reads an "
                                 "exponent without a sign as text"),
    ('subjects: {xp2: ["sub-01\\n"]}\n', "'subjects.xp2.0': 'sub-01\\n' holds a line break"),
    ("dataset_settings: {mine: {root: x, alignment: offset, offset_s: .inf}}\n",
     "'dataset_settings.mine.offset_s': inf is not a finite number"),
])
def test_config_values_that_would_mislead_are_named(tmp_path, text, message):
    import yaml

    from eeg2fmri.config import config_errors

    from .conftest import REPO

    schema = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
    problems = config_errors(yaml.safe_load(text), schema)
    assert any(message in p for p in problems), problems


def test_an_installed_package_carries_the_config_schema(tmp_path):
    """`eeg2fmri inspect --configfile` validates with the schema shipped in the wheel (it was
    looked up beside the source tree, and the checks were skipped when installed)."""
    import shutil
    import subprocess
    import sys
    import zipfile

    import eeg2fmri

    from .conftest import REPO

    shipped = Path(eeg2fmri.__file__).with_name("config.schema.yaml")
    assert shipped.read_bytes() == (REPO / "workflow/schemas/config.schema.yaml").read_bytes()
    src = tmp_path / "src"  # built from a copy: the build leaves nothing in the checkout
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "data", "results", ".snakemake", "node", "*.egg-info"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", str(src), "-w", str(tmp_path)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    [wheel] = tmp_path.glob("eeg2fmri-*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert z.read("eeg2fmri/config.schema.yaml") == shipped.read_bytes()


def test_metrics_of_another_experiment_are_refused_by_the_summary(tmp_path):
    from eeg2fmri.reporting.aggregate import check_specs

    spec = tiny_spec("e2fnet")
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"model": "e2fnet", "spec": spec}))
    check_specs([path], {"e2fnet": spec, "other": {}})
    wider = {**spec, "params": {"width": 32}}
    with pytest.raises(InputError, match=r"metrics.json: .*spec.params.width 8 \(made with\) vs "
                                         r"32 .*--forcerun train"):
        check_specs([path], {"e2fnet": wider})
