"""`eeg2fmri synthesize`: a trained model applied to an EEG recording alone."""

from __future__ import annotations

import json
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
import pybv
import pytest
import torch

from eeg2fmri.cli import main
from eeg2fmri.errors import InputError
from eeg2fmri.evaluation.predict import evaluate_fold
from eeg2fmri.evaluation.synthesize import synthesize
from eeg2fmri.models import ARCHITECTURES
from eeg2fmri.training.folds import loso_fold
from eeg2fmri.training.trainer import train_fold

from .conftest import TINY, arch_spec

SUBJECTS = ["sub-01", "sub-02", "sub-03", "sub-04"]


def _eeg(raw_root: Path, sub: str = "sub-01") -> Path:
    return raw_root / sub / "eeg" / f"{sub}_task-rest_eeg.vhdr"


@pytest.fixture(scope="module")
def trained(tiny_features, tmp_path_factory) -> Path:
    """A tiny E2fNet for fold sub-01, evaluated (its predictions are the reference)."""
    out = tmp_path_factory.mktemp("e2fnet")
    train_fold(arch_spec("e2fnet", epochs=1), loso_fold(SUBJECTS, "sub-01"), tiny_features, out,
               progress=False)
    evaluate_fold(out / "model.pt", [tiny_features / "sub-01"], out / "metrics.json",
                  out / "predictions.nii.gz", device="cpu")
    return out


def _volumes(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj, dtype=np.float32)


def _rewrite(src: Path, dst: Path, *, order: list[int] | None = None, extra: bool = False,
             fs_factor: int = 1, scale: float = 1.0, extra_name: str = "EXTRA",
             markers: bool = True) -> Path:
    """The recording written again: channels reordered, one extra channel, resampled, scaled,
    or without its markers."""
    raw = mne.io.read_raw_brainvision(src, preload=True, verbose="error")
    data, names = raw.get_data() * scale, list(raw.ch_names)
    if order is not None:
        data, names = data[order], [names[i] for i in order]
    if extra:
        data, names = np.vstack([data, np.zeros((1, data.shape[1]))]), [*names, extra_name]
    fs = raw.info["sfreq"]
    if fs_factor != 1:
        data, fs = mne.filter.resample(data, up=fs_factor, axis=-1, verbose="error"), fs * fs_factor
    onsets = raw.time_as_index(raw.annotations.onset, use_rounding=True) * fs_factor
    events = [{"onset": int(o), "description": 128, "type": "Response"}
              for o, d in zip(onsets, raw.annotations.description, strict=True) if "R128" in d]
    pybv.write_brainvision(data=data, sfreq=fs, ch_names=names, folder_out=dst.parent,
                           fname_base=dst.stem, events=events if markers else None, unit="µV",
                           resolution=0.01, overwrite=True)
    return dst


def test_synthesis_from_the_eeg_alone_equals_evaluation(trained, tiny_raw, tmp_path):
    out = tmp_path / "synth.nii.gz"
    side = synthesize(trained / "model.pt", _eeg(tiny_raw), out, device="cpu", progress=False)
    reference = _volumes(trained / "predictions.nii.gz")
    img = nib.load(out)
    np.testing.assert_allclose(_volumes(out), reference, atol=1e-6)
    assert img.shape == (TINY.grid[0], TINY.grid[1], TINY.grid[2], TINY.n_volumes - 5)
    np.testing.assert_allclose(img.affine, nib.load(trained / "predictions.nii.gz").affine)
    assert img.header.get_zooms()[3] == pytest.approx(TINY.tr)
    assert img.header.get_xyzt_units() == ("mm", "sec")
    sidecar = json.loads((tmp_path / "synth.json").read_text())
    assert sidecar == json.loads(json.dumps(side))
    assert sidecar["fold"] == "fold-sub-01" and sidecar["arch"] == "e2fnet"
    assert sidecar["training_subjects"] and "sub-01" not in sidecar["training_subjects"]
    assert sidecar["RepetitionTime"] == TINY.tr and sidecar["n_volumes"] == TINY.n_volumes - 5
    assert sidecar["volumes_left_out"] == 5 and sidecar["windows"] == "markers 'Response/R128'"
    assert len(sidecar["recording_sha256"]) == 64 and sidecar["channels_dropped"] == []
    assert len(sidecar["volume_onsets_s"]) == sidecar["n_volumes"]


def test_shuffled_channels_and_an_extra_one_give_the_same_volumes(trained, tiny_raw, tmp_path,
                                                                   capsys):
    order = list(np.random.default_rng(0).permutation(TINY.n_channels))
    eeg = _rewrite(_eeg(tiny_raw), tmp_path / "shuffled.vhdr", order=order, extra=True)
    out = tmp_path / "synth.nii.gz"
    side = synthesize(trained / "model.pt", eeg, out, device="cpu", progress=False)
    assert side["channels_dropped"] == ["EXTRA"]
    assert "channels not used by the model dropped: EXTRA" in capsys.readouterr().err
    np.testing.assert_allclose(_volumes(out), _volumes(trained / "predictions.nii.gz"),
                               atol=1e-5)


def test_twice_the_sampling_rate_is_resampled_to_the_models(trained, tiny_raw, tmp_path):
    """Stated tolerance: the volumes (scaled 0..1) within 1e-3 everywhere (measured: < 1e-5; MNE's
    FFT resampling up by 2 and back is nearly exact)."""
    eeg = _rewrite(_eeg(tiny_raw), tmp_path / "fast.vhdr", fs_factor=2)
    out = tmp_path / "synth.nii.gz"
    side = synthesize(trained / "model.pt", eeg, out, device="cpu", progress=False)
    assert side["resampled_from_hz"] == 2 * TINY.fs
    diff = np.abs(_volumes(out) - _volumes(trained / "predictions.nii.gz"))
    assert diff.max() < 1e-3, diff.max()


def test_a_missing_channel_is_one_line_naming_it(trained, tiny_raw, tmp_path, capsys):
    keep = list(range(1, TINY.n_channels))  # without the first channel
    eeg = _rewrite(_eeg(tiny_raw), tmp_path / "less.vhdr", order=keep)
    code = main(["synthesize", "--model", str(trained / "model.pt"), "--eeg", str(eeg),
                 "--out", str(tmp_path / "x.nii.gz"), "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "lacks 1 of the model's 8 channels: Fp1" in err
    assert not (tmp_path / "x.nii.gz").exists()


def test_without_markers_every_tr_from_start(trained, tiny_raw, tmp_path):
    """--marker none windows every TR from --start: started at the first marker, the same
    volumes as with the markers."""
    ref = synthesize(trained / "model.pt", _eeg(tiny_raw), tmp_path / "a.nii.gz", device="cpu",
                     progress=False)
    first = ref["volume_onsets_s"][0] - 5 * TINY.tr
    side = synthesize(trained / "model.pt", _eeg(tiny_raw), tmp_path / "b.nii.gz", marker="none",
                      start=first, device="cpu", progress=False)
    assert side["windows"] == f"every TR from {first:g} s"
    n = ref["n_volumes"]
    np.testing.assert_allclose(_volumes(tmp_path / "b.nii.gz")[..., :n],
                               _volumes(tmp_path / "a.nii.gz"), atol=1e-6)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_synthesizes_what_it_evaluates(arch, tiny_features, tiny_raw,
                                                          tmp_path):
    fold = "sub-02" if arch == "neural_frames" else "sub-01"
    train_fold(arch_spec(arch, epochs=1), loso_fold(SUBJECTS, fold), tiny_features, tmp_path,
               progress=False)
    evaluate_fold(tmp_path / "model.pt", [tiny_features / fold], tmp_path / "m.json",
                  tmp_path / "pred.nii.gz", device="cpu")
    synthesize(tmp_path / "model.pt", _eeg(tiny_raw, fold), tmp_path / "s.nii.gz", device="cpu",
               progress=False)
    np.testing.assert_allclose(_volumes(tmp_path / "s.nii.gz"),
                               _volumes(tmp_path / "pred.nii.gz"), atol=1e-5)


def test_a_recording_at_the_training_recordings_rate_is_decimated_as_preprocessing_did(
        tmp_path, monkeypatch):
    """A model trained on EEG recorded at 2 fs and decimated by 2 (dataset_settings decimate):
    its own recordings synthesize what evaluation predicts, read chunk by chunk (decimated
    around each chunk only) exactly as in one piece."""
    from dataclasses import replace

    from eeg2fmri.data.datasets import get_dataset
    from eeg2fmri.data.sim_settings import VOLUME_MARKER
    from eeg2fmri.data.simulate import write_dataset
    from eeg2fmri.evaluation.synthesize import read_windows
    from eeg2fmri.preprocess.subject import preprocess_subject
    from eeg2fmri.record import load_model

    fast = replace(TINY, fs=2 * TINY.fs)
    write_dataset(fast, tmp_path / "raw")
    ds = get_dataset("fast", {"dataset_settings": {"fast": {
        "root": str(tmp_path / "raw"), "volume_marker": VOLUME_MARKER, "decimate": 2}}})
    for s in ds.subjects:
        preprocess_subject(ds, tmp_path / "raw", s, tmp_path / "features" / s, n_bins=60)
    out = tmp_path / "model"
    train_fold(arch_spec("e2fnet", epochs=1), loso_fold(ds.subjects, "sub-01"),
               tmp_path / "features", out, device="cpu", progress=False)
    evaluate_fold(out / "model.pt", [tmp_path / "features" / "sub-01"], out / "metrics.json",
                  out / "predictions.nii.gz", device="cpu")
    _, record = load_model(out / "model.pt", torch.device("cpu"))
    assert record["eeg"]["fs"] == TINY.fs and record["eeg"]["decimate"] == 2
    eeg = _eeg(tmp_path / "raw")
    from eeg2fmri.preprocess import ingest

    whole = read_windows(eeg, record, progress=False)
    monkeypatch.setattr(ingest, "BLOCK_SAMPLES", 3 * 500 * 2 * TINY.n_channels)  # 3 windows
    pieces = read_windows(eeg, record, progress=False)
    np.testing.assert_array_equal(pieces.features, whole.features)
    side = synthesize(out / "model.pt", eeg, tmp_path / "synth.nii.gz", device="cpu",
                      progress=False)
    assert side["resampled_from_hz"] == 2 * TINY.fs
    np.testing.assert_allclose(_volumes(tmp_path / "synth.nii.gz"),
                               _volumes(out / "predictions.nii.gz"), atol=1e-5)


# --- refusals: never a wrong volume with exit 0 -------------------------------------------------


@pytest.mark.parametrize("marker", ["R129", "Stimulus/R128"])
def test_a_marker_asked_for_and_not_found_is_an_error_naming_the_markers(trained, tiny_raw,
                                                                        tmp_path, marker):
    with pytest.raises(InputError, match=r"0 volume marker\(s\) .*the markers it has: "
                                         r".*Response/R128 \(\d+\).*--marker none"):
        synthesize(trained / "model.pt", _eeg(tiny_raw), tmp_path / "o.nii.gz", marker=marker,
                   device="cpu", progress=False)
    assert not (tmp_path / "o.nii.gz").exists()


def test_the_records_marker_missing_is_an_error_until_marker_none(trained, tiny_raw, tmp_path):
    bare = _rewrite(_eeg(tiny_raw), tmp_path / "bare.vhdr", markers=False)
    with pytest.raises(InputError, match="0 volume marker.*'Response/R128'"):
        synthesize(trained / "model.pt", bare, tmp_path / "o.nii.gz", device="cpu",
                   progress=False)
    side = synthesize(trained / "model.pt", bare, tmp_path / "o.nii.gz", marker="none",
                      device="cpu", progress=False)
    assert side["windows"] == "every TR from 0 s"


def test_channels_differing_only_in_case_are_ambiguous(trained, tiny_raw, tmp_path):
    twin = _rewrite(_eeg(tiny_raw), tmp_path / "twin.vhdr", extra=True, extra_name="FP1")
    with pytest.raises(InputError, match="'Fp1' and 'FP1' differ only in case"):
        synthesize(trained / "model.pt", twin, tmp_path / "o.nii.gz", device="cpu",
                   progress=False)


def test_eeg_orders_of_magnitude_off_the_training_eeg_is_refused(trained, tiny_raw, tmp_path):
    """Volts labelled as microvolts: a factor of 1e3 here (pybv's resolution limits the test)."""
    loud = _rewrite(_eeg(tiny_raw), tmp_path / "loud.vhdr", scale=1e3)
    with pytest.raises(InputError, match="is 1e\\+03 times the training recordings'"):
        synthesize(trained / "model.pt", loud, tmp_path / "o.nii.gz", device="cpu",
                   progress=False)
    side = synthesize(trained / "model.pt", loud, tmp_path / "o.nii.gz", device="cpu",
                      progress=False, accept_amplitude=True)
    assert "accepted with --accept-amplitude" in side["amplitude"]
    same = synthesize(trained / "model.pt", _eeg(tiny_raw), tmp_path / "p.nii.gz", device="cpu",
                      progress=False)
    assert same["amplitude"].endswith(")") and "training EEG" in same["amplitude"]


def test_synthesis_never_writes_over_its_inputs(trained, tiny_raw, tmp_path, capsys):
    model, eeg = trained / "model.pt", _eeg(tiny_raw)
    before = {p: p.read_bytes() for p in (model, eeg, eeg.with_suffix(".vmrk"))}
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"mine": 1}')
    (tmp_path / "folder.nii.gz").mkdir()
    for out, message in ((model, "must name a NIfTI"), (eeg, "must name a NIfTI"),
                         (tmp_path / "notes.nii.gz", "not an earlier synthesis sidecar"),
                         (tmp_path / "folder.nii.gz", "is a folder")):
        code = main(["synthesize", "--model", str(model), "--eeg", str(eeg), "--out", str(out),
                     "--device", "cpu", "--no-progress"])
        assert code == 2 and message in capsys.readouterr().err
    assert {p: p.read_bytes() for p in before} == before
    assert foreign.read_text() == '{"mine": 1}'
