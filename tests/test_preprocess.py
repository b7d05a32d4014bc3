import json
import shutil
from dataclasses import asdict
from pathlib import Path

import nibabel as nib
import numpy as np
import pybv
import pytest

from eeg2fmri.data.bold import read_bold
from eeg2fmri.data.datasets import RunFiles, get_dataset, spec_from_entry
from eeg2fmri.data.formats.base import match_markers
from eeg2fmri.errors import InputError
from eeg2fmri.preprocess.eeg import window_spectra
from eeg2fmri.preprocess.fmri import dct_reduce, from_volumes, minmax_per_volume, to_volumes
from eeg2fmri.preprocess.pairing import RunPlan, plan_run
from eeg2fmri.preprocess.subject import preprocess_subject
from eeg2fmri.store import SubjectFeatures

from .conftest import FIXTURES, TINY, read_eeg

FS, TR = 250.0, 2.0
SPV = int(FS * TR)


def _write_eeg(folder: Path, data: np.ndarray, onsets: list[int] | None, name: str = "rec") -> Path:
    events = None if onsets is None else [
        {"onset": int(o), "description": 128, "type": "Response"} for o in onsets]
    pybv.write_brainvision(data=data, sfreq=FS, ch_names=[f"E{i}" for i in range(len(data))],
                           fname_base=name, folder_out=folder, events=events, overwrite=True)
    return folder / f"{name}.vhdr"


def _write_bold(path: Path, n_vol: int, tr: float = TR) -> Path:
    img = nib.Nifti1Image(np.random.default_rng(0).random((8, 8, 4, n_vol)).astype("f4"),
                          np.diag([3.0, 3.0, 4.0, 1.0]))
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((3.0, 3.0, 4.0, tr))
    nib.save(img, path)
    return path


def _plan(eeg: Path, bold: Path, **entry: object) -> RunPlan:
    """The pairing plan of one run of a dataset declared with `entry`."""
    ds = spec_from_entry("t", {"root": str(eeg.parent), "volume_marker": "R128", **entry})
    return plan_run(ds, "sub-01", RunFiles("", eeg, bold))


def test_spectral_windows_match_a_hand_computed_fft_of_a_sine():
    k, amp = 20, 3.0  # bin 20 of a 2 s window is 10 Hz
    t = np.arange(4 * SPV) / FS
    data = np.stack([amp * np.sin(2 * np.pi * (k / TR) * t), np.zeros_like(t)])
    onsets = np.arange(4) * SPV
    spec = window_spectra(data, onsets, SPV, (1, 250))
    assert spec.shape == (4, 2, 249)
    # |rfft| of A sin(2 pi k n / N) is A N / 2 at bin k and 0 elsewhere; column k-1 is bin k
    np.testing.assert_allclose(spec[:, 0, k - 1], amp * SPV / 2, rtol=1e-4)
    others = np.delete(spec[:, 0], k - 1, axis=1)
    assert others.max() < 1e-3 * amp * SPV
    np.testing.assert_allclose(spec[:, 1], 0, atol=1e-9)
    with pytest.raises(ValueError, match="do not fit"):
        window_spectra(data, onsets, SPV, (1, 260))


def test_markers_align_eeg_that_starts_before_the_scan(tmp_path):
    """A 10 Hz burst only inside the scan: marker alignment finds it in every window, while
    assuming EEG sample 0 is volume 0 (the references) misses it in the first windows."""
    lead_in, n_vol = 1375, 6  # EEG starts 5.5 s before the first volume
    n = lead_in + n_vol * SPV + 100
    t = np.arange(n) / FS
    x = np.zeros(n)
    scan = slice(lead_in, lead_in + n_vol * SPV)
    x[scan] = 1e-5 * np.sin(2 * np.pi * 10 * t[scan])
    onsets = [lead_in + j * SPV for j in range(n_vol)]
    vhdr = _write_eeg(tmp_path, x[None], onsets)
    bold = _write_bold(tmp_path / "bold.nii.gz", n_vol)
    rec = read_eeg(vhdr)
    on = _plan(vhdr, bold).onsets
    np.testing.assert_array_equal(on, onsets)
    good = window_spectra(rec.data, on, SPV, (1, 100))[:, 0, 19]
    start = _plan(vhdr, bold, alignment="start").onsets
    naive = window_spectra(rec.data, start, SPV, (1, 100))[:, 0, 19]
    np.testing.assert_allclose(good, good[0], rtol=1e-3)
    assert naive[0] < 0.01 * good[0] and naive[1] < 0.8 * good[0]


def test_real_noddi_headers_give_the_scan_start_markers(tmp_path):
    """The real NODDI BrainVision headers (samples synthesised to match): sub-35's scan starts
    129.6 s into the EEG, sub-32's at once; VECTORIZED and MULTIPLEXED both read."""
    src = FIXTURES / "noddi-bids-headers" / "derivatives"
    for sub, first in (("sub-35", 32392), ("sub-32", 36)):
        d = tmp_path / sub
        d.mkdir()
        for ext in ("vhdr", "vmrk"):
            shutil.copy(src / sub / "eeg" / f"{sub}_task-rest_eeg.{ext}", d)
        header = (d / f"{sub}_task-rest_eeg.vhdr").read_text()
        points = int(header.split("DataPoints=")[1].split()[0])
        np.zeros((64, points), dtype="<f4").tofile(d / f"{sub}_task-rest_eeg.dat")
        rec = read_eeg(d / f"{sub}_task-rest_eeg.vhdr")
        assert rec.fs == 250.0 and len(rec.ch_names) == 64
        plan = _plan(d / f"{sub}_task-rest_eeg.vhdr", _write_bold(d / "bold.nii", 300, 2.16),
                     volume_marker="Scan Start")
        on = plan.onsets
        assert not plan.problems and plan.n_markers == 300 and on[0] == first
        # sub-32's EEG ends before the last volume's window is complete: dropped, and said so
        assert len(on) == (299 if sub == "sub-32" else 300)
        assert ("1 volume(s) without a complete EEG window" in " ".join(plan.notes)) == (
            sub == "sub-32")
        assert np.all(np.diff(on) == 540)


def test_volume_layout_round_trips_and_minmax():
    x = np.random.default_rng(0).random((5, 6, 7, 3))  # X, Y, Z, T
    v = to_volumes(x)
    assert v.shape == (3, 7, 5, 6)
    np.testing.assert_array_equal(from_volumes(v), x)
    m = minmax_per_volume(v * 10 + 3)
    assert np.allclose(m.reshape(3, -1).min(1), 0) and np.allclose(m.reshape(3, -1).max(1), 1)


def test_store_holds_each_window_once(tiny_features):
    s = SubjectFeatures.open(tiny_features / "sub-02")
    assert s.eeg.shape == (TINY.n_volumes, TINY.n_channels, 60)
    assert s.eeg.dtype == np.float32 and isinstance(s.eeg, np.memmap)
    assert s.bold.shape == (TINY.n_volumes, TINY.grid[2], TINY.grid[0], TINY.grid[1])
    assert s.clean is not None and s.mask.dtype == bool and s.mask.any()
    # the raw windows (NT-ViT's input) are the same windows the spectra were computed from
    n_win = s.meta["window_samples"]
    assert s.raw.shape == (TINY.n_volumes, TINY.n_channels, n_win) and s.raw.dtype == np.float16
    spec = np.abs(np.fft.rfft(np.asarray(s.raw[3], dtype=np.float64), axis=-1))[:, 1:61]
    np.testing.assert_allclose(spec, s.eeg[3], rtol=0.02, atol=0.02 * float(s.eeg[3].max()))
    assert s.meta["first_onset_sample"] >= TINY.lead_in_s[0] * TINY.fs


# --- bad input: clear errors that name the file ---

def test_missing_data_file_is_named(tmp_path):
    vhdr = _write_eeg(tmp_path, np.zeros((2, 1000)), [0])
    (tmp_path / "rec.eeg").unlink()
    with pytest.raises(InputError, match=r"rec\.vhdr.*DataFile=rec\.eeg.*does not exist"):
        read_eeg(vhdr)


def test_nifti_with_wrong_tr_is_named(tmp_path):
    path = _write_bold(tmp_path / "bold.nii.gz", 4, tr=2.5)
    with pytest.raises(InputError, match=r"bold\.nii\.gz.*TR in the NIfTI header is 2\.5 s"):
        read_bold(path, expected_tr=2.0)


def test_eeg_without_volume_markers_is_named(tmp_path):
    plan = _plan(_write_eeg(tmp_path, np.zeros((2, 5000)), None),
                 _write_bold(tmp_path / "bold.nii.gz", 4))
    with pytest.raises(InputError, match=r"rec\.vhdr.*no volume markers 'R128'.*"
                                         r"dataset_settings\.t\.alignment: start"):
        plan.raise_first()


def test_nan_in_eeg_is_named(tmp_path):
    x = np.zeros((2, 3000))
    x[1, 1234] = np.nan
    with pytest.raises(InputError, match=r"rec\.vhdr.*NaN.*channel 'E1', sample 1234"):
        read_eeg(_write_eeg(tmp_path, x, [0]))


def test_markers_at_the_wrong_spacing_are_rejected(tmp_path):
    plan = _plan(_write_eeg(tmp_path, np.zeros((1, 8000)), [0, 400, 800, 1200]),
                 _write_bold(tmp_path / "bold.nii.gz", 4))
    with pytest.raises(InputError, match="not fs\\*TR = 500 samples apart: 3 interval.*400 "
                                         "samples after marker 1"):
        plan.raise_first()


def test_preprocess_reports_the_file_through_the_cli(tmp_path, capsys):
    from eeg2fmri.cli import main

    vhdr = _write_eeg(tmp_path / "sub-01" / "eeg", np.zeros((2, 6000)),
                      [SPV * j for j in range(4)], "sub-01_task-rest_eeg")
    (vhdr.parent / "sub-01_task-rest_eeg.eeg").unlink()
    own = {"dataset_settings": {"own": {"root": str(tmp_path), "volume_marker": "R128",
                                        "eeg": "{subject}/eeg/{subject}_task-rest_eeg.vhdr",
                                        "bold": "{subject}/func/bold.nii.gz"}}}
    code = main(["preprocess", "--dataset", "own", "--raw", str(tmp_path), "--subject", "sub-01",
                 "--out", str(tmp_path / "out"), "--config", json.dumps(own)])
    err = capsys.readouterr().err
    assert code == 2 and "sub-01_task-rest_eeg.vhdr" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "eeg.npy").exists()


def test_find_markers_matches_type_and_description(tmp_path):
    rec = read_eeg(_write_eeg(tmp_path, np.zeros((1, 3000)), [10, 510]))
    assert list(match_markers(rec.markers, "Response/R128")) == [10, 510]
    assert list(match_markers(rec.markers, "R128")) == [10, 510]
    assert match_markers(rec.markers, "S  1").size == 0


def test_too_many_frequency_bins_for_the_window_is_named(tiny_raw, tmp_path):
    sub = "sub-01"
    with pytest.raises(InputError, match=r"sub-01_task-rest_eeg\.vhdr.*features\.n_bins = 300"):
        preprocess_subject(get_dataset("sim", {"simulation": asdict(TINY)}), tiny_raw, sub,
                           tmp_path / sub, n_bins=300)
    assert not (tmp_path / sub).exists()


def test_dct_reduction_keeps_the_field_of_view_and_intensity():
    """CN-EPFL's 108x108x64 -> 64x64x30: a constant stays constant, a low-frequency pattern
    survives, and the new affine spans the same field of view."""
    aff = np.diag([2.0, 2.0, 2.2, 1.0])
    aff[:3, 3] = [-107, -107, -70]
    x, y, z = np.meshgrid(*[np.linspace(0, np.pi, n) for n in (108, 108, 64)], indexing="ij")
    vol = 100 + 10 * np.cos(x) * np.cos(z)
    small, new = dct_reduce(vol[..., None], aff, (64, 64, 30))
    assert small.shape == (64, 64, 30, 1)
    np.testing.assert_allclose(small.mean(), vol.mean(), rtol=1e-4)
    ux = (np.arange(64) + 0.5) * 108 / 64 - 0.5  # new voxel centres in old voxel units
    uz = (np.arange(30) + 0.5) * 64 / 30 - 0.5
    expected = 100 + 10 * np.cos(np.pi * ux / 107)[:, None] * np.cos(np.pi * uz / 63)[None]
    r = np.corrcoef(small[:, 40, :, 0].ravel(), expected.ravel())[0, 1]
    assert r > 0.99
    flat, _ = dct_reduce(np.full((108, 108, 64), 7.0), aff, (64, 64, 30))
    np.testing.assert_allclose(flat, 7.0, rtol=1e-5)
    for axis, (n_old, n_new) in enumerate(zip((108, 108, 64), (64, 64, 30), strict=True)):
        old_edges = aff[axis, 3] + aff[axis, axis] * np.array([-0.5, n_old - 0.5])
        new_edges = new[axis, 3] + new[axis, axis] * np.array([-0.5, n_new - 0.5])
        np.testing.assert_allclose(new_edges, old_edges)


@pytest.mark.parametrize("make, message", [
    (lambda v: np.full_like(v, 700.0), "volume.* are constant"),
    (lambda v: v[..., :1] * np.linspace(1, 2, v.shape[-1]) + np.arange(v.shape[-1]),
     "no voxel varies over the run's"),
])
def test_a_bold_run_without_fluctuations_is_refused(tiny_raw, tmp_path, make, message):
    """A constant run, and one whose volumes are affine copies of one image (min-max scaling
    makes it constant), would score SSIM 1 and PSNR 120 dB for every model."""
    root = tmp_path / "raw"
    shutil.copytree(tiny_raw, root)
    bold = root / "sub-01" / "func" / "sub-01_task-rest_bold.nii.gz"
    img = nib.load(bold)
    data = np.asarray(img.dataobj, dtype=np.float32)
    nib.save(nib.Nifti1Image(make(data).astype(np.float32), img.affine, img.header), bold)
    ds = get_dataset("sim", {"simulation": asdict(TINY)})
    with pytest.raises(InputError, match=f"sub-01_task-rest_bold.nii.gz: .*{message}"):
        preprocess_subject(ds, root, "sub-01", tmp_path / "out", n_bins=30)
    assert not (tmp_path / "out").exists()


def test_per_run_scaling_keeps_each_voxels_own_fluctuations(tiny_raw, tiny_features, tmp_path):
    """bold_scaling: run divides a run by one range; per volume (the papers') every volume is
    divided by its own, so the brightest voxel's fluctuations reach every region."""
    from eeg2fmri.data.simulate import roi_atlas

    ds = get_dataset("sim", {"simulation": asdict(TINY)})
    meta = preprocess_subject(ds, tiny_raw, "sub-01", tmp_path / "run", n_bins=60,
                              scaling="run")
    assert meta["bold_scaling"] == "run"
    run = np.load(tmp_path / "run" / "bold.npy")
    clean = {k: np.load(d / "clean.npy") for k, d in (("run", tmp_path / "run"),
                                                      ("volume", tiny_features / "sub-01"))}
    raw = read_bold(tiny_raw / "sub-01/func/sub-01_task-rest_bold.nii.gz").data
    raw = to_volumes(raw[..., meta["runs"][0]["first_volume"]:][..., :len(run)])
    np.testing.assert_allclose(run, (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-6)
    labels, names = roi_atlas(TINY)
    background = to_volumes(labels == len(names)) & np.load(tmp_path / "run" / "mask.npy")
    assert background.sum() > 10
    # no EEG-driven signal reaches the background: its noise-free BOLD is constant per run,
    # unless each volume is scaled by its own range
    assert clean["run"][:, background].std(0).max() < 1e-6
    assert clean["volume"][:, background].std(0).max() > 1e-3
