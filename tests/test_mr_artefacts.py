"""MR artefacts (eeg2fmri.preprocess.mr_artefacts, data.scanner): the simulated scanner
recording, detection in inspect and preprocessing, gradient and BCG correction against the
clean truth, the refusals, and synthesis replaying the correction."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from eeg2fmri.data.datasets import get_dataset
from eeg2fmri.data.simulate import write_dataset
from eeg2fmri.errors import InputError
from eeg2fmri.preprocess import ingest
from eeg2fmri.preprocess.ingest import Ingestion, Stages, open_recording
from eeg2fmri.preprocess.inspect import inspect_dataset
from eeg2fmri.preprocess.mr_artefacts import MRSettings, harmonic_power
from eeg2fmri.preprocess.subject import preprocess_subject
from eeg2fmri.store import SubjectFeatures

from .conftest import TINY

SCANNER = replace(TINY, n_subjects=3, n_volumes=60, scanner=True)
EEG = "sub-01/eeg/sub-01_task-rest_eeg.vhdr"
CLEAN = "derivatives/truth/sub-01/eeg/sub-01_task-rest_desc-clean_eeg.vhdr"


def _cfg(sim=SCANNER, **mr: str) -> dict:
    return {"simulation": {**asdict(sim), **({"mr_artefacts": mr} if mr else {})}}


@pytest.fixture(scope="module")
def scanner_raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scanner")
    write_dataset(SCANNER, root)
    return root


@pytest.fixture(scope="module")
def gradient_only(tmp_path_factory) -> Path:
    """The scanner recording without a ballistocardiogram: the gradient stage's own accuracy."""
    root = tmp_path_factory.mktemp("gradient")
    write_dataset(replace(SCANNER, bcg_uv=0.0), root)
    return root


def test_the_scanner_recording_looks_like_one(scanner_raw):
    with open_recording(scanner_raw / EEG, "brainvision") as rec:
        assert rec.fs == SCANNER.scanner_fs and rec.ch_names[-1] == "ECG"
        assert len(rec.markers["Response/R128"]) == SCANNER.n_volumes
        assert len(rec.markers["Response/R  1"]) == SCANNER.n_volumes * SCANNER.grid[2]
        with open_recording(scanner_raw / CLEAN, "brainvision") as clean:
            picks = rec.ch_names[:-1]
            artefact = rec.samples(picks) - clean.samples(picks)
            ratio = np.abs(artefact).max(1) / clean.samples(picks).std(1)
            assert ratio.min() >= 100  # the gradient dwarfs the EEG


def test_inspect_flags_the_scanner_recording_and_passes_clean_eeg(scanner_raw, gradient_only,
                                                                  tiny_raw):
    rows, problems = inspect_dataset(get_dataset("sim", _cfg()), scanner_raw)
    # the BCG measured under the gradient: on the stretch corrected over its own volumes
    assert all(r["gradient_db"] > 20 and r["bcg_index"] > 3 for r in rows), rows
    assert sorted(str(p).split(": ", 2)[1] for p in problems) == (
        ["ballistocardiogram"] * SCANNER.n_subjects + ["gradient artefact"] * SCANNER.n_subjects)
    assert all("simulation.mr_artefacts.gradient: correct, or keep" in str(p) or
               "simulation.mr_artefacts.bcg: correct, or keep" in str(p) for p in problems)
    rows, problems = inspect_dataset(get_dataset("sim", _cfg(gradient="correct")), gradient_only)
    assert problems == [] and all(r["bcg_index"] < 2 for r in rows), rows
    rows, problems = inspect_dataset(get_dataset("sim", _cfg(TINY)), tiny_raw)
    assert problems == [] and all(r["gradient_db"] < 6 for r in rows)


def test_preprocessing_refuses_an_artefact_it_is_not_told_about(scanner_raw, tmp_path):
    with pytest.raises(InputError, match=r"sub-01_task-rest_eeg.vhdr: sub-01: gradient artefact:"
                                         r" .* dB .*mr_artefacts.gradient: correct .* or keep"):
        preprocess_subject(get_dataset("sim", _cfg()), scanner_raw, "sub-01", tmp_path / "a",
                           n_bins=30)
    with pytest.raises(InputError, match=r"ballistocardiogram: the heartbeat-locked average .*"
                                         r"mr_artefacts.bcg: correct"):
        preprocess_subject(get_dataset("sim", _cfg(gradient="correct")), scanner_raw, "sub-01",
                           tmp_path / "b", n_bins=30)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_keeping_is_a_conscious_choice_written_down(scanner_raw, tmp_path, capsys):
    meta = preprocess_subject(get_dataset("sim", _cfg(gradient="keep", bcg="keep")), scanner_raw,
                              "sub-01", tmp_path / "s", n_bins=30)
    report = meta["runs"][0]["mr_artefacts"]
    assert report["gradient"] == "keep" and report["gradient_db"] > 20
    assert "KEPT in the EEG" in capsys.readouterr().err
    assert meta["ingestion"]["mr"]["gradient"] == "keep"


def _accuracy(root: Path, mr: MRSettings) -> tuple[np.ndarray, float, dict]:
    """Per channel: correlation of the corrected EEG with the clean truth in 1-40 Hz after
    decimation; the residual power at the slice harmonics, as a fraction of the artefact's."""
    factor = int(SCANNER.scanner_fs / SCANNER.fs)
    with open_recording(root / EEG, "brainvision") as rec, \
            open_recording(root / CLEAN, "brainvision") as clean:
        picks, on = rec.ch_names[:-1], rec.markers["Response/R128"]
        st = Stages.build(rec, picks, Ingestion(500, (1, 61), factor, mr), SCANNER.tr, on)
        a, b = int(on[0]) // factor, int(on[-1] + SCANNER.tr * rec.fs) // factor
        sos = signal.butter(4, [1, 40], "bandpass", fs=SCANNER.fs, output="sos")
        x = signal.sosfiltfilt(sos, st.read(picks, a, b), axis=1)
        c = signal.sosfiltfilt(sos, Stages(clean, factor).read(picks, a, b), axis=1)
        r = np.array([np.corrcoef(x[i], c[i])[0, 1] for i in range(len(picks))])
        span = (int(on[0]), int(on[-1] + SCANNER.tr * rec.fs))
        truth = clean.samples(picks, *span)
        before, after = rec.samples(picks, *span) - truth, st.source(picks, *span) - truth
        slice_hz = SCANNER.grid[2] / SCANNER.tr
        return (r, harmonic_power(after, rec.fs, slice_hz) / harmonic_power(before, rec.fs,
                                                                             slice_hz), st.report)


def test_gradient_correction_recovers_the_clean_eeg(gradient_only):
    r, residual, report = _accuracy(gradient_only, MRSettings(gradient="correct", bcg="keep"))
    assert r.min() >= 0.97, r  # measured 0.977-0.982
    assert residual <= 0.01  # measured ~1e-4
    assert report["gradient_db"] > 30 and report["gradient_db_after"] < 6


def test_gradient_and_bcg_correction_recover_the_clean_eeg(scanner_raw):
    kept, _, _ = _accuracy(scanner_raw, MRSettings(gradient="correct", bcg="keep"))
    r, residual, report = _accuracy(scanner_raw, MRSettings(gradient="correct", bcg="correct"))
    # the goal, 0.95 in 1-40 Hz: measured 0.953-0.967, median 0.965 (0.924 in one pass)
    assert np.median(r) >= 0.95 and r.min() >= 0.93, r
    assert np.median(r) > np.median(kept) + 0.1, (r, kept)
    assert report["bcg_index"] > 3 and report["bcg_index_after"] < 2
    assert residual <= 0.01


def test_bcg_subtraction_keeps_the_eegs_offset_and_removes_the_heartbeat():
    """Epochs are levelled on the stretch before the pulse arrives: a DC offset passes through
    untouched (levelling on each epoch's mean took the BCG's own mean out of the template and
    left a step at every epoch's edges)."""
    from eeg2fmri.preprocess.mr_artefacts import BCGSubtraction

    fs, n = 250.0, 250 * 120
    rng = np.random.default_rng(0)
    beats = np.cumsum(rng.uniform(0.85, 0.95, 140) * fs).astype(int)
    beats = beats[beats < n - fs]
    t = np.arange(n) / fs
    bcg = np.zeros(n)
    for b in beats:  # one positive bump 0.3 s after each beat: a non-zero mean per epoch
        bcg += 40e-6 * np.exp(-0.5 * ((t - b / fs - 0.3) / 0.05) ** 2)
    eeg = signal.sosfiltfilt(signal.butter(4, [1, 40], "bandpass", fs=fs, output="sos"),
                             rng.standard_normal(n)) * 5e-6

    def corrected(x: np.ndarray) -> np.ndarray:
        st = BCGSubtraction(lambda ch, a, b: x[None, a:b].copy(), n, beats, fs, ["c"], 21, 0)
        return st.samples(["c"], 0, n)[0]

    clean = corrected(eeg + bcg)
    assert np.corrcoef(clean, eeg)[0, 1] > 0.95
    assert np.std(clean - eeg) < 0.3 * np.std(eeg)  # the template holds EEG/sqrt(21)
    np.testing.assert_allclose(corrected(eeg + bcg + 50e-6), clean + 50e-6, atol=1e-12)


def _ecg(beats_s: np.ndarray, fs: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """The simulator's ECG (QRS and T after each beat, volts) with beats at `beats_s`, plus
    20 uV of noise."""
    from eeg2fmri.data.scanner import _ecg as simulated_ecg

    return 20e-6 * rng.standard_normal(n) + simulated_ecg(np.arange(n) / fs, beats_s)


def test_every_heartbeat_is_found_and_timed_between_samples():
    """MNE's QRS detector leaves out beats (each leaves a whole BCG in the EEG); the matched
    filter built from its detections finds all of them, to a fraction of a sample."""
    from eeg2fmri.preprocess.mr_artefacts import _qrs_seeds, heartbeats

    fs, rng = 250.0, np.random.default_rng(3)
    rr = 0.9 * (1 + 0.15 * np.sin(np.arange(400) / 5.0))  # a varying heart rate
    beats = 0.5 + np.cumsum(rr)
    n = int((beats[-1] + 1.0) * fs)
    ecg = _ecg(beats, fs, n, rng)
    ecg[int(beats[100] * fs):int(beats[100] * fs) + 40] += 0.4e-3  # one odd-looking beat
    found = heartbeats(ecg, fs)
    assert len(found) == len(beats), (len(found), len(beats))
    err = found - beats * fs
    assert np.abs(np.delete(err, 100)).max() < 0.2 and np.median(np.abs(err)) < 0.05, err
    assert abs(err[100]) < 1  # the odd one too, to the sample
    assert len(_qrs_seeds(ecg, fs)) < len(beats)  # MNE's alone would have missed some


def test_the_gradient_timing_is_found_between_samples():
    """Each volume's delay, from the template's cross-correlation refined by Newton steps."""
    from eeg2fmri.preprocess.mr_artefacts import GradientAAS, _shift

    rng = np.random.default_rng(0)
    epoch, n_vol = 400, 40
    wave = np.zeros(epoch)
    for k in range(25, epoch - 25, 25):  # sharp switching spikes, band-limited
        wave[k:k + 5] += np.hanning(5) * 1e-3
    delays = rng.uniform(-0.5, 0.5, n_vol)
    onsets = 20 + np.arange(n_vol) * epoch
    x = 1e-6 * rng.standard_normal(onsets[-1] + 2 * epoch)
    for o, d in zip(onsets, delays, strict=True):
        x[o:o + epoch] += _shift(wave[None, None], np.array([d]))[0, 0]
    aas = GradientAAS(lambda ch, a, b: x[None, a:b].copy(), len(x), onsets, epoch, "c", 11)
    err = aas.lags - (delays - delays[0])
    assert np.abs(err).max() < 0.01, err
    out = aas.samples(["c"], 0, len(x))[0]
    assert out[onsets[0]:onsets[-1] + epoch].std() < 2e-6  # the noise, not the spikes


def test_bcg_follows_each_beats_amplitude_and_not_the_channels_asked_for():
    from eeg2fmri.preprocess.mr_artefacts import BCGSubtraction

    fs, n, rng = 250.0, 250 * 200, np.random.default_rng(1)
    beats = np.cumsum(rng.uniform(0.85, 0.95, 230) * fs) + rng.random(230)
    beats = beats[beats < n - fs]
    t = np.arange(n)
    eeg = 3e-6 * rng.standard_normal((3, n))
    bcg = np.zeros((3, n))
    shape = np.array([40e-6, -25e-6, 10e-6])
    for b in beats:  # each beat 30 % larger or smaller, the same on every channel
        bcg += (1 + 0.3 * rng.standard_normal()) * shape[:, None] * np.exp(
            -0.5 * ((t - b - 0.3 * fs) / (0.05 * fs)) ** 2)
    x = eeg + bcg
    names = ["a", "b", "c"]
    st = BCGSubtraction(lambda ch, a, b: x[[names.index(c) for c in ch], a:b].copy(), n, beats,
                        fs, names, 21, 0)
    out = st.samples(names, 0, n)
    inner = slice(int(beats[20]), int(beats[-20]))
    assert np.std((out - eeg)[:, inner]) < 0.3 * np.std(eeg)  # the amplitude was followed
    np.testing.assert_allclose(st.samples(["b"], 1000, 9000)[0], out[1, 1000:9000], atol=1e-15)


def test_the_correction_does_not_depend_on_the_blocks(scanner_raw, monkeypatch):
    mr = MRSettings(gradient="correct", bcg="correct")
    with open_recording(scanner_raw / EEG, "brainvision") as rec:
        picks, on = rec.ch_names[:-1], rec.markers["Response/R128"]
        st = Stages.build(rec, picks, Ingestion(500, (1, 61), 4, mr), SCANNER.tr, on)
        n = -(-rec.n_samples // 4)
        whole = st.read(picks, 0, n)
        pieces = np.concatenate([st.read(picks, a, min(a + 777, n)) for a in range(0, n, 777)],
                                axis=1)
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-12)


def test_bcg_correction_without_an_ecg_channel_names_the_key(scanner_raw, tmp_path):
    cfg = _cfg(gradient="correct", bcg="correct", ecg_channel="EKG2")
    with pytest.raises(InputError, match="BCG correction needs an ECG channel: none named EKG2; "
                                         "set simulation.mr_artefacts.ecg_channel"):
        preprocess_subject(get_dataset("sim", cfg), scanner_raw, "sub-01", tmp_path / "s",
                           n_bins=30)


def test_synthesis_replays_the_correction_and_needs_markers_for_it(scanner_raw, tmp_path):
    from eeg2fmri.evaluation.predict import evaluate_fold
    from eeg2fmri.evaluation.synthesize import synthesize
    from eeg2fmri.training.folds import loso_fold
    from eeg2fmri.training.trainer import train_fold

    from .conftest import tiny_spec

    cfg = _cfg(gradient="correct", bcg="correct")
    ds = get_dataset("sim", cfg)
    for s in ds.subjects:
        preprocess_subject(ds, scanner_raw, s, tmp_path / "f" / s, n_bins=60)
    assert SubjectFeatures.open(tmp_path / "f" / "sub-01").meta["ingestion"]["mr"][
        "gradient"] == "correct"
    out = tmp_path / "m"
    train_fold({**tiny_spec("band_ridge"), "params": {}}, loso_fold(ds.subjects, "sub-01"),
               tmp_path / "f", out, progress=False)
    evaluate_fold(out / "model.pt", [tmp_path / "f" / "sub-01"], out / "metrics.json",
                  out / "pred.nii.gz", device="cpu")
    side = synthesize(out / "model.pt", scanner_raw / EEG, tmp_path / "s.nii.gz", device="cpu",
                      progress=False)
    import nibabel as nib

    np.testing.assert_allclose(np.asarray(nib.load(tmp_path / "s.nii.gz").dataobj),
                               np.asarray(nib.load(out / "pred.nii.gz").dataobj), atol=1e-5)
    assert side["mr_artefacts"]["gradient"] == "correct"
    assert side["mr_artefacts"]["bcg"] == "correct"
    with pytest.raises(InputError, match="gradient artefact .* and no volume markers to correct"):
        synthesize(out / "model.pt", scanner_raw / EEG, tmp_path / "t.nii.gz", marker="none",
                   device="cpu", progress=False)
    assert json.loads((tmp_path / "s.json").read_text())["mr_artefacts"]["gradient_db"] > 20


@pytest.mark.parametrize("gradient", ["correct", "keep"])
def test_cnepfl_runs_both_ways(tmp_path, gradient, capsys):
    """The CN-EPFL miniature (raw 5 kHz layout, alignment start): corrected by default, kept
    (the references' way) when told, and each says so."""
    from .miniatures import build_cnepfl

    build_cnepfl(tmp_path)
    root = tmp_path / "s3" / "ds002158"
    cfg = ({"dataset_settings": {"cnepfl": {"mr_artefacts": {"gradient": "keep"}}}}
           if gradient == "keep" else {})
    meta = preprocess_subject(get_dataset("cnepfl", cfg, root), root, "sub-21",
                              tmp_path / "out", n_bins=40)
    assert meta["runs"][0]["mr_artefacts"]["gradient"] == gradient
    assert ("corrected (volume AAS" if gradient == "correct" else "KEPT") in capsys.readouterr().err


def test_a_block_of_samples_is_bounded_whatever_the_channel_count():
    assert ingest.BLOCK_SAMPLES * 8 <= 512 * 2**20  # float64 over all channels


def test_the_real_noddi_export_passes_detection_and_says_what_was_corrected(tmp_path):
    """NODDI's corrected export: its real header and markers, samples synthesised to match
    (EEG noise; an ECG with a QRS at each of Analyzer's 745 "R" markers, a real heart's timing).
    Its history names both corrections, its slice markers are 30 per volume, detection passes
    it, every R-peak is found where Analyzer marked it, and a BCG put back on them is flagged."""
    import shutil

    from eeg2fmri.data.formats.base import match_markers
    from eeg2fmri.preprocess.mr_artefacts import _qrs_seeds, heartbeats

    from .conftest import FIXTURES

    src = FIXTURES / "noddi-bids-headers" / "derivatives" / "sub-32" / "eeg"
    for ext in ("vhdr", "vmrk"):
        shutil.copy(src / f"sub-32_task-rest_eeg.{ext}", tmp_path)
    vhdr = tmp_path / "sub-32_task-rest_eeg.vhdr"
    n = int(vhdr.read_text().split("DataPoints=")[1].split()[0])
    data = tmp_path / "sub-32_task-rest_eeg.dat"
    np.zeros((n, 64), "<f4").tofile(data)  # MULTIPLEXED
    with open_recording(vhdr, "brainvision") as rec:
        names, markers, fs = rec.ch_names, rec.markers, rec.fs
    scans = match_markers(markers, "Scan Start", "Scanner")
    slices = match_markers(markers, "s", "Scanner")
    peaks = match_markers(markers, "R", "Pulse Artifact")
    assert (len(scans), len(slices), len(peaks), fs) == (300, 9000, 745, 250.0)
    assert np.all(np.diff(slices.reshape(300, 30), axis=1) == 18)  # TR 2.16 s / 30 slices

    rng = np.random.default_rng(0)
    eeg = 10.0 * rng.standard_normal((64, n))
    ecg = names.index("ECG")
    eeg[ecg] = 1e6 * _ecg(peaks / fs, fs, n, rng)
    bump = np.zeros(n)
    for p in peaks:  # a BCG: 30 uV, 0.3 s after each R-peak
        bump[p:p + 100] += 30.0 * np.exp(-0.5 * ((np.arange(100) - 75) / 12.0) ** 2)
    picks = [c for c in names if c != "ECG"]
    for with_bcg in (False, True):
        x = eeg + (np.where(np.arange(64)[:, None] == ecg, 0.0, bump) if with_bcg else 0.0)
        x.T.astype("<f4").tofile(data)
        with open_recording(vhdr, "brainvision") as rec:
            found = Stages.measure(rec, picks, 2.16, scans)
            beats = heartbeats(rec.samples(["ECG"])[0], fs)
        assert found["corrected_in_export"] == {"gradient": "Scanner Artifact Correction",
                                                "bcg": "Pulse Artifact Correction"}
        assert found["gradient_db"] < 6
        assert (found["bcg_index"] > 3) == with_bcg, found
    assert len(beats) == len(peaks) and np.abs(beats - peaks).max() <= 1
    assert len(_qrs_seeds(eeg[ecg] * 1e-6, fs)) < len(peaks)  # MNE's alone: 740 of 745


@pytest.mark.parametrize("edit, needle", [
    ("drop one", r"volume markers .* are not fs\*TR = .* samples apart: .* a missing or extra "
                 r"marker"),
    ("drop all", r"no volume markers .* found .*volume_marker")])
def test_correction_with_a_missing_volume_marker_is_refused(scanner_raw, tmp_path, edit, needle):
    """The gradient template needs every volume's onset: a missing marker (or none) stops
    preprocessing with the file and the key, before any correction."""
    import shutil

    root = tmp_path / "raw"
    shutil.copytree(scanner_raw, root)
    vmrk = root / EEG.replace(".vhdr", ".vmrk")
    lines = vmrk.read_text().splitlines(keepends=True)
    volume = [i for i, line in enumerate(lines) if "R128" in line]
    gone = volume[10:11] if edit == "drop one" else volume
    vmrk.write_text("".join(line for i, line in enumerate(lines) if i not in gone))
    with pytest.raises(InputError, match=needle):
        preprocess_subject(get_dataset("sim", _cfg(gradient="correct", bcg="correct")), root,
                           "sub-01", tmp_path / "s", n_bins=30)
    assert not (tmp_path / "s").exists()


def test_a_fast_heart_s_overlapping_epochs_are_corrected_once():
    """At 110 bpm a beat's epoch (to 0.75 s) reaches into the next one's: each sample is
    corrected by one beat's template (subtracting both took the overlap's BCG out twice)."""
    from eeg2fmri.preprocess.mr_artefacts import BCGSubtraction

    fs, n, rng = 250.0, 250 * 200, np.random.default_rng(2)
    beats = np.cumsum(rng.uniform(0.53, 0.56, 400) * fs)
    beats = beats[beats < n - fs]
    t = np.arange(n)
    eeg = 3e-6 * rng.standard_normal(n)
    bcg = sum(40e-6 * np.exp(-0.5 * ((t - b - 0.2 * fs) / (0.06 * fs)) ** 2) for b in beats)
    x = (eeg + bcg)[None]
    st = BCGSubtraction(lambda ch, a, b: x[:, a:b].copy(), n, beats, fs, ["c"], 21, 0)
    out = st.samples(["c"], 0, n)[0]
    inner = slice(int(beats[20]), int(beats[-20]))
    assert np.std((out - eeg)[inner]) < 0.3 * np.std(eeg)


# --- issue 34: recordings built otherwise, the gate, and figures that cannot see -----------

# the held-out recording's properties, as a recording of our own: 2.5 kHz, no hardware
# low-pass (sharp switching spikes), 46 slices whose onsets are jittered each by a fraction of
# a sample, gradient ~1.5 mV with per-channel gains of both signs, a BCG of ~80 uV peaking
# ~0.25 s after a narrow QRS, EEG of a few uV
HELD_OUT = replace(TINY, n_subjects=1, n_volumes=60, scanner=True, scanner_fs=2500.0,
                   scanner_slices=46, slice_jitter=0.3, gradient_edge_ms=0.15,
                   gradient_uv=1500.0, bcg_uv=80.0, bcg_delay_s=0.2, qrs_ms=2.0,
                   background_uv=3.0, source_uv=4.0)


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("held_out")
    write_dataset(HELD_OUT, root)
    return root


def _corrected(root: Path, sim, mr: MRSettings, shift: int = 0) -> tuple[np.ndarray, dict]:
    """The stages on a simulated run (its volume onsets moved by `shift` samples): per channel
    the 1-40 Hz correlation of the corrected EEG with the clean truth, and the report."""
    factor = int(sim.scanner_fs / sim.fs)
    with open_recording(root / EEG, "brainvision") as rec, \
            open_recording(root / CLEAN, "brainvision") as clean:
        picks, on = rec.ch_names[:-1], rec.markers["Response/R128"]
        st = Stages.build(rec, picks, Ingestion(500, (1, 61), factor, mr), sim.tr, on + shift)
        a, b = int(on[0]) // factor, int(on[-1] + sim.tr * rec.fs) // factor
        sos = signal.butter(4, [1, 40], "bandpass", fs=sim.fs, output="sos")
        x = signal.sosfiltfilt(sos, st.read(picks, a, b), axis=1)
        c = signal.sosfiltfilt(sos, Stages(clean, factor).read(picks, a, b), axis=1)
        return np.array([np.corrcoef(x[i], c[i])[0, 1] for i in range(len(picks))]), st.report


def test_the_held_out_like_recording_is_corrected_slice_wise(held_out):
    """Volume-wise AAS alone leaves the sharp, jittered slices' residual (1-40 Hz correlation
    0.63 before this change) and the gate reads it; slice-wise OBS, chosen by measurement,
    removes it (measured 0.956, 0.944-0.963)."""
    r, report = _corrected(held_out, HELD_OUT, MRSettings("correct", "correct", max_residual=50))
    assert "slice-wise OBS" in report["gradient_method"], report
    assert np.median(r) >= 0.93 and r.min() >= 0.9, r
    assert report["residual_pct"] < 50 and report["heartbeats"] == 138, report
    before, report = _corrected(held_out, HELD_OUT, MRSettings("correct", "keep", slice_obs=0,
                                                               max_residual=1e4))
    assert np.median(before) < 0.8, before  # the BCG kept too: 0.38
    # the truth in 0.5-30 Hz: ~140 % of the EEG's power; the gate reads low (28 %), yet far
    # above its limit
    assert report["residual_gradient_pct"] > 20, report
    assert report["bcg_index"] is None and "gradient residual" in report["bcg_note"], report


def test_the_gate_passes_a_correction_that_worked(scanner_raw):
    r, report = _corrected(scanner_raw, SCANNER, MRSettings("correct", "correct"))
    assert report["residual_pct"] < 6 and report["max_residual"] == 10, report  # measured 4.4
    assert np.median(r) >= 0.95


def test_the_gate_refuses_what_the_correction_left(held_out, tmp_path, capsys):
    cfg = _cfg(HELD_OUT, gradient="correct", bcg="keep", slice_obs=0)
    with pytest.raises(InputError, match=(
            r"sub-01_task-rest_eeg.vhdr: sub-01: MR artefact correction failed: what stays "
            r"locked to the gradient after it is \d+\.\d % of the EEG's own power in "
            r"0.5-30 Hz .*Set simulation.mr_artefacts.max_residual: \d+ to accept it")):
        preprocess_subject(get_dataset("sim", cfg), held_out, "sub-01", tmp_path / "s",
                           n_bins=60)
    assert "corrected" not in capsys.readouterr().err and not (tmp_path / "s").exists()
    rows, problems = inspect_dataset(get_dataset("sim", cfg), held_out)  # the same in inspect
    assert any("max_residual" in str(p) for p in problems), problems


def test_synthesis_replays_the_gate(held_out):
    from eeg2fmri.evaluation.synthesize import _stages

    ing = Ingestion(500, (1, 61), 10, MRSettings("correct", "keep", slice_obs=0))
    with open_recording(held_out / EEG, "brainvision") as rec, pytest.raises(
            InputError, match=r"MR artefact correction failed: .* Set the model's "
                              r"dataset_settings.<dataset>.mr_artefacts.max_residual"):
        _stages(rec, rec.ch_names[:-1], ing, HELD_OUT.tr, "Response/R128", rec.path)


@pytest.mark.parametrize("case", ["jittered volumes", "onsets 72 ms off"])
def test_a_timing_it_cannot_follow_is_corrected_or_refused(case, scanner_raw, tmp_path):
    """Volume timing jittered by 4 samples (the lag search covers +-20 ms), or volume onsets
    72 ms off (no markers, a wrong offset): either the correction holds against the truth or
    the run is refused; never a silent wrong result."""
    if case == "jittered volumes":
        root, sim, shift = tmp_path, replace(SCANNER, n_subjects=1, gradient_jitter=4.0), 0
        write_dataset(sim, root)
    else:
        root, sim, shift = scanner_raw, SCANNER, 72
    try:
        r, report = _corrected(root, sim, MRSettings("correct", "correct"), shift)
    except InputError as e:
        assert re.search(r"max_residual|gradient residual|ECG", str(e)), e
        return
    assert np.median(r) >= 0.9, (r, report)


def test_the_lag_search_covers_tens_of_samples():
    from eeg2fmri.preprocess.mr_artefacts import GradientAAS, _shift

    rng = np.random.default_rng(1)
    epoch, n_vol = 400, 40
    wave = np.zeros(epoch)
    for k in range(25, epoch - 25, 25):
        wave[k:k + 5] += np.hanning(5) * 1e-3
    delays = rng.uniform(-8, 8, n_vol)  # up to 16 samples from the first volume's
    onsets = 40 + np.arange(n_vol) * epoch
    x = 1e-6 * rng.standard_normal(onsets[-1] + 2 * epoch)
    for o, d in zip(onsets, delays, strict=True):
        x[o - 20:o + epoch + 20] += _shift(np.pad(wave, 20)[None, None], np.array([d]))[0, 0]
    aas = GradientAAS(lambda ch, a, b: x[None, a:b].copy(), len(x), onsets, epoch, "c", 11,
                      search=20)
    assert np.abs(aas.lags - (delays - delays[0])).max() < 0.02
    out = aas.samples(["c"], 0, len(x))[0]
    assert out[onsets[1]:onsets[-2]].std() < 2e-6  # the noise: each volume where it lies
    old = GradientAAS(lambda ch, a, b: x[None, a:b].copy(), len(x), onsets, epoch, "c", 11)
    assert np.abs(old.lags - (delays - delays[0])).max() > 1  # +-3 samples: it cannot


def _ecg_and_beats(bpm: float = 66.0, seconds: float = 120.0, fs: float = 250.0):
    from eeg2fmri.data.scanner import _ecg as simulated_ecg

    rng = np.random.default_rng(0)
    beats = 0.5 + np.cumsum(60 / bpm * (1 + 0.03 * rng.standard_normal(int(seconds * bpm / 60))))
    beats = beats[beats < seconds - 1]
    n = int(seconds * fs)
    return 20e-6 * rng.standard_normal(n) + simulated_ecg(np.arange(n) / fs, beats), beats * fs


@pytest.mark.parametrize("case, needle", [
    ("ok", None), ("flat", "flat"), ("EEG", "looks like EEG"), ("250 bpm", "outside 30-200"),
    ("missed", "beats missed or found twice"), ("twice", "beats missed or found twice")])
def test_an_ecg_that_cannot_be_trusted_says_why(case, needle):
    from eeg2fmri.preprocess.mr_artefacts import ecg_problem, heartbeats

    fs = 250.0
    ecg, beats = _ecg_and_beats(250.0 if case == "250 bpm" else 66.0)
    if case == "flat":
        ecg = np.zeros_like(ecg)
    elif case == "EEG":
        ecg = signal.sosfiltfilt(signal.butter(4, [1, 40], "bandpass", fs=fs, output="sos"),
                                 np.random.default_rng(1).standard_normal(len(ecg))) * 10e-6
    found = heartbeats(ecg, fs) if case != "250 bpm" else beats
    if case == "missed":
        found = np.delete(found, np.arange(5, len(found), 15))
    elif case == "twice":
        found = np.sort(np.concatenate([found, found[::10] + 0.3 * fs]))
    why = ecg_problem(ecg, found, fs)
    assert (why is None) if needle is None else (needle in why), why


def _in_memory(root: Path, edit):
    """The simulated scanner run as an in-memory recording, its channels edited by `edit`."""
    import mne

    from eeg2fmri.preprocess.ingest import Recording

    with open_recording(root / EEG, "brainvision") as rec:
        data, names, markers, fs = rec.samples(rec.ch_names), rec.ch_names, rec.markers, rec.fs
    data, names = edit(data.copy(), list(names))
    raw = mne.io.RawArray(data, mne.create_info(names, fs, "eeg"), verbose="error")
    return Recording(root / "edited.fif", "fif", raw, fs, names, markers, data.shape[1])


@pytest.mark.parametrize("case, mr, needle", [
    ("flat ECG", {"bcg": "correct"}, r"BCG correction cannot run: the ECG channel is flat"),
    ("Fp1", {"bcg": "correct", "ecg_channel": "Fp1"},
     r"Fp1 is one of the EEG channels the features use"),
    ("no ECG", {"bcg": "detect"}, r"ballistocardiogram could not be measured in this scanner "
                                  r"recording .* no ECG channel\. Decide: key.bcg: keep"),
    ("gradient kept", {"gradient": "keep", "bcg": "correct"},
     r"ECG carries the gradient artefact .* kept"),
    ("obs 99", {"bcg": "correct", "obs": 99}, r"key.obs: 99 principal components from the 31 "
                                              r"heartbeats .* at most 30"),
    ("slice_obs 31", {"slice_obs": 31}, r"key.slice_obs: 31 components .*key\.window")])
def test_a_figure_that_cannot_see_is_refused(scanner_raw, case, mr, needle):
    def edit(x: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
        if case == "flat ECG":
            x[-1] = 0.0
        if case == "no ECG":
            return x[:-1], names[:-1]
        return x, names

    rec = _in_memory(scanner_raw, edit)
    settings = MRSettings(**{"gradient": "correct", **mr})
    picks = [c for c in rec.ch_names if c != "ECG"]
    with pytest.raises(InputError, match=needle):
        Stages.build(rec, picks, Ingestion(500, (1, 61), 4, settings), SCANNER.tr,
                     rec.markers["Response/R128"], key="key")


def test_no_ecg_outside_the_scanner_is_not_measured_and_passes(tiny_raw):
    with open_recording(tiny_raw / EEG, "brainvision") as rec:
        st = Stages.build(rec, rec.ch_names, Ingestion(500, (1, 61), 1, MRSettings()), TINY.tr,
                          rec.markers["Response/R128"])
    assert st.report["bcg_note"] == "not measurable (no ECG channel)"


def test_slice_wise_obs_does_not_depend_on_the_blocks(held_out):
    mr = MRSettings("correct", "correct", max_residual=50)
    with open_recording(held_out / EEG, "brainvision") as rec:
        picks, on = rec.ch_names[:-1], rec.markers["Response/R128"]
        st = Stages.build(rec, picks, Ingestion(500, (1, 61), 10, mr), HELD_OUT.tr, on)
        assert "slice-wise OBS" in st.report["gradient_method"]
        n = -(-rec.n_samples // 10)
        whole = st.read(picks, 0, n)
        pieces = np.concatenate([st.read(picks, a, min(a + 3001, n))
                                 for a in range(0, n, 3001)], axis=1)
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-12)
