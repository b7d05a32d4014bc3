"""Which EEG window goes with which BOLD volume, decided from headers and markers alone.

`plan_run` reads a run's EEG header and markers and its NIfTI header (no samples, no voxels),
and returns the pairs preprocessing will make, what it drops and why, and every problem in words.
Preprocessing refuses a run with problems; `eeg2fmri inspect` shows them all. Never silent: an
input that disagrees with itself is a problem naming the files, both values and the config key
that resolves it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eeg2fmri.data.bold import read_bold_header
from eeg2fmri.data.datasets import PAPER_PAIRING, DatasetSpec, RunFiles
from eeg2fmri.data.formats import reader
from eeg2fmri.data.formats.base import Header, match_markers
from eeg2fmri.errors import InputError
from eeg2fmri.preprocess.ingest import Ingestion, Recording, open_recording, read_header, windows
from eeg2fmri.store import layout_differences

TR_TOLERANCE = 1e-3  # s
SPACING_TOLERANCE = 0.01  # fraction of fs*TR a marker interval may deviate
AMPLITUDE_FACTOR = 10.0  # a run this far from the dataset's median amplitude is a problem
AMPLITUDE_RANGE_UV = (1e-3, 1e6)  # and one outside this (1 nV to 1 V), whatever the dataset
BLOCK_BYTES = 1 << 16  # files of one size: compared by three such blocks before a whole digest


@dataclass
class Problem:
    path: Path | None
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass
class RunPlan:
    """One run's pairing: volume `volumes[i]` of the BOLD goes with the EEG window starting at
    sample `onsets[i]` (in the file's sampling rate)."""

    subject: str
    run: str
    eeg: Path
    bold: Path
    format: str = ""
    fs: float = 0.0
    channels: list[str] = field(default_factory=list)  # kept, in store order
    dropped_channels: list[str] = field(default_factory=list)
    n_samples: int = 0
    n_markers: int | None = None  # volume markers found (None: not looked for)
    marker_spacing: float | None = None  # median interval, samples
    first_marker_s: float | None = None
    n_volumes: int = 0
    tr_header: float | None = None
    tr_sidecar: float | None = None
    tr: float = 0.0
    alignment: str = ""
    onsets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    scan_onsets: np.ndarray | None = None  # every volume acquired (gradient artefact epochs)
    mr: dict = field(default_factory=dict)  # MR artefact figures (inspect)
    volumes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    notes: list[str] = field(default_factory=list)  # what is dropped and why, warnings
    problems: list[Problem] = field(default_factory=list)

    @property
    def n_pairs(self) -> int:
        return len(self.onsets)

    def raise_first(self) -> None:
        if self.problems:
            p = self.problems[0]
            raise InputError(p.path, p.message)


def select_channels(ds: DatasetSpec, names: list[str], path: Path
                    ) -> tuple[list[str], list[str]]:
    """(kept, dropped) channel names: `keep_channels` in their order, else all but
    `drop_channels` (both case-insensitive) in file order."""
    lower = {n.lower(): n for n in names}
    if len(lower) != len(names):
        dup = sorted({n for n in names if sum(m.lower() == n.lower() for m in names) > 1})
        raise InputError(path, f"channel names repeat (case-insensitive): {dup}")
    if ds.keep_channels:
        missing = [c for c in ds.keep_channels if c.lower() not in lower]
        if missing:
            raise InputError(path, f"channels {missing} of {ds.key('keep_channels')} are not in "
                                   f"the recording (it has: {', '.join(names)})")
        kept = [lower[c.lower()] for c in ds.keep_channels]
    else:
        drop = {d.lower() for d in ds.drop_channels}
        kept = [n for n in names if n.lower() not in drop]
    return kept, [n for n in names if n not in kept]


def irregular_intervals(onsets: np.ndarray, spv: float) -> np.ndarray:
    """Indices k of the intervals onsets[k] -> onsets[k+1] that are not fs*TR (`spv`) samples."""
    return np.flatnonzero(np.abs(np.diff(onsets) - spv) > SPACING_TOLERANCE * spv)


def mr_key(ds: DatasetSpec) -> str:
    """The config key of a dataset's MR artefact settings (the simulated dataset's lie under
    `simulation`: dataset_settings.sim is no key)."""
    return "simulation.mr_artefacts" if ds.simulated else ds.key("mr_artefacts")


def consistency(ds: DatasetSpec, plans: list[RunPlan]) -> list[Problem]:
    """Runs (of one subject, or of a dataset) must give windows of one layout (the channels in
    one order, fs and TR) as the first: `store.layout_differences`, the one layout check."""
    if not plans:
        return []
    ref, out = plans[0], []
    for p in plans[1:]:
        problems, hints = layout_differences(
            {"channels": p.channels, "fs": p.fs, "tr": p.tr},
            {"channels": ref.channels, "fs": ref.fs, "tr": ref.tr}, f"dataset_settings.{ds.name}")
        if problems:
            out.append(Problem(p.eeg, f"{'; '.join(problems)} against {ref.eeg.name} "
                                      f"({'; '.join(hints)})"))
    return out


def plan_run(ds: DatasetSpec, subject: str, run: RunFiles, pairing: str = "markers"
             ) -> RunPlan:
    """The pairing of one run from headers and markers; problems are collected, not raised."""
    plan = RunPlan(subject, run.label, run.eeg, run.bold)
    try:
        _plan(ds, plan, pairing)
    except InputError as e:
        plan.problems.append(Problem(e.path, e.problem))
    return plan


def _resolve_tr(ds: DatasetSpec, plan: RunPlan, header_tr: float, sidecar_tr: float | None,
                sidecar: Path | None) -> float | None:
    plan.tr_header, plan.tr_sidecar = header_tr or None, sidecar_tr
    if ds.tr is not None:
        for where, value in (("NIfTI header", plan.tr_header), (f"sidecar {sidecar}", sidecar_tr)):
            if value is not None and abs(value - ds.tr) > TR_TOLERANCE:
                plan.notes.append(f"TR {value:g} s of the {where} ignored: {ds.key('tr')} is "
                                  f"{ds.tr:g} s")
        return ds.tr
    if sidecar_tr is not None and plan.tr_header and abs(sidecar_tr - header_tr) > TR_TOLERANCE:
        plan.problems.append(Problem(plan.bold, (
            f"TR in the NIfTI header is {header_tr:g} s but sidecar {sidecar} says "
            f"{sidecar_tr:g} s; set {ds.key('tr')} to the right one")))
        return None
    tr = sidecar_tr if sidecar_tr is not None else plan.tr_header
    if not tr:
        plan.problems.append(Problem(plan.bold, f"no TR in the NIfTI header and no sidecar "
                                                f"RepetitionTime; set {ds.key('tr')}"))
        return None
    return tr


def _plan(ds: DatasetSpec, plan: RunPlan, pairing: str) -> None:
    plan.format = ds.format_of(plan.eeg)
    rec = read_header(plan.eeg, plan.format, ds.read_options())
    plan.fs, plan.n_samples = rec.fs, rec.n_samples
    plan.channels, plan.dropped_channels = select_channels(ds, rec.ch_names, plan.eeg)
    bold = read_bold_header(plan.bold)
    if len(bold.shape) != 4:
        raise InputError(plan.bold, f"BOLD must be 4-D (x, y, z, time); got shape {bold.shape}")
    if ds.grid is not None and any(g > n for g, n in zip(ds.grid, bold.shape[:3], strict=True)):
        raise InputError(plan.bold, f"{ds.key('grid')} {list(ds.grid)} is larger than the "
                                    f"BOLD's grid {list(bold.shape[:3])}: a grid can only be "
                                    "reduced; give at most the BOLD's in each direction")
    plan.n_volumes = bold.shape[3]
    if plan.dropped_channels:
        plan.notes.append(f"channels dropped: {', '.join(plan.dropped_channels)}")
    tr = _resolve_tr(ds, plan, bold.tr, bold.sidecar_tr, bold.sidecar)
    if tr is None:
        return
    plan.tr = tr
    spv = rec.fs * tr  # EEG samples per volume
    if not plan.channels:
        raise InputError(plan.eeg, f"no channel left of {len(rec.ch_names)} (all dropped by "
                                   f"{ds.key('drop_channels')} / {ds.key('keep_channels')})")
    window = spv / ds.decimate  # samples per window, after decimation
    if round(window) < 8:
        raise InputError(plan.eeg, f"a window of fs*TR / decimate = {rec.fs:g} Hz x {tr:g} s / "
                                   f"{ds.decimate} = {window:g} samples is too short to window; "
                                   f"check {ds.key('tr')} and {ds.key('decimate')}")
    if abs(window - round(window)) > 1e-6 * window:
        real = round(window) * ds.decimate / rec.fs
        text = (f"a window of fs*TR / decimate = {rec.fs:g} Hz x {tr:g} s / {ds.decimate} = "
                f"{window:g} samples is not whole: windows would be {round(window)} samples, "
                f"{real:.4f} s for a {tr:g} s TR")
        if ds.decimate > 1:
            raise InputError(plan.eeg, f"{text}; choose a {ds.key('decimate')} that divides "
                                       f"{spv:g}")
        plan.notes.append(text)

    markers = None
    if ds.volume_marker is not None or ds.marker_type is not None:
        markers = match_markers(rec.markers, ds.volume_marker, ds.marker_type)
        plan.n_markers = len(markers)
        if len(markers):
            plan.first_marker_s = markers[0] / rec.fs
        if len(markers) > 1:
            plan.marker_spacing = float(np.median(np.diff(markers)))

    if pairing == "paper":
        alignment, skip = PAPER_PAIRING["alignment"], PAPER_PAIRING["skip_volumes"]
        if markers is not None and len(markers):
            plan.notes.append(
                f"warning: paper pairing ignores the {len(markers)} volume markers; the first "
                f"is {markers[0] / rec.fs:.2f} s after the EEG start, a shift of "
                f"{markers[0] / spv:.1f} volumes against 'EEG sample 0 = volume 0' "
                f"(features.pairing: markers uses them)")
    elif pairing == "markers":
        alignment, skip = ds.alignment, ds.skip_volumes
    else:
        raise InputError(None, f"features.pairing must be 'markers' or 'paper', not {pairing!r}")
    plan.alignment = alignment

    volumes = np.arange(plan.n_volumes)
    if alignment == "markers":
        if markers is None:
            raise InputError(plan.eeg, f"alignment 'markers' needs {ds.key('volume_marker')} "
                                       f"(or set {ds.key('alignment')}: start or offset)")
        onsets, volumes = _marker_pairs(ds, plan, rec, markers, spv)
        if onsets is None:
            return
    elif alignment in ("start", "offset"):
        start = ds.offset_s * rec.fs if alignment == "offset" else 0.0
        onsets = np.round(start + volumes * spv).astype(np.int64)
    else:
        raise InputError(None, f"{ds.key('alignment')} must be markers, start or offset, "
                               f"not {alignment!r}")
    # every volume acquired, for the gradient artefact's epochs: the scanner's markers where
    # the recording has them, else the alignment's grid
    plan.scan_onsets = (np.asarray(markers, dtype=np.int64)
                        if markers is not None and len(markers) >= 3 else
                        np.round(onsets[0] - volumes[0] * spv
                                 + np.arange(plan.n_volumes) * spv).astype(np.int64))
    if skip:
        plan.notes.append(f"first {skip} volume(s) of the run skipped ({ds.key('skip_volumes')}"
                          f"{' (paper pairing)' if pairing == 'paper' else ''})")
        onsets, volumes = onsets[skip:], volumes[skip:]
    n_win = int(round(spv / ds.decimate)) * ds.decimate
    covered = (onsets >= 0) & (onsets + n_win <= rec.n_samples)
    if not covered.all():
        before, after = int((onsets < 0).sum()), int((~covered).sum() - (onsets < 0).sum())
        parts = [f"{n} {where}" for n, where in ((before, "before the EEG starts"),
                                                  (after, "past the EEG's end")) if n]
        plan.notes.append(f"{int((~covered).sum())} volume(s) without a complete EEG window "
                          f"dropped ({', '.join(parts)}; EEG {rec.n_samples / rec.fs:.1f} s)")
        onsets, volumes = onsets[covered], volumes[covered]
    if len(onsets) < 2:
        plan.problems.append(Problem(plan.eeg, f"only {len(onsets)} volume(s) of {plan.bold} "
                                               "have a complete EEG window"))
    plan.onsets, plan.volumes = onsets, volumes


def _marker_pairs(ds: DatasetSpec, plan: RunPlan, rec: Header, markers: np.ndarray,
                  spv: float) -> tuple[np.ndarray | None, np.ndarray]:
    """Pair volume markers with volumes one to one (after `skip_markers`), or a problem."""
    what = repr(ds.volume_marker or f"type {ds.marker_type}")
    if len(markers) == 0:
        found = ", ".join(sorted(rec.markers)[:12]) or "none"
        plan.problems.append(Problem(plan.eeg, (
            f"no volume markers {what} found (markers present: {found}); set "
            f"{ds.key('volume_marker')}, or {ds.key('alignment')}: start (EEG sample 0 is volume "
            f"0) or offset (with {ds.key('offset_s')})")))
        return None, np.zeros(0, np.int64)
    beyond = markers >= rec.n_samples
    if beyond.any():
        plan.problems.append(Problem(plan.eeg, (
            f"{int(beyond.sum())} of {len(markers)} volume markers {what} lie past the end of "
            f"the EEG data ({rec.n_samples:,} samples, {rec.n_samples / rec.fs:.1f} s): the data "
            "file is truncated or belongs to another recording")))
        return None, np.zeros(0, np.int64)
    off = irregular_intervals(markers, spv)
    if len(off):
        k = int(off[0])
        plan.problems.append(Problem(plan.eeg, (
            f"volume markers {what} are not fs*TR = {spv:g} samples apart: {len(off)} "
            f"interval(s) differ, the first {int(markers[k + 1] - markers[k])} samples after "
            f"marker {k + 1} (at "
            f"{markers[k] / rec.fs:.2f} s); a missing or extra marker, or the wrong TR "
            f"({plan.tr:g} s) or {ds.key('volume_marker')}")))
        return None, np.zeros(0, np.int64)
    if ds.skip_markers:
        plan.notes.append(f"first {ds.skip_markers} marker(s) skipped ({ds.key('skip_markers')})")
        markers = markers[ds.skip_markers:]
    n_m, n_v = len(markers), plan.n_volumes
    volumes = np.arange(n_v)
    if n_m == n_v:
        return markers.astype(np.int64), volumes
    surplus = (f"{n_m - n_v} marker(s) without a volume" if n_m > n_v
               else f"{n_v - n_m} volume(s) without a marker")
    if ds.mismatch == "drop_end":
        n = min(n_m, n_v)
        plan.notes.append(f"{surplus} at the end dropped ({ds.key('mismatch')}: drop_end)")
        return markers[:n].astype(np.int64), volumes[:n]
    if ds.mismatch == "drop_start":
        n = min(n_m, n_v)
        plan.notes.append(f"{surplus} at the start dropped ({ds.key('mismatch')}: drop_start)")
        return markers[n_m - n:].astype(np.int64), volumes[n_v - n:]
    skipped = f" after skipping {ds.skip_markers}" if ds.skip_markers else ""
    head = f"{n_m} volume markers {what}{skipped} but {plan.bold} has {n_v} volumes: "
    if n_m > n_v:
        plan.problems.append(Problem(plan.eeg, head + (
            f"they cannot be paired one to one. If the BOLD lacks its first volumes (dummy scans "
            f"removed), set {ds.key('skip_markers')}: {ds.skip_markers + n_m - n_v}; to pair "
            f"from the start and drop the unpaired rest, {ds.key('mismatch')}: drop_end; to "
            f"pair from the end, {ds.key('mismatch')}: drop_start")))
        return None, volumes
    # fewer markers than volumes: the EEG stopped before the scan did (it ends within a TR or
    # two of the last marker) or started after it; or too many markers are skipped
    d, tail_s = n_v - n_m, (rec.n_samples - markers[-1]) / rec.fs
    ended = (f" (the EEG ends {tail_s:.1f} s after the last marker: it stopped before the scan "
             "did)" if tail_s < 2 * plan.tr else "")
    remedies = [f"set {ds.key('mismatch')}: drop_end to pair from the first volume and drop the "
                f"last {d}{ended}",
                f"{ds.key('mismatch')}: drop_start to pair from the last and drop the first {d} "
                "(the EEG started after the scan)"]
    if ds.skip_markers >= d:
        remedies.append(f"{ds.key('skip_markers')}: {ds.skip_markers - d} if {d} of the skipped "
                        "markers belong to volumes the BOLD has")
    plan.problems.append(Problem(plan.eeg, f"{head}{d} volume(s) without a marker; "
                                           f"{'; or '.join(remedies)}"))
    return None, volumes


def run_files(ds: DatasetSpec, run: RunFiles) -> list[Path]:
    """Every file a run reads: its EEG with the files its format keeps beside it (a
    BrainVision header's data and marker files, as the header names them) and its BOLD."""
    files = [run.eeg, run.bold]
    try:
        files += reader(ds.format_of(run.eeg)).companions(run.eeg)
    except (InputError, OSError):
        pass  # the run's own plan names the problem
    return files


def shared_files(ds: DatasetSpec, root: Path, runs: dict[str, list[RunFiles]],
                 only: str | None = None) -> list[Problem]:
    """Runs that read one physical file (the same path, a link or a copy's header naming another
    recording's data) or byte-identical copies of one (`sample_files`, `identical`), and files
    outside the dataset's root, as problems (those of subject `only` where given). A subject
    must never read another's EEG or BOLD."""
    top = os.path.normpath(os.path.abspath(root))
    owner: dict[tuple[int, int], tuple[str, Path]] = {}
    out = []
    for subject, subject_runs in runs.items():
        for run in subject_runs:
            label = f"{subject}{' ' + run.label if run.label else ''}"
            for f in run_files(ds, run):
                where = os.path.normpath(os.path.abspath(f))
                if os.path.commonpath([top, where]) != top and subject == (only or subject):
                    out.append(Problem(f, (
                        f"{label} reads this file, which lies outside the dataset's root {root} "
                        f"(a header's DataFile=/MarkerFile= or a path pattern leads there): "
                        "keep every file of the dataset under its root")))
                try:
                    st = os.stat(f)
                except OSError:
                    continue  # missing: the run's plan says so
                first = owner.setdefault((st.st_dev, st.st_ino), (label, f))
                if first[0] != label and (only is None or subject == only
                                          or first[0].split()[0] == only):
                    out.append(Problem(f, (
                        f"read by {first[0]} and by {label}: one recording cannot serve two "
                        f"runs (a copied BrainVision header whose DataFile=/MarkerFile= names "
                        f"another recording, or {ds.key('eeg')}/{ds.key('bold')} patterns "
                        "that match one file for several subjects)")))
    seen: set[tuple[int, int]] = set()
    samples: list[tuple[str, Path]] = []  # one entry per physical file (links: above)
    for subject, subject_runs in runs.items():
        for run in subject_runs:
            label = f"{subject}{' ' + run.label if run.label else ''}"
            for f in sample_files(ds, run):
                try:
                    st = os.stat(f)
                except OSError:
                    continue
                if f.is_file() and st.st_size and (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    samples.append((label, f))

    def relevant(group: list[tuple[str, Path]]) -> bool:
        labels = {label for label, _ in group}
        return len(labels) > 1 and (only is None or any(la.split()[0] == only for la in labels))

    for digest, ((first, original), *copies) in identical(samples, relevant).items():
        for label, f in copies:
            if label != first and (only is None or only in (label.split()[0], first.split()[0])):
                out.append(Problem(f, (
                    f"{label} reads a byte-identical copy of {original}, which {first} reads "
                    f"(SHA-256 {digest[:16]}...): one recording cannot serve two runs; give "
                    f"{label} its own, or leave the subject out (config subjects.{ds.name})")))
    return out


def sample_files(ds: DatasetSpec, run: RunFiles) -> list[Path]:
    """The files that hold a run's samples: its EEG's data (BrainVision's DataFile, EEGLAB's
    .fdt, an MFF folder's signal*.bin, else the EEG file itself) and its BOLD. Headers and
    marker files may be alike across subjects; these may not."""
    try:
        fmt = reader(ds.format_of(run.eeg))
        found = fmt.companions(run.eeg)
    except (InputError, OSError):
        return [run.bold]  # the run's own plan names the problem
    if fmt.is_folder:
        return [*(p for p in found if p.name.startswith("signal") and p.suffix == ".bin"),
                run.bold]
    return [*(found[:1] or [run.eeg]), run.bold]


def _blocks(path: Path) -> str:
    size = path.stat().st_size
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for at in (0, max(size // 2 - BLOCK_BYTES // 2, 0), max(size - BLOCK_BYTES, 0)):
            f.seek(at)
            h.update(f.read(BLOCK_BYTES))
    return h.hexdigest()


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def identical(files: list[tuple[str, Path]], relevant: Callable[[list[tuple[str, Path]]], bool]
              ) -> dict[str, list[tuple[str, Path]]]:
    """{SHA-256: its files} for the byte-identical files among (label, path) pairs of distinct
    physical files: by size, then by a digest of three blocks, then by SHA-256 of the whole;
    only the groups `relevant` keeps are read further, so only files whose sizes collide are."""
    groups: dict[object, list[tuple[str, Path]]] = {None: files}
    for key in (lambda f: f.stat().st_size, _blocks, _sha256):
        found: dict[object, list[tuple[str, Path]]] = {}
        for group in groups.values():
            by: dict[object, list[tuple[str, Path]]] = {}
            for entry in group:
                try:
                    by.setdefault(key(entry[1]), []).append(entry)
                except OSError:
                    pass  # unreadable: the run's plan says so
            found.update((k, g) for k, g in by.items() if len(g) > 1 and relevant(g))
        groups = found
    return {str(k): g for k, g in groups.items()}


def run_amplitude(ds: DatasetSpec, plan: RunPlan, rec: Recording | None = None,
                  seconds: float = 30.0) -> float | None:
    """The median SD of a channel's fs*TR window (microvolts) over `seconds` in the middle of
    the run, through the ingestion path (None for a run with problems): what inspect shows and
    what `amplitude_problems` checks, in inspect and preprocessing alike."""
    if plan.problems or not plan.channels:
        return None
    if rec is None:
        with open_recording(plan.eeg, plan.format, ds.read_options()) as opened:
            return run_amplitude(ds, plan, opened, seconds)
    spv = int(round(plan.fs * plan.tr))
    n = min(plan.n_samples, max(int(seconds * plan.fs), spv))
    onsets = np.arange((plan.n_samples - n) // 2, (plan.n_samples + n) // 2 - spv + 1, spv)
    return windows(rec, plan.channels, onsets, Ingestion(spv, (0, 1)), spectra=False,
                   raw=False).amplitude_uv


def amplitude_problems(ds: DatasetSpec, plans: list[RunPlan], amplitudes: list[float | None],
                       only: str | None = None) -> list[Problem]:
    """Runs (of subject `only` where given) whose EEG amplitude (`run_amplitude`) lies outside
    AMPLITUDE_RANGE_UV, or AMPLITUDE_FACTOR from the dataset's: the median over subjects of
    their first measured run's (so that preprocessing reads one run of each other subject). A
    unit error: volts written as microvolts, or the reverse. Flat (0) runs are left out."""
    first: dict[str, float] = {}
    for plan, a in zip(plans, amplitudes, strict=True):
        if a and np.isfinite(a):
            first.setdefault(plan.subject, a)
    if not first:
        return []
    median, (lo, hi), out = float(np.median(list(first.values()))), AMPLITUDE_RANGE_UV, []
    for plan, a in zip(plans, amplitudes, strict=True):
        if not a or not np.isfinite(a) or only not in (None, plan.subject):
            continue
        why = []
        if not (ds.accept_amplitude or 1 / AMPLITUDE_FACTOR <= a / median <= AMPLITUDE_FACTOR):
            why.append(f"{a / median:.3g} times the dataset's median {median:.3g} uV")
        if not lo <= a <= hi:
            why.append(f"outside the {lo:g} to {hi:g} uV of any EEG")
        gain = (f"; if its amplifier's gain truly differs, set {ds.key('accept_amplitude')}: "
                "true" if lo <= a <= hi else "")  # outside any EEG's range: never accepted
        if why:
            out.append(Problem(plan.eeg, (
                f"EEG amplitude {a:.3g} uV is {' and '.join(why)}: a unit mismatch (volts "
                "written as microvolts, or the reverse) or another amplifier setting; correct "
                "the unit or resolution its header gives the channels, or leave the subject "
                f"out (config subjects.{ds.name}){gain}")))
    return out
