"""Per-fold metrics -> tables: mean +- std across folds per model, paired per-fold
differences against the mean-volume baseline (Wilcoxon signed-rank test), and, for sequence
models, a table per task beside linear interpolation of the known frames. With several seeds
(config `seeds`) each fold's replicates are averaged first: every table is over seed-averaged
folds, with the seed SD (within fold, averaged over folds) beside the fold SD. A model selected
on its test subject (the papers' protocol) carries the mark in its name everywhere."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from eeg2fmri.config import TEST_SELECTED, display_name
from eeg2fmri.evaluation.metrics import ALL
from eeg2fmri.io import write_text
from eeg2fmri.made_with import refuse_if_differs
from eeg2fmri.sequences import TASKS

BASELINE = "mean_volume"
CEILING = "ceiling (noise-free truth)"


def check_specs(metric_paths: list[Path], specs: dict[str, dict],
                seeds: list[int] | None = None) -> None:
    """Each fold's metrics come from a model trained with the spec this run's config gives it,
    with one of its `seeds` where several are run (a metrics file left by another experiment
    sharing results_root is refused, naming it)."""
    for p in metric_paths:
        m = json.loads(Path(p).read_text())
        if m.get("model") in specs:
            expected = specs[m["model"]]
            seed = run_seed(m)
            if seeds and seed in seeds:
                expected = {**expected, "training": {**expected["training"], "seed": seed}}
            refuse_if_differs(p, "the fold's metrics", m.get("spec"), expected,
                              "They belong to another experiment sharing results_root, or to "
                              "an earlier config: rerun it (snakemake --forcerun train)",
                              prefix="spec")


def check_ceilings(ceiling_paths: Sequence[Path], expected: dict | None) -> None:
    """Each fold's ceiling was scored on stores made with this run's preprocessing settings and
    with its context (`expected`: {"features": ..., "context": ...}); a ceiling.json left by
    another experiment sharing results_root is refused, naming it."""
    if expected is None:
        return
    for p in ceiling_paths:
        made = json.loads(Path(p).read_text()).get("made_with")
        refuse_if_differs(p, "the fold's ceiling", made, expected,
                          "It belongs to another experiment sharing results_root, or to an "
                          "earlier config: rerun it (snakemake --forcerun ceiling)")


def run_seed(m: dict) -> int | None:
    """The training seed of one fold's metrics."""
    return (m.get("spec") or {}).get("training", {}).get("seed")


def label(m: dict) -> str:
    """The model's name as tables and figures show it (a test-selected one marked)."""
    return display_name(m["spec"]) if m.get("spec") else m["model"]


def run_table(metric_paths: list[Path], ceiling_paths: Sequence[Path] = ()) -> pd.DataFrame:
    """One row per metrics file (model, fold, seed), then the ceiling (simulated data: each
    fold's `ceiling.json`, `eeg2fmri ceiling`)."""
    rows = []
    for p in metric_paths:
        m = json.loads(Path(p).read_text())
        rows.append({"model": label(m), "fold": m["fold"], "test_subject": m["test_subject"],
                     "seed": run_seed(m), **m["mean"],
                     "epochs": m["train"].get("epochs_run"),
                     "params": m["train"].get("n_parameters"),
                     "train_s": m["train"].get("wall_s")})
    for p in ceiling_paths:
        c = json.loads(Path(p).read_text())
        rows.append({"model": CEILING, "fold": c["fold"], "test_subject": c["test_subject"],
                     **c["mean"]})
    return pd.DataFrame(rows).drop_duplicates(subset=["model", "fold", "seed"]
                                              ).reset_index(drop=True)


def per_fold_table(metric_paths: list[Path], ceiling_paths: Sequence[Path] = ()
                   ) -> pd.DataFrame:
    """One row per (model, fold): the mean over its seeds (an undefined seed makes the fold
    undefined), with `seeds` and each metric's SD over seeds (`<metric>_seed_std`)."""
    return seed_averaged(run_table(metric_paths, ceiling_paths))


def seed_averaged(runs: pd.DataFrame) -> pd.DataFrame:
    """`run_table`'s rows averaged over seeds, one per (model, fold)."""
    g = runs.groupby(["model", "fold"], sort=False, dropna=False)
    out = g[["test_subject", "params"]].first()
    out["seeds"] = g.size()
    for k in ALL:
        out[k] = g[k].apply(lambda s: s.mean(skipna=False))
        out[f"{k}_seed_std"] = g[k].apply(lambda s: s.std(ddof=1, skipna=False))
    for k in ("epochs", "train_s"):
        out[k] = g[k].mean()
    return out.reset_index()


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    order = list(dict.fromkeys(df["model"]))
    g = df.groupby("model", sort=False)
    out = pd.DataFrame({"folds": g.size()})
    replicated = "seeds" in df and df["seeds"].max() > 1
    if replicated:
        out["seeds"] = g["seeds"].max()
    for k in ALL:  # an undefined (NaN) fold is counted, never averaged away
        out[f"{k}_mean"] = g[k].apply(lambda s: s.mean(skipna=False))
        out[f"{k}_std"] = g[k].apply(lambda s: s.std(ddof=1, skipna=False))
        out[f"{k}_undefined"] = g[k].apply(lambda s: int(s.isna().sum()))
        if replicated:  # the seed-to-seed spread within a fold, averaged over folds
            out[f"{k}_seed_std"] = g[f"{k}_seed_std"].mean()
    out["params"] = g["params"].first()
    return out.loc[order]


def paired_table(df: pd.DataFrame, baseline: str = BASELINE) -> pd.DataFrame:
    if baseline not in set(df["model"]):
        return pd.DataFrame()
    base = df[df["model"] == baseline].set_index("fold")
    rows = []
    others = df[~df["model"].isin([baseline, CEILING])]
    for model, sub in others.groupby("model", sort=False):
        sub = sub.set_index("fold")
        common = sub.index.intersection(base.index)
        for k in ALL:
            d = (sub.loc[common, k] - base.loc[common, k]).to_numpy(dtype=float)
            p = np.nan
            if len(d) >= 2 and np.any(d != 0):
                p = float(stats.wilcoxon(d).pvalue)
            rows.append({"model": model, "metric": k, "folds": len(d),
                         "diff_mean": d.mean(), "diff_std": d.std(ddof=1) if len(d) > 1 else 0.0,
                         "wins": int((d > 0).sum()) if k != "rmse" else int((d < 0).sum()),
                         "wilcoxon_p": p})
    return pd.DataFrame(rows)


def markdown_summary(summary: pd.DataFrame) -> str:
    cols = {"ssim": "SSIM (2-D)", "ssim3d": "SSIM (3-D)", "psnr": "PSNR (dB)", "rmse": "RMSE",
            "voxel_corr": "voxel corr."}
    table = pd.DataFrame(index=summary.index)
    table["folds"] = summary["folds"]
    if "seeds" in summary:
        table["seeds"] = summary["seeds"].fillna(1).astype(int)
    for k, name in cols.items():
        digits = 2 if k == "psnr" else 3
        table[name] = [
            f"undefined in {u} of {n} folds" if u else
            f"{m:.{digits}f} ± {s:.{digits}f}" if np.isfinite(s) else f"{m:.{digits}f} (1 fold)"
            for m, s, u, n in zip(summary[f"{k}_mean"], summary[f"{k}_std"],
                                  summary[f"{k}_undefined"], summary["folds"], strict=True)]
    for k in ("ssim", "voxel_corr"):  # the spread over seeds beside the spread over folds
        if f"{k}_seed_std" in summary:
            table[f"{cols[k]} seed SD"] = [f"{s:.3f}" if np.isfinite(s) else ""
                                           for s in summary[f"{k}_seed_std"]]
    return table.to_markdown(disable_numparse=True)


INTERP = "linear interpolation"
TASK_METRICS = ("ssim", "psnr", "rmse", "voxel_corr", "known_max_abs_err")


def task_fold_table(metric_paths: list[Path]) -> pd.DataFrame:
    """Sequence models: one row per (task, method, fold) on unknown frames; linear interpolation
    of the known frames (the same frames for every model) once per (task, fold)."""
    rows = []
    for p in metric_paths:
        m = json.loads(Path(p).read_text())
        for task, entry in m.get("tasks", {}).items():
            base = {"task": task, "fold": m["fold"], "n_known": entry["n_known"],
                    "n_unknown": entry["n_unknown"]}
            rows.append({**base, "method": label(m), "seed": run_seed(m), **entry["model"]})
            if "linear_interp" in entry:
                rows.append({**base, "method": INTERP, "seed": None, **entry["linear_interp"]})
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=["task", "method", "fold", "n_known", "n_unknown",
                                     *TASK_METRICS])
    df = df.drop_duplicates(subset=["task", "method", "fold", "seed"])
    g = df.groupby(["task", "method", "fold"], sort=False)  # the mean over seeds
    out = g[["n_known", "n_unknown"]].first()
    for k in TASK_METRICS:
        out[k] = g[k].apply(lambda s: s.mean(skipna=False))
    return out.reset_index()


def task_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean +- std across folds per (task, method), with per-fold wins against interpolation."""
    rows = []
    methods = [INTERP, *(m for m in dict.fromkeys(df["method"]) if m != INTERP)]
    df = df.assign(_t=df["task"].map(TASKS.index), _m=df["method"].map(methods.index))
    df = df.sort_values(["_t", "_m"], kind="stable").drop(columns=["_t", "_m"])
    for (task, method), sub in df.groupby(["task", "method"], sort=False):
        row = {"task": task, "method": method, "folds": len(sub),
               "known_frac": float((sub["n_known"] / (sub["n_known"] + sub["n_unknown"])).mean())}
        for k in TASK_METRICS:
            row[f"{k}_mean"], row[f"{k}_std"] = sub[k].mean(), sub[k].std(ddof=1)
        ref = df[(df["task"] == task) & (df["method"] == INTERP)].set_index("fold")
        if method != INTERP and not ref.empty:
            mine = sub.set_index("fold")
            common = mine.index.intersection(ref.index)
            for k in ("ssim", "psnr", "voxel_corr"):
                row[f"{k}_wins"] = f"{int((mine.loc[common, k] > ref.loc[common, k]).sum())}/" \
                                   f"{len(common)}"
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_tasks(summary: pd.DataFrame) -> str:
    cols = {"ssim": ("SSIM", 3), "psnr": ("PSNR (dB)", 2), "rmse": ("RMSE", 4),
            "voxel_corr": ("voxel corr.", 3)}
    table = pd.DataFrame({"task": summary["task"], "method": summary["method"],
                          "known": [f"{f:.0%}" for f in summary["known_frac"]],
                          "folds": summary["folds"]})
    for k, (label, d) in cols.items():
        table[label] = [f"{m:.{d}f} ± {s:.{d}f}" if np.isfinite(s) else f"{m:.{d}f}"
                        for m, s in zip(summary[f"{k}_mean"], summary[f"{k}_std"], strict=True)]
    table["max error on known frames"] = [f"{e:.1e}" for e in summary["known_max_abs_err_mean"]]
    for k in ("ssim", "psnr", "voxel_corr"):
        if f"{k}_wins" in summary:
            table[f"{cols[k][0]} wins vs interp."] = summary[f"{k}_wins"].fillna("")
    return table.to_markdown(index=False)


def roi_table(metric_paths: list[Path], ceiling_paths: Sequence[Path] = ()) -> pd.DataFrame:
    """Per model (the ceiling last) and region: Pearson r of the ROI-mean time series, mean and
    std over (seed-averaged) folds (an undefined fold counted, never averaged away)."""
    rows = []
    for p, is_ceiling in [*((p, False) for p in metric_paths), *((p, True) for p in ceiling_paths)]:
        m = json.loads(Path(p).read_text())
        model, seed = (CEILING, None) if is_ceiling else (label(m), run_seed(m))
        rows += [{"model": model, "fold": m["fold"], "seed": seed, "roi": roi, "r": r}
                 for roi, r in (m.get("roi_r") or [])]
    if not rows:
        return pd.DataFrame(columns=["model", "roi", "folds", "r_mean", "r_std", "undefined"])
    df = pd.DataFrame(rows).drop_duplicates(subset=["model", "fold", "seed", "roi"])
    df = (df.groupby(["model", "fold", "roi"], sort=False)["r"]
          .apply(lambda s: s.mean(skipna=False)).reset_index())
    g = df.groupby(["model", "roi"], sort=False)["r"]
    out = pd.DataFrame({"folds": g.size(), "r_mean": g.apply(lambda s: s.mean(skipna=False)),
                        "r_std": g.apply(lambda s: s.std(ddof=1, skipna=False)),
                        "undefined": g.apply(lambda s: int(s.isna().sum()))}).reset_index()
    order = [m for m in dict.fromkeys(df["model"]) if m != CEILING] + [CEILING]
    out["model"] = pd.Categorical(out["model"], [m for m in order if m in set(out["model"])])
    return out.sort_values("model", kind="stable").reset_index(drop=True)


def markdown_rois(table: pd.DataFrame) -> str:
    """Models as rows, regions as columns: r mean ± std over folds."""
    cell = table.apply(lambda r: f"undefined in {r.undefined} of {r.folds} folds" if r.undefined
                       else f"{r.r_mean:.3f} ± {r.r_std:.3f}" if np.isfinite(r.r_std)
                       else f"{r.r_mean:.3f} (1 fold)", axis=1)
    wide = table.assign(cell=cell).pivot(index="model", columns="roi", values="cell")
    wide = wide[list(dict.fromkeys(table["roi"]))]
    return wide.to_markdown()


def aggregate(metric_paths: list[Path], out_dir: Path, specs: dict[str, dict] | None = None,
              seeds: list[int] | None = None, ceiling_paths: Sequence[Path] = (),
              ceiling_made_with: dict | None = None) -> str:
    check_specs(metric_paths, specs or {}, seeds)
    check_ceilings(ceiling_paths, ceiling_made_with)
    runs = run_table(metric_paths, ceiling_paths)
    df = seed_averaged(runs)
    summary = summary_table(df)
    paired = paired_table(df)  # on seed-averaged folds
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "per_fold.csv", runs.to_csv(index=False))
    write_text(out_dir / "summary.csv", summary.to_csv())
    write_text(out_dir / "paired_vs_baseline.csv", paired.to_csv(index=False))
    tasks = task_fold_table(metric_paths)
    write_text(out_dir / "tasks.csv", tasks.to_csv(index=False))
    replicated = "seeds" in summary
    md = ("## Mean ± std across folds" + (" (each fold the mean over its seeds; seed SD: the "
                                          "SD over seeds within a fold, averaged over folds)"
                                          if replicated else "")
          + "\n\n" + markdown_summary(summary) + "\n")
    if any(TEST_SELECTED in m for m in summary.index):
        md += (f"\nRows marked *{TEST_SELECTED}* keep the epoch that scored best on the test "
               "subject, as the papers' code does (`selection: test`): they measure how much "
               "that protocol inflates a result, and are not estimates of performance on new "
               "subjects.\n")
    if not paired.empty:
        show = paired[paired["metric"].isin(["ssim", "voxel_corr"])]
        md += (f"\n## Paired per-fold differences against `{BASELINE}`"
               + (" (seed-averaged folds)" if replicated else "") + "\n\n"
               + show.to_markdown(index=False, floatfmt=".4g") + "\n")
    if not tasks.empty:
        md += ("\n## Sequence tasks (scored on unknown frames only; known frames as measured)\n\n"
               + markdown_tasks(task_summary(tasks)) + "\n")
    rois = roi_table(metric_paths, ceiling_paths)
    write_text(out_dir / "roi.csv", rois.to_csv(index=False))
    if not rois.empty:
        md += ("\n## ROI time series (Pearson r of the ROI-mean BOLD, within runs; mean ± std "
               "across folds)\n\n" + markdown_rois(rois) + "\n")
    write_text(out_dir / "summary.md", md)
    return md
