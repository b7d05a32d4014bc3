"""What the summary figures show: curves.png explains its line styles in a legend and draws the
mean-volume baseline as the reference to get below; metrics.png's title belongs to the figure,
not to its middle panel; the montage has a colour bar; the time courses show each model at the
most variable voxel with its correlation. Figures are inspected as matplotlib
objects just before they are saved."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from eeg2fmri.evaluation.predict import evaluate_ceiling, evaluate_fold
from eeg2fmri.reporting import figures
from eeg2fmri.training.folds import loso_fold
from eeg2fmri.training.trainer import train_fold

from .conftest import TINY, arch_spec


@pytest.fixture(scope="module")
def fold_results(tiny_features, tmp_path_factory):
    """A trained model (e2fnet, 3 epochs) and the mean-volume baseline on fold sub-02, laid out
    as results/<model>/<fold>/."""
    root = tmp_path_factory.mktemp("results")
    fold = loso_fold(TINY.subject_ids(), "sub-02")
    paths = []
    for arch in ("e2fnet", "mean_volume"):
        out = root / arch / fold.name
        train_fold(arch_spec(arch), fold, tiny_features, out, progress=False)
        evaluate_fold(out / "model.pt", [tiny_features / "sub-02"], out / "metrics.json",
                      out / "predictions.nii.gz", device="cpu",
                      maps_path=out / "voxel_corr.nii.gz")
        paths.append(out / "metrics.json")
    return paths


@pytest.fixture(scope="module")
def ceiling(fold_results, tiny_features):
    """The fold's ceiling, computed once (`eeg2fmri ceiling`), beside the models' folders."""
    out = fold_results[0].parent.parent.parent / "ceiling" / "fold-sub-02"
    evaluate_ceiling([tiny_features / "sub-02"], "fold-sub-02", 5, out / "ceiling.json",
                     out / "ceiling_voxel_corr.nii.gz")
    return [out / "ceiling.json"]


def test_the_ceiling_is_scored_once_per_fold_on_the_models_volumes(fold_results, ceiling):
    c = json.loads(ceiling[0].read_text())
    for p in fold_results:
        m = json.loads(p.read_text())
        assert "ceiling" not in m and m["n_volumes"] == c["n_volumes"]
    assert c["mean"]["voxel_corr"] > 0.9 and c["roi_r"][0][1] > 0.8


@pytest.fixture
def drawn(monkeypatch, tmp_path):
    """The figures as drawn, by file name, instead of PNG files."""
    figs: dict[str, plt.Figure] = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: figs.__setitem__(path.name, fig))
    yield figs
    for fig in figs.values():
        plt.close(fig)


def test_curves_explain_the_line_styles_and_draw_the_mean_volume_reference(fold_results,
                                                                           drawn, tmp_path):
    figures.training_curves(fold_results, tmp_path / "curves.png")
    ax = drawn["curves.png"].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "e2fnet" in labels and "solid: validation loss" in labels
    assert "dashed: training loss" in labels
    assert "mean_volume (closed form, validation)" in labels
    baseline = pd.read_csv(fold_results[1].parent / "train_log.csv")["val_loss"].iloc[-1]
    [ref] = [line for line in ax.get_lines()
             if line.get_label() == "mean_volume (closed form, validation)"]
    assert list(ref.get_ydata()) == pytest.approx([baseline] * 2)  # horizontal, at its loss
    assert ax.get_yscale() == "log"  # losses near the baseline's and far above it both show
    trained = [line for line in ax.get_lines() if line.get_label() == "e2fnet"]
    assert len(trained[0].get_xdata()) == 3  # one point per epoch


def test_the_metrics_title_is_the_figures_and_each_panel_names_its_metric(fold_results, drawn,
                                                                         tmp_path, ceiling):
    from eeg2fmri.reporting.aggregate import per_fold_table

    figures.metric_strips(per_fold_table(fold_results, ceiling), tmp_path / "metrics.png")
    fig = drawn["metrics.png"]
    assert fig.get_suptitle().startswith("Per-fold metrics of every model")
    assert [ax.get_title() for ax in fig.axes] == ["SSIM (2-D)", "PSNR (dB)", "voxel corr."]
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks[:2] == ["e2fnet", "mean_volume"] and "ceiling" in ticks


def test_the_montage_has_a_colour_bar_with_the_intensity_scale(fold_results, tiny_features,
                                                              drawn, tmp_path):
    figures.montage(fold_results, tiny_features, tmp_path / "montage.png", n_slices=3)
    fig = drawn["montage.png"]
    images = [ax for ax in fig.axes if ax.get_images()]
    assert len(images) == 3 * 3  # truth + 2 models, 3 slices each
    [bar] = [ax for ax in fig.axes if not ax.get_images()]
    assert "intensity" in bar.get_ylabel()
    assert [images[3 * r].get_ylabel() for r in range(3)] == ["truth", "e2fnet", "mean_volume"]
    meta = json.loads(fold_results[0].read_text())
    assert fig.get_suptitle().startswith(f"{meta['fold']}, ")


def test_the_time_courses_show_each_models_correlation_at_the_most_variable_voxel(
        fold_results, tiny_features, drawn, tmp_path):
    import nibabel as nib

    figures.timecourses(fold_results, tiny_features, tmp_path / "timecourse.png")
    fig = drawn["timecourse.png"]
    assert [ax.get_ylabel() for ax in fig.axes] == ["e2fnet", "mean_volume"]
    # the voxel: the most variable of the test subject's measured brain voxels
    meta = json.loads(fold_results[0].read_text())
    times = [t for _, t in meta["pairs"]]
    bold = np.load(tiny_features / "sub-02" / "bold.npy")[times]
    mask = np.load(tiny_features / "sub-02" / "mask.npy")
    v = int(bold[:, mask].std(0).argmax())
    z, x, y = (int(a[v]) for a in np.nonzero(mask))
    assert f"voxel ({z}, {x}, {y})" in fig.get_suptitle()
    pred = np.asarray(nib.load(fold_results[0].parent / "predictions.nii.gz").dataobj)
    r = np.corrcoef(bold[:, z, x, y], pred[x, y, z, :])[0, 1]
    labels = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert labels == [f"r = {r:.2f}", "r = 0.00"]  # the baseline: a flat line, r = 0
    flat = fig.axes[1].get_lines()[1].get_ydata()
    assert np.ptp(flat) == 0


def test_voxel_corr_maps_average_the_folds_on_the_datasets_grid(fold_results, tiny_features,
                                                                 tmp_path, ceiling):
    import json

    import nibabel as nib

    from eeg2fmri.reporting.maps import voxel_maps

    written = {p.name for p in voxel_maps(fold_results, tiny_features, tmp_path, ceiling)}
    assert written == {"voxel_corr_e2fnet.nii.gz", "voxel_corr_mean_volume.nii.gz",
                       "voxel_corr_ceiling.nii.gz"}
    meta = json.loads((tiny_features / "sub-02" / "meta.json").read_text())
    bound = nib.load(tmp_path / "voxel_corr_ceiling.nii.gz")
    assert bound.shape == (TINY.grid[0], TINY.grid[1], TINY.grid[2])
    np.testing.assert_allclose(bound.affine, meta["affine"])
    c = np.asarray(bound.dataobj)
    flat = np.asarray(nib.load(tmp_path / "voxel_corr_mean_volume.nii.gz").dataobj)
    assert np.nanmean(c) > 0.5 and np.nanmax(np.abs(flat)) == 0  # the baseline does not vary
    # the metric is the map's brain mean (flat-truth voxels count as 0 there)
    m = json.loads(fold_results[0].read_text())["mean"]["voxel_corr"]
    model = np.asarray(nib.load(fold_results[0].with_name("voxel_corr.nii.gz")).dataobj)[..., 0]
    assert abs(np.nanmean(model) - m) < 0.05
    assert (tmp_path / "voxel_corr_maps.png").stat().st_size > 5000


def test_roi_time_series_per_region_beside_the_ceiling(fold_results, tmp_path, ceiling):
    from eeg2fmri.reporting.aggregate import markdown_rois, roi_table
    from eeg2fmri.reporting.figures import roi_figure

    table = roi_table(fold_results, ceiling)
    rois = list(dict.fromkeys(table["roi"]))
    assert rois[-1] == "background" and rois[0].startswith("alpha source")
    bound = table[table["model"] == "ceiling (noise-free truth)"].set_index("roi")["r_mean"]
    assert bound[rois[0]] > 0.8  # the source's own region follows its drive
    flat = table[table["model"] == "mean_volume"]["r_mean"]
    assert (flat == 0).all()  # a constant prediction scores 0
    md = markdown_rois(table)
    assert "alpha source" in md and "(1 fold)" in md
    roi_figure(fold_results, tmp_path / "roi.png", ceiling)
    assert (tmp_path / "roi.png").stat().st_size > 5000


def test_a_ceiling_made_with_other_settings_is_refused(ceiling):
    """A ceiling.json left by another experiment sharing results_root (another context or
    preprocessing) stops the summary, naming it."""
    from eeg2fmri.errors import InputError
    from eeg2fmri.reporting.aggregate import check_ceilings

    made = json.loads(ceiling[0].read_text())["made_with"]
    check_ceilings(ceiling, made)  # the settings it was made with: accepted
    with pytest.raises(InputError, match=r"context 5 \(made with\) vs 4"):
        check_ceilings(ceiling, {**made, "context": 4})
