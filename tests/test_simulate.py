import json

import nibabel as nib
import numpy as np
import pytest
from scipy import signal

from eeg2fmri.data.bold import read_bold
from eeg2fmri.data.formats.base import match_markers
from eeg2fmri.data.sim_settings import CHANNELS, SOURCES
from eeg2fmri.data.simulate import SimConfig, footprints, hrf, roi_atlas, simulate_subject

from .conftest import TINY, read_eeg


def test_simulation_is_deterministic_for_a_seed():
    a, b = simulate_subject(TINY, 1), simulate_subject(TINY, 1)
    for key in ("eeg", "bold", "clean", "onsets"):
        np.testing.assert_array_equal(a[key], b[key])
    other = simulate_subject(SimConfig(**{**TINY.__dict__, "seed": TINY.seed + 1}), 1)
    assert not np.allclose(a["bold"], other["bold"])


@pytest.mark.parametrize("source", [0, 1, 2])
def test_band_power_drives_bold_through_the_hrf(source):
    """Each source's EEG band power, HRF-convolved, correlates with BOLD at its footprint."""
    cfg = SimConfig(n_subjects=1, n_volumes=150, n_channels=19, grid=(16, 16, 8),
                    voxel_mm=(12.0, 12.0, 16.0), seed=7)
    sim = simulate_subject(cfg, 0)
    name, freq, electrode = SOURCES[source]
    ch = CHANNELS.index(electrode)
    sos = signal.butter(4, [freq - 2, freq + 2], btype="bandpass", fs=cfg.fs, output="sos")
    power = signal.sosfiltfilt(sos, sim["eeg"][ch]) ** 2
    spv = int(cfg.fs * cfg.tr)
    per_volume = np.array([power[o:o + spv].mean() for o in sim["onsets"]])
    kernel = hrf(np.arange(0, 32, cfg.tr))
    predicted = np.convolve(per_volume - per_volume.mean(), kernel)[: cfg.n_volumes]
    fp = footprints(cfg, sim["mask"])[source]
    peak = np.unravel_index(fp.argmax(), fp.shape)
    bold = sim["bold"][peak]
    r = np.corrcoef(predicted[20:], bold[20:])[0, 1]
    assert r > 0.5, f"{name}: r = {r:.2f}"
    # a voxel far from every footprint carries no such signal
    weight = np.where(sim["mask"], footprints(cfg, sim["mask"]).sum(0), np.inf)
    far = np.unravel_index(weight.argmin(), fp.shape)
    assert abs(np.corrcoef(predicted[20:], sim["bold"][far][20:])[0, 1]) < r / 2


def test_tree_looks_like_a_real_recording(tiny_raw):
    sub = "sub-01"
    rec = read_eeg(tiny_raw / sub / "eeg" / f"{sub}_task-rest_eeg.vhdr")
    assert rec.fs == TINY.fs and len(rec.ch_names) == TINY.n_channels
    onsets = match_markers(rec.markers, "R128")
    assert len(onsets) == TINY.n_volumes
    assert onsets[0] >= TINY.lead_in_s[0] * TINY.fs  # EEG starts before the first volume
    assert np.all(np.diff(onsets) == int(TINY.fs * TINY.tr))
    bold_path = tiny_raw / sub / "func" / f"{sub}_task-rest_bold.nii.gz"
    run = read_bold(bold_path, expected_tr=TINY.tr)
    assert run.data.shape == (*TINY.grid, TINY.n_volumes)
    assert np.allclose(np.abs(np.diag(run.affine))[:3], TINY.voxel_mm)
    assert nib.load(bold_path).header.get_xyzt_units() == ("mm", "sec")
    sidecar = json.loads((tiny_raw / sub / "func" / f"{sub}_task-rest_bold.json").read_text())
    assert sidecar["RepetitionTime"] == TINY.tr
    assert (tiny_raw / "derivatives" / "truth" / sub / "func"
            / f"{sub}_task-rest_desc-noiseless_bold.nii.gz").is_file()
    assert (tiny_raw / "dataset_description.json").is_file()


def test_footprints_reach_zero_and_the_background_region_is_beyond_them():
    sim = simulate_subject(TINY, 0)
    fp = footprints(TINY, np.ones(TINY.grid, dtype=bool))
    labels, names = roi_atlas(TINY)
    assert names[-1] == "background" and len(names) == len(fp) + 1
    background = labels == len(names)
    assert (background & sim["mask"]).sum() > 10
    assert (fp[:, background] == 0).all()  # tapered to exactly zero, not a Gaussian tail
    assert np.ptp(sim["clean"][background & sim["mask"]], axis=-1).max() == 0
    for k in range(len(fp)):  # each source's region: above half of its own peak
        assert (fp[k][labels == k + 1] > 0.5).all()


def test_a_tree_made_by_an_earlier_simulator_is_refused(tiny_raw, tmp_path):
    import shutil

    from eeg2fmri.data.sim_settings import check_simulated_tree
    from eeg2fmri.errors import InputError

    root = tmp_path / "sim"
    shutil.copytree(tiny_raw, root)
    path = root / "dataset_description.json"
    desc = json.loads(path.read_text())
    made = json.loads(desc["GeneratedBy"][0]["Description"])
    del made["simulator_version"]  # as the simulator before version 2 wrote it
    desc["GeneratedBy"][0]["Description"] = json.dumps(made)
    path.write_text(json.dumps(desc))
    with pytest.raises(InputError, match="simulator_version"):
        check_simulated_tree(root, TINY)


def test_the_scanner_knobs_make_recordings_built_otherwise():
    """The scanner simulation's knobs (issue 34): slices per volume, per-slice jitter, sharp
    switching spikes, a hardware low-pass, a narrow QRS, the BCG's delay; the defaults leave
    the recording as it was."""
    from dataclasses import replace

    from eeg2fmri.data.scanner import _ecg, _slice_waveform, scanner_recording, slice_order

    cfg = SimConfig(n_subjects=1, n_volumes=6, n_channels=4, grid=(8, 8, 8), scanner=True,
                    bcg_uv=0.0)
    rng = np.random.default_rng(0)
    clean = rng.standard_normal((4, int(cfg.fs * cfg.tr * 8))) * 1e-6
    onsets = (np.arange(6) * cfg.tr * cfg.fs + cfg.fs).astype(np.int64)

    def artefact(**knobs) -> tuple[np.ndarray, dict]:
        rec = scanner_recording(replace(cfg, **knobs), clean, onsets, 0)
        return rec["eeg"] - rec["clean"], rec

    base, rec = artefact()
    again, _ = artefact(slice_jitter=0.0, hardware_lowpass_hz=0.0, qrs_ms=10.0)
    np.testing.assert_array_equal(base, again)
    _, rec = artefact(scanner_slices=46)
    assert len(rec["slices"]) == 6 * 46
    jittered, _ = artefact(slice_jitter=0.3)
    assert not np.allclose(jittered, base)
    locked, _ = artefact(clock_step=0.0, gradient_jitter=0.0)
    v0 = locked[0, onsets[1] * 4:onsets[1] * 4 + 500]
    v1 = locked[0, onsets[2] * 4:onsets[2] * 4 + 500]
    np.testing.assert_allclose(v0 / np.abs(v0).max(), v1 / np.abs(v1).max(), atol=0.12)
    sharp = _slice_waveform(np.arange(1000) / 4000.0, 0.25, edge_s=0.15e-3)
    smooth = _slice_waveform(np.arange(1000) / 4000.0, 0.25)
    assert np.abs(np.diff(sharp)).max() > 5 * np.abs(np.diff(smooth)).max()
    filtered, _ = artefact(gradient_edge_ms=0.15, hardware_lowpass_hz=250.0)
    raw, _ = artefact(gradient_edge_ms=0.15)
    f, p_raw = signal.welch(raw[0], 1000.0, nperseg=1024)
    _, p_filt = signal.welch(filtered[0], 1000.0, nperseg=1024)
    assert p_filt[f > 400].sum() < 1e-2 * p_raw[f > 400].sum()
    t = np.arange(4000) / 1000.0
    narrow, wide = _ecg(t, np.array([1.0]), 2.0), _ecg(t, np.array([1.0]))
    assert (narrow > 0.5e-3).sum() < (wide > 0.5e-3).sum() / 3
    assert list(slice_order(6, True)) == [0, 2, 4, 1, 3, 5]
