"""Bad input to a verb is one line naming the option and its key (exit 2), never a traceback
from deep inside numpy, scipy or torch, nor a wrong result with exit 0 (issue 33)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from eeg2fmri.cli import main
from eeg2fmri.config import config_errors

from .conftest import REPO, tiny_spec
from .test_own_data import declared, write_subject
from .test_workflow import run

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
SUBJECTS = ["sub-01", "sub-02", "sub-03", "sub-04"]


def refused(argv: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    """Run the CLI: exit 2 and one line `eeg2fmri <verb>: error: ...` holding each needle."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"eeg2fmri {argv[0]}: error: "), err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A declared BIDS dataset of one subject (markers, BOLD 12x12x6)."""
    root = tmp_path_factory.mktemp("study")
    write_subject(root, "sub-01", 0)
    return root


def _config(root: Path, **extra: object) -> str:
    return json.dumps(declared(root, **extra))


# --- the verbs' --config JSON is checked against the config schema ---------------------------

def test_inspect_config_decimate_0_is_named(study, tmp_path, capsys):
    refused(["inspect", "--dataset", "mystudy", "--raw", str(study),
             "--config", _config(study, decimate=0), "--out", str(tmp_path / "t.tsv")], capsys,
            "--config key 'dataset_settings.mystudy.decimate': 0 is less than the minimum of 1")
    assert not (tmp_path / "t.tsv").exists()


def test_preprocess_config_grid_of_zeros_is_named(study, tmp_path, capsys):
    settings = {**json.loads(_config(study, grid=[0, 0, 0])), "features": {"n_bins": 40},
                "code": "0123"}  # the workflow's code digest rides along
    refused(["preprocess", "--dataset", "mystudy", "--raw", str(study), "--subject", "sub-01",
             "--out", str(tmp_path / "out"), "--config", json.dumps(settings)], capsys,
            "--config key 'dataset_settings.mystudy.grid.0': 0 is less than the minimum of 4")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("verb, config, needle", [
    ("fetch", {"subjects": {"mystudy": ["01"]}}, "--config key 'subjects.mystudy.0': '01' does "
                                                 "not match"),
    ("inspect", {"features": {"pairing": "nope"}}, "--config key 'features.pairing'"),
    ("inspect", {"simulation": {"n_subjects": 1}}, "--config key 'simulation.n_subjects'"),
    ("inspect", [1], "--config: [1] is a list; it must be a mapping"),
])
def test_every_verb_checks_its_config(study, tmp_path, capsys, verb, config, needle):
    cfg = {**json.loads(_config(study)), **config} if isinstance(config, dict) else config
    extra = (["--subject", "sub-01", "--manifest", str(tmp_path / "m.json"), "--local"]
             if verb == "fetch" else ["--out", str(tmp_path / "t.tsv")])
    refused([verb, "--dataset", "mystudy", "--raw", str(study), *extra,
             "--config", json.dumps(cfg)], capsys, needle)


def test_json_that_does_not_parse_is_named(capsys):
    refused(["simulate", "--out", "x", "--settings", "{n_subjects: 3}"], capsys,
            "--settings: not valid JSON")


# --- helper verbs --------------------------------------------------------------------------

@pytest.mark.parametrize("args, needle", [
    (["--arch", "nope"], "--arch 'nope' is not an architecture (known: band_mlp"),
    (["--arch", "e2fnet", "--params", '{"width": 7}'], "--params key 'width': 7 is not a "
                                                        "multiple of 8"),
    (["--arch", "e2fnet", "--params", '{"widht": 16}'], "--params key 'widht' is not a "
                                                         "setting of e2fnet (it accepts: width)"),
    (["--arch", "e2fnet", "--params", '{"training": {}}'], "--params key 'training'"),
    (["--arch", "e2fnet", "--params", "[8]"], "--params must be a JSON object"),
    (["--arch", "spec2vol", "--params", '{"embed": 8, "heads": 3}'],
     "spec2vol with --params {\"embed\": 8, \"heads\": 3}: embed_dim must be divisible"),
    (["--arch", "e2fnet", "--context", "0"], "--context must be at least 1, not 0"),
    (["--arch", "e2fnet", "--shape", "0", "8", "8"], "--shape must be at least 1 voxel"),
])
def test_params_refuses_in_one_line(capsys, args, needle):
    refused(["params", *args], capsys, needle)


@pytest.mark.parametrize("settings, needle", [
    ({"n_subjets": 4}, "--settings key 'n_subjets' is not a known setting"),
    ({"n_subjects": -1}, "--settings key 'n_subjects': -1 is less than the minimum of 3"),
    ({"grid": [32, 32]}, "--settings key 'grid'"),
])
def test_simulate_settings_are_checked(tmp_path, capsys, settings, needle):
    refused(["simulate", "--out", str(tmp_path / "sim"), "--settings", json.dumps(settings)],
            capsys, needle)
    assert not (tmp_path / "sim").exists()  # not "simulated 0 subjects", exit 0


def _train(features: Path, tmp_path: Path, spec: object, *extra: str,
           fold: str = "fold-sub-01") -> list[str]:
    return ["train", "--features", str(features), "--subjects", *SUBJECTS, "--fold", fold,
            "--spec", json.dumps(spec), "--out", str(tmp_path / "m"), *extra]


@pytest.mark.parametrize("spec, needle", [
    ({"name": "x", "arch": "band_ridge"}, "--spec: a training spec holds name, arch, "
                                          "shuffle_eeg, params, features, training (and "
                                          "selection); missing shuffle_eeg, params"),
    ({**tiny_spec(), "arch": "nope"}, "--spec key 'arch': 'nope' is not an architecture"),
    ({**tiny_spec(), "params": {"width": 12}}, "--spec key 'params.width': 12 is not a "
                                               "multiple of 8"),
    ({**tiny_spec(), "training": {"epoch": 1}}, "--spec key 'training.epoch' is not a known"),
    ({**tiny_spec(), "features": {"context": 5}}, "--spec key 'features.eeg_norm' is missing"),
    ({**tiny_spec(), "selection": "best"}, "--spec key 'selection': 'best' is not one of"),
])
def test_train_spec_is_checked(tmp_path, capsys, spec, needle):
    refused(_train(tmp_path, tmp_path, spec), capsys, needle)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("extra, needle", [
    (["--splits", '{"paper": "sub-02"}'], "--splits must be a JSON object"),
    (["--threads", "0"], "--threads must be at least 1"),
])
def test_train_options_are_checked(tmp_path, capsys, extra, needle):
    refused(_train(tmp_path, tmp_path, tiny_spec(), *extra), capsys, needle)


def test_train_unknown_fold_is_one_line(tiny_features, tmp_path, capsys):
    refused(_train(tiny_features, tmp_path, tiny_spec(), fold="fold-sub-09"), capsys,
            "--fold fold-sub-09: test subject 'sub-09' is not one of")


@pytest.fixture(scope="module")
def evaluated(tiny_features: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """band_ridge trained and evaluated on fold sub-01: the files aggregate reads."""
    out = tmp_path_factory.mktemp("band_ridge")
    spec = {**tiny_spec("band_ridge"), "params": {}}
    assert main(_train(tiny_features, out, spec, "--device", "cpu", "--no-progress")) == 0
    assert main(["evaluate", "--model", str(out / "m" / "model.pt"), "--test-features",
                 str(tiny_features / "sub-01"), "--metrics", str(out / "m" / "metrics.json"),
                 "--predictions", str(out / "m" / "predictions.nii.gz"), "--device",
                 "cpu"]) == 0
    return out / "m"


def test_aggregate_refuses_a_missing_metrics_file(evaluated, tiny_features, tmp_path, capsys):
    base = ["aggregate", "--features", str(tiny_features), "--out", str(tmp_path / "s")]
    refused([*base, "--metrics", str(evaluated / "metrics.json"), str(tmp_path / "nope.json")],
            capsys, "nope.json: this --metrics file does not exist")
    (tmp_path / "other.json").write_text('{"fold": "fold-sub-01"}')
    refused([*base, "--metrics", str(tmp_path / "other.json")], capsys,
            "lacks model, test_subject, mean, train")
    refused([*base, "--metrics", str(evaluated / "metrics.json"), "--maps"], capsys,
            "voxel_corr.nii.gz: this file, read beside --metrics metrics.json, does not exist")
    refused([*base, "--metrics", str(evaluated / "metrics.json"), "--expect-seeds", '["0"]'],
            capsys, "--expect-seeds key '0': '0' is text, not a number")
    assert not (tmp_path / "s").exists()
    assert main([*base, "--metrics", str(evaluated / "metrics.json")]) == 0


def test_ceiling_context_0_is_refused(tiny_features, tmp_path, capsys):
    refused(["ceiling", "--test-features", str(tiny_features / "sub-01"), "--fold",
             "fold-sub-01", "--context", "0", "--out", str(tmp_path / "ceiling.json"),
             "--maps", str(tmp_path / "map.nii.gz")], capsys, "--context must be at least 1")
    assert not (tmp_path / "ceiling.json").exists()


# --- synthesize --marker "" ------------------------------------------------------------------

def test_an_empty_marker_is_not_none(evaluated, tiny_raw, tmp_path, capsys):
    """The recording has R128 markers: an empty --marker is an error, not a TR grid from 0 s."""
    eeg = tiny_raw / "sub-01" / "eeg" / "sub-01_task-rest_eeg.vhdr"
    assert "R128" in eeg.with_suffix(".vmrk").read_text()
    base = ["synthesize", "--model", str(evaluated / "model.pt"), "--eeg", str(eeg),
            "--device", "cpu", "--no-progress"]
    for marker in ("", " "):
        refused([*base, "--out", str(tmp_path / "x.nii.gz"), "--marker", marker], capsys,
                "--marker is empty: give the volume marker (e.g. R128), or 'none'")
    assert not (tmp_path / "x.nii.gz").exists()
    assert main([*base, "--out", str(tmp_path / "y.nii.gz"), "--marker", "none"]) == 0
    side = json.loads((tmp_path / "y.json").read_text())
    assert side["windows"] == "every TR from 0 s"


def test_an_empty_synthesize_marker_in_the_config_is_named():
    cfg = {"synthesize": [{"eeg": "rec.vhdr", "model": "e2fnet", "marker": ""}]}
    assert config_errors(cfg, SCHEMA) == [
        "config key 'synthesize.0.marker' is empty: give the volume marker (e.g. R128), or none "
        "to window every TR from start"]


# --- the validator's advice does not presume where a value came from ------------------------

def test_quoted_seeds_in_a_yaml_file_are_not_blamed_on_the_command_line(study, tmp_path,
                                                                        capsys):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({**declared(study), "seeds": ["0", "1"]}))
    err = refused(["inspect", "--dataset", "mystudy", "--configfile", str(cfg), "--out",
                   str(tmp_path / "t.tsv")], capsys,
                  "config key 'seeds.0': '0' is text, not a number: write it without quotes")
    assert "set this key in a config file (--configfile) instead" not in err


def test_seeds_null_text_says_what_seeds_must_be():
    assert config_errors({"seeds": "null"}, SCHEMA) == [
        "config key 'seeds': 'null' is text; it must be a list of integers or null (null: "
        "write null unquoted in a config file, or `snakemake --config seeds=` with nothing "
        "after '=')"]
    assert config_errors({"seeds": 3}, SCHEMA) == [
        "config key 'seeds': 3 is an integer; it must be a list of integers or null"]


@pytest.mark.workflow
def test_snakemake_config_seeds_null_is_one_clear_line(tmp_path):
    r = run(tmp_path, "-n", "--config", "seeds=null")
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "config key 'seeds': 'null' is text; it must be a list of integers or null" in out, out
