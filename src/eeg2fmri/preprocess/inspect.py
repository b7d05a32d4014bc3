"""`eeg2fmri inspect`: what preprocessing will make of a dataset, from headers and markers only.

One row per subject and run: files, format, fs, channels, duration, volume markers and their
spacing, BOLD volumes, TR (header / sidecar), first marker time, the pairs, the EEG's amplitude,
what is dropped and why, and every problem in words. Reads headers, markers and 30 s of samples
per run (the amplitude), no voxels, so it takes seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eeg2fmri.data.datasets import DatasetSpec, RunFiles
from eeg2fmri.errors import InputError
from eeg2fmri.preprocess.mr_artefacts import BCG_INDEX, GRADIENT_DB, export_note
from eeg2fmri.preprocess.pairing import (
    Problem,
    RunPlan,
    amplitude_problems,
    consistency,
    mr_key,
    plan_run,
    run_amplitude,
    shared_files,
)

COLUMNS = ["subject", "run", "eeg", "bold", "format", "fs_hz", "channels", "dropped_channels",
           "eeg_s", "markers", "marker_spacing", "volumes", "tr_header", "tr_sidecar",
           "first_marker_s", "pairs", "amplitude_uv", "gradient_db", "bcg_index", "notes",
           "problems"]


def measure_amplitude(ds: DatasetSpec, plan: RunPlan, seconds: float = 30.0) -> float | None:
    """The MR artefact figures (into `plan.mr`) and the EEG's amplitude (`run_amplitude`, the
    figure `amplitude_problems` checks in preprocessing too) of one run."""
    if plan.problems or not plan.channels:
        return None
    from eeg2fmri.preprocess.ingest import Stages, open_recording

    with open_recording(plan.eeg, plan.format, ds.read_options()) as rec:
        plan.mr = Stages.measure(rec, plan.channels, plan.tr, plan.scan_onsets,
                                 ds.mr_settings().get("ecg_channel"))
        correction_gate(ds, plan, rec)
        return run_amplitude(ds, plan, rec, seconds)


def correction_gate(ds: DatasetSpec, plan: RunPlan, rec: Any) -> None:
    """Where the dataset's settings correct an MR artefact: the stages as preprocessing builds
    them (`ingest.Stages.build`: every refusal of theirs, the gate on what the correction
    leaves among them), over the band of the features' bins; a refusal is a problem of the run,
    the figures go to `plan.mr`."""
    from eeg2fmri.preprocess.ingest import Ingestion, Stages
    from eeg2fmri.preprocess.mr_artefacts import MRSettings

    settings = MRSettings(**ds.mr_settings())
    if "correct" not in (settings.gradient, settings.bcg):
        return
    n_win = int(round(plan.fs / ds.decimate * plan.tr))
    bins = (1, 1 + min(ds.n_bins or n_win // 2, n_win // 2))
    try:
        st = Stages.build(rec, plan.channels, Ingestion(n_win, bins, ds.decimate, settings),
                          plan.tr, plan.scan_onsets, run=f"{plan.subject} {plan.run}: "
                          .replace(" : ", ": "), key=mr_key(ds))
    except InputError as e:
        plan.problems.append(Problem(e.path, e.problem))
        return
    plan.mr.update({k: v for k, v in st.report.items() if k.startswith("residual")})


def roi_problems(ds: DatasetSpec, root: Path, plans: list[RunPlan]) -> list[Problem]:
    """The ROI image and table as preprocessing reads them (`rois.read_rois`), on the grid of
    each subject's first run where it pairs (`rois.on_grid`)."""
    import nibabel as nib

    from eeg2fmri.preprocess.rois import on_grid, read_rois, store_grid

    try:
        rois = read_rois(ds, root)
        firsts: dict[str, RunPlan] = {}
        for plan in plans if rois is not None else []:
            firsts.setdefault(plan.subject, plan)
        grids = set()
        for plan in firsts.values():
            if plan.problems:
                continue  # refused for its own problems (a grid larger than the BOLD among them)
            img = nib.load(plan.bold)
            grid, affine = store_grid(ds, img.shape, img.affine)
            if (grid, affine.round(6).tobytes()) not in grids:
                grids.add((grid, affine.round(6).tobytes()))
                on_grid(rois, ds, grid, affine)
    except InputError as e:
        return [Problem(e.path, e.problem)]
    return []


def _row(plan: RunPlan, root: Path, amplitude: float | None) -> dict[str, Any]:
    def rel(p: Path) -> str:
        try:
            return str(p.relative_to(root))
        except ValueError:
            return str(p)

    notes = plan.notes + ([plan.mr["gradient_note"]] if "gradient_note" in plan.mr else [])
    if plan.mr.get("residual_pct") is not None:
        notes.append(f"MR correction leaves {plan.mr['residual_pct']} % of the EEG's power "
                     "locked")
    if plan.mr.get("corrected_in_export"):
        notes.append(export_note(plan.mr))
    spv = plan.fs * plan.tr
    spacing = (f"{plan.marker_spacing:g} (fs*TR {spv:g})" if plan.marker_spacing is not None
               else "")
    return {
        "subject": plan.subject, "run": plan.run, "eeg": rel(plan.eeg), "bold": rel(plan.bold),
        "format": plan.format, "fs_hz": plan.fs or "", "channels": len(plan.channels) or "",
        "dropped_channels": " ".join(plan.dropped_channels),
        "eeg_s": round(plan.n_samples / plan.fs, 2) if plan.fs else "",
        "markers": "" if plan.n_markers is None else plan.n_markers,
        "marker_spacing": spacing, "volumes": plan.n_volumes or "",
        "tr_header": plan.tr_header or "", "tr_sidecar": plan.tr_sidecar or "",
        "first_marker_s": "" if plan.first_marker_s is None else round(plan.first_marker_s, 3),
        "pairs": plan.n_pairs, "amplitude_uv": "" if amplitude is None else round(amplitude, 3),
        "gradient_db": "" if plan.mr.get("gradient_db") is None else plan.mr["gradient_db"],
        "bcg_index": "" if plan.mr.get("bcg_index") is None else plan.mr["bcg_index"],
        "notes": "; ".join(notes),
        "problems": "; ".join(p.message for p in plan.problems),
    }


def inspect_dataset(ds: DatasetSpec, root: str | Path, pairing: str = "markers"
                    ) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Rows of the inspection table and every problem (file and message)."""
    root = Path(root)
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    plans: list[RunPlan] = []
    amplitudes: list[float | None] = []
    by_subject: dict[str, list[RunFiles]] = {}
    for subject in ds.subjects:
        try:
            runs, unpaired = ds.subject_runs(root, subject)
        except InputError as e:
            problems.append(Problem(e.path, e.problem))
            continue
        by_subject[subject] = runs
        problems += [Problem(root / subject, line) for line in unpaired]
        if not runs:
            problems.append(Problem(root / subject, "no run with both EEG and BOLD found"))
        for run in runs:
            plan = plan_run(ds, subject, run, pairing)
            try:
                amplitudes.append(measure_amplitude(ds, plan))
            except InputError as e:
                plan.problems.append(Problem(e.path, e.problem))
                amplitudes.append(None)
            plans.append(plan)
            rows.append(_row(plan, root, amplitudes[-1]))
            problems += plan.problems
    problems += consistency(ds, [p for p in plans if not p.problems])
    problems += shared_files(ds, root, by_subject)
    for plan in plans:  # an artefact the dataset's settings do not address
        settings = ds.mr_settings()
        for name, figure, limit, what in (
                ("gradient", "gradient_db", GRADIENT_DB, "gradient artefact"),
                ("bcg", "bcg_index", BCG_INDEX, "ballistocardiogram")):
            value = plan.mr.get(figure)
            if value is not None and value > limit and settings.get(name, "detect") == "detect":
                problems.append(Problem(plan.eeg, (
                    f"{what}: {figure} {value:g} (> {limit:g}); set "
                    f"{mr_key(ds)}.{name}: correct, or keep")))
        if ((plan.mr.get("gradient_db") or 0) > GRADIENT_DB and plan.mr.get("bcg_index") is None
                and settings.get("bcg", "detect") == "detect"):  # in the scanner, unseen
            problems.append(Problem(plan.eeg, (
                f"ballistocardiogram could not be measured in this scanner recording: "
                f"{plan.mr.get('bcg_note', 'not measurable')}. Decide: {mr_key(ds)}.bcg: keep, "
                f"or name the ECG channel ({mr_key(ds)}.ecg_channel) and correct it")))
    problems += amplitude_problems(ds, plans, amplitudes)
    problems += roi_problems(ds, root, plans)
    return rows, problems


def write_tables(rows: list[dict[str, Any]], problems: list[Problem], out: Path) -> str:
    """inspect.tsv (every column), and a Markdown summary with the problems; returns it."""
    import pandas as pd

    from eeg2fmri.io import write_text

    df = pd.DataFrame(rows, columns=COLUMNS)
    out.with_suffix(".md").unlink(missing_ok=True)  # never a new table beside an old summary
    write_text(out, df.to_csv(sep="\t", index=False))
    short = df[["subject", "run", "format", "fs_hz", "channels", "eeg_s", "markers", "volumes",
                "tr_header", "first_marker_s", "pairs", "amplitude_uv", "gradient_db",
                "bcg_index"]]
    text = short.to_markdown(index=False) if rows else "(no runs found)"
    notes = [f"- {r['subject']} {r['run']}: {r['notes']}" for r in rows if r["notes"]]
    if notes:
        text += "\n\nNotes (what is dropped and why):\n" + "\n".join(notes)
    text += (f"\n\n{len(problems)} problem(s):\n" + "\n".join(f"- {p}" for p in problems)
             if problems else "\n\nNo problems: every run pairs one to one.")
    write_text(out.with_suffix(".md"), text + "\n")
    return text
