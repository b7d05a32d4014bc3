"""Dataset registry: name -> where its files are, its TR, markers and subjects.

Kept free of torch so that the Snakefile can import it quickly at parse time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eeg2fmri.data import sim_settings


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    tr: float
    subjects: tuple[str, ...]
    task: str
    volume_marker: str | None  # marker description of a volume onset; None: fixed offset
    alignment: str  # "markers" or "start" (EEG sample 0 is volume 0)
    simulated: bool = False

    def eeg_path(self, root: Path, subject: str) -> Path:
        return root / subject / "eeg" / f"{subject}_task-{self.task}_eeg.vhdr"

    def bold_path(self, root: Path, subject: str) -> Path:
        return root / subject / "func" / f"{subject}_task-{self.task}_bold.nii.gz"

    def truth_paths(self, root: Path, subject: str) -> dict[str, Path]:
        """Ground-truth derivatives (simulated data only): noise-free BOLD and brain mask."""
        if not self.simulated:
            return {}
        d = root / "derivatives" / "truth" / subject / "func"
        return {"clean": d / f"{subject}_task-{self.task}_desc-noiseless_bold.nii.gz",
                "mask": d / f"{subject}_desc-brain_mask.nii.gz"}


def sim_config(cfg: dict[str, Any]) -> sim_settings.SimConfig:
    """The simulator's settings from the validated workflow config's `simulation` section."""
    s = dict(cfg.get("simulation", {}))
    for key in ("grid", "voxel_mm", "lead_in_s"):
        if key in s:
            s[key] = tuple(s[key])
    return sim_settings.SimConfig(**s)


def get_dataset(name: str, cfg: dict[str, Any]) -> DatasetSpec:
    if name == "sim":
        sc = sim_config(cfg)
        return DatasetSpec("sim", sc.tr, tuple(sc.subject_ids()), sim_settings.TASK,
                           sim_settings.VOLUME_MARKER, "markers", simulated=True)
    raise KeyError(f"unknown dataset {name!r}; known: sim")
