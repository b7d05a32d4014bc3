"""The sequence model: known-frame completion, sequence sampling, the smoothness term, and
training + evaluation of every task through the generic loop."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from eeg2fmri.evaluation.predict import evaluate_fold
from eeg2fmri.models import build_model
from eeg2fmri.models.completion import complete, interpolate, lift_weights
from eeg2fmri.models.neural_frames import temporal_smoothness
from eeg2fmri.pairs import EEGNorm, PairDataset
from eeg2fmri.reporting.aggregate import aggregate, task_fold_table
from eeg2fmri.reporting.figures import make_figures
from eeg2fmri.sequences import SequenceBatch, SequenceDataset, SequenceTasks
from eeg2fmri.training.folds import loso_fold
from eeg2fmri.training.trainer import open_subjects, train_fold

from .conftest import TINY, tiny_spec

SUBJECTS = TINY.subject_ids()
MASKS = [[1, 0, 0, 1, 0, 0, 0, 1], [0, 0, 1, 0, 0, 0, 0, 0], [0, 1, 1, 1, 1, 1, 1, 1],
         [1, 0, 0, 0, 0, 0, 0, 0]]


@pytest.mark.parametrize("kind", ["interp", "adjoint"])
def test_completion_reproduces_known_frames_to_float_precision(kind):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(len(MASKS), 8, 4, 5, 6, generator=g)
    y = torch.rand(len(MASKS), 8, 4, 5, 6, generator=g) * 1000  # far from x: a large correction
    known = torch.tensor(MASKS, dtype=torch.bool)
    out = complete(x, y, known, kind)
    assert torch.allclose(out[known], y[known], rtol=1e-6, atol=1e-4)
    w = lift_weights(known, kind)  # P W = I: the lift maps known frames to themselves
    for b, m in enumerate(known):
        idx = m.nonzero().flatten()
        assert torch.equal(w[b][idx][:, idx], torch.eye(len(idx)))
    if kind == "adjoint":  # the null-space projection leaves unknown frames as predicted
        assert torch.equal(out[~known], x[~known])
    # nothing known: the network's frames pass through unchanged
    none = torch.zeros(1, 8, dtype=torch.bool)
    assert torch.equal(complete(x[:1], y[:1], none, kind), x[:1])


def test_interp_lift_of_a_constant_prediction_is_linear_interpolation():
    known = torch.tensor(MASKS, dtype=torch.bool)
    y = torch.randn(len(MASKS), 8, 3)
    out = complete(torch.full_like(y, 7.0), y, known, "interp")
    for b, m in enumerate(known.numpy()):
        t = np.flatnonzero(m)
        for v in range(3):
            ref = np.interp(np.arange(8), t, y[b, t, v].numpy())  # constant beyond the ends
            np.testing.assert_allclose(out[b, :, v].numpy(), ref, atol=1e-5)
    torch.testing.assert_close(interpolate(y, known), out)


def _settings(**kw) -> SequenceTasks:
    return SequenceTasks(**{"seq_len": 8, "seq_stride": 4, **kw})


def test_sequences_shapes_runs_and_masks(tiny_features):
    subjects = open_subjects(tiny_features, SUBJECTS[:2])
    norm = EEGNorm.fit("log_standard", subjects)
    context, settings = 5, _settings()
    crops = SequenceDataset(subjects, context, norm, settings, crops=True)
    n_vol = subjects[0].bold.shape[0]
    starts = list(range(context, n_vol - 8 + 1, 4))
    assert len(crops) == 2 * len(starts)
    x, y = next(crops.batches(3, torch.Generator().manual_seed(0), task="imputation"))
    c, f = subjects[0].eeg.shape[1:]
    assert x.eeg.shape == (3, 8 + context - 1, c, f) and y.shape == (3, 8, *TINY.grid[::-1])
    assert x.frames.shape == y.shape and x.known.shape == (3, 8)
    assert torch.equal(x.frames[x.known], y[x.known])
    assert not x.frames[~x.known].any()  # unknown frames never reach the model
    # a crop's EEG: the `context` windows before its first volume up to the one before its last
    i, t0, _ = crops.sequences[0]
    first, _ = crops.batch(np.array([0]), "synthesis")
    np.testing.assert_allclose(first.eeg[0].numpy(),
                               norm(np.asarray(subjects[i].eeg[t0 - context:t0 + 7])), rtol=1e-5)
    assert not first.known.any()
    # whole runs, concatenated, are exactly the single-volume models' test frames
    runs = SequenceDataset(subjects, context, norm, settings, crops=False)
    pairs = PairDataset(subjects, context, norm)
    np.testing.assert_array_equal(runs.index, pairs.index)
    got = np.concatenate([yy[0].numpy() for _, yy in runs.batches(1)])
    np.testing.assert_array_equal(got, pairs.targets())
    # fixed masks, the task's pattern
    n = int(runs.sequences[0, 2])
    sr = runs.mask(0, "super_resolution")
    assert sr.sum() == len(range(0, n, 4)) and sr[::4].all()
    imp = runs.mask(0, "imputation")
    assert imp.sum() == round(0.5 * n) and np.array_equal(imp, runs.mask(0, "imputation"))
    assert not np.array_equal(imp, runs.mask(1, "imputation"))
    assert not runs.mask(0, "synthesis").any()
    with pytest.raises(ValueError, match="known_fraction"):
        SequenceTasks(known_fraction=1.0)


def test_sequences_do_not_cross_runs(tiny_features):
    s = open_subjects(tiny_features, SUBJECTS[:1])[0]
    n = s.eeg.shape[0]
    s.meta = {**s.meta, "segments": [[0, 20], [20, n]]}
    data = SequenceDataset([s], 5, EEGNorm.fit("log_standard", [s]), _settings(), crops=True)
    for _, t0, length in data.sequences:
        run_start = 0 if t0 < 20 else 20
        assert t0 - 5 >= run_start and (t0 + length <= 20 or t0 >= 20)


def _toy_model(**params) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("neural_frames", n_channels=3, n_freqs=10, out_shape=(4, 12, 12),
                       context=4, dim=16, levels=2, rank=8, hidden=8, dropout=0.0, **params)


def _toy_batch(n: int = 2, length: int = 10) -> tuple[SequenceBatch, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    eeg = torch.randn(n, length + 3, 3, 10, generator=g)
    y = torch.rand(n, length, 4, 12, 12, generator=g)
    known = torch.zeros(n, length, dtype=torch.bool)
    known[:, ::3] = True
    return SequenceBatch(eeg, y * known[..., None, None, None], known), y


@pytest.mark.parametrize("lift", ["prior", "interp", "adjoint"])
def test_model_keeps_known_frames_and_cannot_see_unknown_ones(lift):
    model = _toy_model(lift=lift)
    model.prepare(torch.rand(30, 4, 12, 12))
    with torch.no_grad():
        model.head.weight.normal_()  # a network that does predict something
        model.trust.fill_(0.5)
    x, y = _toy_batch()
    model.eval()
    out = model(x)
    assert out.shape == y.shape
    assert (out[x.known] - y[x.known]).abs().max() < 1e-5
    tampered = SequenceBatch(x.eeg, x.frames + 5 * (~x.known)[..., None, None, None], x.known)
    # frames marked unknown carry nothing into the prediction, even if non-zero
    assert torch.allclose(model(tampered), out)
    # without known frames the output is the network's synthesis, whatever the trust
    none = SequenceBatch(x.eeg, torch.zeros_like(x.frames), torch.zeros_like(x.known))
    synth = model.mean + model.synthesise(x.eeg, x.known.shape[1])
    torch.testing.assert_close(model(none).flatten(2), synth)


def test_trust_is_the_least_squares_weight_of_the_network_between_known_frames():
    model = _toy_model()
    model.prepare(torch.rand(30, 4, 12, 12))
    with torch.no_grad():
        model.head.weight.normal_()
    model.eval()
    x, _ = _toy_batch()
    with torch.no_grad():
        base, between = model.parts(x)
    for b in (0.0, 0.4, 1.0):  # targets built with a known trust are recovered
        y = (model.mean + base + b * between).reshape(x.frames.shape)
        assert model.calibrate([(x, y)]) == pytest.approx(b, abs=1e-4)
    y = (model.mean + base + 3 * between).reshape(x.frames.shape)
    assert model.calibrate([(x, y)]) == 1.0  # clipped to [0, 1]


def test_prior_lift_with_no_blur_and_a_constant_network_is_linear_interpolation():
    model = _toy_model(rest_blur=0.0)
    model.prepare(torch.rand(30, 4, 12, 12))  # the head is zero: the network adds nothing
    model.eval()
    x, _ = _toy_batch()
    with torch.no_grad():
        torch.testing.assert_close(model(x), interpolate(x.frames, x.known), atol=1e-5,
                                   rtol=1e-5)


def test_smoothness_term_decreases_temporal_differences():
    x, y = _toy_batch()
    x = SequenceBatch(x.eeg, torch.zeros_like(x.frames), torch.zeros_like(x.known))
    y = y + torch.randn_like(y) * 0.3  # rough targets

    def fit(weight: float) -> float:
        model = _toy_model(smoothness=weight)
        model.prepare(y.flatten(0, 1))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(40):
            loss = model.sequence_loss(x, y, 0.5, weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            return float(temporal_smoothness(model(x)))

    rough, smooth = fit(0.0), fit(5.0)
    assert smooth < 0.8 * rough


def test_neural_frames_trains_resumes_and_scores_every_task(tiny_features, tmp_path):
    spec = tiny_spec(epochs=2)
    spec.update(name="neural_frames", arch="neural_frames",
                params={"dim": 16, "levels": 2, "rank": 8, "hidden": 8, "seq_len": 8,
                        "seq_stride": 4, "factor": 3})
    fold = loso_fold(SUBJECTS, "sub-02")
    straight = train_fold(spec, fold, tiny_features, tmp_path / "a", progress=False)
    assert straight["sequence"]["seq_len"] == 8 and "seq_len" not in straight["params"]
    assert train_fold(spec, fold, tiny_features, tmp_path / "b", stop_after_epoch=1,
                      progress=False) is None
    resumed = train_fold(spec, fold, tiny_features, tmp_path / "b", progress=False)
    for k, v in straight["state"].items():  # crops, order and calibration resume identically
        assert torch.equal(v, resumed["state"][k]), k
    assert 0.0 <= straight["summary"]["trust"] <= 1.0
    m = evaluate_fold(tmp_path / "a" / "model.pt", [tiny_features / "sub-02"],
                      tmp_path / "metrics.json", tmp_path / "pred.nii.gz", device="cpu")
    assert list(m["tasks"]) == ["synthesis", "imputation", "super_resolution"]
    n = m["n_volumes"]
    syn, imp, sr = (m["tasks"][t] for t in ("synthesis", "imputation", "super_resolution"))
    assert syn["n_known"] == 0 and "linear_interp" not in syn
    assert syn["model"]["ssim"] == pytest.approx(m["mean"]["ssim"])  # the main table's row
    # the time per volume is the synthesis pass alone, not all three tasks
    assert m["predict_s_per_volume"] == syn["predict_s_per_frame"] > 0
    assert imp["n_known"] == round(0.5 * n) and sr["n_known"] == len(range(0, n, 3))
    for entry in (imp, sr):
        assert entry["model"]["known_max_abs_err"] < 1e-5
        assert entry["linear_interp"]["known_max_abs_err"] < 1e-6
        assert entry["n_known"] + entry["n_unknown"] == n
    # the table per task, beside linear interpolation
    fold_dir = tmp_path / "results" / "neural_frames" / "fold-sub-02"
    fold_dir.mkdir(parents=True)
    (fold_dir / "metrics.json").write_text(json.dumps(m))
    (tmp_path / "a" / "train_log.csv").replace(fold_dir / "train_log.csv")
    (tmp_path / "pred.nii.gz").replace(fold_dir / "predictions.nii.gz")
    paths = [fold_dir / "metrics.json"]
    md = aggregate(paths, tmp_path / "summary")
    assert "Sequence tasks" in md and "linear interpolation" in md
    table = task_fold_table(paths)
    assert set(table["method"]) == {"neural_frames", "linear interpolation"}
    assert len(table) == 5  # 3 tasks of the model, 2 of interpolation
    make_figures(paths, tiny_features, tmp_path / "summary")
    assert (tmp_path / "summary" / "tasks.png").stat().st_size > 1000
