"""The papers' protocol beside ours: how much keeping the epoch that scores best on the test
subject inflates a result. Reads the summary of a run of `benchmarks/test_selection.yaml` (each
model twice, honest and `selection: test`, same seed and training subjects) and writes a paired
figure and a Markdown table of the per-fold differences.

    snakemake --cores all --configfile config.yaml benchmarks/test_selection.yaml \
        --config results_root=results/test_selection
    python benchmarks/test_selection.py results/test_selection/sim/summary \
        --figure benchmarks/test_selection.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from eeg2fmri.config import TEST_SELECTED  # noqa: E402

METRICS = (("voxel_corr", "voxel corr."), ("ssim", "SSIM (2-D)"), ("psnr", "PSNR (dB)"))
MARK = f" ({TEST_SELECTED})"


def pairs(per_fold: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, fold, seed): the honest value and the test-selected one."""
    chosen = per_fold[per_fold["model"].str.endswith(MARK)].copy()
    chosen["honest_model"] = chosen["model"].str.removesuffix(MARK).str.removesuffix("_ts")
    keys = ["fold", "seed"]
    honest = per_fold.set_index(["model", *keys])
    rows = []
    for _, r in chosen.iterrows():
        h = honest.loc[(r["honest_model"], r["fold"], r["seed"])]
        rows.append({"model": r["honest_model"], "fold": r["fold"], "seed": r["seed"],
                     **{f"{k}_honest": h[k] for k, _ in METRICS},
                     **{f"{k}_test_selected": r[k] for k, _ in METRICS},
                     "epochs_honest": h["epochs"]})
    return pd.DataFrame(rows)


def table(df: pd.DataFrame) -> str:
    lines = ["| model | folds | " + " | ".join(
        f"{name}: honest → test-selected (inflation)" for _, name in METRICS) + " |",
        "|:--|--:|" + "|".join(":--" for _ in METRICS) + "|"]
    for model, sub in df.groupby("model", sort=False):
        cells = []
        for k, _ in METRICS:
            d = 2 if k == "psnr" else 3
            h, t = sub[f"{k}_honest"], sub[f"{k}_test_selected"]
            diff = t - h
            cells.append(f"{h.mean():.{d}f} → {t.mean():.{d}f} "
                         f"({diff.mean():+.{d}f} ± {diff.std(ddof=1):.{d}f}, "
                         f"larger in {int((diff > 0).sum())}/{len(diff)})")
        lines.append(f"| {model} | {len(sub)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(df: pd.DataFrame, path: Path) -> None:
    models = list(dict.fromkeys(df["model"]))
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.0 * len(METRICS), 3.4))
    for ax, (k, name) in zip(axes, METRICS, strict=True):
        for i, model in enumerate(models):
            sub = df[df["model"] == model]
            for _, r in sub.iterrows():
                ax.plot([2 * i, 2 * i + 1], [r[f"{k}_honest"], r[f"{k}_test_selected"]],
                        color=f"C{i}", marker="o", lw=1, alpha=0.8)
        ax.set_xticks([x for i in range(len(models)) for x in (2 * i, 2 * i + 1)],
                      [t for m in models for t in (f"{m}\nhonest", "test-\nselected")],
                      fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle("Selecting the epoch on the test subject (the papers' protocol) vs on a "
                 "validation subject: one line per fold, same training", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("summary", type=Path, help="the run's summary folder (per_fold.csv)")
    p.add_argument("--figure", type=Path, default=Path("test_selection.png"))
    a = p.parse_args()
    df = pairs(pd.read_csv(a.summary / "per_fold.csv"))
    if df.empty:
        raise SystemExit(f"{a.summary}/per_fold.csv has no test-selected model (selection: "
                         "test) beside its honest twin")
    figure(df, a.figure)
    print(table(df))
    print(f"\nfigure: {a.figure}")


if __name__ == "__main__":
    main()
