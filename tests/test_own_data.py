"""A user's own dataset, declared only in a config file: discovery, inspect, preprocessing and the
whole workflow; and malformed inputs, each refused with the files, both values and the config
key that resolves it (never paired silently)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
import pybv
import pytest
import yaml

from eeg2fmri.cli import main
from eeg2fmri.data.datasets import get_dataset
from eeg2fmri.errors import InputError
from eeg2fmri.preprocess.inspect import inspect_dataset
from eeg2fmri.preprocess.subject import preprocess_subject
from eeg2fmri.store import SubjectFeatures

from .conftest import REPO
from .test_workflow import run

FS, TR, N_EEG, LEAD_S = 1000.0, 2.0, 43, 7.0  # EEG starts 7 s before the first volume
SPV = int(FS * TR)
GRID = (12, 12, 6)
N_VOL, SKIP = 30, 2  # the BOLD lacks the first SKIP volumes whose markers are in the EEG
CHANNELS = [f"EEG{i:02d}" for i in range(N_EEG)] + ["ECG"]
MARKER = {"description": "Volume", "type": "Comment"}


def planted(subject_index: int) -> int:
    """The BOLD volume (0-based, in the NIfTI) where subject i's signal is planted."""
    return 9 + 4 * subject_index


def write_subject(root: Path, sub: str, i: int, *, fmt: str = "brainvision",
                  n_vol: int = N_VOL, n_markers: int | None = None, task: str = "motor",
                  lead_s: float = LEAD_S, order: list[int] | None = None) -> dict[str, Path]:
    """One BIDS subject: EEG (43 channels + ECG at 1 kHz, markers 'Comment/Volume' for
    SKIP dropped dummy volumes and then every volume), and a NIfTI run of `n_vol` volumes. A 10 Hz
    burst fills the EEG window of volume `planted(i)` and a bright spot that volume. `order`
    writes the channels in another order (each keeps its own data)."""
    rng = np.random.default_rng(i)
    n_markers = n_vol + SKIP if n_markers is None else n_markers
    lead = int(lead_s * FS) - SKIP * SPV  # the dummy volumes' markers come first
    n = lead + (n_markers + SKIP) * SPV
    data = rng.standard_normal((len(CHANNELS), n)) * 2e-6
    onset = lead + (SKIP + planted(i)) * SPV
    t = np.arange(SPV) / FS
    data[:N_EEG, onset:onset + SPV] += 4e-5 * np.sin(2 * np.pi * 10 * t)
    markers = [lead + k * SPV for k in range(n_markers)]
    names = list(CHANNELS)
    if order is not None:
        data, names = data[order], [CHANNELS[k] for k in order]
    eeg_dir, func = root / sub / "eeg", root / sub / "func"
    eeg_dir.mkdir(parents=True, exist_ok=True)
    func.mkdir(parents=True, exist_ok=True)
    base = f"{sub}_task-{task}"
    if fmt == "brainvision":
        pybv.write_brainvision(
            data=data, sfreq=FS, ch_names=names, fname_base=f"{base}_eeg",
            folder_out=eeg_dir, overwrite=True, unit="µV", resolution=0.01,
            events=[{"onset": m, "description": MARKER["description"], "type": MARKER["type"]}
                    for m in markers])
        eeg = eeg_dir / f"{base}_eeg.vhdr"
    else:
        info = mne.create_info(names, FS, ["ecg" if c == "ECG" else "eeg" for c in names])
        raw = mne.io.RawArray(data, info, verbose="error")
        raw.set_annotations(mne.Annotations(np.array(markers) / FS, 0.0,
                                            MARKER["description"]))
        eeg = eeg_dir / f"{base}_eeg.{'set' if fmt == 'eeglab' else fmt}"
        mne.export.export_raw(eeg, raw, fmt=fmt, overwrite=True, verbose="error")
        if fmt == "eeglab":
            _samples_to_fdt(eeg)
    vols = np.full((*GRID, n_vol), 100.0, dtype=np.float32)
    vols[2:10, 2:10, 1:5] = 500.0 + rng.random((8, 8, 4, n_vol)).astype(np.float32)
    vols[4:6, 4:6, 2, planted(i)] = 2000.0
    img = nib.Nifti1Image(vols, np.diag([4.0, 4.0, 5.0, 1.0]))
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((4.0, 4.0, 5.0, TR))
    bold = func / f"{base}_bold.nii.gz"
    nib.save(img, bold)
    (func / f"{base}_bold.json").write_text(json.dumps({"RepetitionTime": TR,
                                                        "TaskName": task}))
    return {"eeg": eeg, "bold": bold}


def _samples_to_fdt(set_file: Path) -> None:
    """Move an EEGLAB .set's samples into a separate .fdt (float32, channels fastest), the way
    EEGLAB saves large recordings."""
    import scipy.io

    m = scipy.io.loadmat(set_file, appendmat=False)
    data = np.asarray(m.pop("data"), dtype="<f4")
    data.T.tofile(set_file.with_suffix(".fdt"))
    scipy.io.savemat(set_file, {**{k: v for k, v in m.items() if not k.startswith("__")},
                                "data": set_file.with_suffix(".fdt").name},
                     appendmat=False, oned_as="row")


def make_study(root: Path, n_subjects: int = 3) -> Path:
    """A BIDS dataset of a shape no built-in one has; sub-02 in EDF."""
    for i in range(n_subjects):
        write_subject(root, f"sub-{i + 1:02d}", i, fmt="edf" if i == 1 else "brainvision")
    (root / "participants.tsv").write_text(
        "participant_id\tage\n" + "".join(f"sub-{i + 1:02d}\t30\n" for i in range(n_subjects)))
    return root


ENTRY = {"task": "motor", "volume_marker": MARKER, "skip_markers": SKIP,
         "drop_channels": ["ECG"]}


def declared(root: Path, **extra: object) -> dict:
    return {"dataset_settings": {"mystudy": {"root": str(root), **ENTRY, **extra}}}


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return make_study(tmp_path_factory.mktemp("mystudy"))


def test_inspect_reports_every_run_and_passes(study, tmp_path, capsys):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"datasets": ["mystudy"], **declared(study)}))
    code = main(["inspect", "--dataset", "mystudy", "--configfile", str(cfg),
                 "--out", str(tmp_path / "inspect.tsv")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "No problems" in out
    import pandas as pd

    table = pd.read_csv(tmp_path / "inspect.tsv", sep="\t")
    assert list(table["subject"]) == ["sub-01", "sub-02", "sub-03"]
    assert list(table["format"]) == ["brainvision", "edf", "brainvision"]
    assert (table["channels"] == N_EEG).all() and (table["dropped_channels"] == "ECG").all()
    assert (table["markers"] == N_VOL + SKIP).all() and (table["volumes"] == N_VOL).all()
    assert (table["pairs"] == N_VOL).all() and (table["tr_sidecar"] == TR).all()
    np.testing.assert_allclose(table["first_marker_s"], LEAD_S - SKIP * TR)
    assert table["notes"].str.contains("first 2 marker").all()


def test_planted_signals_land_in_the_expected_store_rows(study, tmp_path):
    ds = get_dataset("mystudy", declared(study))
    assert ds.subjects == ("sub-01", "sub-02", "sub-03") and ds.layout == "bids"
    for i, sub in enumerate(ds.subjects):
        meta = preprocess_subject(ds, study, sub, tmp_path / sub, n_bins=40)
        store = SubjectFeatures.open(tmp_path / sub)
        assert store.eeg.shape == (N_VOL, N_EEG, 40) and meta["tr"] == TR
        assert meta["channels"] == CHANNELS[:N_EEG]
        eeg_row = int(np.asarray(store.eeg).sum(axis=(1, 2)).argmax())
        z, x, y = 2, 4, 4  # store volumes are [T, Z, X, Y]
        bold_row = int(np.asarray(store.bold)[:, z, x, y].argmax())
        assert eeg_row == bold_row == planted(i), (sub, eeg_row, bold_row)


@pytest.mark.workflow
def test_declared_dataset_runs_through_the_workflow(study, tmp_path):
    config = {"datasets": ["mystudy"], **declared(study), "models": ["mean_volume", "band_ridge"],
              "features": {"n_bins": 40, "context": 4}, "training": {"epochs": 1}}
    r = run(tmp_path, "--cores", "2", "results/mystudy/inspect/inspect.tsv", "all",
            config=config)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = tmp_path / "results" / "mystudy" / "summary" / "summary.md"
    text = summary.read_text()
    assert "mean_volume" in text and "band_ridge" in text
    for i, sub in enumerate(("sub-01", "sub-02", "sub-03")):
        assert (tmp_path / "results" / "mystudy" / "band_ridge" / f"fold-{sub}" /
                "metrics.json").is_file()
        store = SubjectFeatures.open(tmp_path / "data" / "features" / "mystudy" / sub)
        assert int(np.asarray(store.eeg).sum(axis=(1, 2)).argmax()) == planted(i)
        assert int(np.asarray(store.bold)[:, 2, 4, 4].argmax()) == planted(i)
    assert "No problems" in (tmp_path / "results/mystudy/inspect/inspect.md").read_text()


# --- names and config -----------------------------------------------------------------------


def test_unknown_dataset_is_one_line_through_the_cli(tmp_path, capsys):
    code = main(["preprocess", "--dataset", "mystudy", "--raw", str(tmp_path), "--subject",
                 "sub-01", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "unknown dataset 'mystudy'" in err and "dataset_settings" in err


@pytest.mark.parametrize("config, message", [
    ({"datasets": ["my_study"]}, "dataset name 'my_study' may hold only lowercase letters"),
    ({"datasets": ["mystudy"]}, "'mystudy' is neither built-in nor declared under "
                                "dataset_settings"),
    ({"datasets": ["mystudy"], "dataset_settings": {"mystudy": {"task": "x"}}},
     "'dataset_settings.mystudy.root' is required"),
    ({"dataset_settings": {"mystudy": {"root": "x", "volume_markr": "R128"}}},
     "'dataset_settings.mystudy.volume_markr' is not a known setting"),
    ({"datasets": ["logs"], "dataset_settings": {"logs": {"root": "x"}}},
     "'datasets.0': 'logs' is the name of results_root's log folder"),
])
def test_dataset_config_errors_are_one_line(tmp_path, config, message):
    r = run(tmp_path, "-n", config=config)
    assert r.returncode != 0
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if message in ln]
    assert lines, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_every_hint_names_a_config_key_that_exists():
    """Each config key that an error message of the data code names exists in the schema."""
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    entry_keys = set(schema["properties"]["dataset_settings"]["additionalProperties"]
                     ["properties"])
    src = REPO / "src" / "eeg2fmri"
    text = "".join(p.read_text() for p in [*(src / "data").glob("*.py"),
                                           *(src / "preprocess").glob("*.py")])
    hinted = set(re.findall(r"\.key\(['\"](\w+)['\"]\)", text))
    assert hinted and hinted <= entry_keys, hinted - entry_keys
    for section, key in re.findall(r"\b(features|training)\.(\w+)\b", text):
        assert key in schema["properties"][section]["properties"], f"{section}.{key}"


# --- integrity: malformed files -------------------------------------------------------------


def _one_subject(tmp_path: Path, **kw: object) -> tuple[Path, dict[str, Path]]:
    root = tmp_path / "ds"
    files = write_subject(root, "sub-01", 0, **kw)
    return root, files


def _problems(root: Path, **extra: object) -> list[str]:
    ds = get_dataset("mystudy", declared(root, **extra))
    return [str(p) for p in inspect_dataset(ds, root)[1]]


def _preprocess(root: Path, out: Path, pairing: str = "markers", **extra: object) -> dict:
    ds = get_dataset("mystudy", declared(root, **extra))
    return preprocess_subject(ds, root, "sub-01", out, n_bins=40, pairing=pairing)


def test_missing_first_volumes_are_an_error_until_the_markers_are_skipped(tmp_path):
    """300 markers against 285 volumes, in small: the BOLD lacks its first volumes."""
    root, files = _one_subject(tmp_path, n_vol=N_VOL - 5, n_markers=N_VOL + SKIP)
    [problem] = _problems(root)
    assert str(files["eeg"]) in problem and str(files["bold"]) in problem
    assert f"{N_VOL} volume markers" in problem and f"has {N_VOL - 5} volumes" in problem
    assert f"dataset_settings.mystudy.skip_markers: {SKIP + 5}" in problem
    # the hint resolves it: volume i pairs with marker i + 5 (the planted signal stays paired)
    fixed = dict(skip_markers=SKIP + 5)
    assert _problems(root, **fixed) == []


def test_markers_missing_at_the_end_are_an_error_unless_told(tmp_path):
    root, files = _one_subject(tmp_path, n_markers=N_VOL + SKIP - 4)
    [problem] = _problems(root)
    assert f"{N_VOL - 4} volume markers" in problem and f"has {N_VOL} volumes" in problem
    assert "dataset_settings.mystudy.mismatch: drop_end" in problem
    meta = _preprocess(root, tmp_path / "out", mismatch="drop_end")
    assert meta["n_volumes"] == N_VOL - 4
    assert "4 volume(s) without a marker at the end dropped" in meta["runs"][0]["notes"][-1]
    store = SubjectFeatures.open(tmp_path / "out")
    assert int(np.asarray(store.eeg).sum(axis=(1, 2)).argmax()) == planted(0)


def test_paper_pairing_warns_with_the_offset_when_markers_exist(tmp_path, capsys):
    root, _ = _one_subject(tmp_path)
    _preprocess(root, tmp_path / "out", pairing="paper")
    err = capsys.readouterr().err
    first = LEAD_S - SKIP * TR
    assert f"paper pairing ignores the {N_VOL + SKIP} volume markers" in err
    assert f"{first:.2f} s after the EEG start, a shift of {first / TR:.1f} volumes" in err


def test_header_tr_against_sidecar_names_both(tmp_path):
    root, files = _one_subject(tmp_path)
    sidecar = files["bold"].parent / "sub-01_task-motor_bold.json"
    sidecar.write_text(json.dumps({"RepetitionTime": 2.5}))
    [problem] = _problems(root)
    assert "TR in the NIfTI header is 2 s but sidecar" in problem and "says 2.5 s" in problem
    assert "dataset_settings.mystudy.tr" in problem
    assert _problems(root, tr=2.0) == []


def test_subjects_with_channels_in_another_order_are_not_combined_until_told(tmp_path):
    """Each subject's runs agree with each other, so preprocessing passes per subject; the
    subjects disagree (sub-02 recorded its channels in reverse order). inspect, training and
    evaluation each refuse naming keep_channels; with it, sub-02's store equals the same
    recording written in the usual order."""
    from eeg2fmri.evaluation.predict import evaluate_fold
    from eeg2fmri.training.folds import loso_fold
    from eeg2fmri.training.trainer import train_fold

    from .conftest import tiny_spec

    reverse = [*range(N_EEG - 1, -1, -1), N_EEG]  # the EEG channels reversed, ECG last
    root = tmp_path / "ds"
    for i, sub in enumerate(("sub-01", "sub-02", "sub-03")):
        write_subject(root, sub, i, order=reverse if sub == "sub-02" else None)
    [problem] = _problems(root)
    assert "sub-02_task-motor_eeg.vhdr" in problem and "in another order" in problem
    assert "dataset_settings.mystudy.keep_channels" in problem

    ds = get_dataset("mystudy", declared(root))
    feats = tmp_path / "features"
    for sub in ds.subjects:  # each subject alone is consistent
        preprocess_subject(ds, root, sub, feats / sub, n_bins=40)
    spec = tiny_spec(epochs=1)
    spec["features"].update(n_bins=40, context=2)
    with pytest.raises(InputError, match=r"sub-02's EEG windows do not match sub-03 .*another "
                                         r"order \(position 0: EEG42 vs EEG00\).*keep_channels"):
        train_fold(spec, loso_fold(ds.subjects, "sub-01"), feats, tmp_path / "m")  # val sub-02
    fold = loso_fold(ds.subjects, "sub-02")  # trained on sub-01, validated on sub-03: alike
    train_fold(spec, fold, feats, tmp_path / "m2", progress=False)
    with pytest.raises(InputError, match=r"sub-02's EEG windows do not match the model"):
        evaluate_fold(tmp_path / "m2" / "model.pt", [feats / "sub-02"], tmp_path / "x.json",
                      tmp_path / "x.nii.gz", device="cpu")
    assert not (tmp_path / "x.json").exists()

    keep = CHANNELS[:N_EEG]
    told = get_dataset("mystudy", declared(root, keep_channels=keep))
    assert [str(p) for p in inspect_dataset(told, root)[1]] == []
    preprocess_subject(told, root, "sub-02", tmp_path / "told", n_bins=40)
    usual = tmp_path / "usual"
    write_subject(usual, "sub-02", 1)
    preprocess_subject(get_dataset("mystudy", declared(usual, keep_channels=keep)), usual,
                       "sub-02", tmp_path / "usual-store", n_bins=40)
    a, b = SubjectFeatures.open(tmp_path / "told"), SubjectFeatures.open(tmp_path / "usual-store")
    assert a.meta["channels"] == keep == b.meta["channels"]
    np.testing.assert_array_equal(np.asarray(a.eeg), np.asarray(b.eeg))


def test_the_eeg_layout_check_names_each_difference_and_ignores_case():
    from eeg2fmri.store import check_same_eeg

    def subject(name: str, **meta: object) -> SubjectFeatures:
        base = {"channels": ["Fp1", "Fp2", "Cz"], "fs": 250.0, "tr": 2.0, "window_samples": 500,
                "bins": [1, 250], "dataset": "mystudy"}
        empty = np.zeros(0)
        return SubjectFeatures(name, empty, empty, empty, {**base, **meta}, empty)

    check_same_eeg([subject("sub-01"), subject("sub-02", channels=["FP1", "fp2", "CZ"])])
    with pytest.raises(InputError) as e:
        check_same_eeg([subject("sub-01"), subject("sub-02", channels=["Fp1", "Cz", "O1"],
                                                     fs=500.0, window_samples=1000)])
    message = str(e.value)
    assert "sub-02's EEG windows do not match sub-01" in message
    assert "3 channels vs 3 (missing ['Fp2'], extra ['O1'])" in message
    assert "fs 500 Hz vs 250 Hz" in message and "window_samples 1000 samples vs 500" in message
    assert "dataset_settings.mystudy.keep_channels" in message
    assert "dataset_settings.mystudy.decimate" in message and "features.n_bins" not in message


def test_an_eeg_run_without_bold_is_reported(tmp_path):
    root, _ = _one_subject(tmp_path)
    write_subject(root, "sub-01", 0, task="rest")
    os.remove(root / "sub-01" / "func" / "sub-01_task-rest_bold.nii.gz")
    ds = get_dataset("mystudy", {"dataset_settings": {"mystudy": {
        "root": str(root), **{k: v for k, v in ENTRY.items() if k != "task"}}}})
    problems = [str(p) for p in inspect_dataset(ds, root)[1]]
    assert any("sub-01_task-rest_eeg.vhdr has no BOLD run" in p for p in problems)


# --- the simulated dataset is valid BIDS ----------------------------------------------------


def _validator() -> list[str] | None:
    exe = os.environ.get("EEG2FMRI_BIDS_VALIDATOR") or shutil.which("bids-validator")
    return [exe] if exe else None


def test_simulated_dataset_passes_the_bids_validator(tiny_raw):
    cmd = _validator()
    if cmd is None:
        if os.environ.get("EEG2FMRI_REQUIRE_BIDS_VALIDATOR"):
            pytest.fail("bids-validator not found (EEG2FMRI_BIDS_VALIDATOR)")
        pytest.skip("bids-validator not installed (npm install bids-validator)")
    r = subprocess.run([*cmd, str(tiny_raw), "--json"], capture_output=True, text=True,
                       timeout=600)
    report = json.loads(r.stdout)
    errors = report["issues"]["errors"]
    assert errors == [], [(e["key"], e.get("reason")) for e in errors]
