"""The simulated simultaneous EEG-fMRI dataset, with known ground truth.

Latent neural sources oscillate in their own band (alpha, beta, gamma, theta). Each source's
amplitude follows a slow random envelope; its band *power* drives BOLD through the canonical
double-gamma HRF (peak 5 s) in a spatial footprint centred on the source, inside a brain-shaped
mask. EEG = lead field x source activity + 1/f background from many random dipoles + sensor noise.
BOLD = subject anatomy x (1 + HRF-driven change) + slow drift + thermal noise. The noise-free BOLD
(anatomy x (1 + change)) and the brain mask are written as derivatives, so the ceiling is known.

The tree is BIDS-like and looks like a real recording to the readers: BrainVision EEG (pybv) with
one "R128" volume marker per volume, EEG starting a few seconds before the first volume, and NIfTI
BOLD with a proper affine and the TR in the header and JSON sidecar.
"""

from __future__ import annotations

import json
from pathlib import Path

import mne
import numpy as np
import pybv
from scipy import ndimage, stats

from eeg2fmri.data.scanner import scanner_recording
from eeg2fmri.data.sim_settings import CHANNELS, SOURCES, TASK, SimConfig, recorded_settings
from eeg2fmri.io import atomic_files, save_nifti, save_npz, write_json, write_text

SIGMA_TISSUE = 0.33  # S/m, conductivity of the infinite homogeneous medium of the lead field


def hrf(t: np.ndarray) -> np.ndarray:
    """Canonical double-gamma haemodynamic response (SPM shape: peak 5 s, undershoot 15 s)."""
    return stats.gamma.pdf(t, 6) - stats.gamma.pdf(t, 16) / 6.0


def affine(cfg: SimConfig) -> np.ndarray:
    """Voxel -> RAS mm, grid centred on the origin (the head centre)."""
    a = np.diag([*cfg.voxel_mm, 1.0])
    a[:3, 3] = -(np.asarray(cfg.grid) - 1) / 2.0 * np.asarray(cfg.voxel_mm)
    return a


def _voxel_mm(cfg: SimConfig) -> np.ndarray:
    """RAS mm coordinates of every voxel centre, [X, Y, Z, 3]."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in cfg.grid], indexing="ij"), axis=-1)
    return ijk @ affine(cfg)[:3, :3].T + affine(cfg)[:3, 3]


def electrode_positions(names: list[str]) -> np.ndarray:
    """Electrode positions (m, head frame) on a 95 mm sphere from MNE's spherical 10-20 montage."""
    pos = mne.channels.make_standard_montage("spherical_1020").get_positions()["ch_pos"]
    xyz = np.array([pos[n] for n in names])
    return 0.095 * xyz / np.linalg.norm(xyz, axis=1, keepdims=True)


def lead_field(electrodes: np.ndarray, dipoles: np.ndarray, moments: np.ndarray) -> np.ndarray:
    """Potential (V per A·m) of current dipoles in an infinite homogeneous conductor, [C, K]."""
    d = electrodes[:, None, :] - dipoles[None, :, :]
    r3 = np.linalg.norm(d, axis=-1) ** 3
    return np.einsum("ckx,kx->ck", d, moments) / (4 * np.pi * SIGMA_TISSUE * r3)


def _smooth_noise(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    x = ndimage.gaussian_filter1d(rng.standard_normal(n), sigma, mode="wrap")
    return (x - x.mean()) / x.std()


def _pink_noise(rng: np.random.Generator, shape: tuple[int, int], fs: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(shape), axis=-1)
    f = np.fft.rfftfreq(shape[-1], 1 / fs)
    spec *= 1.0 / np.sqrt(np.maximum(f, 0.5))
    x = np.fft.irfft(spec, n=shape[-1], axis=-1)
    return x / x.std(axis=-1, keepdims=True)


def _brain(cfg: SimConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Subject anatomy (arbitrary MR units) and brain mask on the grid.

    Volumes are in a common template space (as after spatial normalisation): a population brain
    plus subject-specific deviations of relative size `cfg.anatomy_jitter`.
    """
    pop = np.random.default_rng([cfg.seed, 20_000])
    jit = cfg.anatomy_jitter

    def field(sigma: float) -> np.ndarray:
        f = ndimage.gaussian_filter(pop.standard_normal(cfg.grid), sigma)
        f += jit * ndimage.gaussian_filter(rng.standard_normal(cfg.grid), sigma)
        return f / f.std()

    xyz = _voxel_mm(cfg)
    radii = np.array([68.0, 82.0, 58.0]) * (1 + 0.04 * jit * rng.uniform(-1, 1, 3))
    rho = np.sqrt(((xyz / radii) ** 2).sum(-1)) + 0.03 * np.clip(field(2.0), -2, 2)
    mask = rho < 1.0
    ventricles = np.sqrt((((xyz - [0, -5, 10]) / [14, 24, 12]) ** 2).sum(-1)) < 1
    anat = np.where(rho > 0.85, 1200.0, 1000.0) * (1 + 0.08 * field(1.2))
    anat = np.where(ventricles, 450.0, anat)
    anat = np.where(mask, anat, 30.0)
    return ndimage.gaussian_filter(anat, 0.6).astype(np.float64), mask


def _sources(cfg: SimConfig) -> tuple[np.ndarray, np.ndarray, list[tuple[str, float, str]]]:
    """Population-level source positions (m) and radial unit moments."""
    chosen = list(SOURCES[: cfg.n_sources])
    under = electrode_positions([s[2] for s in chosen])
    pos = 0.6 * under
    moments = under / np.linalg.norm(under, axis=1, keepdims=True)
    return pos, moments, chosen


def _background_dipoles(cfg: SimConfig, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([cfg.seed, 10_000])
    pos = rng.standard_normal((n, 3))
    pos *= 0.07 * rng.uniform(0, 1, (n, 1)) ** (1 / 3) / np.linalg.norm(pos, axis=1)[:, None]
    return pos, rng.standard_normal((n, 3))


FOOTPRINT_REACH = (2.0, 2.5)  # footprints taper from 2 to 0 at 2.5 SDs (BOLD stays local)


def footprints(cfg: SimConfig, mask: np.ndarray) -> np.ndarray:
    """Spatial footprint of each source's BOLD response, [K, X, Y, Z], peak 1, inside the mask:
    a Gaussian of SD footprint_mm, tapered (raised cosine) to exactly 0 between 2 and 2.5 SDs,
    so that voxels far from every source carry no EEG-driven signal."""
    pos, _, _ = _sources(cfg)
    xyz = _voxel_mm(cfg)
    a, b = (k * cfg.footprint_mm for k in FOOTPRINT_REACH)
    out = []
    for p in pos * 1000.0:
        d = np.sqrt(((xyz - p) ** 2).sum(-1))
        taper = 0.5 * (1 + np.cos(np.pi * np.clip((d - a) / (b - a), 0.0, 1.0)))
        out.append(np.exp(-(d**2) / (2 * cfg.footprint_mm**2)) * taper * mask)
    return np.array(out)


def roi_atlas(cfg: SimConfig) -> tuple[np.ndarray, list[str]]:
    """Regions of interest on the template grid: each source's footprint (where it is above
    half its peak and the strongest) and the background, where no footprint reaches (voxels
    between the two belong to none); labels 1..K+1 (0: none) and names."""
    fp = footprints(cfg, np.ones(cfg.grid, dtype=bool))
    labels = np.where(fp.max(0) > 0.5, fp.argmax(0) + 1,
                      np.where(fp.max(0) == 0, len(fp) + 1, 0)).astype(np.float32)
    names = [f"{name} source ({electrode})" for name, _, electrode in _sources(cfg)[2]]
    return labels, [*names, "background"]


def simulate_subject(cfg: SimConfig, index: int) -> dict[str, np.ndarray | float | int]:
    """Generate one subject's EEG (V, [C, S]), BOLD (noisy and noise-free, [X, Y, Z, T])."""
    rng = np.random.default_rng([cfg.seed, index])
    fs, tr = cfg.fs, cfg.tr
    spv = int(round(fs * tr))  # EEG samples per volume
    lead_in = int(round(rng.uniform(*cfg.lead_in_s) * fs))
    n_samples = lead_in + cfg.n_volumes * spv + int(2 * fs)
    t = np.arange(n_samples) / fs

    # Source activity: band-limited carriers with slow log-normal amplitude envelopes.
    pos, moments, chosen = _sources(cfg)
    env_fs = 10.0
    n_env = int(np.ceil(n_samples / fs * env_fs)) + 1
    acts, powers = [], []
    for _, freq, _ in chosen:
        # a rhythm whose frequency wanders slowly (SD `freq_jitter_hz`) around its centre
        jitter = cfg.freq_jitter_hz * np.interp(
            t, np.arange(n_env) / env_fs, _smooth_noise(rng, n_env, 2.0 * env_fs))
        phase = 2 * np.pi * np.cumsum(freq + jitter) / fs + rng.uniform(0, 2 * np.pi)
        carrier = np.sqrt(2) * np.sin(phase)
        z = _smooth_noise(rng, n_env, cfg.envelope_s * env_fs)
        amp_env = np.exp(0.6 * z)
        amp = np.interp(t, np.arange(n_env) / env_fs, amp_env)
        acts.append(amp * carrier)
        powers.append(amp_env**2)

    names = CHANNELS[: cfg.n_channels]
    elec = electrode_positions(names)
    lf = lead_field(elec, pos, moments)
    lf *= cfg.source_uv * 1e-6 / np.abs(lf).max(axis=0, keepdims=True)
    eeg = lf @ np.array(acts)
    # 1/f background from random dipoles inside the head (the same population of generators
    # for every subject, so a subject is not identifiable from its EEG topography alone),
    # plus white sensor noise.
    bg_pos, bg_mom = _background_dipoles(cfg)
    bg = lead_field(elec, bg_pos, bg_mom) @ _pink_noise(rng, (len(bg_pos), n_samples), fs)
    bg *= cfg.background_uv * 1e-6 / bg.std(axis=1, keepdims=True)
    eeg += bg + cfg.sensor_noise_uv * 1e-6 * rng.standard_normal(eeg.shape)

    # BOLD: band power -> HRF -> sampled at each volume's acquisition midpoint.
    onsets = lead_in + np.arange(cfg.n_volumes) * spv
    t_vol = (onsets + spv / 2) / fs
    kernel = hrf(np.arange(0, 32, 1 / env_fs)) / env_fs
    drives = []
    for p in powers:
        d = np.convolve(p - p.mean(), kernel)[:n_env]
        d = np.interp(t_vol, np.arange(n_env) / env_fs, d)
        drives.append((d - d.mean()) / d.std())
    drives = np.array(drives)  # [K, T]

    anat, mask = _brain(cfg, rng)
    fp = footprints(cfg, mask)
    change = cfg.bold_change * np.einsum("kxyz,kt->xyzt", fp, drives)
    clean = anat[..., None] * (1 + change)
    ramp = np.linspace(-1, 1, cfg.n_volumes)
    slow = np.cos(2 * np.pi * t_vol / 200.0 + rng.uniform(0, 2 * np.pi))
    drift = cfg.drift * anat[..., None] * (0.6 * ramp + 0.4 * slow)
    noise = cfg.thermal_noise * anat[mask].mean() * rng.standard_normal(clean.shape)
    return {
        "eeg": eeg, "onsets": onsets, "bold": clean + drift + noise, "clean": clean,
        "mask": mask, "drives": drives, "powers": np.array(powers), "env_fs": env_fs,
    }


def write_dataset(cfg: SimConfig, root: str | Path) -> list[str]:
    """Write the BIDS-like tree under `root`; returns the subject ids."""
    root = Path(root)
    subjects = cfg.subject_ids()
    names = CHANNELS[: cfg.n_channels]
    aff = affine(cfg)
    for i, sub in enumerate(subjects):
        sim = simulate_subject(cfg, i)
        eeg_dir, func_dir = root / sub / "eeg", root / sub / "func"
        truth = root / "derivatives" / "truth" / sub / "func"
        base = f"{sub}_task-{TASK}"
        eeg, fs, ch_names, onsets, slices = sim["eeg"], cfg.fs, list(names), sim["onsets"], []
        if cfg.scanner:  # as recorded inside the scanner; the clean EEG is the truth
            rec = scanner_recording(cfg, sim["eeg"], sim["onsets"], i)
            eeg, fs, onsets, slices = rec["eeg"], rec["fs"], rec["onsets"], rec["slices"]
            ch_names.append("ECG")
            _write_brainvision(truth.parent / "eeg", f"{base}_desc-clean_eeg", rec["clean"], fs,
                               ch_names, onsets, [])
        _write_brainvision(eeg_dir, f"{base}_eeg", eeg, fs, ch_names, onsets, slices)
        write_json(eeg_dir / f"{base}_eeg.json", {
            "TaskName": TASK, "SamplingFrequency": fs, "EEGChannelCount": len(names),
            "ECGChannelCount": len(ch_names) - len(names),
            "EEGReference": "simulated average", "PowerLineFrequency": 50,
            "RecordingType": "continuous", "SoftwareFilters": "n/a",
        })
        save_nifti(func_dir / f"{base}_bold.nii.gz", sim["bold"], aff, cfg.tr)
        write_json(func_dir / f"{base}_bold.json", {
            "TaskName": TASK, "RepetitionTime": cfg.tr,  # slices acquired ascending over the TR
            "SliceTiming": [round(k * cfg.tr / cfg.grid[2], 6) for k in range(cfg.grid[2])]})
        save_nifti(truth / f"{base}_desc-noiseless_bold.nii.gz", sim["clean"], aff, cfg.tr)
        save_nifti(truth / f"{sub}_desc-brain_mask.nii.gz", sim["mask"].astype(np.float32), aff,
                     None)
        save_npz(truth / f"{base}_desc-sources.npz", drives=sim["drives"],
                 powers=sim["powers"], env_fs=sim["env_fs"], onsets=sim["onsets"])
    labels, names = roi_atlas(cfg)
    save_nifti(root / "derivatives" / "truth" / "rois_dseg.nii.gz", labels, aff, None)
    write_text(root / "derivatives" / "truth" / "rois_dseg.tsv",
               "index\tname\n" + "".join(f"{i + 1}\t{n}\n" for i, n in enumerate(names)))
    write_text(root / "participants.tsv",
               "participant_id\n" + "".join(f"{s}\n" for s in subjects))
    write_json(root / "derivatives" / "truth" / "dataset_description.json",
               {"Name": "eeg2fmri simulation ground truth", "BIDSVersion": "1.9.0",
                "DatasetType": "derivative", "GeneratedBy": [{"Name": "eeg2fmri"}]})
    write_json(root / "dataset_description.json", {
        "Name": "eeg2fmri simulated simultaneous EEG-fMRI", "BIDSVersion": "1.9.0",
        "DatasetType": "raw", "Authors": ["eeg2fmri simulator"],
        "GeneratedBy": [{"Name": "eeg2fmri", "Description": json.dumps(recorded_settings(cfg))}],
    })
    write_text(root / "README", README.format(n=len(subjects), tr=cfg.tr, fs=cfg.fs))
    return subjects


def _write_brainvision(folder: Path, stem: str, data: np.ndarray, fs: float, names: list[str],
                       volumes: np.ndarray, slices: list[int] | np.ndarray) -> None:
    """A BrainVision triple (microvolts), "Response/R128" per volume and "Response/R  1" per
    slice, written whole or not at all."""
    events = ([{"onset": int(o), "description": 128, "type": "Response"} for o in volumes]
              + [{"onset": int(o), "description": 1, "type": "Response"} for o in slices])
    events.sort(key=lambda e: e["onset"])
    with atomic_files(folder, stem, last=".vhdr") as tmp_dir:
        pybv.write_brainvision(data=data, sfreq=fs, ch_names=names, fname_base=stem,
                               folder_out=tmp_dir, overwrite=True, events=events,
                               resolution=0.01, unit="µV")


README = """eeg2fmri simulated simultaneous EEG-fMRI dataset

{n} subjects, resting state ("rest"), generated by the eeg2fmri simulator: BrainVision EEG at
{fs:g} Hz with one "Response/R128" marker per volume onset, starting a few seconds before the
first volume, and 4-D NIfTI BOLD with TR {tr:g} s. Latent oscillatory sources drive the BOLD
through a canonical HRF; derivatives/truth holds the noise-free BOLD, the brain mask and the
source drives (the known ground truth).
"""
