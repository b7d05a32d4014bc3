"""Our E2fNet and E2fGAN against the authors' reference code (kgr20/E2fNet), through the
fixtures in tests/fixtures/e2fnet_reference/ (made once by running the reference at a tiny
width: its state_dicts, an input and its outputs; see tests/fixtures/README.md). No reference
code and no diffusers here: the weights go through our converter into our models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from eeg2fmri.cli import main
from eeg2fmri.models import build_model, count_parameters
from eeg2fmri.models import reference as ref

from .conftest import FIXTURES, sim_stores

HERE = FIXTURES / "e2fnet_reference"
E2FNET_SD, DISC_SD = HERE / "e2fnet_w32_state_dict.pt", HERE / "discriminator_w8_state_dict.pt"
TOLERANCE = 1e-5


def _load(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    """eeg [2, 20, 8, 249], the reference E2fNet's volumes [2, 4, 64, 64] (eval mode) and the
    reference Discriminator's logits on those volumes [2, 1, 1, 1]."""
    return _load(HERE / "io.pt")


def _shapes(state: dict[str, torch.Tensor], io: dict[str, torch.Tensor]) -> dict[str, object]:
    found = ref.e2fnet_settings(state)
    return {"n_channels": io["eeg"].shape[2], "n_freqs": io["eeg"].shape[3],
            "out_shape": (found["depth"], 64, 64), "context": found["context"],
            "width": found["width"]}


@torch.no_grad()
def test_e2fnet_equals_the_reference(io):
    state = _load(E2FNET_SD)
    model = build_model("e2fnet", **_shapes(state, io))
    model.load_state_dict(ref.e2fnet_state(state))  # strict: every key placed, none left over
    out = model.eval()(io["eeg"])
    assert out.shape == io["volumes"].shape == (2, 4, 64, 64)
    assert float((out - io["volumes"]).abs().max()) < TOLERANCE
    # the reference's parameters = ours + its time embedding (folded into biases)
    assert ref.reference_parameters(state) == (count_parameters(model)
                                               + ref.folded_time_embedding(32)) == 302_252


@torch.no_grad()
def test_e2fgan_generator_and_discriminator_equal_the_reference(io):
    state = _load(E2FNET_SD)
    model = build_model("e2fgan", **_shapes(state, io), disc_width=8)
    model.generator.load_state_dict(ref.e2fnet_state(state))
    model.discriminator.load_state_dict(ref.discriminator_state(_load(DISC_SD)))
    model.eval()
    assert float((model(io["eeg"]) - io["volumes"]).abs().max()) < TOLERANCE
    logits = model.discriminator(io["volumes"])
    assert logits.shape == io["logits"].shape == (2, 1, 1, 1)  # one logit per volume
    assert float((logits - io["logits"]).abs().max()) < TOLERANCE


def test_full_width_parameter_counts_equal_the_reference():
    """NODDI shapes: the reference's EEG2fMRINet has 19,152,030 parameters, 3,411,968 of them
    its time embedding; its Discriminator(30) 492,545."""
    shapes = {"n_channels": 64, "n_freqs": 249, "out_shape": (30, 64, 64), "context": 20}
    e2fnet = build_model("e2fnet", **shapes, width=256)
    gan = build_model("e2fgan", **shapes, width=256, disc_width=64)
    assert count_parameters(e2fnet) == count_parameters(gan.generator) == 15_740_062
    assert ref.folded_time_embedding(256) == 3_411_968
    assert count_parameters(e2fnet) + ref.folded_time_embedding(256) == 19_152_030
    assert count_parameters(gan.discriminator) == 492_545


def test_params_states_the_reference_counts(capsys):
    assert main(["params", "--arch", "e2fnet", "--params", '{"width": 256}']) == 0
    assert ("e2fnet: 15,740,062 trainable parameters (the reference's 19,152,030 less 3,411,968 "
            "of its time embedding, constant at t = 0, folded into biases)"
            ) in capsys.readouterr().out
    assert main(["params", "--arch", "e2fgan", "--params", '{"width": 256}']) == 0
    out = capsys.readouterr().out
    assert "e2fgan: 16,232,607 trainable parameters: generator 15,740,062" in out
    assert "discriminator 492,545 (the reference's)" in out


def test_discriminator_of_small_volumes_gives_one_logit_and_refuses_tiny_ones():
    """Our extension: below 64 x 64 the last convolution covers the (H/16) x (W/16) map."""
    for size, kernel in (((64, 64), (4, 4)), ((32, 32), (2, 2)), ((16, 16), (1, 1)),
                         ((128, 128), (4, 4))):
        gan = build_model("e2fgan", n_channels=4, n_freqs=40, out_shape=(3, *size), context=2,
                          width=8, disc_width=8)
        assert gan.discriminator.net[-1].kernel_size == kernel
        with torch.no_grad():
            logits = gan.discriminator.eval()(torch.rand(1, 3, *size))
        assert logits.shape == (1, 1, *((5, 5) if size == (128, 128) else (1, 1)))
    with pytest.raises(ValueError, match="at least 16x16"):
        build_model("e2fgan", n_channels=4, n_freqs=40, out_shape=(3, 8, 8), context=2,
                    width=8, disc_width=8)


def test_converter_refuses_another_models_weights():
    with pytest.raises(ValueError, match="not a state_dict of the reference's EEG2fMRINet"):
        ref.e2fnet_state(_load(DISC_SD))
    with pytest.raises(ValueError, match="not a state_dict of the reference's Discriminator"):
        ref.discriminator_state(_load(E2FNET_SD))
    wrapped = {f"module.{k}": v for k, v in _load(E2FNET_SD).items()}  # saved under DDP
    assert ref.e2fnet_state(wrapped).keys() == ref.e2fnet_state(_load(E2FNET_SD)).keys()


# -- the import command: a record evaluate and synthesize use -------------------------------

@pytest.fixture(scope="module")
def sim64(tmp_path_factory) -> Path:
    """Simulated subjects on the reference's grid (4 slices of 64 x 64) and bins (1..249),
    8 channels like the fixture's input."""
    return sim_stores(tmp_path_factory.mktemp("sim64"), 249, n_channels=8, grid=(64, 64, 4),
                      voxel_mm=(3.0, 3.0, 8.0))


def _import(sim64: Path, out: Path, *extra: str) -> int:
    return main(["import", "--state-dict", str(E2FNET_SD), "--like",
                 str(sim64 / "features" / "sub-01"), "--out", str(out), "--tests", "sub-02",
                 "--eeg-range", "-3.9", "7.9", *extra])


def test_import_writes_a_record_that_predicts_the_reference(sim64, tmp_path, io,
                                                                       capsys):
    from eeg2fmri.record import load_model

    for arch, extra in (("e2fnet", ()), ("e2fgan", ("--discriminator", str(DISC_SD)))):
        out = tmp_path / f"{arch}.pt"
        assert _import(sim64, out, "--arch", arch, *extra) == 0, capsys.readouterr().err
        model, record = load_model(out, torch.device("cpu"))
        assert record["eeg"]["norm"] == {"mode": "paper", "a": -3.9, "b": 7.9}
        assert record["volume"]["shape"] == [4, 64, 64] and record["fold"]["tests"] == ["sub-02"]
        assert record["imported"]["sha256"] and record["params"]["width"] == 32
        with torch.no_grad():
            assert float((model(io["eeg"]) - io["volumes"]).abs().max()) < TOLERANCE
            if arch == "e2fgan":
                logits = model.discriminator(io["volumes"])
                assert float((logits - io["logits"]).abs().max()) < TOLERANCE


def test_import_takes_the_eeg_range_from_the_reference_runs_arguments(sim64, tmp_path):
    from eeg2fmri.record import load_record

    run_args = tmp_path / "commandline_args.txt"  # as train_E2fNet.py writes it (json.dump)
    run_args.write_text(json.dumps({"dataset": "NODDI", "min_eeg": -2.5, "max_eeg": 6.5}))
    out = tmp_path / "model.pt"
    assert main(["import", "--arch", "e2fnet", "--state-dict", str(E2FNET_SD), "--like",
                 str(sim64 / "features" / "sub-01"), "--out", str(out), "--run-args",
                 str(run_args)]) == 0
    record = load_record(out)
    assert record["eeg"]["norm"] == {"mode": "paper", "a": -2.5, "b": 6.5}
    assert record["imported"]["eeg_range_from"] == str(run_args)


def test_the_imported_records_normalisation_is_the_references(sim64, tmp_path):
    """The reference's input: scipy's zscore across channels of each (window, frequency), then
    (x - min) / (max - min + 1e-10) with the run's global min and max."""
    from eeg2fmri.pairs import EEGNorm
    from eeg2fmri.record import load_record

    out = tmp_path / "model.pt"
    assert _import(sim64, out, "--arch", "e2fnet") == 0
    spectra = np.load(sim64 / "features" / "sub-01" / "eeg.npy").astype(np.float64)  # [T, C, F]
    z = (spectra - spectra.mean(1, keepdims=True)) / spectra.std(1, keepdims=True)
    expected = (z - -3.9) / (7.9 - -3.9 + 1e-10)
    ours = EEGNorm.from_state(load_record(out)["eeg"]["norm"])(spectra)
    assert np.abs(ours - expected).max() < 1e-5


def test_evaluate_and_synthesize_use_an_imported_record(sim64, tmp_path):
    out = tmp_path / "model.pt"
    assert _import(sim64, out, "--arch", "e2fnet") == 0
    assert main(["evaluate", "--model", str(out), "--test-features",
                 str(sim64 / "features" / "sub-02"), "--metrics", str(tmp_path / "m.json"),
                 "--predictions", str(tmp_path / "p.nii.gz"), "--device", "cpu"]) == 0
    eeg = next((sim64 / "raw").rglob("sub-02*.vhdr"))
    assert main(["synthesize", "--model", str(out), "--eeg", str(eeg), "--out",
                 str(tmp_path / "s.nii.gz"), "--device", "cpu", "--no-progress"]) == 0


def test_import_refusals_name_the_problem(sim64, tmp_path, capsys):
    out = tmp_path / "model.pt"
    assert main(["import", "--arch", "e2fnet", "--state-dict", str(DISC_SD),
                 "--like", str(sim64 / "features" / "sub-01"), "--out", str(out)]) == 2
    assert "not a state_dict of the reference's EEG2fMRINet" in capsys.readouterr().err
    assert main(["import", "--arch", "e2fnet", "--state-dict", str(E2FNET_SD),
                 "--like", str(sim64 / "features" / "sub-01"), "--out", str(out)]) == 2
    assert "give --eeg-range MIN MAX" in capsys.readouterr().err  # "sim": no reference range
    assert _import(sim64, out, "--arch", "e2fnet", "--discriminator", str(DISC_SD)) == 2
    assert "--discriminator is for --arch e2fgan" in capsys.readouterr().err
    assert not out.exists()
