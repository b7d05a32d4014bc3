"""Our NT-ViT against the authors' reference code (rom42pla/ntvit), through the fixtures in
tests/fixtures/ntvit_reference/ (made once by running the reference at a tiny width: its
Lightning checkpoints, an input and its outputs; see tests/fixtures/README.md). No reference
code, torchaudio or Lightning here: the weights go through our converter into our model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from eeg2fmri.models import build_model, count_parameters
from eeg2fmri.models.e2fnet import E2fNet
from eeg2fmri.models.reference.ntvit import (
    ntvit_parameters,
    ntvit_settings,
    ntvit_state,
    parameter_note,
    reference_input,
)

from .conftest import FIXTURES, sim_stores

HERE = FIXTURES / "ntvit_reference"
TOLERANCE = 1e-5


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    """eeg [2, 3, 1106] (uniform in [-1, 1], as min-max scaled windows), fmri [2, 4, 10, 9],
    the reference's volumes in eval mode (out_dm, out_nodm) and its training loss (loss_*)."""
    return _load(HERE / "io.pt")


def _ours(checkpoint: dict, **given: int) -> torch.nn.Module:
    found = reference_input(checkpoint)
    model = build_model("ntvit", n_channels=found["channels"], n_freqs=found["samples"],
                        out_shape=found["out_shape"], context=1, fs=found["fs"],
                        **ntvit_settings(checkpoint, **given))
    model.load_state_dict(ntvit_state(checkpoint, fs=found["fs"]))  # strict
    return model.eval()


@pytest.mark.parametrize("tag", ["dm", "nodm"])
@torch.no_grad()
def test_ntvit_equals_the_reference(io, tag):
    checkpoint = _load(HERE / f"{tag}.ckpt")
    assert set(checkpoint) >= {"state_dict", "hyper_parameters"}  # a Lightning checkpoint
    model = _ours(checkpoint)
    assert model.domain_matching == (tag == "dm")
    x = io["eeg"][:, None]  # one window: context 1
    out = model(x)
    assert out.shape == io[f"out_{tag}"].shape == (2, 4, 10, 9)
    assert float((out - io[f"out_{tag}"]).abs().max()) < TOLERANCE
    # the training objective too (with Domain Matching: its two terms)
    assert abs(float(model.training_loss(x, io["fmri"])) - float(io[f"loss_{tag}"])) < TOLERANCE
    # a bare state_dict converts alike, its patch sizes read from the shapes
    bare = checkpoint["state_dict"]
    assert ntvit_settings(bare, n_channels=3, depth=4) == ntvit_settings(checkpoint)
    assert ntvit_settings(checkpoint)["activation"] == "selu"


def test_the_converter_refuses_other_weights_naming_keys():
    other = E2fNet(n_channels=4, n_freqs=16, out_shape=(4, 64, 64), context=4, width=8)
    with pytest.raises(ValueError, match=r"NTViT: keys encoder\.0\.weight"):
        ntvit_state(other.state_dict())
    with pytest.raises(ValueError, match="NTViT: no"):
        ntvit_settings(other.state_dict())
    state = dict(_load(HERE / "nodm.ckpt")["state_dict"])
    state["fmris_decoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"fmris_decoder\.extra\.weight"):
        ntvit_state(state)
    with pytest.raises(ValueError, match="another sampling rate"):  # trained at 512 Hz
        ntvit_state(_load(HERE / "nodm.ckpt"), fs=250.0)


def test_counts_at_the_reference_defaults():
    """63 electrodes, 2.16 s at 512 Hz, 30 x 64 x 64 volumes, the reference's train.py."""
    kw = dict(n_channels=63, n_freqs=1106, out_shape=(30, 64, 64), context=1, fs=512.0)
    with_dm = build_model("ntvit", domain_matching=True, **kw)
    without = build_model("ntvit", **kw)
    assert count_parameters(with_dm) == ntvit_parameters() == 27_683_156
    assert count_parameters(without) == ntvit_parameters(domain_matching=False) == 20_470_868
    assert "27,683,156" in parameter_note(with_dm) and parameter_note(E2fNet(
        n_channels=4, n_freqs=16, out_shape=(4, 64, 64), context=4, width=8)) == ""
    assert with_dm.eeg_encoder.n_tokens == 18 and with_dm.decoder.n_tokens == 121


def test_domain_matching_detaches_the_fmri_target():
    """As in the reference, the fMRI latent is a detached target: no gradient reaches the
    fMRI encoder, while the EEG encoder and the decoder get one."""
    torch.manual_seed(0)
    model = build_model("ntvit", n_channels=3, n_freqs=300, out_shape=(4, 10, 9), context=2,
                        fs=100.0, dim=16, depth=1, dec_depth=1, heads=2, mlp_dim=16, ff_dim=16,
                        n_positions=256, patch=[4, 4], spec_patch=[4, 4], domain_matching=True)
    loss = model.training_loss(torch.randn(2, 2, 3, 300), torch.rand(2, 4, 10, 9))
    loss.backward()
    assert all(p.grad is None for p in model.fmri_encoder.parameters())
    for part in (model.eeg_encoder, model.decoder):
        assert all(p.grad is not None for p in part.parameters())
    assert float(model.eeg_encoder.embed[0].weight.grad.abs().sum()) > 0


# -- the import command: a record evaluate and synthesize use -------------------------------

@pytest.fixture(scope="module")
def sim512(tmp_path_factory) -> Path:
    """Simulated subjects shaped like the fixture's input: 3 channels, 2.16-s windows at 512 Hz
    (1106 samples), volumes of 4 slices of 10 x 9."""
    return sim_stores(tmp_path_factory.mktemp("sim512"), 64, n_channels=3, fs=512.0,
                      tr=2.16, grid=(10, 9, 4), voxel_mm=(12.0, 12.0, 24.0))  # brain-sized


def test_import_writes_a_record_that_predicts_the_reference(sim512, tmp_path, io, capsys):
    """`eeg2fmri import --arch ntvit` on a Lightning checkpoint: the record's model predicts the
    reference's volumes; its normalisation is the reference's per-window min-max to [-1, 1];
    evaluate and synthesize run it on our stores and recordings."""
    import numpy as np

    from eeg2fmri.cli import main
    from eeg2fmri.pairs import EEGNorm
    from eeg2fmri.record import load_model

    like = sim512 / "features" / "sub-01"
    out = tmp_path / "ntvit.pt"
    assert main(["import", "--arch", "ntvit", "--state-dict", str(HERE / "dm.ckpt"), "--like",
                 str(like), "--out", str(out), "--tests", "sub-02"]) == 0, capsys.readouterr()
    model, record = load_model(out, torch.device("cpu"))
    assert record["eeg"]["input"] == "raw" and record["eeg"]["context"] == 1
    with torch.no_grad():
        assert float((model(io["eeg"][:, None]) - io["out_dm"]).abs().max()) < TOLERANCE
    raw = np.random.default_rng(0).normal(size=(5, 3, 1106)) * 20
    scaled = EEGNorm.from_state(record["eeg"]["norm"])(raw)
    assert np.allclose(scaled.min(-1), -1) and np.allclose(scaled.max(-1), 1)
    assert main(["evaluate", "--model", str(out), "--test-features",
                 str(sim512 / "features" / "sub-02"), "--metrics", str(tmp_path / "m.json"),
                 "--predictions", str(tmp_path / "p.nii.gz"), "--device", "cpu"]) == 0
    eeg = next((sim512 / "raw").rglob("sub-02*.vhdr"))
    assert main(["synthesize", "--model", str(out), "--eeg", str(eeg), "--out",
                 str(tmp_path / "s.nii.gz"), "--device", "cpu", "--no-progress"]) == 0


def test_import_refuses_a_store_unlike_the_references_input(sim512, tmp_path, capsys):
    """A checkpoint trained on 1106-sample windows at 512 Hz against a store at 250 Hz."""
    from eeg2fmri.cli import main

    other = tmp_path / "store"
    import shutil

    shutil.copytree(sim512 / "features" / "sub-01", other)
    import json

    meta = json.loads((other / "meta.json").read_text())
    meta["fs"] = 250.0
    (other / "meta.json").write_text(json.dumps(meta))
    assert main(["import", "--arch", "ntvit", "--state-dict", str(HERE / "dm.ckpt"), "--like",
                 str(other), "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert "sampling rate (Hz) 250.0" in err and "trained on 512" in err and str(other) in err
    assert main(["import", "--arch", "ntvit", "--state-dict", str(HERE / "dm.ckpt"), "--like",
                 str(sim512 / "features" / "sub-01"), "--out", str(tmp_path / "m.pt"),
                 "--eeg-range", "0", "1"]) == 2
    assert "--eeg-range" in capsys.readouterr().err
