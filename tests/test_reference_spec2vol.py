"""Our Spec2Vol against the authors' reference code (hdy6438/Spec2VolCAMU-Net), through the
fixtures in tests/fixtures/spec2vol_reference/ (made once by running the reference at a tiny
width: its state_dict, an input and its output; see tests/fixtures/README.md). No reference code
here: the weights go through our converter into our model, whose selective scan is our
pure-PyTorch one (the fixture's was mamba-ssm's `selective_scan_ref`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from eeg2fmri.models import build_model, count_parameters
from eeg2fmri.models.reference import spec2vol as ref
from eeg2fmri.models.spec2vol import Spec2Vol

from .conftest import FIXTURES, sim_stores

HERE = FIXTURES / "spec2vol_reference"
STATE = HERE / "spec2vol_tiny_state_dict.pt"
TOLERANCE = 1e-5


def _load(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    """eeg [2, 6, 10, 50] and the reference's volumes on it [2, 5, 64, 64] (eval mode)."""
    return _load(HERE / "io.pt")


def _model(state: dict[str, torch.Tensor], io: dict[str, torch.Tensor]) -> Spec2Vol:
    found = ref.spec2vol_settings(state)
    context, depth = found.pop("context"), found.pop("depth")
    model = build_model("spec2vol", n_channels=io["eeg"].shape[2], n_freqs=io["eeg"].shape[3],
                        out_shape=(depth, 64, 64), context=context, **found)
    model.load_state_dict(ref.spec2vol_state(state))  # strict: every key placed, none left over
    return model.eval()


def test_settings_read_off_the_state_dict():
    assert ref.spec2vol_settings(_load(STATE)) == {
        "embed": 16, "heads": 8, "n_blocks": 2, "axis": "frequency", "dims": [16, 32, 64],
        "depths": [1, 1, 2], "dec_depths": [2, 1, 1], "drop_path": 0.2, "output": "linear",
        "context": 6, "depth": 5}


@torch.no_grad()
def test_spec2vol_equals_the_reference(io):
    state = _load(STATE)
    model = _model(state, io)
    out = model(io["eeg"])
    assert out.shape == io["volumes"].shape == (2, 5, 64, 64)
    assert float((out - io["volumes"]).abs().max()) < TOLERANCE
    assert count_parameters(model) == sum(v.numel() for v in state.values()) == 332_129
    # unbounded, as the reference: the fixture's volumes leave [0, 1]
    assert float(io["volumes"].min()) < 0


@torch.no_grad()
def test_a_misplaced_weight_changes_the_output(io):
    """The fixture tells the scan directions apart: the column-major and the reversed
    row-major directions' projections swapped would not go unnoticed."""
    state = ref.spec2vol_state(_load(STATE))
    model = _model(_load(STATE), io)
    base = model(io["eeg"][:1])
    model.load_state_dict({k: v[[0, 2, 1, 3]] if k.endswith("x_proj_weight") else v
                           for k, v in state.items()})
    assert float((model(io["eeg"][:1]) - base).abs().max()) > 100 * TOLERANCE


def test_a_wrapped_state_dict_converts_too(io):
    state = {"module." + k: v for k, v in _load(STATE).items()}
    assert ref.spec2vol_state(state).keys() == ref.spec2vol_state(_load(STATE)).keys()


def test_the_converter_refuses_other_weights():
    e2fnet = _load(FIXTURES / "e2fnet_reference" / "e2fnet_w32_state_dict.pt")
    with pytest.raises(ValueError, match="Spectrogram2fMRI: keys eeg_encoder"):
        ref.spec2vol_state(e2fnet)
    with pytest.raises(ValueError, match="not a state_dict of the reference's Spectrogram2fMRI"):
        ref.spec2vol_settings(e2fnet)
    state = _load(STATE)
    state["decoder.model.vmunet.absolute_pos_embed"] = torch.zeros(1)
    with pytest.raises(ValueError, match="absolute_pos_embed"):
        ref.spec2vol_state(state)


def test_paper_configuration_has_the_reference_parameter_count():
    """The reference's Spectrogram2fMRI(in_dim=20, hidden_dim=256, out_dim=30), as its training
    script builds it for NODDI: 45,927,230 parameters (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = build_model("spec2vol", n_channels=64, n_freqs=249, out_shape=(30, 64, 64),
                            context=20, output="linear")
    assert count_parameters(model) == 45_927_230
    assert ref.parameter_note(model) == " (the reference's)"


def test_parameter_note_names_what_differs():
    small = build_model("spec2vol", n_channels=8, n_freqs=40, out_shape=(4, 32, 32), context=5,
                        embed=8, heads=2, dims=(8, 16), depths=(1, 1), dec_depths=(1, 1))
    note = ref.parameter_note(small)
    assert note.startswith(" (the reference's layers with context 5, embed 8, heads 2")
    assert "dims 8-16" in note and "the reference: 20, 256, 8" in note
    assert ref.parameter_note(torch.nn.Linear(2, 2)) == ""


# -- the import command: a record evaluate uses ----------------------------------------------

@pytest.fixture(scope="module")
def sim10(tmp_path_factory) -> Path:
    """Simulated subjects with the fixture's 10 electrodes and 5 slices of 64 x 64, at the
    reference's bins (1..249)."""
    return sim_stores(tmp_path_factory.mktemp("sim10"), 249, n_channels=10, grid=(64, 64, 5),
                      voxel_mm=(3.0, 3.0, 8.0))


def test_import_writes_a_record_that_predicts_the_reference(sim10, tmp_path, io, capsys):
    from eeg2fmri.cli import main
    from eeg2fmri.record import load_model

    out = tmp_path / "spec2vol.pt"
    assert main(["import", "--arch", "spec2vol", "--state-dict", str(STATE), "--like",
                 str(sim10 / "features" / "sub-01"), "--out", str(out), "--tests", "sub-02",
                 "--eeg-range", "-3.9", "7.9"]) == 0, capsys.readouterr().err
    model, record = load_model(out, torch.device("cpu"))
    assert record["eeg"]["norm"] == {"mode": "paper", "a": -3.9, "b": 7.9}
    assert record["eeg"]["context"] == 6 and record["params"]["output"] == "linear"
    assert "hdy6438/Spec2VolCAMU-Net" in record["imported"]["from"]
    with torch.no_grad():  # the fixture's 50 bins: the encoder's map is padded to the grid
        assert float((model(io["eeg"]) - io["volumes"]).abs().max()) < TOLERANCE
    assert main(["evaluate", "--model", str(out), "--test-features",
                 str(sim10 / "features" / "sub-02"), "--metrics", str(tmp_path / "m.json"),
                 "--predictions", str(tmp_path / "p.nii.gz"), "--device", "cpu"]) == 0
