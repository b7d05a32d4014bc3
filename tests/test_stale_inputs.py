"""Nothing stale with exit 0: a user's file replaced in place reruns what was made from it (from
any working directory, even when the copy kept an older time), a results_root shared by two
experiments never serves one's summary to the other, one run at a time per directory, paths
with spaces and any letters, and a user's file is never advised deleted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
import pandas as pd
import pybv
import pytest

from eeg2fmri.data.datasets import get_dataset
from eeg2fmri.data.fetch import fetch_subject, verify_manifest
from eeg2fmri.errors import InputError
from eeg2fmri.store import SubjectFeatures

from .conftest import tool_env
from .test_own_data import GRID, declared, make_study
from .test_workflow import TINY_CONFIG, jobs, run, scheduled


def _rois(root: Path, names: tuple[str, str]) -> None:
    labels = np.zeros(GRID, np.int16)
    labels[2:6, 2:10, 1:5], labels[6:10, 2:10, 1:5] = 1, 2
    nib.save(nib.Nifti1Image(labels, np.diag([4.0, 4.0, 5.0, 1.0])), root / "rois.nii.gz")
    (root / "rois.tsv").write_text("index\tname\n" + "".join(
        f"{i + 1}\t{n}\n" for i, n in enumerate(names)))


@pytest.mark.workflow
def test_a_file_replaced_in_place_reruns_what_was_made_from_it(tmp_path):
    study = make_study(tmp_path / "my study")
    _rois(study, ("left motor", "right motor"))
    config = {"datasets": ["mystudy"], **declared(study),
              "models": ["mean_volume"], "features": {"n_bins": 40, "context": 4},
              "data_root": str(tmp_path / "data"), "results_root": str(tmp_path / "results")}
    config["dataset_settings"]["mystudy"]["rois"] = {"image": "rois.nii.gz",
                                                     "labels": "rois.tsv"}
    first, second = tmp_path / "A", tmp_path / "B"
    first.mkdir(), second.mkdir()
    r = run(first, "--cores", "2", config=config)
    assert r.returncode == 0, r.stdout + r.stderr
    roi_table = tmp_path / "results" / "mystudy" / "summary" / "roi.csv"
    assert "left motor" in roi_table.read_text()
    features = tmp_path / "data" / "features" / "mystudy" / "sub-03"
    before = np.asarray(SubjectFeatures.open(features).bold).copy()

    # sub-03's BOLD replaced by other data: from another working directory, its fetch (which
    # records the file anew) and preprocessing rerun, and everything downstream
    bold = study / "sub-03" / "func" / "sub-03_task-motor_bold.nii.gz"
    img = nib.load(bold)
    data = np.asarray(img.dataobj)
    nib.save(nib.Nifti1Image(data[::-1].copy(), img.affine, img.header), bold)
    r = run(second, "-n", "--cores", "2", config=config)
    assert r.returncode == 0, r.stdout + r.stderr
    assert jobs(r.stdout).get("fetch") == 1 and jobs(r.stdout).get("preprocess") == 1, r.stdout

    # the ROI table overwritten with other names by a copy that keeps an older time (cp -p)
    stat = (study / "rois.tsv").stat()
    _rois(study, ("visual", "auditory"))
    os.utime(study / "rois.tsv", ns=(stat.st_atime_ns, stat.st_mtime_ns - 10**9))
    r = run(second, "--cores", "2", config=config)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "delete" not in out.lower()
    after = np.asarray(SubjectFeatures.open(features).bold)
    assert not np.array_equal(before, after)
    table = roi_table.read_text()
    assert "visual" in table and "auditory" in table and "left motor" not in table
    r = run(second, "-n", "--cores", "2", config=config)
    assert "Nothing to be done" in r.stdout + r.stderr, r.stdout


def test_a_local_file_changed_is_recorded_anew_and_never_advised_deleted(tmp_path, capsys):
    study = make_study(tmp_path / "study", n_subjects=2)
    ds = get_dataset("mystudy", declared(study))
    manifest = tmp_path / "m.json"
    files = fetch_subject(ds, "sub-01", study, manifest, local=True, progress=False)
    assert any(f.name.endswith("_bold.json") for f in files)  # the sidecar is read: recorded
    eeg = study / "sub-01" / "eeg" / "sub-01_task-motor_eeg.eeg"
    eeg.write_bytes(eeg.read_bytes()[::-1])
    with pytest.raises(InputError) as e:
        verify_manifest(manifest, study)
    assert "run snakemake again" in str(e.value) and "delete" not in str(e.value)
    fetch_subject(ds, "sub-01", study, manifest, local=True, progress=False)
    assert "recorded anew" in capsys.readouterr().out
    verify_manifest(manifest, study)


SEEDED = {**TINY_CONFIG, "models": ["band_ridge"], "seeds": [0, 1]}


@pytest.mark.workflow
def test_a_shared_results_root_never_serves_another_experiments_summary(tmp_path):
    roots = {"data_root": str(tmp_path / "data"), "results_root": str(tmp_path / "results")}
    per_fold = tmp_path / "results" / "sim" / "summary" / "per_fold.csv"
    for name, extra in (("A", {}), ("B", {"seeds": [0, 2]}),
                        ("C", {"seeds": [0, 2], "models": ["band_ridge", "mean_volume"]})):
        (tmp_path / name).mkdir()
        r = run(tmp_path / name, "--cores", "2", config={**SEEDED, **roots, **extra})
        assert r.returncode == 0, r.stdout + r.stderr
        table = pd.read_csv(per_fold)
        table = table[~table["model"].str.startswith("ceiling")]
        want = extra.get("seeds", SEEDED["seeds"])
        assert sorted(set(table["seed"].astype(int))) == want, (name, table)
        assert sorted(set(table["model"])) == sorted(extra.get("models", SEEDED["models"]))


def test_a_second_run_in_a_directory_is_refused_in_one_line(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from eeg2fmri.io import hold_directory; "
         "assert hold_directory(sys.argv[1]) is None; print('held', flush=True); "
         "time.sleep(60)", str(tmp_path / ".snakemake")], stdout=subprocess.PIPE, text=True,
        env=tool_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        r = run(tmp_path, "-n", "--cores", "1")
        out = r.stdout + r.stderr
        assert r.returncode != 0 and "another snakemake run holds this directory" in out, out
        assert "rerun-incomplete" not in out and "Traceback" not in out
    finally:
        holder.kill()
        holder.wait()
    r = run(tmp_path, "-n", "--cores", "1")  # the holder gone, the lock goes with it
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.workflow
def test_paths_with_spaces_and_any_letters_never_lose_a_file(tmp_path):
    parent = tmp_path / "x"
    parent.mkdir()
    (parent / "study").write_text("the user's file\n")  # beside the data_root "study data ü"
    workdir = tmp_path / "run dir é"
    workdir.mkdir()
    recording = tmp_path / "EEG only ß" / "rec ording ü.vhdr"
    config = {**TINY_CONFIG, "models": ["band_ridge"], "data_root": str(parent / "study data ü"),
              "results_root": str(parent / "résultats 1"),
              "synthesize": [{"eeg": str(recording), "model": "band_ridge",
                              "marker": "Response/R  1"}]}
    r = run(workdir, "--cores", "2", "simulate", config=config)  # the recording to synthesize
    assert r.returncode == 0, r.stdout + r.stderr
    src = parent / "study data ü" / "raw" / "sim" / "sub-01" / "eeg"
    recording.parent.mkdir()
    raw = mne.io.read_raw_brainvision(src / "sub-01_task-rest_eeg.vhdr", verbose="error")
    onsets = raw.time_as_index(raw.annotations.onset[raw.annotations.description
                                                      == "Response/R128"], use_rounding=True)
    pybv.write_brainvision(  # the volume markers as "Response/R  1": a marker with spaces
        data=raw.get_data(), sfreq=raw.info["sfreq"], ch_names=raw.ch_names,
        folder_out=recording.parent, fname_base=recording.stem, unit="µV", resolution=0.01,
        events=[{"onset": int(o), "description": 1, "type": "Response"} for o in onsets])
    r = run(workdir, "--cores", "2", config=config)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (parent / "study").read_text() == "the user's file\n"
    assert "simulated 3 subjects" in (parent / "study data ü" / "logs" / "sim" /
                                      "simulate.log").read_text()
    out = parent / "résultats 1" / "sim" / "synthesized"
    assert [p.name for p in out.glob("*.nii.gz")] == ["rec_ording_ü_band_ridge_fold-sub-01.nii.gz"]
    assert (parent / "résultats 1" / "sim" / "summary" / "summary.md").is_file()
    shutil.rmtree(parent / "study data ü")


@pytest.mark.workflow
def test_seeds_with_synthesis_train_no_unseeded_copy_and_unknown_folds_are_one_line(tmp_path):
    config = {**SEEDED, "synthesize": [{"eeg": str(tmp_path / "rec.edf"),
                                        "model": "band_ridge"}]}
    (tmp_path / "rec.edf").write_text("")
    r = run(tmp_path, "-n", "--cores", "2", config=config)
    assert r.returncode == 0, r.stdout + r.stderr
    trained = [out[0] for out in scheduled(r.stdout, "train_seeded")]
    assert jobs(r.stdout).get("train", 0) == 0 and len(trained) == 2 * 3
    [inputs] = scheduled(r.stdout, "synthesize", "input")
    assert inputs[0].endswith("results/sim/band_ridge/seed-0/fold-sub-01/model.pt")
    r = run(tmp_path, "-n", "--cores", "2", config={**TINY_CONFIG, "folds": ["sub-09"]})
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "config folds: ['fold-sub-09'] are not folds" in out, out
    assert "Traceback" not in out and "InputFunctionException" not in out


def test_an_mff_recording_is_fetched_from_a_local_copy(tiny_raw, tmp_path):
    from .test_formats import _to_mff

    root = tmp_path / "mff"
    (root / "sub-01" / "eeg").mkdir(parents=True)
    shutil.copytree(tiny_raw / "sub-01" / "func", root / "sub-01" / "func")
    _to_mff(tiny_raw / "sub-01" / "eeg" / "sub-01_task-rest_eeg.vhdr",
            root / "sub-01" / "eeg" / "sub-01_task-rest_eeg.mff")
    ds = get_dataset("mff", {"dataset_settings": {"mff": {
        "root": str(root), "subjects": ["sub-01"], "volume_marker": "TREV"}}})
    files = fetch_subject(ds, "sub-01", root, tmp_path / "m.json", local=True, progress=False)
    assert any(f.name == "signal1.bin" for f in files) and all(f.is_file() for f in files)
    verify_manifest(tmp_path / "m.json", root)


@pytest.mark.parametrize("name", ["ceiling", "summary"])
def test_a_model_named_like_a_results_folder_is_refused(name):
    from eeg2fmri.config import config_errors

    cfg = {"models": [name], "model_settings": {name: {"arch": "band_ridge"}}}
    problems = config_errors(cfg, str(Path(__file__).parents[1] / "workflow" / "schemas" /
                                      "config.schema.yaml"))
    assert any(f"'model_settings.{name}'" in p and "another name" in p for p in problems)


def test_a_recording_folder_has_a_digest_of_its_files(tmp_path):
    from eeg2fmri.data.download import recording_sha256

    rec = tmp_path / "rec.mff"
    rec.mkdir()
    (rec / "info.xml").write_text("<info/>")
    (rec / "signal1.bin").write_bytes(b"\0" * 8)
    first = recording_sha256(rec)
    (rec / "signal1.bin").write_bytes(b"\1" * 8)
    assert recording_sha256(rec) != first and len(first) == 64


def test_inspect_out_through_a_link_into_the_dataset_is_refused(tmp_path, capsys):
    import json

    from eeg2fmri.cli import main

    study = make_study(tmp_path / "study", n_subjects=1)
    before = (study / "participants.tsv").read_text()
    (tmp_path / "link").symlink_to(study)
    (tmp_path / "file-link.tsv").symlink_to(study / "participants.tsv")
    cfg = json.dumps(declared(study))
    for out in (tmp_path / "link" / "participants.tsv", tmp_path / "file-link.tsv"):
        rc = main(["inspect", "--dataset", "mystudy", "--config", cfg, "--out", str(out)])
        assert rc == 2 and "inspect never writes into a dataset" in capsys.readouterr().err
    assert (study / "participants.tsv").read_text() == before


def test_a_folder_the_system_refuses_is_one_line(monkeypatch, capsys):
    from eeg2fmri import cli

    def refuse(_):
        raise PermissionError(13, "Permission denied", "/r/sim/summary/summary.md")

    monkeypatch.setattr(cli, "cmd_env", refuse)
    assert cli.main(["env"]) == 2
    err = capsys.readouterr().err
    assert err == ("eeg2fmri env: error: /r/sim/summary/summary.md: cannot be written or read: "
                   "Permission denied\n")


def test_a_context_longer_than_every_run_is_one_line(tiny_features, tmp_path, capsys):
    from eeg2fmri.cli import main

    rc = main(["ceiling", "--test-features", str(tiny_features / "sub-01"), "--fold",
               "fold-sub-01", "--context", "100", "--out", str(tmp_path / "c.json"),
               "--maps", str(tmp_path / "c.nii.gz")])
    err = capsys.readouterr().err
    assert rc == 2 and "features.context = 100" in err and "Traceback" not in err


def test_a_grid_larger_than_the_bold_is_one_problem_for_inspect_and_preprocess(tmp_path):
    from .test_own_data import _one_subject, _preprocess, _problems

    root, _ = _one_subject(tmp_path)
    [problem] = _problems(root, grid=[64, 12, 6])
    assert "dataset_settings.mystudy.grid [64, 12, 6] is larger than the BOLD's grid" in problem
    with pytest.raises(InputError, match="can only be reduced"):
        _preprocess(root, tmp_path / "out", grid=[64, 12, 6])
