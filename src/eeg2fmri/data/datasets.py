"""Dataset registry: one entry per dataset says where its files are and how to read, align and
download them. Adding a dataset is one entry here (plus, if its EEG format is new, one reader).

Kept free of heavy imports so that the Snakefile can import it quickly at parse time.
"""

from __future__ import annotations

import glob
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from eeg2fmri.data import sim_settings
from eeg2fmri.errors import InputError


@dataclass(frozen=True)
class Source:
    """Where a dataset comes from.

    kind "openneuro": per-subject files from the public OpenNeuro S3 bucket (`dataset` id,
    `include` globs relative to the dataset root, `{id}` = the native subject id);
    "osf": whole-dataset zip archives (`archives`) of an OSF project (`dataset` = node id);
    "tarball": one archive per subject, file name `url` with `{id}` (below the base URL).
    """

    kind: str
    dataset: str = ""
    include: tuple[str, ...] = ()
    archives: tuple[str, ...] = ()
    url: str = ""
    licence: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    tr: float
    subjects: tuple[str, ...]  # our ids: sub-<native id>
    eeg: str  # path of a run's EEG below the dataset root: {id}, {run}; globs allowed
    bold: str  # same for the BOLD run
    runs: tuple[str, ...] = ("",)
    eeg_format: str = "brainvision"  # or "oddball_mat"
    volume_marker: str | None = None  # marker of a volume onset; alignment "markers" needs it
    alignment: str = "markers"  # "markers" or "start" (EEG sample 0 is volume 0)
    drop_volumes: int = 0  # dummy scans at the start of each run (dropped with their windows)
    drop_channels: tuple[str, ...] = ()  # non-EEG channels (ECG), case-insensitive
    eeg_rows: int | None = None  # keep the first rows of a .mat EEG matrix
    fs: float | None = None  # sampling rate where the file does not say (.mat)
    decimate: int = 1  # band-limit and decimate the EEG by this factor before windowing
    n_bins: int | None = None  # |FFT| bins, where a window has fewer than features.n_bins
    grid: tuple[int, int, int] | None = None  # reduce volumes to (X, Y, Z) by 3-D DCT
    coverage: str = "whole brain"
    splits: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # fixed test splits
    source: Source | None = None
    from_participants: bool = False  # subjects: those of the dataset's participants.tsv
    notes: str = ""
    simulated: bool = False

    def native(self, subject: str) -> str:
        return subject.removeprefix("sub-")

    def run_paths(self, root: str | Path, subject: str, run: str) -> tuple[Path, Path]:
        """The EEG and BOLD file of one run; patterns are expanded (exactly one match)."""
        keys = {"subject": subject, "id": self.native(subject), "run": run}
        return (_one(Path(root), self.eeg.format(**keys)),
                _one(Path(root), self.bold.format(**keys)))

    def folds(self) -> list[str]:
        """Fold names: the fixed splits where the papers use one, else leave-one-subject-out."""
        if self.splits:
            return [f"split-{name}" for name in self.splits]
        return [f"fold-{s}" for s in self.subjects]

    def truth_paths(self, root: Path, subject: str) -> dict[str, Path]:
        """Ground-truth derivatives (simulated data only): noise-free BOLD and brain mask."""
        if not self.simulated:
            return {}
        d = root / "derivatives" / "truth" / subject / "func"
        task = sim_settings.TASK
        return {"clean": d / f"{subject}_task-{task}_desc-noiseless_bold.nii.gz",
                "mask": d / f"{subject}_desc-brain_mask.nii.gz"}


def _one(root: Path, pattern: str) -> Path:
    """root/pattern; a glob pattern must match exactly one file (else the first candidate path
    is returned so that the caller's error names it)."""
    if not glob.has_magic(pattern):
        return root / pattern
    hits = sorted(glob.glob(str(root / pattern)))
    if len(hits) > 1:
        raise InputError(root / pattern, f"matches {len(hits)} files, expected one: "
                                         f"{', '.join(Path(h).name for h in hits)}")
    return Path(hits[0]) if hits else root / pattern


def _subs(ids: list[int], width: int = 2, prefix: str = "") -> tuple[str, ...]:
    return tuple(f"sub-{prefix}{i:0{width}d}" for i in ids)


# XP-2 runs: motor imagery before/after, and three runs each of 1-D and 2-D neurofeedback.
_XP2_RUNS = ("task-MIpre", *(f"task-{t}_run-0{r}" for t in ("1dNF", "2dNF") for r in (1, 2, 3)),
             "task-MIpost")

REAL: dict[str, DatasetSpec] = {
    "noddi": DatasetSpec(
        "noddi", tr=2.16, subjects=_subs([32, *range(35, 41), *range(42, 51)]),
        eeg="EEG/{id}/export/*.vhdr", bold="fMRI/{id}/*_cross.nii.gz",
        volume_marker="Scan Start", alignment="markers", drop_channels=("ECG",),
        source=Source("osf", dataset="94c5t", archives=("EEG1.zip", "EEG2.zip", "fMRI.zip"),
                      licence="CC BY 4.0"),
        notes="Deligianni et al. 2014/16; 250 Hz, gradient and BCG corrected; 64x64x30, 300 "
              "volumes at 1.5 T"),
    "oddball": DatasetSpec(
        "oddball", tr=2.0, subjects=_subs(list(range(1, 18)), width=3),
        eeg="sub{id}/EEG/{run}/EEG_noGA.mat", bold="sub{id}/BOLD/{run}/bold.nii.gz",
        runs=tuple(f"task00{t}_run00{r}" for t in (1, 2) for r in (1, 2, 3)),
        eeg_format="oddball_mat", eeg_rows=43, fs=1000.0, alignment="start",
        source=Source("tarball", url="ds116_sub{id}.tgz", licence="PDDL (OpenfMRI)"),
        notes="Walz et al. 2015; EEG_noGA.mat rows 0-42 at 1 kHz (gradient removed, BCG "
              "present), starting with the first volume; 64x64x32, 170 volumes"),
    "cnepfl": DatasetSpec(
        "cnepfl", tr=1.28, subjects=_subs(list(range(2, 27))),
        eeg="{subject}/ses-001/eeg/{subject}_ses-001_task-main_run-001_eeg.vhdr",
        bold="{subject}/ses-001/func/{subject}_ses-001_task-main_run-001_bold.nii.gz",
        alignment="start", drop_channels=("ECG", "EKG"), decimate=10, grid=(64, 64, 30),
        splits={"paper": ("sub-21", "sub-22", "sub-24", "sub-26")}, from_participants=True,
        source=Source("openneuro", dataset="ds002158", include=(
            "{subject}/ses-001/eeg/{subject}_ses-001_task-main_run-001_eeg.*",
            "{subject}/ses-001/func/{subject}_ses-001_task-main_run-001_bold.nii.gz"),
            licence="CC0"),
        notes="Pereira et al. 2020; raw 5 kHz EEG with the gradient artefact left in (as in the "
              "references), low-passed and decimated to 500 Hz; 108x108x64 reduced to 64x64x30 "
              "by 3-D DCT; of the ids sub-02..sub-26, the 20 in participants.tsv"),
    "xp2": DatasetSpec(
        "xp2", tr=1.0, subjects=_subs([*range(201, 208), 210, 211, 213, *range(216, 223)],
                                      prefix="xp"),
        eeg="derivatives/{subject}/eeg_pp/{subject}_{run}_eeg_pp.vhdr",
        bold="{subject}/func/{subject}_{run}_bold.nii.gz", runs=_XP2_RUNS,
        volume_marker="R128", alignment="markers", drop_volumes=2, drop_channels=("ECG",),
        n_bins=100, coverage="partial: 16 axial slices of the upper brain",
        source=Source("openneuro", dataset="ds002338", include=(
            "derivatives/{subject}/eeg_pp/*", "{subject}/func/*_bold.nii.gz"), licence="CC0"),
        notes="Lioi et al. 2020; eeg_pp derivatives at 200 Hz (gradient and BCG corrected); "
              "2x2x4 mm, 16 slices; first 2 volumes of each run dropped"),
}

# The references' pairing ("paper" mode): EEG sample 0 is volume 0, the first 6 volumes dropped.
PAPER_PAIRING = {"alignment": "start", "drop_volumes": 6}


def sim_config(cfg: dict[str, Any]) -> sim_settings.SimConfig:
    """The simulator's settings from the validated workflow config's `simulation` section."""
    s = dict(cfg.get("simulation", {}))
    for key in ("grid", "voxel_mm", "lead_in_s"):
        if key in s:
            s[key] = tuple(s[key])
    return sim_settings.SimConfig(**s)


def participants(root: Path) -> list[str] | None:
    """participant_id column of a BIDS participants.tsv under `root`, if there is one."""
    tsv = Path(root) / "participants.tsv"
    if not tsv.is_file():
        return None
    rows = [line.split("\t") for line in tsv.read_text().splitlines() if line.strip()]
    if not rows or "participant_id" not in rows[0]:
        return None
    col = rows[0].index("participant_id")
    return [r[col] for r in rows[1:] if len(r) > col]


def get_dataset(name: str, cfg: dict[str, Any], root: str | Path | None = None) -> DatasetSpec:
    """The dataset's entry. With `root`, a BIDS participants.tsv there narrows the subjects of a
    dataset whose entry lists candidates (`from_participants`)."""
    if name == "sim":
        sc = sim_config(cfg)
        return DatasetSpec(
            "sim", sc.tr, tuple(sc.subject_ids()),
            eeg=f"{{subject}}/eeg/{{subject}}_task-{sim_settings.TASK}_eeg.vhdr",
            bold=f"{{subject}}/func/{{subject}}_task-{sim_settings.TASK}_bold.nii.gz",
            volume_marker=sim_settings.VOLUME_MARKER, alignment="markers", simulated=True)
    if name not in REAL:
        raise KeyError(f"unknown dataset {name!r}; known: sim, {', '.join(REAL)}")
    ds = REAL[name]
    listed = participants(Path(root)) if root is not None and ds.from_participants else None
    if listed:
        kept = tuple(s for s in ds.subjects if s in listed)
        if kept:
            ds = replace(ds, subjects=kept)
    chosen = cfg.get("subjects", {}).get(name)
    if chosen:
        unknown = sorted(set(chosen) - set(ds.subjects))
        if unknown:
            raise ValueError(f"config subjects.{name}: {unknown} are not subjects of {name} "
                             f"({', '.join(ds.subjects)})")
        ds = replace(ds, subjects=tuple(s for s in ds.subjects if s in chosen))
    return ds
