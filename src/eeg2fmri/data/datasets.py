"""Datasets: one entry per dataset says where its files are and how to read, align and download
them. A user's dataset is an entry under config `dataset_settings` (no Python); the built-in ones
are entries of the same kind with their download sources.

Kept free of heavy imports so that the Snakefile can import it quickly at parse time.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from eeg2fmri.data import sim_settings
from eeg2fmri.data.formats import FORMATS, ReadOptions, extensions, format_by_extension
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


NAME_PATTERN = r"^[a-z][a-z0-9]*$"  # dataset names: folder names and a Snakemake wildcard
SUBJECT_PATTERN = r"^sub-[A-Za-z0-9]+$"


@dataclass(frozen=True)
class RunFiles:
    """One recording run of a subject: its label and the EEG and BOLD files."""

    label: str
    eeg: Path
    bold: Path


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: built-in (`BUILTIN`) or declared under config `dataset_settings` (same keys,
    documented in workflow/schemas/config.schema.yaml)."""

    name: str
    tr: float | None  # None: from each BOLD file's header (checked against its BIDS sidecar)
    subjects: tuple[str, ...]  # our ids: sub-<native id>
    eeg: str = ""  # layout "patterns": path of a run's EEG below the root: {subject} {id} {run}
    bold: str = ""  # same for the BOLD run
    layout: str = "patterns"  # or "bids": files found by BIDS entities
    task: str | None = None  # bids: only this task (default: every task with EEG and BOLD)
    runs: tuple[str, ...] = ("",)
    eeg_format: str = "auto"  # by extension (data.formats.FORMATS) unless given
    mat_variable: str = "data"  # eeg_format "mat": the [channels, samples] matrix
    volume_marker: str | None = None  # marker description (or "Type/Description") of a volume
    marker_type: str | None = None  # and/or its type (BrainVision "Response", "Stimulus", ...)
    alignment: str = "markers"  # "markers", "start" (EEG sample 0 = volume 0) or "offset"
    offset_s: float = 0.0  # alignment "offset": EEG time of the first volume's onset
    skip_volumes: int = 0  # dummy scans at the start of each run (dropped with their markers)
    skip_markers: int = 0  # markers at the start of the EEG whose volumes are not in the BOLD
    mismatch: str = "error"  # markers vs volumes: "error", "drop_end", "drop_start"
    accept_amplitude: bool = False  # runs >10x off the dataset's median amplitude: accepted
    drop_channels: tuple[str, ...] = ()  # non-EEG channels (ECG), case-insensitive
    keep_channels: tuple[str, ...] = ()  # or: only these, in this order
    eeg_rows: int | None = None  # keep the first rows of a .mat EEG matrix
    fs: float | None = None  # sampling rate where the file does not say (.mat)
    decimate: int = 1  # band-limit and decimate the EEG by this factor before windowing
    n_bins: int | None = None  # |FFT| bins, where a window has fewer than features.n_bins
    grid: tuple[int, int, int] | None = None  # reduce volumes to (X, Y, Z) by 3-D DCT
    coverage: str = "whole brain"
    mr_artefacts: Mapping[str, Any] = field(default_factory=dict)  # gradient, bcg: detect|...
    rois: Mapping[str, Any] = field(default_factory=dict)  # image (labels), labels (index\tname)
    splits: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # fixed test splits
    source: Source | None = None
    from_participants: bool = False  # subjects: those of the dataset's participants.tsv
    notes: str = ""
    simulated: bool = False
    root: str | None = None  # declared datasets: where the files are
    builtin: bool = False

    def key(self, setting: str) -> str:
        """The config key of one of this dataset's settings (for hints in errors)."""
        return f"dataset_settings.{self.name}.{setting}"

    def native(self, subject: str) -> str:
        return subject.removeprefix("sub-")

    def format_of(self, path: Path) -> str:
        if self.eeg_format != "auto":
            return self.eeg_format
        fmt = format_by_extension(path)
        if fmt is not None:
            return fmt
        raise InputError(path, f"unknown EEG file type; set {self.key('eeg_format')} "
                               f"(one of {', '.join(FORMATS)})")

    def roi_files(self, root: str | Path) -> tuple[Path, Path | None] | None:
        """The regions of interest: a label image (or 4-D maps) and its index/name table, the
        simulated dataset's own (its sources' footprints and a background), or None."""
        root = Path(root)
        if self.simulated:
            d = root / "derivatives" / "truth"
            return d / "rois_dseg.nii.gz", d / "rois_dseg.tsv"
        if not self.rois:
            return None
        image, table = Path(self.rois["image"]), self.rois.get("labels")
        return (image if image.is_absolute() else root / image,
                None if table is None else (Path(table) if Path(table).is_absolute()
                                            else root / table))

    def mr_settings(self) -> dict[str, Any]:
        """The MR artefact settings (preprocess.mr_artefacts.MRSettings' fields)."""
        return dict(self.mr_artefacts)

    def read_options(self) -> ReadOptions:
        """What the entry says about files that do not say it themselves."""
        return ReadOptions(self.mat_variable, self.eeg_rows, self.fs, self.key("fs"))

    def run_paths(self, root: str | Path, subject: str, run: str) -> tuple[Path, Path]:
        """The EEG and BOLD file of one run (layout "patterns"); globs must match one file."""
        keys = {"subject": subject, "id": self.native(subject), "run": run}
        return (_one(Path(root), self.eeg.format(**keys)),
                _one(Path(root), self.bold.format(**keys)))

    def subject_runs(self, root: str | Path, subject: str) -> tuple[list[RunFiles], list[str]]:
        """A subject's runs, and what was found but cannot be paired (in words)."""
        if self.layout == "bids":
            return bids_runs(Path(root), subject, self.task)
        return [RunFiles(run, *self.run_paths(root, subject, run)) for run in self.runs], []

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


_BIDS_EEG = re.compile(r"^(?P<sub>sub-[A-Za-z0-9]+)(?P<ents>(_[a-z]+-[A-Za-z0-9]+)*)_eeg"
                       f"(?P<ext>{'|'.join(re.escape(e) for e in extensions() if e != '.mat')})$")
_BIDS_BOLD = re.compile(r"^(?P<sub>sub-[A-Za-z0-9]+)(?P<ents>(_[a-z]+-[A-Za-z0-9]+)*)_bold"
                        r"\.nii(\.gz)?$")


def _entities(text: str) -> dict[str, str]:
    return dict(part.split("-", 1) for part in text.strip("_").split("_") if part)


def bids_runs(root: Path, subject: str, task: str | None) -> tuple[list[RunFiles], list[str]]:
    """EEG and BOLD files of `subject` in a BIDS tree (sub-X/[ses-Y/]eeg|func), paired by their
    session, task and run entities; unpaired files are reported, never silently used."""
    found: dict[str, dict[tuple, Path]] = {"eeg": {}, "func": {}}
    for kind, pattern in (("eeg", _BIDS_EEG), ("func", _BIDS_BOLD)):
        for path in sorted([*root.glob(f"{subject}/{kind}/*"),
                            *root.glob(f"{subject}/ses-*/{kind}/*")]):
            m = pattern.match(path.name)
            if not m or m["sub"] != subject:
                continue
            ents = _entities(m["ents"])
            if task is not None and ents.get("task") != task:
                continue
            key = tuple((k, ents[k]) for k in ("ses", "task", "run") if k in ents)
            if key in found[kind]:
                raise InputError(path, f"two {kind} files with the same entities: "
                                       f"{found[kind][key].name} and {path.name}")
            found[kind][key] = path
    runs, unpaired = [], []
    for key in sorted(set(found["eeg"]) | set(found["func"])):
        eeg, bold = found["eeg"].get(key), found["func"].get(key)
        if eeg is None or bold is None:
            have = eeg or bold
            unpaired.append(f"{have.relative_to(root)} has no {'BOLD' if bold is None else 'EEG'}"
                            f" run with the same entities: not used")
            continue
        runs.append(RunFiles("_".join(f"{k}-{v}" for k, v in key), eeg, bold))
    return runs, unpaired


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

# The built-in datasets: entries of the same kind as a user's `dataset_settings` entry (same
# keys), plus what is truly theirs (download source, archive layout, .mat variable, fixed splits).
BUILTIN: dict[str, dict[str, Any]] = {
    "noddi": dict(
        tr=2.16, subjects=_subs([32, *range(35, 41), *range(42, 51)]),
        eeg="EEG/{id}/export/*.vhdr", bold="fMRI/{id}/*_cross.nii.gz",
        volume_marker="Scan Start", alignment="markers", drop_channels=("ECG",),
        source=Source("osf", dataset="94c5t", archives=("EEG1.zip", "EEG2.zip", "fMRI.zip"),
                      licence="CC BY 4.0"),
        notes="Deligianni et al. 2014/16; 250 Hz, gradient and BCG corrected; 64x64x30, 300 "
              "volumes at 1.5 T"),
    "oddball": dict(
        tr=2.0, subjects=_subs(list(range(1, 18)), width=3),
        eeg="sub{id}/EEG/{run}/EEG_noGA.mat", bold="sub{id}/BOLD/{run}/bold.nii.gz",
        runs=tuple(f"task00{t}_run00{r}" for t in (1, 2) for r in (1, 2, 3)),
        eeg_format="mat", mat_variable="data_noGA", eeg_rows=43, fs=1000.0, alignment="start",
        mr_artefacts={"bcg": "keep"},  # gradient removed, BCG present, no ECG among rows 0-42
        source=Source("tarball", url="ds116_sub{id}.tgz", licence="PDDL (OpenfMRI)"),
        notes="Walz et al. 2015; EEG_noGA.mat rows 0-42 at 1 kHz (gradient removed, BCG "
              "present), starting with the first volume; 64x64x32, 170 volumes"),
    "cnepfl": dict(
        tr=1.28, subjects=_subs(list(range(2, 27))),
        eeg="{subject}/ses-001/eeg/{subject}_ses-001_task-main_run-001_eeg.vhdr",
        bold="{subject}/ses-001/func/{subject}_ses-001_task-main_run-001_bold.nii.gz",
        alignment="start", drop_channels=("ECG", "EKG"), decimate=10, grid=(64, 64, 30),
        mr_artefacts={"gradient": "correct"},
        splits={"paper": ("sub-21", "sub-22", "sub-24", "sub-26")}, from_participants=True,
        source=Source("openneuro", dataset="ds002158", include=(
            "{subject}/ses-001/eeg/{subject}_ses-001_task-main_run-001_eeg.*",
            "{subject}/ses-001/func/{subject}_ses-001_task-main_run-001_bold.nii.gz"),
            licence="CC0"),
        notes="Pereira et al. 2020; raw 5 kHz EEG with the gradient artefact in (the references "
              "keep it; here corrected by AAS unless mr_artefacts.gradient: keep), low-passed "
              "and decimated to 500 Hz; 108x108x64 reduced to 64x64x30 by 3-D DCT; of the ids "
              "sub-02..sub-26, the 20 in participants.tsv"),
    "xp2": dict(
        tr=1.0, subjects=_subs([*range(201, 208), 210, 211, 213, *range(216, 223)],
                               prefix="xp"),
        eeg="derivatives/{subject}/eeg_pp/{subject}_{run}_eeg_pp.vhdr",
        bold="{subject}/func/{subject}_{run}_bold.nii.gz", runs=_XP2_RUNS,
        volume_marker="R128", alignment="markers", skip_volumes=2, drop_channels=("ECG",),
        n_bins=100, coverage="partial: 16 axial slices of the upper brain",
        source=Source("openneuro", dataset="ds002338", include=(
            "derivatives/{subject}/eeg_pp/*", "{subject}/func/*_bold.nii.gz"), licence="CC0"),
        notes="Lioi et al. 2020; eeg_pp derivatives at 200 Hz (gradient and BCG corrected); "
              "2x2x4 mm, 16 slices; first 2 volumes of each run dropped"),
}
BUILTIN_NAMES = ("sim", *BUILTIN)

# The references' pairing ("paper" mode): EEG sample 0 is volume 0, the first 6 volumes dropped.
PAPER_PAIRING = {"alignment": "start", "skip_volumes": 6}

_TUPLES = ("subjects", "runs", "drop_channels", "keep_channels", "grid")


def sim_config(cfg: dict[str, Any]) -> sim_settings.SimConfig:
    """The simulator's settings from the validated workflow config's `simulation` section."""
    s = dict(cfg.get("simulation", {}))
    s.pop("mr_artefacts", None)  # how preprocessing treats the recording, not how it is made
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
    return [r[col].strip() for r in rows[1:] if len(r) > col]


def discover_subjects(ds: DatasetSpec, root: Path) -> tuple[str, ...]:
    """A declared dataset's subjects: its participants.tsv, else the sub-* folders (layout
    "bids") or the ids its EEG pattern matches (layout "patterns")."""
    listed = participants(root)
    if listed is None:
        if ds.layout == "bids":
            listed = sorted(p.name for p in root.glob("sub-*") if p.is_dir())
        else:
            listed = _pattern_ids(root, ds.eeg)
    bad = [s for s in listed if not re.fullmatch(SUBJECT_PATTERN, s)]
    if bad:
        raise InputError(root, f"subject ids {bad} are not sub-<letters and digits>; list the "
                               f"usable ones under {ds.key('subjects')}")
    if not listed:
        raise InputError(root, f"no subjects found (no participants.tsv, no sub-* folders); "
                               f"check {ds.key('root')} or list them under "
                               f"{ds.key('subjects')}")
    return tuple(listed)


def _pattern_ids(root: Path, pattern: str) -> list[str]:
    """The subject ids for which `pattern` ({subject}/{id}/{run} placeholders) matches a file;
    a placeholder given more than once must match the same id each time."""
    parts = re.split(r"(\{subject\}|\{id\}|\{run\})", pattern)
    pieces, named = [], False
    for p in parts:
        if p in ("{subject}", "{id}"):
            group = "(?P=id)" if named else "(?P<id>[A-Za-z0-9]+)"
            pieces.append(("sub-" if p == "{subject}" else "") + group)
            named = True
        else:
            pieces.append(r"[^/]*" if p == "{run}" else _glob_regex(p))
    glob_pattern = "".join("*" if p in ("{subject}", "{id}", "{run}") else p for p in parts)
    ids = set()
    for hit in root.glob(glob_pattern):
        m = re.fullmatch("".join(pieces), hit.relative_to(root).as_posix())
        if m:
            ids.add(f"sub-{m['id']}")
    return sorted(ids)


def _glob_regex(text: str) -> str:
    return "".join({"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c)) for c in text)


def spec_from_entry(name: str, entry: dict[str, Any], *, builtin: bool = False) -> DatasetSpec:
    """A DatasetSpec from a (schema-validated) dataset entry."""
    e = dict(entry)
    for key in _TUPLES:
        if e.get(key) is not None:
            e[key] = tuple(e[key])
    if "splits" in e:
        e["splits"] = {k: tuple(v) for k, v in e["splits"].items()}
    marker = e.pop("volume_marker", None)
    if isinstance(marker, dict):
        e["volume_marker"], e["marker_type"] = marker.get("description"), marker.get("type")
    else:
        e["volume_marker"] = marker
    e.setdefault("tr", None)
    e.setdefault("subjects", ())
    if e.get("layout") is None:
        e["layout"] = "patterns" if e.get("eeg") else "bids"
    return DatasetSpec(name=name, builtin=builtin, **e)


def get_dataset(name: str, cfg: dict[str, Any], root: str | Path | None = None) -> DatasetSpec:
    """The dataset's entry: a built-in one (with any `dataset_settings.<name>` overrides) or one
    declared in config. With `root`, a participants.tsv there narrows the subjects of a dataset
    whose entry lists candidates (`from_participants`), and a declared dataset without a subject
    list finds its subjects there. Config `subjects.<name>` restricts them."""
    declared = cfg.get("dataset_settings", {}) or {}
    if name == "sim":
        sc = sim_config(cfg)
        ds = DatasetSpec(
            "sim", sc.tr, tuple(sc.subject_ids()),
            eeg=f"{{subject}}/eeg/{{subject}}_task-{sim_settings.TASK}_eeg.vhdr",
            bold=f"{{subject}}/func/{{subject}}_task-{sim_settings.TASK}_bold.nii.gz",
            volume_marker=sim_settings.VOLUME_MARKER, alignment="markers", simulated=True,
            builtin=True,
            **({"decimate": int(round(sc.scanner_fs / sc.fs)), "drop_channels": ("ECG",),
                "mr_artefacts": dict(cfg.get("simulation", {}).get("mr_artefacts") or {})}
               if sc.scanner else {}))
    elif name in BUILTIN or name in declared:
        from eeg2fmri.config import pattern_error

        entry = {**BUILTIN.get(name, {}), **declared.get(name, {})}
        for key in ("eeg", "bold"):
            if why := pattern_error(entry.get(key), entry):
                raise InputError(None, f"config key 'dataset_settings.{name}.{key}': {why}")
        ds = spec_from_entry(name, entry, builtin=name in BUILTIN)
    else:
        known = ", ".join([*BUILTIN_NAMES, *declared])
        raise InputError(None, f"unknown dataset {name!r}: neither built-in nor declared under "
                               f"dataset_settings (known: {known})")
    if root is None and ds.root is not None:
        root = ds.root
    if root is not None and not ds.subjects and not ds.simulated:
        ds = replace(ds, subjects=discover_subjects(ds, Path(root)))
    listed = participants(Path(root)) if root is not None and ds.from_participants else None
    if listed:
        kept = tuple(s for s in ds.subjects if s in listed)
        if kept:
            ds = replace(ds, subjects=kept)
    chosen = (cfg.get("subjects", {}) or {}).get(name)
    if chosen:
        unknown = sorted(set(chosen) - set(ds.subjects))
        if unknown:
            raise InputError(None, f"config subjects.{name}: {unknown} are not subjects of "
                                   f"{name} ({', '.join(ds.subjects)})")
        ds = replace(ds, subjects=tuple(s for s in ds.subjects if s in chosen))
    return ds


# The built-in real datasets as specs (their subjects before any participants.tsv narrowing).
REAL = {name: spec_from_entry(name, e, builtin=True) for name, e in BUILTIN.items()}
