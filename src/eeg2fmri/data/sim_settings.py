"""Settings of the simulated dataset, importable without the simulator's heavy dependencies."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Channel order: the 19 electrodes of the 10-20 system first, then 10-10 positions.
CHANNELS = (
    "Fp1 Fp2 F7 F3 Fz F4 F8 T7 C3 Cz C4 T8 P7 P3 Pz P4 P8 O1 O2 "
    "AF3 AF4 FC5 FC1 FC2 FC6 CP5 CP1 CP2 CP6 PO3 PO4 Oz"
).split()
# (name, centre frequency in Hz, electrode the source lies beneath)
SOURCES = (("alpha", 10.0, "O1"), ("beta", 20.0, "C4"), ("gamma", 40.0, "F3"), ("theta", 6.0, "Pz"))
VOLUME_MARKER = "Response/R128"
TASK = "rest"


@dataclass(frozen=True)
class SimConfig:
    n_subjects: int = 6
    n_volumes: int = 160
    tr: float = 2.0
    fs: float = 250.0
    n_channels: int = 19
    n_sources: int = 3
    grid: tuple[int, int, int] = (32, 32, 16)  # X, Y, Z voxels
    voxel_mm: tuple[float, float, float] = (6.0, 6.0, 8.0)
    bold_change: float = 0.15  # fractional BOLD change at a footprint's peak per SD of drive
    footprint_mm: float = 30.0  # spatial SD of a source's BOLD footprint
    thermal_noise: float = 0.005  # SD of BOLD noise as a fraction of mean brain intensity
    drift: float = 0.005  # amplitude of slow drift as a fraction of intensity
    source_uv: float = 8.0  # RMS of a source at its nearest electrode, microvolts
    background_uv: float = 6.0  # RMS of the 1/f background per channel, microvolts
    sensor_noise_uv: float = 1.0
    envelope_s: float = 4.0  # time scale of the source envelopes, seconds
    freq_jitter_hz: float = 0.3  # SD of each rhythm's slow frequency wander
    anatomy_jitter: float = 0.2  # subject deviation from the template anatomy (0: identical)
    lead_in_s: tuple[float, float] = (2.0, 8.0)  # EEG starts this long before the first volume
    seed: int = 0
    subjects: list[str] = field(default_factory=list)
    # inside the scanner (data/scanner.py): EEG at scanner_fs with gradient artefact, BCG, ECG
    scanner: bool = False
    scanner_fs: float = 1000.0  # a whole multiple of fs; preprocessing decimates back
    gradient_uv: float = 2000.0  # peak of the gradient artefact (the EEG: ~10 uV)
    gradient_jitter: float = 0.1  # SD of a volume's timing against the EEG clock, samples
    slice_jitter: float = 0.0  # SD of each slice's own timing, samples (independent per slice)
    clock_step: float = 0.37  # samples the slices move per volume against the EEG clock (0: locked)
    scanner_slices: int = 0  # slices per volume (0: grid Z)
    interleaved: bool = False  # slices acquired 0, 2, 4, ..., 1, 3, ... (positions)
    slice_gain_spread: float = 0.0  # the artefact's amplitude over the slice positions, +-fraction
    gradient_edge_ms: float = 0.0  # SD of the switching spikes (0: 2 % of the slice period)
    hardware_lowpass_hz: float = 0.0  # the amplifier's low-pass before sampling (0: none)
    gradient_drift: float = 0.05  # slow amplitude drift, fraction
    bcg_uv: float = 60.0  # peak of the ballistocardiogram
    heart_bpm: float = 66.0
    hrv: float = 0.05  # heart rate variability, fraction of the RR interval
    qrs_ms: float = 10.0  # SD of the ECG's R wave (Q and S scale with it), ms
    bcg_delay_s: float = 0.2  # the BCG's earliest peak after the R-peak (others up to +0.15 s)

    def __post_init__(self) -> None:
        if self.scanner:
            self.scanner_factor()  # refuse a scanner rate that cannot be made

    def scanner_factor(self) -> int:
        """scanner_fs / fs, a whole number: the scanner recording is `fs` upsampled by it (and
        preprocessing decimates it back by it)."""
        factor = self.scanner_fs / self.fs
        if factor < 1 or abs(factor - round(factor)) > 1e-9 * factor:
            from eeg2fmri.errors import InputError

            raise InputError(None, (
                f"simulation.scanner_fs: {self.scanner_fs:g} Hz is not a whole multiple of "
                f"simulation.fs ({self.fs:g} Hz): the scanner rate is fs times a whole factor; "
                f"use one of {', '.join(f'{self.fs * k:g}' for k in range(1, 6))}, ... Hz"))
        return int(round(factor))

    def subject_ids(self) -> list[str]:
        return self.subjects or [f"sub-{i + 1:02d}" for i in range(self.n_subjects)]


# Raised whenever the simulator makes other data from the same settings (2: footprints taper to
# zero), so that a tree made by an earlier simulator is refused as made with other settings.
SIMULATOR_VERSION = 2


def recorded_settings(cfg: SimConfig) -> dict:
    """What a simulated tree records of what made it (dataset_description.json)."""
    return {**{k: v for k, v in asdict(cfg).items() if k != "subjects"},
            "simulator_version": SIMULATOR_VERSION}


def check_simulated_tree(root: str | Path, cfg: SimConfig) -> None:
    """Refuse a simulated tree made with other settings than `cfg` (its dataset_description.json
    records them): another experiment sharing the data_root, or a .snakemake/ that was lost."""
    from eeg2fmri.errors import InputError
    from eeg2fmri.made_with import refuse_if_differs

    path = Path(root) / "dataset_description.json"
    try:
        made = json.loads(json.loads(path.read_text())["GeneratedBy"][0]["Description"])
    except FileNotFoundError:
        raise InputError(path, "does not exist: the simulated tree is incomplete; rerun the "
                               "simulation (snakemake --forcerun simulate)") from None
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        raise InputError(path, f"does not record the simulation's settings ({e}); rerun the "
                               "simulation (snakemake --forcerun simulate)") from None
    expected = recorded_settings(cfg)
    refuse_if_differs(path, f"the simulated tree under {Path(root)}", made, expected,
                      "It belongs to another experiment sharing data_root (or to an earlier "
                      "config): give this experiment a data_root of its own, or simulate anew "
                      "(snakemake --forcerun simulate), which makes the other's data stale "
                      "in turn", prefix="simulation")
