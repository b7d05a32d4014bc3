"""Inputs that disagree with themselves or are impossible, each refused in one line naming the
file, both values and the config key (issue 33), and refused alike by inspect and preprocessing:
EEG in volts labelled microvolts, ROI label images and tables, byte-identical copies of a
recording, a simulated scanner rate that cannot be made, and the advice the refusals give."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pybv
import pytest
import yaml

from eeg2fmri.cli import main
from eeg2fmri.data.datasets import get_dataset
from eeg2fmri.data.sim_settings import SimConfig
from eeg2fmri.data.simulate import write_dataset
from eeg2fmri.errors import InputError
from eeg2fmri.preprocess.inspect import inspect_dataset
from eeg2fmri.preprocess.subject import preprocess_subject
from eeg2fmri.store import SubjectFeatures

from .conftest import REPO, TINY
from .test_own_data import GRID, N_VOL, SKIP, declared, write_subject


def _problems(root: Path, **extra: object) -> list[str]:
    ds = get_dataset("mystudy", declared(root, **extra))
    return [str(p) for p in inspect_dataset(ds, root)[1]]


def _preprocess(root: Path, out: Path, subject: str = "sub-01", **extra: object) -> dict:
    ds = get_dataset("mystudy", declared(root, **extra))
    return preprocess_subject(ds, root, subject, out / subject, n_bins=40)


def _refused_alike(root: Path, out: Path, pattern: str, subject: str = "sub-01",
                   **extra: object) -> str:
    """inspect's one problem matches `pattern`, and preprocessing refuses with that line."""
    [problem] = [p for p in _problems(root, **extra) if re.search(pattern, p)]
    with pytest.raises(InputError) as e:
        _preprocess(root, out, subject, **extra)
    assert str(e.value) == problem and "\n" not in problem
    assert not (out / subject).exists()
    return problem


# --- 1. EEG in volts labelled microvolts ------------------------------------------------------


def _relabel_resolution(vhdr: Path, resolution: str) -> None:
    """The header's channel lines (Ch1=name,ref,resolution,unit) given another resolution."""
    text = vhdr.read_text(encoding="utf-8")
    vhdr.write_text(re.sub(r"^(Ch\d+=[^,]*,[^,]*,)[^,]*(,.*)$", rf"\g<1>{resolution}\g<2>", text,
                           flags=re.M), encoding="utf-8")


def test_eeg_in_volts_labelled_microvolts_is_refused_by_inspect_and_preprocessing(tmp_path):
    root = tmp_path / "ds"
    for i in range(3):
        write_subject(root, f"sub-{i + 1:02d}", i)
    vhdr = root / "sub-02" / "eeg" / "sub-02_task-motor_eeg.vhdr"
    _relabel_resolution(vhdr, "0.00000001")  # was 0.01 uV: samples now read 1e-6 as large
    problem = _refused_alike(root, tmp_path / "out", "EEG amplitude", "sub-02")
    assert problem.startswith(f"{vhdr}: EEG amplitude ")
    assert "times the dataset's median" in problem and "unit mismatch" in problem
    assert "config subjects.mystudy" in problem
    # the other subjects are untouched: their store is made
    assert _preprocess(root, tmp_path / "out", "sub-01")["runs"][0]["amplitude_uv"] > 1
    # alone (no dataset to compare with), 1e-6 uV is no EEG
    alone = _refused_alike(root, tmp_path / "alone", "EEG amplitude", "sub-02",
                           subjects=["sub-02"])
    assert "outside the 0.001 to 1e+06 uV of any EEG" in alone


def test_another_gain_is_refused_until_accepted_but_volts_never_are(tmp_path):
    root = tmp_path / "ds"
    for i in range(3):
        write_subject(root, f"sub-{i + 1:02d}", i)
    vhdr = root / "sub-02" / "eeg" / "sub-02_task-motor_eeg.vhdr"
    _relabel_resolution(vhdr, "0.5")  # 50x the others' gain: EEG of ~100 uV, still EEG
    problem = _refused_alike(root, tmp_path / "out", "EEG amplitude", "sub-02")
    assert "set dataset_settings.mystudy.accept_amplitude: true" in problem
    assert _problems(root, accept_amplitude=True) == []
    assert _preprocess(root, tmp_path / "ok", "sub-02", accept_amplitude=True)["runs"]
    _relabel_resolution(vhdr, "0.00000001")  # volts as microvolts: refused, accepted or not
    problem = _refused_alike(root, tmp_path / "volts", "EEG amplitude", "sub-02",
                             accept_amplitude=True)
    assert "outside the 0.001 to 1e+06 uV" in problem and "accept_amplitude" not in problem


# --- 2. ROI label images and tables -----------------------------------------------------------


@pytest.fixture(scope="module")
def one(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("one")
    write_subject(root, "sub-01", 0)
    return root


def _rois(root: Path, labels: dict[str, float], table: str | None, dtype: type = np.float32,
          shape: tuple[int, ...] = GRID) -> dict:
    """A label image on the BOLD's grid: `labels` {block: value} (blocks A-D, 32 voxels
    each), and its table."""
    data = np.zeros(shape, dtype)
    for block, value in labels.items():
        data[BLOCKS[block]] = value
    nib.save(nib.Nifti1Image(data, np.diag([4.0, 4.0, 5.0, 1.0])), root / "rois.nii.gz")
    entry = {"image": "rois.nii.gz"}
    if table is not None:
        (root / "rois.tsv").write_text(table)
        entry["labels"] = "rois.tsv"
    return {"rois": entry}


BLOCKS = {"A": np.s_[2:6, 2:6, 1:3], "B": np.s_[6:10, 6:10, 3:5], "C": np.s_[2:6, 6:10, 1:3],
          "D": np.s_[6:10, 2:6, 3:5]}
TABLE = "index\tname\n1\tleft\n2\tright\n3\tfront\n4\tback\n"


@pytest.mark.parametrize("labels, table, message", [
    (dict(A=1.4, B=2.6, C=3.5, D=4.5), TABLE, r"holds 1\.4 at voxel \(2, 2, 1\) \(128 "
     r"voxels not a non-negative whole number\): labels that are not whole numbers"),
    (dict(A=0.3, B=0.9), TABLE, r"holds 0\.3 .*: a probability map \(values 0\.\.1\), not "
     r"labels"),
    (dict(A=1, B=-1), TABLE, r"holds -1 at voxel \(6, 6, 3\) .*: a negative label"),
    (dict(A=1, B=2), "1\tleft\n2\tright\n", r"rois.tsv: the ROI table \(dataset_settings."
     r"mystudy.rois.labels\) must begin with a header naming its columns index and name"),
    (dict(A=1, B=2), "index\tname\n1\tleft\n2\tright\n2\tother\n",
     r"names index 2 twice: 'right' and 'other' \(line 4\)"),
    (dict(A=1, B=2), "index\tname\n1\tleft\n2\tleft\n", r"gives the name 'left' to two "
     r"indices"),
    (dict(A=1, B=7), TABLE, r"labels \[7\] of the ROI image rois.nii.gz have no row in the "
     r"ROI table \(dataset_settings.mystudy.rois.labels\)"),
])
def test_a_roi_image_or_table_that_cannot_be_read_as_labels_is_refused(one, tmp_path, labels,
                                                                       table, message):
    extra = _rois(one, labels, table)
    problem = _refused_alike(one, tmp_path / "out", message, **extra)
    assert "dataset_settings.mystudy.rois" in problem


def test_roi_labels_past_int16_and_sparse_are_renumbered_keeping_their_names(one, tmp_path):
    extra = _rois(one, dict(A=40000, B=3), "index\tname\tcolor\n0\tnone\t\n3\tsmall\tred\n"
                                         "40000\tlarge\tblue\n", dtype=np.int32)
    assert _problems(one, **extra) == []
    meta = _preprocess(one, tmp_path / "out", **extra)
    assert meta["rois"] == ["small", "large"]  # labels 3 and 40000 as 1 and 2
    rois = SubjectFeatures.open(tmp_path / "out" / "sub-01").rois
    assert rois.dtype == np.int16 and sorted(np.unique(rois)) == [0, 1, 2]
    assert (rois[2, 2, 2] == 2) and (rois[3, 6, 6] == 1)  # [Z, X, Y]


def test_a_4d_image_that_is_no_probability_maps_is_refused(one, tmp_path):
    extra = _rois(one, dict(A=500.0), None, shape=(*GRID, 2))
    _refused_alike(one, tmp_path / "out", r"holds one probability map \(0\.\.1\) per region, but "
                                          r"its values run from 0 to 500", **extra)


# --- 3. byte-identical copies of a recording --------------------------------------------------


def test_a_byte_identical_copy_of_another_subjects_eeg_is_refused(tmp_path):
    root = tmp_path / "ds"
    for i in range(3):
        write_subject(root, f"sub-{i + 1:02d}", i)
    original = root / "sub-01" / "eeg" / "sub-01_task-motor_eeg.eeg"
    copy = root / "sub-02" / "eeg" / "sub-02_task-motor_eeg.eeg"
    shutil.copyfile(original, copy)  # its own header and markers, the other's samples
    [problem] = _problems(root)
    assert problem.startswith(f"{copy}: sub-02 task-motor reads a byte-identical copy of "
                              f"{original}, which sub-01 task-motor reads (SHA-256 ")
    assert "config subjects.mystudy" in problem
    for subject in ("sub-02", "sub-01"):  # neither may use the copied recording
        with pytest.raises(InputError) as e:
            _preprocess(root, tmp_path / "out", subject)
        assert str(e.value) == problem
    _preprocess(root, tmp_path / "out", "sub-03")  # the others are untouched


def test_byte_identical_runs_of_one_subject_and_bold_copies_are_refused(tmp_path):
    root = tmp_path / "ds"
    write_subject(root, "sub-01", 0)
    write_subject(root, "sub-01", 3, task="rest")
    write_subject(root, "sub-02", 1)
    eeg = root / "sub-01" / "eeg"
    shutil.copyfile(eeg / "sub-01_task-motor_eeg.eeg", eeg / "sub-01_task-rest_eeg.eeg")
    bold = root / "sub-02" / "func" / "sub-02_task-motor_bold.nii.gz"
    shutil.copyfile(root / "sub-01" / "func" / "sub-01_task-rest_bold.nii.gz", bold)
    entry = {"task": None}
    problems = _problems(root, **entry)
    assert len(problems) == 2, problems
    assert any("sub-01 task-rest reads a byte-identical copy of" in p and
               "sub-01_task-motor_eeg.eeg, which sub-01 task-motor reads" in p for p in problems)
    assert any(p.startswith(f"{bold}: sub-02 task-motor reads a byte-identical copy of")
               for p in problems)
    with pytest.raises(InputError, match="byte-identical copy"):
        _preprocess(root, tmp_path / "out", "sub-02", **entry)


# --- 4. a simulated scanner rate that cannot be made ------------------------------------------


def test_a_scanner_rate_that_is_no_multiple_of_fs_is_refused(tmp_path):
    message = (r"^simulation.scanner_fs: 1100 Hz is not a whole multiple of simulation.fs "
               r"\(250 Hz\): .*use one of 250, 500, 750, 1000, 1250, \.\.\. Hz$")
    with pytest.raises(InputError, match=message):
        get_dataset("sim", {"simulation": {"scanner": True, "scanner_fs": 1100}})
    with pytest.raises(InputError, match=message):
        write_dataset(replace(TINY, scanner=True, scanner_fs=1100.0), tmp_path / "sim")
    assert not (tmp_path / "sim").exists()
    assert main(["simulate", "--out", str(tmp_path / "cli"), "--settings",
                 json.dumps({"scanner": True, "scanner_fs": 1100})]) != 0
    assert SimConfig(scanner=True, scanner_fs=1250.0).scanner_factor() == 5
    assert SimConfig(scanner_fs=1100.0).scanner_fs == 1100.0  # unused without the scanner


# --- 5. advice that resolves the problem ------------------------------------------------------


def test_the_simulated_scanner_refusal_names_a_key_the_config_has(tmp_path):
    sim = replace(TINY, n_subjects=1, n_volumes=20, scanner=True)
    write_dataset(sim, tmp_path / "raw")
    ds = get_dataset("sim", {"simulation": asdict(sim)})
    [problem] = [str(p) for p in inspect_dataset(ds, tmp_path / "raw")[1]
                 if "gradient artefact" in str(p)]
    assert "set simulation.mr_artefacts.gradient: correct, or keep" in problem
    with pytest.raises(InputError, match=r"Set simulation.mr_artefacts.gradient: correct"):
        preprocess_subject(ds, tmp_path / "raw", "sub-01", tmp_path / "out", n_bins=30)
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    assert "mr_artefacts" in schema["properties"]["simulation"]["properties"]


def test_fewer_markers_than_volumes_suggest_dropping_the_unmarked_volumes_first(tmp_path):
    root = tmp_path / "ds"
    write_subject(root, "sub-01", 0, n_markers=N_VOL + SKIP - 4)
    [problem] = _problems(root)
    assert f"{N_VOL - 4} volume markers" in problem and f"has {N_VOL} volumes" in problem
    assert "4 volume(s) without a marker; set dataset_settings.mystudy.mismatch: drop_end to " \
           "pair from the first volume and drop the last 4; or " in problem
    assert "skip_markers" not in problem  # skipping fewer would not make up 4
    # one missing, SKIP skipped: skipping one fewer is the third way
    write_subject(root, "sub-01", 0, n_markers=N_VOL + SKIP - 1)
    [problem] = _problems(root)
    assert problem.index("drop_end") < problem.index("drop_start") < problem.index(
        "dataset_settings.mystudy.skip_markers: 1 if 1 of the skipped markers")


def test_more_markers_than_volumes_suggest_the_skip_that_pairs_them(tmp_path):
    root = tmp_path / "ds"
    write_subject(root, "sub-01", 0, n_vol=N_VOL - 5, n_markers=N_VOL + SKIP)
    [problem] = _problems(root)
    assert f"dataset_settings.mystudy.skip_markers: {SKIP + 5};" in problem
    assert _problems(root, skip_markers=SKIP + 5) == []


def _short_recording(root: Path, seconds: float = 11.0, alpha: float = 3.0) -> None:
    """A clean 11-s recording at 1 kHz (a strong 10 Hz alpha rhythm over white noise), a
    volume marker every 2 s from 0.5 s, and its 5-volume BOLD."""
    fs, tr, n_vol = 1000.0, 2.0, 5
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * fs)) / fs
    data = 2e-6 * (rng.standard_normal((8, len(t)))
                   + alpha * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 6, (8, 1))))
    (root / "sub-01" / "eeg").mkdir(parents=True)
    pybv.write_brainvision(data=data, sfreq=fs, ch_names=[f"E{i}" for i in range(8)],
                           fname_base="sub-01_task-motor_eeg", folder_out=root / "sub-01" / "eeg",
                           unit="µV", resolution=0.01,
                           events=[{"onset": int(fs * (0.5 + k * tr)), "description": "Volume",
                                    "type": "Comment"} for k in range(n_vol)])
    img = nib.Nifti1Image(100 + np.random.default_rng(1).random((*GRID, n_vol)).astype(
        np.float32) * np.arange(1, 7)[None, None, :, None], np.diag([4.0, 4.0, 5.0, 1.0]))
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((4.0, 4.0, 5.0, tr))
    (root / "sub-01" / "func").mkdir()
    nib.save(img, root / "sub-01" / "func" / "sub-01_task-motor_bold.nii.gz")


def test_a_short_clean_recording_is_too_short_to_measure_not_an_artefact(tmp_path, capsys):
    root = tmp_path / "ds"
    _short_recording(root)
    ds = get_dataset("mystudy", declared(root, skip_markers=0))
    rows, problems = inspect_dataset(ds, root)
    assert problems == []
    note = "too short to measure the gradient artefact (10 s of scan; needs 16 s, 8 TR)"
    assert note in rows[0]["notes"] and rows[0]["gradient_db"] == ""
    meta = preprocess_subject(ds, root, "sub-01", tmp_path / "out", n_bins=40)
    assert meta["runs"][0]["mr_artefacts"]["gradient_note"] == note
    assert meta["runs"][0]["mr_artefacts"]["gradient_db"] is None
    assert note in capsys.readouterr().err


def test_a_gradient_artefact_on_a_short_scan_is_still_refused(tmp_path):
    """Five volumes of the simulated scanner: the artefact reads tens of dB even so."""
    sim = replace(TINY, n_subjects=1, n_volumes=5, scanner=True)
    write_dataset(sim, tmp_path / "raw")
    ds = get_dataset("sim", {"simulation": asdict(sim)})
    rows, problems = inspect_dataset(ds, tmp_path / "raw")
    assert rows[0]["gradient_db"] > 20 and any("gradient artefact" in str(p) for p in problems)
    with pytest.raises(InputError, match="gradient artefact"):
        preprocess_subject(ds, tmp_path / "raw", "sub-01", tmp_path / "out", n_bins=30)
