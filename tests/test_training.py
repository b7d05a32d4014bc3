import math

import numpy as np
import pytest
import torch

from eeg2fmri import store
from eeg2fmri.config import TrainConfig
from eeg2fmri.errors import InputError
from eeg2fmri.evaluation import metrics
from eeg2fmri.evaluation.predict import evaluate_fold, predict
from eeg2fmri.models import build_model
from eeg2fmri.pairs import EEGNorm, PairDataset
from eeg2fmri.training import loop
from eeg2fmri.training.folds import fold_by_name, loso_fold, loso_folds
from eeg2fmri.training.loop import cosine_restarts, lr_factor, seed_everything
from eeg2fmri.training.trainer import open_subjects, train_fold

from .conftest import TINY, tiny_spec

SUBJECTS = TINY.subject_ids()


def test_loso_folds_keep_test_and_validation_out_of_training():
    folds = loso_folds(SUBJECTS)
    assert [f.tests for f in folds] == [(s,) for s in SUBJECTS]
    for f in folds:
        (test,) = f.tests
        assert test not in f.train and f.val not in f.train and f.val != test
        assert sorted((*f.train, f.val, test)) == sorted(SUBJECTS)
        assert test not in f.subjects_for_training()
    with pytest.raises(ValueError, match="at least 3"):
        loso_fold(["sub-01", "sub-02"], "sub-01")


def test_training_never_opens_the_test_subject(tiny_features, tmp_path, monkeypatch):
    opened = []
    real_open = store.SubjectFeatures.open.__func__

    def spy(cls, directory, subject=None):
        opened.append(str(directory))
        return real_open(cls, directory, subject)

    real_load = np.load

    def load_spy(path, *a, **k):
        opened.append(str(path))
        return real_load(path, *a, **k)

    monkeypatch.setattr(store.SubjectFeatures, "open", classmethod(spy))
    monkeypatch.setattr(np, "load", load_spy)
    fold = loso_fold(SUBJECTS, "sub-02")
    train_fold(tiny_spec(epochs=1), fold, tiny_features, tmp_path / "out", progress=False)
    assert opened and not [p for p in opened if "sub-02" in p]
    assert any(fold.val in p for p in opened)


def test_normalisation_statistics_come_from_training_subjects_only(tiny_features):
    fold = loso_fold(SUBJECTS, "sub-01")
    train = open_subjects(tiny_features, fold.train)
    norm = EEGNorm.fit("log_standard", train)
    expected = np.log1p(np.concatenate([np.asarray(s.eeg) for s in train])).mean(0)
    np.testing.assert_allclose(norm.a, expected, rtol=1e-4)
    paper = EEGNorm.fit("paper", train)
    x = paper(np.concatenate([np.asarray(s.eeg) for s in train]))
    assert np.isclose(x.min(), 0, atol=1e-6) and np.isclose(x.max(), 1, atol=1e-6)


def test_pairs_use_the_preceding_context_and_shuffling_permutes_windows(tiny_features):
    subj = open_subjects(tiny_features, ["sub-01"])
    norm = EEGNorm.fit("log_standard", subj)
    data = PairDataset(subj, 5, norm)
    assert len(data) == TINY.n_volumes - 5
    x, y = data.batch(np.array([0]))
    assert x.shape == (1, 5, TINY.n_channels, 60)
    np.testing.assert_allclose(x[0].numpy(), norm(np.asarray(subj[0].eeg[0:5])), rtol=1e-6)
    np.testing.assert_array_equal(y[0].numpy(), subj[0].bold[5])
    shuffled = PairDataset(subj, 5, norm, shuffle_seed=0)
    xs, ys = shuffled.batch(np.array([0]))
    assert torch.equal(ys, y) and not torch.equal(xs, x)


def test_cosine_schedule_warms_up_and_restarts():
    f = [cosine_restarts(s, 100, 10, 2) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[54] < 0.01 and f[56] > 0.99
    assert math.isclose(cosine_restarts(100, 100, 10, 2), 0.0)


def test_constant_schedule_keeps_the_peak_rate_after_warm_up(tiny_features, tmp_path):
    cfg = TrainConfig(epochs=3, warmup_steps=10, schedule="constant")
    f = [lr_factor(cfg, 100)(s) for s in range(200)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10:] == [1.0] * 190  # no decay, no restarts, not even past the planned steps
    assert lr_factor(TrainConfig(), 100)(60) == cosine_restarts(60, 100, 20, 1.0)  # default
    fold = loso_fold(SUBJECTS, "sub-01")
    train_fold(tiny_spec(epochs=3, schedule="constant", lr=2e-3), fold, tiny_features,
               tmp_path, progress=False)
    log = (tmp_path / "train_log.csv").read_text().splitlines()
    lr = [float(line.split(",")[3]) for line in log[1:]]
    assert lr == [2e-3] * 3  # the cosine schedule would have decayed it


def test_betas_reach_every_optimiser(tiny_features, tmp_path):
    fold = loso_fold(SUBJECTS, "sub-01")
    for arch, params in (("e2fnet", {"width": 8}), ("e2fgan", {"width": 8, "disc_width": 8})):
        spec = tiny_spec(epochs=2, betas=[0.8, 0.99])
        spec.update(name=arch, arch=arch, params=params)
        assert train_fold(spec, fold, tiny_features, tmp_path / arch, stop_after_epoch=1,
                          progress=False) is None
        ckpt = torch.load(tmp_path / arch / "checkpoint" / "last.pt", weights_only=True)
        for opt in ckpt["optimizer"].values():
            assert [tuple(g["betas"]) for g in opt["param_groups"]] == [(0.8, 0.99)]
            assert all(g["weight_decay"] == 0.01 for g in opt["param_groups"])


def test_the_new_settings_default_to_todays_training(tiny_features, tmp_path):
    """betas [0.9, 0.999], schedule cosine and select_on loss given explicitly train exactly
    as leaving them out (today's behaviour)."""
    fold = loso_fold(SUBJECTS, "sub-02")
    plain = train_fold(tiny_spec(epochs=2), fold, tiny_features, tmp_path / "a",
                       progress=False)
    explicit = train_fold(tiny_spec(epochs=2, betas=[0.9, 0.999], schedule="cosine",
                                    select_on="loss", select_volumes=None),
                          fold, tiny_features, tmp_path / "b", progress=False)
    for k, v in plain["state"].items():
        assert torch.equal(v, explicit["state"][k]), k
    assert plain["summary"]["select_on"] == "loss" and "best_val_score" not in plain["summary"]
    assert (tmp_path / "a" / "train_log.csv").read_text().splitlines()[0] == \
        "epoch,train_loss,val_loss,lr,seconds,best"


def test_select_on_ssim_keeps_the_best_epoch_and_stops_after_patience(tiny_features, tmp_path,
                                                                     monkeypatch):
    """Scripted validation SSIMs: the best epoch (2) is kept, whatever its loss, and training
    stops after `patience` (2) epochs without a better SSIM; the record says so."""
    script = iter([0.10, 0.30, 0.20, 0.25, 0.90, 0.95])
    scored = []

    def fake(model, data, batch_size, device, volumes=None, kind="ssim"):
        scored.append((sorted({s.subject for s in data.subjects}), volumes, kind))
        return next(script)

    monkeypatch.setattr(loop, "evaluate_ssim", fake)
    fold = loso_fold(SUBJECTS, "sub-01")
    states = {}
    real_save = loop._save

    def save(obj, path):  # keep every epoch's weights to compare with the selected ones
        states[obj["epoch"]] = {k: v.clone() for k, v in obj["model"].items()}
        real_save(obj, path)

    monkeypatch.setattr(loop, "_save", save)
    record = train_fold(tiny_spec(epochs=8, patience=2, select_on="ssim", select_volumes=7),
                        fold, tiny_features, tmp_path, progress=False)
    s = record["summary"]
    assert (s["best_epoch"], s["epochs_run"], s["select_on"]) == (2, 4, "ssim")
    assert s["best_val_score"] == 0.30 and s["select_volumes"] == 7
    assert scored == [([fold.val], 7, "ssim")] * 4  # the validation subject, capped
    for k, v in states[2].items():
        assert torch.equal(record["state"][k], v), k
    log = (tmp_path / "train_log.csv").read_text().splitlines()
    assert log[0] == "epoch,train_loss,val_loss,val_ssim,lr,seconds,best"
    assert [line.split(",")[-1] for line in log[1:]] == ["1", "1", "0", "0"]
    # selection: test scores the test subject instead (the papers' protocol)
    script = iter([0.5, 0.4])
    scored.clear()
    spec = {**tiny_spec(epochs=2, select_on="ssim3d"), "selection": "test"}
    train_fold(spec, fold, tiny_features, tmp_path / "test", progress=False)
    assert scored == [(list(fold.tests), None, "ssim3d")] * 2


def test_evaluate_ssim_scores_the_predictions_of_evenly_spread_volumes(tiny_features):
    seed_everything(0)
    model = build_model("e2fnet", n_channels=8, n_freqs=60, out_shape=(8, 16, 16), context=5,
                        width=8)
    subj = open_subjects(tiny_features, ["sub-02"])
    data = PairDataset(subj, 5, EEGNorm.fit("log_standard", subj))
    pred = torch.from_numpy(predict(model.eval(), data, torch.device("cpu")))
    target = torch.from_numpy(data.targets())
    everything = loop.evaluate_ssim(model, data, 8, torch.device("cpu"))
    assert everything == pytest.approx(float(metrics.ssim2d(pred, target).double().mean()))
    rows = loop.selection_rows(len(data), 6)
    assert len(rows) == 6 and rows[0] == 0 and rows[-1] == len(data) - 1
    capped = loop.evaluate_ssim(model, data, 4, torch.device("cpu"), volumes=6, kind="ssim3d")
    assert capped == pytest.approx(float(metrics.ssim3d(pred[rows], target[rows]).mean()))
    assert list(loop.selection_rows(5, None)) == list(loop.selection_rows(5, 9)) == [0, 1, 2, 3, 4]


def test_select_on_ssim_is_for_pair_models(tiny_features, tmp_path):
    from .conftest import arch_spec

    with pytest.raises(ValueError, match="select it on its loss"):
        train_fold(arch_spec("neural_frames", epochs=1, select_on="ssim"),
                   loso_fold(SUBJECTS, "sub-01"), tiny_features, tmp_path, progress=False)


def test_resume_after_interruption_gives_the_same_weights(tiny_features, tmp_path):
    fold = loso_fold(SUBJECTS, "sub-03")
    spec = tiny_spec(epochs=3)
    straight = train_fold(spec, fold, tiny_features, tmp_path / "a", progress=False)
    assert train_fold(spec, fold, tiny_features, tmp_path / "b", stop_after_epoch=2,
                      progress=False) is None
    assert (tmp_path / "b" / "checkpoint" / "last.pt").is_file()
    resumed = train_fold(spec, fold, tiny_features, tmp_path / "b", progress=False)
    assert resumed["summary"]["epochs_run"] == 3
    for k, v in straight["state"].items():
        assert torch.equal(v, resumed["state"][k]), k
    assert not (tmp_path / "b" / "checkpoint").exists()  # cleared once the model is written
    log = (tmp_path / "b" / "train_log.csv").read_text().splitlines()
    assert len(log) == 4 and log[0].startswith("epoch,train_loss,val_loss")


def test_a_stale_checkpoint_of_other_settings_is_not_resumed(tiny_features, tmp_path):
    fold = loso_fold(SUBJECTS, "sub-03")
    train_fold(tiny_spec(epochs=2), fold, tiny_features, tmp_path, stop_after_epoch=1,
               progress=False)
    record = train_fold(tiny_spec(epochs=2, lr=5e-4), fold, tiny_features, tmp_path,
                        progress=False)
    assert record["summary"]["epochs_run"] == 2


def test_mean_volume_control_trains_in_closed_form(tiny_features, tmp_path):
    fold = loso_fold(SUBJECTS, "sub-01")
    rec = train_fold(tiny_spec("mean_volume"), fold, tiny_features, tmp_path, progress=False)
    train = open_subjects(tiny_features, fold.train)
    expected = np.concatenate([np.asarray(s.bold[5:]) for s in train]).mean(0)
    np.testing.assert_allclose(rec["state"]["mean"].numpy(), expected, atol=1e-5)


def test_spec2vol_trains_through_the_same_loop(tiny_features, tmp_path):
    spec = tiny_spec(epochs=1)
    spec.update(name="spec2vol", arch="spec2vol",
                params={"embed": 8, "heads": 2, "dims": [8, 16], "depths": [1, 1],
                        "dec_depths": [1, 1]})
    rec = train_fold(spec, loso_fold(SUBJECTS, "sub-01"), tiny_features, tmp_path,
                     progress=False)
    assert rec["summary"]["epochs_run"] == 1 and np.isfinite(rec["summary"]["best_val_loss"])


def test_ef_diffusion_trains_resumes_and_evaluates_through_the_same_loop(tiny_features,
                                                                         tmp_path):
    """Its own loss, EMA step hook and validation loss run inside the generic loop; the EMA
    weights are part of the checkpoint, so a resumed run ends identical; evaluation samples
    with DDIM and records how."""
    spec = tiny_spec(epochs=2)
    spec.update(name="ef_diffusion", arch="ef_diffusion",
                params={"eeg_dim": 8, "channels": [4, 8], "attn_levels": 1,
                        "eeg_conv_channels": 4, "attn_heads": 2, "sample_steps": 3})
    fold = loso_fold(SUBJECTS, "sub-01")
    straight = train_fold(spec, fold, tiny_features, tmp_path / "a", progress=False)
    assert train_fold(spec, fold, tiny_features, tmp_path / "b", stop_after_epoch=1,
                      progress=False) is None
    resumed = train_fold(spec, fold, tiny_features, tmp_path / "b", progress=False)
    for k, v in straight["state"].items():
        assert torch.equal(v, resumed["state"][k]), k
    assert any(k.startswith("ema.") for k in straight["state"])
    assert not torch.equal(straight["state"]["ema.unet.conv_in.weight"],
                           straight["state"]["net.unet.conv_in.weight"])
    r = evaluate_fold(tmp_path / "a" / "model.pt", [tiny_features / "sub-01"],
                      tmp_path / "metrics.json", tmp_path / "pred.nii.gz")
    assert r["sampling"]["sampler"] == "DDIM" and r["sampling"]["steps"] == 3
    assert r["predict_s_per_volume"] > 0 and np.isfinite(r["mean"]["ssim"])


def test_ef_diffusion_selects_on_sampled_ssim_with_steps_for_its_dataset(tiny_features,
                                                                         tmp_path):
    """The paper's protocol on tiny data: DDIM steps from a per-dataset mapping (the simulated
    dataset: its default), each epoch's EMA model sampled on capped validation volumes and
    kept by SSIM, under Adam (weight decay 0, beta2 0.99) and a constant rate."""
    spec = tiny_spec(epochs=2, select_on="ssim", select_volumes=4, patience=5,
                     betas=[0.9, 0.99], weight_decay=0.0, schedule="constant")
    spec.update(name="ef_diffusion", arch="ef_diffusion",
                params={"eeg_dim": 8, "channels": [4, 8], "attn_levels": 1,
                        "eeg_conv_channels": 4, "attn_heads": 2,
                        "sample_steps": {"noddi": 75, "default": 2}})
    rec = train_fold(spec, loso_fold(SUBJECTS, "sub-01"), tiny_features, tmp_path,
                     progress=False)
    assert rec["params"]["sample_steps"] == 2 and rec["spec"]["params"]["sample_steps"] == {
        "noddi": 75, "default": 2}
    s = rec["summary"]
    assert s["select_on"] == "ssim" and s["select_volumes"] == 4
    assert -1 <= s["best_val_score"] <= 1 and s["best_epoch"] in (1, 2)
    log = (tmp_path / "train_log.csv").read_text().splitlines()
    assert log[0].split(",")[3] == "val_ssim" and len(log) == 3
    r = evaluate_fold(tmp_path / "model.pt", [tiny_features / "sub-01"],
                      tmp_path / "metrics.json", tmp_path / "pred.nii.gz")
    assert r["sampling"]["steps"] == 2 and r["train"]["select_on"] == "ssim"


def test_fixed_split_fold_and_fold_names():
    subjects = [f"sub-{i:02d}" for i in range(2, 12)]
    f = fold_by_name(subjects, "split-paper", {"paper": ("sub-03", "sub-05")})
    assert f.tests == ("sub-03", "sub-05") and f.val == "sub-11"
    assert not set(f.tests) & set(f.subjects_for_training())
    assert sorted((*f.train, f.val, *f.tests)) == subjects
    assert fold_by_name(subjects, "fold-sub-04").tests == ("sub-04",)
    with pytest.raises(ValueError, match="unknown fold 'split-other'"):
        fold_by_name(subjects, "split-other", {"paper": ("sub-03",)})
    with pytest.raises(ValueError, match="not subjects"):
        fold_by_name(subjects, "split-paper", {"paper": ("sub-99",)})


def test_a_fixed_split_trains_once_and_evaluates_every_test_subject(tiny_features, tmp_path):
    fold = fold_by_name(SUBJECTS, "split-two", {"two": ("sub-01", "sub-03")})
    train_fold(tiny_spec("mean_volume"), fold, tiny_features, tmp_path, progress=False)
    r = evaluate_fold(tmp_path / "model.pt", [tiny_features / "sub-01", tiny_features / "sub-03"],
                      tmp_path / "metrics.json", tmp_path / "pred.nii.gz")
    assert r["test_subjects"] == ["sub-01", "sub-03"]
    assert r["n_volumes"] == 2 * (TINY.n_volumes - 5)
    assert {s for s, _ in r["pairs"]} == {"sub-01", "sub-03"}
    assert abs(r["mean"]["voxel_corr"]) < 1e-9  # a constant prediction, judged per subject
    with pytest.raises(InputError, match="trained for fold split-two"):
        evaluate_fold(tmp_path / "model.pt", [tiny_features / "sub-01"],
                      tmp_path / "m2.json", tmp_path / "p2.nii.gz")


def test_e2fgan_updates_both_networks_and_resume_restores_both(tiny_features, tmp_path):
    """Alternating D/G steps with separate optimisers in the generic loop: both networks move,
    the checkpoint holds both optimisers, and a resumed run ends identical to a straight one."""
    spec = tiny_spec(epochs=2)
    spec.update(name="e2fgan", arch="e2fgan", params={"width": 8, "disc_width": 8})
    fold = loso_fold(SUBJECTS, "sub-02")
    seed_everything(0)
    init = build_model("e2fgan", n_channels=8, n_freqs=60, out_shape=(8, 16, 16), context=5,
                       width=8, disc_width=8).state_dict()
    straight = train_fold(spec, fold, tiny_features, tmp_path / "a", progress=False)
    for net in ("generator.decoder.9.weight", "discriminator.net.0.weight"):
        assert not torch.equal(init[net], straight["state"][net]), f"{net} did not update"
    assert train_fold(spec, fold, tiny_features, tmp_path / "b", stop_after_epoch=1,
                      progress=False) is None
    ckpt = torch.load(tmp_path / "b" / "checkpoint" / "last.pt", weights_only=True)
    assert set(ckpt["optimizer"]) == {"generator", "discriminator"}
    assert ckpt["optimizer"]["discriminator"]["state"]  # Adam moments of D are saved
    resumed = train_fold(spec, fold, tiny_features, tmp_path / "b", progress=False)
    for k, v in straight["state"].items():
        assert torch.equal(v, resumed["state"][k]), k
    r = evaluate_fold(tmp_path / "a" / "model.pt", [tiny_features / "sub-02"],
                      tmp_path / "metrics.json", tmp_path / "pred.nii.gz")
    assert np.isfinite(r["mean"]["ssim"])


@pytest.mark.parametrize("dm", [False, True])
def test_ntvit_trains_on_raw_windows_and_evaluates(tiny_features, tmp_path, dm):
    spec = tiny_spec(epochs=1)
    spec.update(name="ntvit", arch="ntvit",
                params={"dim": 16, "depth": 1, "dec_depth": 1, "heads": 2, "n_mels": 16,
                        "spec_patch": [4, 4], "patch": [4, 4], "domain_matching": dm})
    spec["features"]["eeg_norm"] = "raw_standard"
    fold = loso_fold(SUBJECTS, "sub-01")
    rec = train_fold(spec, fold, tiny_features, tmp_path, progress=False)
    assert rec["params"]["fs"] == TINY.fs and rec["eeg"]["norm"]["mode"] == "raw_standard"
    assert np.asarray(rec["eeg"]["norm"]["a"]).shape == (TINY.n_channels, 1)
    r = evaluate_fold(tmp_path / "model.pt", [tiny_features / "sub-01"],
                      tmp_path / "metrics.json", tmp_path / "pred.nii.gz")
    assert r["n_volumes"] == TINY.n_volumes - 5 and np.isfinite(r["mean"]["ssim"])


def test_a_resumed_training_records_its_total_wall_time(tiny_features, tmp_path):
    from eeg2fmri.training.folds import loso_fold
    from eeg2fmri.training.trainer import train_fold

    from .conftest import arch_spec

    spec, fold = arch_spec("e2fnet", epochs=2), loso_fold(["sub-01", "sub-02", "sub-03",
                                                            "sub-04"], "sub-01")
    assert train_fold(spec, fold, tiny_features, tmp_path, stop_after_epoch=1,
                      progress=False) is None
    first = torch.load(tmp_path / "checkpoint" / "last.pt", weights_only=True)["wall_s"]
    record = train_fold(spec, fold, tiny_features, tmp_path, progress=False)
    assert first > 0 and record["summary"]["wall_s"] > first
