"""Per-fold metrics -> tables: mean +- std across folds per model, and paired per-fold
differences against the mean-volume baseline (Wilcoxon signed-rank test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from eeg2fmri.evaluation.metrics import ALL
from eeg2fmri.io import write_text

BASELINE = "mean_volume"
CEILING = "ceiling (noise-free truth)"


def per_fold_table(metric_paths: list[Path]) -> pd.DataFrame:
    rows, ceiling = [], []
    for p in metric_paths:
        m = json.loads(Path(p).read_text())
        base = {"model": m["model"], "fold": m["fold"], "test_subject": m["test_subject"]}
        rows.append({**base, **m["mean"], "epochs": m["train"].get("epochs_run"),
                     "params": m["train"].get("n_parameters"),
                     "train_s": m["train"].get("wall_s")})
        if m.get("ceiling"):
            ceiling.append({**base, **m["ceiling"], "model": CEILING})
    df = pd.DataFrame(rows + ceiling)  # the ceiling (simulated data only) goes last
    return df.drop_duplicates(subset=["model", "fold"]).reset_index(drop=True)


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    order = list(dict.fromkeys(df["model"]))
    g = df.groupby("model", sort=False)
    out = pd.DataFrame({"folds": g.size()})
    for k in ALL:
        out[f"{k}_mean"] = g[k].mean()
        out[f"{k}_std"] = g[k].std(ddof=1)
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
    for k, label in cols.items():
        digits = 2 if k == "psnr" else 3
        table[label] = [f"{m:.{digits}f} ± {s:.{digits}f}" if np.isfinite(s) else f"{m:.{digits}f}"
                        for m, s in zip(summary[f"{k}_mean"], summary[f"{k}_std"], strict=True)]
    return table.to_markdown()


def aggregate(metric_paths: list[Path], out_dir: Path) -> str:
    df = per_fold_table(metric_paths)
    summary = summary_table(df)
    paired = paired_table(df)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "per_fold.csv", df.to_csv(index=False))
    write_text(out_dir / "summary.csv", summary.to_csv())
    write_text(out_dir / "paired_vs_baseline.csv", paired.to_csv(index=False))
    md = "## Mean ± std across folds\n\n" + markdown_summary(summary) + "\n"
    if not paired.empty:
        show = paired[paired["metric"].isin(["ssim", "voxel_corr"])]
        md += (f"\n## Paired per-fold differences against `{BASELINE}`\n\n"
               + show.to_markdown(index=False, floatfmt=".4g") + "\n")
    write_text(out_dir / "summary.md", md)
    return md
