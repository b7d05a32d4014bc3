"""`eeg2fmri inspect`: what preprocessing will make of a dataset, from headers and markers only.

One row per subject and run: files, format, fs, channels, duration, volume markers and their
spacing, BOLD volumes, TR (header / sidecar), first marker time, the pairs, what is dropped and
why, and every problem in words. Reads no samples and no voxels, so it takes seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eeg2fmri.data.datasets import DatasetSpec, RunFiles
from eeg2fmri.errors import InputError
from eeg2fmri.preprocess.pairing import Problem, RunPlan, consistency, plan_run, shared_files

COLUMNS = ["subject", "run", "eeg", "bold", "format", "fs_hz", "channels", "dropped_channels",
           "eeg_s", "markers", "marker_spacing", "volumes", "tr_header", "tr_sidecar",
           "first_marker_s", "pairs", "notes", "problems"]


def _row(plan: RunPlan, root: Path) -> dict[str, Any]:
    def rel(p: Path) -> str:
        try:
            return str(p.relative_to(root))
        except ValueError:
            return str(p)

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
        "pairs": plan.n_pairs, "notes": "; ".join(plan.notes),
        "problems": "; ".join(p.message for p in plan.problems),
    }


def inspect_dataset(ds: DatasetSpec, root: str | Path, pairing: str = "markers"
                    ) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Rows of the inspection table and every problem (file and message)."""
    root = Path(root)
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    plans: list[RunPlan] = []
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
            plans.append(plan)
            rows.append(_row(plan, root))
            problems += plan.problems
    problems += consistency(ds, [p for p in plans if not p.problems])
    problems += shared_files(ds, root, by_subject)
    return rows, problems


def write_tables(rows: list[dict[str, Any]], problems: list[Problem], out: Path) -> str:
    """inspect.tsv (every column), and a Markdown summary with the problems; returns it."""
    import pandas as pd

    from eeg2fmri.io import write_text

    df = pd.DataFrame(rows, columns=COLUMNS)
    write_text(out, df.to_csv(sep="\t", index=False))
    short = df[["subject", "run", "format", "fs_hz", "channels", "eeg_s", "markers", "volumes",
                "tr_header", "first_marker_s", "pairs"]]
    text = short.to_markdown(index=False) if rows else "(no runs found)"
    notes = [f"- {r['subject']} {r['run']}: {r['notes']}" for r in rows if r["notes"]]
    if notes:
        text += "\n\nNotes (what is dropped and why):\n" + "\n".join(notes)
    text += (f"\n\n{len(problems)} problem(s):\n" + "\n".join(f"- {p}" for p in problems)
             if problems else "\n\nNo problems: every run pairs one to one.")
    write_text(out.with_suffix(".md"), text + "\n")
    return text
