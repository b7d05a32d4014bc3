import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torchmetrics.image import StructuralSimilarityIndexMeasure

from eeg2fmri.evaluation import metrics


def _pair(seed=0, shape=(3, 12, 32, 32), noise=0.1):
    rng = np.random.default_rng(seed)
    truth = rng.random(shape).astype(np.float32)
    pred = np.clip(truth + noise * rng.standard_normal(shape), 0, 1).astype(np.float32)
    return pred, truth


def test_ssim2d_is_the_torchmetrics_per_slice_figure():
    pred, truth = _pair()
    ours = metrics.ssim2d(torch.from_numpy(pred), torch.from_numpy(truth)).numpy()
    ref = StructuralSimilarityIndexMeasure(data_range=1.0, reduction="none")
    np.testing.assert_allclose(ours, ref(torch.from_numpy(pred), torch.from_numpy(truth)).numpy(),
                               rtol=1e-6)


def test_ssim2d_agrees_with_skimage_gaussian_ssim_per_slice():
    pred, truth = _pair(1)
    ours = metrics.ssim2d(torch.from_numpy(pred), torch.from_numpy(truth)).numpy()
    def sk_ssim(p, t):
        return structural_similarity(t, p, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=1.0)

    sk = [np.mean([sk_ssim(p, t) for p, t in zip(pv, tv, strict=True)])
          for pv, tv in zip(pred, truth, strict=True)]
    # torchmetrics and skimage crop the border differently: agree to ~1e-2, not exactly
    np.testing.assert_allclose(ours, sk, atol=2e-2)
    assert np.all(ours < 1) and metrics.ssim2d(torch.from_numpy(truth),
                                               torch.from_numpy(truth)).min() > 0.999


def test_psnr_and_rmse_match_skimage():
    pred, truth = _pair(2)
    p = metrics.psnr(torch.from_numpy(pred), torch.from_numpy(truth)).numpy()
    r = metrics.rmse(torch.from_numpy(pred), torch.from_numpy(truth)).numpy()
    for i in range(len(pred)):
        assert abs(p[i] - peak_signal_noise_ratio(truth[i], pred[i], data_range=1.0)) < 1e-3
        assert abs(r[i] - np.sqrt(np.mean((pred[i] - truth[i]) ** 2))) < 1e-6


def test_ssim3d_differs_from_the_slice_average_but_is_an_ssim():
    pred, truth = _pair(3)
    s3 = metrics.ssim3d(torch.from_numpy(pred), torch.from_numpy(truth)).numpy()
    assert s3.shape == (3,) and np.all((s3 > 0) & (s3 < 1))


def test_voxel_corr_rewards_following_the_fluctuations_only():
    rng = np.random.default_rng(4)
    anatomy = rng.random((4, 8, 8))
    signal = rng.standard_normal((50, 1, 1, 1))
    truth = anatomy + 0.1 * signal * (anatomy > 0.5) + 0.01 * rng.standard_normal((50, 4, 8, 8))
    mask = anatomy > 0.5
    good = anatomy + 0.1 * signal * mask
    assert metrics.voxel_corr(good, truth, mask) > 0.9
    assert metrics.voxel_corr(np.repeat(anatomy[None], 50, 0), truth, mask) == 0.0
    shuffled = anatomy + 0.1 * rng.permutation(signal) * mask
    assert abs(metrics.voxel_corr(shuffled, truth, mask)) < 0.35
    # agrees with numpy's corrcoef voxel by voxel
    v = np.argwhere(mask)[0]
    r = np.corrcoef(good[:, v[0], v[1], v[2]], truth[:, v[0], v[1], v[2]])[0, 1]
    single = np.zeros_like(mask)
    single[tuple(v)] = True
    assert abs(metrics.voxel_corr(good, truth, single) - r) < 1e-9


def test_compute_returns_per_volume_lists_and_means():
    pred, truth = _pair(5, shape=(4, 8, 16, 16))
    out = metrics.compute(pred, truth, np.ones((8, 16, 16), bool), batch=3)
    assert set(out["mean"]) == set(metrics.ALL)
    assert all(len(v) == 4 for v in out["per_volume"].values())
    assert abs(out["mean"]["ssim"] - np.mean(out["per_volume"]["ssim"])) < 1e-12


def test_undefined_metrics_are_nan_not_perfect_scores():
    """Constant against constant is not SSIM 1.0 / PSNR 120 dB, and a run without temporal
    variance has no voxel corr."""
    const = np.full((4, 6, 16, 16), 0.5, np.float32)
    r = metrics.compute(const, const, np.ones((6, 16, 16), bool))
    assert all(np.isnan(r["mean"][k]) for k in metrics.ALL)
    vols, _ = _pair(shape=(1, 6, 16, 16))
    still = np.repeat(vols, 4, axis=0)  # every volume the same image
    r = metrics.compute(still, still, np.ones((6, 16, 16), bool))
    assert np.isnan(r["mean"]["voxel_corr"]) and r["mean"]["ssim"] > 0.99


def test_an_undefined_fold_is_reported_never_averaged_away():
    import pandas as pd

    from eeg2fmri.reporting.aggregate import markdown_summary, summary_table

    df = pd.DataFrame({"model": ["m", "m"], "fold": ["fold-sub-01", "fold-sub-02"],
                       "ssim": [0.9, 0.8], "ssim3d": [0.9, 0.8], "psnr": [20.0, 21.0],
                       "rmse": [0.1, 0.1], "voxel_corr": [0.4, np.nan], "params": [1, 1]})
    md = markdown_summary(summary_table(df))
    assert "undefined in 1 of 2 folds" in md and "0.850 ± 0.071" in md
    one = markdown_summary(summary_table(df.iloc[:1]))
    assert "0.900 (1 fold)" in one


def test_ssim3d_is_the_volumetric_ssim_over_valid_positions():
    from torchmetrics.functional.image import structural_similarity_index_measure as tm

    pred, truth = _pair(3, shape=(4, 14, 20, 24))
    p, t = torch.from_numpy(pred), torch.from_numpy(truth)
    # torchmetrics' SSIM map (reflect-padded) on its interior, 5 voxels from every border
    _, full = tm(p.unsqueeze(1), t.unsqueeze(1), data_range=1.0, reduction="none",
                 return_full_image=True)
    interior = full[:, 0, 5:-5, 5:-5, 5:-5].flatten(1).mean(1)
    np.testing.assert_allclose(metrics.ssim3d(p, t).numpy(), interior.numpy(), atol=1e-5)
    everywhere = tm(p.unsqueeze(1), t.unsqueeze(1), data_range=1.0, reduction="none")
    assert not np.allclose(metrics.ssim3d(p, t).numpy(), everywhere.numpy(), atol=1e-3)
