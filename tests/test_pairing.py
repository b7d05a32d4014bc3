"""Which files a run reads (eeg2fmri.preprocess.pairing): one physical EEG or BOLD file never
serves two subjects or runs, files stay under the dataset's root, and path patterns name each
subject's own files. Built on the simulated tree declared as a dataset of one's own."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from eeg2fmri.config import dataset_errors
from eeg2fmri.data.datasets import get_dataset
from eeg2fmri.errors import InputError
from eeg2fmri.preprocess.inspect import inspect_dataset
from eeg2fmri.preprocess.subject import preprocess_subject

EEG = "{subject}/eeg/{subject}_task-rest_eeg.vhdr"
BOLD = "{subject}/func/{subject}_task-rest_bold.nii.gz"


@pytest.fixture
def own(tiny_raw: Path, tmp_path: Path) -> Path:
    root = tmp_path / "study"
    shutil.copytree(tiny_raw, root, ignore=shutil.ignore_patterns("derivatives"))
    return root


def _cfg(root: Path, **entry: object) -> dict:
    return {"dataset_settings": {"mine": {"root": str(root), "volume_marker": "R128",
                                          "eeg": EEG, "bold": BOLD, **entry}}}


def _problems(root: Path, **entry: object) -> list[str]:
    return [str(p) for p in inspect_dataset(get_dataset("mine", _cfg(root, **entry)), root)[1]]


def _preprocess(root: Path, subject: str, out: Path) -> None:
    preprocess_subject(get_dataset("mine", _cfg(root)), root, subject, out / subject, n_bins=30)


def _point_header(vhdr: Path, data: str, markers: str) -> None:
    text = vhdr.read_text()
    lines = [f"DataFile={data}" if ln.startswith("DataFile=") else
             f"MarkerFile={markers}" if ln.startswith("MarkerFile=") else ln
             for ln in text.splitlines()]
    vhdr.write_text("\n".join(lines) + "\n")


def test_the_simulated_tree_as_ones_own_has_no_problem(own):
    assert _problems(own) == []


def test_a_copied_header_naming_another_subjects_recording_is_refused(own, tmp_path):
    other = "../../sub-01/eeg/sub-01_task-rest_eeg"
    _point_header(own / "sub-02" / "eeg" / "sub-02_task-rest_eeg.vhdr", f"{other}.eeg",
                  f"{other}.vmrk")
    problems = _problems(own)
    assert any("sub-01_task-rest_eeg.eeg: read by sub-01 and by sub-02" in p for p in problems)
    assert any("sub-01_task-rest_eeg.vmrk: read by sub-01 and by sub-02" in p for p in problems)
    for subject in ("sub-02", "sub-01"):  # neither may use the shared recording
        with pytest.raises(InputError, match="read by sub-01 and by sub-02.*DataFile="):
            _preprocess(own, subject, tmp_path / "out")
    _preprocess(own, "sub-03", tmp_path / "out")  # the others are untouched


def test_a_linked_file_serving_two_subjects_is_refused(own):
    bold = own / "sub-03" / "func" / "sub-03_task-rest_bold.nii.gz"
    bold.unlink()
    os.link(own / "sub-01" / "func" / "sub-01_task-rest_bold.nii.gz", bold)  # same inode
    assert any("read by sub-01 and by sub-03" in p for p in _problems(own))


def test_a_header_pointing_outside_the_root_is_refused(own, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for ext in (".eeg", ".vmrk"):
        shutil.copy(own / "sub-02" / "eeg" / f"sub-02_task-rest_eeg{ext}", elsewhere / f"x{ext}")
    _point_header(own / "sub-02" / "eeg" / "sub-02_task-rest_eeg.vhdr",
                  str(elsewhere / "x.eeg"), str(elsewhere / "x.vmrk"))
    problems = _problems(own)
    assert any("x.eeg: sub-02 reads this file, which lies outside the dataset's root" in p
               for p in problems)
    with pytest.raises(InputError, match="outside the dataset's root"):
        _preprocess(own, "sub-02", tmp_path / "out")


@pytest.mark.parametrize("eeg, message", [
    ("/data/{subject}/eeg.vhdr", "must be a path below the dataset's root"),
    ("{subject}/../sub-01/eeg/sub-01_task-rest_eeg.vhdr", "must be a path below"),
    ("sub-01/eeg/*_eeg.vhdr", "has no {subject} or {id}: every subject would read the same"),
    ("{subject}/eeg/{sub}_eeg.vhdr", r"unknown placeholder\(s\) \['sub'\]"),
])
def test_patterns_that_leave_the_root_or_name_no_subject_are_refused(own, eeg, message):
    cfg = _cfg(own, eeg=eeg, subjects=["sub-01", "sub-02"])
    assert any(re.search(message, line) for line in dataset_errors(cfg))
    with pytest.raises(InputError, match=message):
        get_dataset("mine", cfg)


def test_a_placeholder_given_twice_finds_the_subjects(own):
    ds = get_dataset("mine", _cfg(own, eeg="{subject}/eeg/{subject}_task-rest_eeg.vhdr"), own)
    assert ds.subjects == ("sub-01", "sub-02", "sub-03", "sub-04")
    cfg = _cfg(own, eeg="sub-{id}/eeg/sub-{id}_task-rest_eeg.vhdr")
    (own / "participants.tsv").unlink()
    assert get_dataset("mine", cfg, own).subjects == ("sub-01", "sub-02", "sub-03", "sub-04")


def test_a_dataset_of_ones_own_named_like_a_built_in_is_refused(own):
    cfg = {"dataset_settings": {"xp2": {"root": str(own), "eeg": EEG, "bold": BOLD}}}
    [line] = [ln for ln in dataset_errors(cfg) if "xp2.root" in ln]
    assert "built-in" in line and "raw_roots.xp2" in line and "skip_volumes" in line


@pytest.mark.parametrize("entry, message", [
    ({"decimate": 3}, r"250 Hz x 2 s / 3 = 166.667 samples is not whole: windows would be "
                      r"167 samples, 2.0040 s for a 2 s TR; choose a "
                      r"dataset_settings.mine.decimate"),
    ({"decimate": 1000}, "0.5 samples is too short"),
    ({"tr": 1e-9}, "is too short to window; check dataset_settings.mine.tr"),
    ({"keep_channels": ["Fp1"], "drop_channels": ["Fp1"]}, None),
    ({"drop_channels": ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7"]},
     r"no channel left of 8 \(all dropped by"),
])
def test_windows_that_cannot_be_cut_are_refused_by_inspect(own, entry, message):
    problems = _problems(own, **entry)
    if message is None:
        assert problems == []
    else:
        assert problems and all(re.search(message, p) for p in problems[:4]), problems


def test_inspect_never_writes_into_the_dataset_or_over_its_own_table(own, tmp_path, capsys):
    import json

    from eeg2fmri.cli import main

    before = (own / "participants.tsv").read_bytes()
    base = ["inspect", "--dataset", "mine", "--raw", str(own), "--config",
            json.dumps(_cfg(own))]
    for out, message in ((own / "participants.tsv", "inside the dataset's root"),
                         (own / "sub-01" / "x.tsv", "inside the dataset's root"),
                         (tmp_path / "x.md", "must name the table to write, a .tsv")):
        assert main([*base, "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert (own / "participants.tsv").read_bytes() == before
    assert main([*base, "--out", str(tmp_path / "t.tsv")]) == 0
    assert (tmp_path / "t.md").read_text().startswith("|")


def test_inspect_reports_each_runs_amplitude_and_names_one_far_off(own):
    import mne
    import pybv

    vhdr = own / "sub-02" / "eeg" / "sub-02_task-rest_eeg.vhdr"
    raw = mne.io.read_raw_brainvision(vhdr, preload=True, verbose="error")
    events = [{"onset": int(o), "description": 128, "type": "Response"}
              for o in raw.time_as_index(raw.annotations.onset, use_rounding=True)]
    pybv.write_brainvision(data=raw.get_data() * 1e3, sfreq=raw.info["sfreq"],
                           ch_names=raw.ch_names, folder_out=vhdr.parent, fname_base=vhdr.stem,
                           events=events, unit="µV", resolution=0.01, overwrite=True)
    rows, problems = inspect_dataset(get_dataset("mine", _cfg(own)), own)
    amp = {r["subject"]: r["amplitude_uv"] for r in rows}
    assert 3 < amp["sub-01"] < 60 and amp["sub-02"] == pytest.approx(1e3 * amp["sub-01"],
                                                                      rel=0.5)
    [far] = [str(p) for p in problems]
    assert "sub-02_task-rest_eeg.vhdr: EEG amplitude" in far and "unit mismatch" in far


def test_a_roi_image_on_another_grid_is_resampled_and_one_elsewhere_refused(own, tmp_path,
                                                                            capsys):
    import nibabel as nib
    import numpy as np

    truth = own.parent / "truth-rois.nii.gz"
    img = _tiny_rois()
    half = nib.Nifti1Image(np.asarray(img.dataobj)[::2, ::2, ::2],
                           img.affine @ np.diag([2.0, 2.0, 2.0, 1.0]))
    nib.save(half, truth)
    meta = preprocess_subject(get_dataset("mine", _cfg(own, rois={"image": str(truth)})), own,
                              "sub-01", tmp_path / "a", n_bins=30)
    assert meta["rois"] == ["region 1", "region 2", "region 3", "region 4"]
    assert "resampled (nearest)" in capsys.readouterr().err
    away = nib.Nifti1Image(np.asarray(img.dataobj), img.affine @ _shift(10_000.0))
    nib.save(away, truth)
    with pytest.raises(InputError, match="no region of dataset_settings.mine.rois.image lies on"):
        preprocess_subject(get_dataset("mine", _cfg(own, rois={"image": str(truth)})), own,
                           "sub-01", tmp_path / "b", n_bins=30)


def _tiny_rois():
    import nibabel as nib

    from eeg2fmri.data.simulate import affine, roi_atlas

    from .conftest import TINY

    labels, _ = roi_atlas(TINY)
    return nib.Nifti1Image(labels, affine(TINY))


def _shift(mm: float):
    import numpy as np

    m = np.eye(4)
    m[:3, 3] = mm
    return m
