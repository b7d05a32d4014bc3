import pytest
import torch

from eeg2fmri.models import build_model, count_parameters
from eeg2fmri.models.controls import MeanVolume


@pytest.mark.parametrize("channels,depth", [(43, 32), (64, 30), (19, 16)])
def test_e2fnet_shapes(channels, depth):
    model = build_model("e2fnet", n_channels=channels, n_freqs=249, out_shape=(depth, 64, 64),
                        context=20, width=16)
    with torch.no_grad():
        y = model(torch.randn(2, 20, channels, 249))
    assert y.shape == (2, depth, 64, 64)
    assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_e2fnet_paper_width_parameter_count():
    """Width 256 is the published model: 15.7 M trainable parameters; the reference's 19.2 M
    also counts the diffusers U-Net's time-embedding layers, which E2fNet never uses."""
    model = build_model("e2fnet", n_channels=64, n_freqs=249, out_shape=(30, 64, 64),
                        context=20, width=256)
    assert 15.5e6 < count_parameters(model) < 16.0e6


def test_unknown_architecture_is_named():
    with pytest.raises(KeyError, match="unknown model architecture 'nope'"):
        build_model("nope", n_channels=1, n_freqs=1, out_shape=(1, 1, 1), context=1)


def test_mean_volume_predicts_the_training_mean_and_ignores_eeg():
    m = MeanVolume(out_shape=(2, 3, 3))
    vols = [torch.full((4, 2, 3, 3), 1.0), torch.full((2, 2, 3, 3), 4.0)]
    m.fit((torch.randn(len(v), 20, 8, 10), v) for v in vols)
    assert torch.allclose(m.mean, torch.full((2, 3, 3), 2.0))
    a, b = m(torch.randn(5, 20, 8, 10)), m(torch.zeros(5, 20, 8, 10))
    assert a.shape == (5, 2, 3, 3) and torch.equal(a, b)


def test_band_ridge_recovers_a_linear_band_power_relation():
    from eeg2fmri.models.ridge import BandRidge

    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 4, 3, 16, generator=g)
    drive = x[:, :, 1, 4:6].mean((1, 2))  # one band of one electrode
    pattern = torch.rand(2, 4, 4, generator=g)
    y = (0.5 + 0.1 * drive[:, None, None, None] * pattern).clamp(0, 1)
    m = BandRidge(n_channels=3, n_freqs=16, out_shape=(2, 4, 4), context=4, n_bands=8,
                  n_components=4, alpha=1.0)
    m.fit([(x[:200], y[:200])])
    pred = m(x[200:])
    err = (pred - y[200:]).pow(2).mean() / (y[200:] - y[200:].mean(0)).pow(2).mean()
    assert err < 0.05


@pytest.mark.parametrize("channels,depth,grid", [(43, 32, 64), (64, 30, 64), (19, 16, 32)])
def test_spec2vol_shapes(channels, depth, grid):
    model = build_model("spec2vol", n_channels=channels, n_freqs=249,
                        out_shape=(depth, grid, grid), context=20, embed=16, heads=2,
                        dims=(8, 16), depths=(1, 1), dec_depths=(1, 1))
    with torch.no_grad():
        y = model(torch.randn(2, 20, channels, 249))
    assert y.shape == (2, depth, grid, grid)
    assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_spec2vol_paper_configuration_parameter_count():
    """The reference code's defaults give ~45.9 M parameters."""
    model = build_model("spec2vol", n_channels=64, n_freqs=249, out_shape=(30, 64, 64),
                        context=20)
    assert 45.5e6 < count_parameters(model) < 46.5e6


def test_spec2vol_attention_axis_is_explicit():
    kw = dict(n_channels=8, n_freqs=40, out_shape=(4, 16, 16), context=5, embed=8, heads=2,
              dims=(8, 16), depths=(1, 1), dec_depths=(1, 1))
    freq = build_model("spec2vol", axis="frequency", **kw)
    elec = build_model("spec2vol", axis="electrode", **kw)
    x = torch.randn(1, 5, 8, 40)
    h_freq = freq.blocks(freq.proj(x))
    h_elec = elec.blocks(elec.proj(x))
    assert h_freq.shape[-2:] == (8, 10) and h_elec.shape[-2:] == (2, 40)
    with pytest.raises(ValueError, match="axis"):
        build_model("spec2vol", axis="time", **kw)


def test_cli_prints_the_paper_parameter_counts(capsys):
    from eeg2fmri.cli import main

    assert main(["params", "--arch", "spec2vol"]) == 0
    assert "spec2vol: 46,040,126 trainable parameters" in capsys.readouterr().out
    assert main(["params", "--arch", "e2fnet", "--params", '{"width": 256}']) == 0
    assert "e2fnet: 15,740,062 trainable parameters" in capsys.readouterr().out


@pytest.mark.parametrize("channels,depth", [(43, 32), (64, 30), (19, 16)])
def test_cnn_tc_shapes_and_low_parameter_count(channels, depth):
    model = build_model("cnn_tc", n_channels=channels, n_freqs=249, out_shape=(depth, 64, 64),
                        context=20)
    with torch.no_grad():
        y = model.eval()(torch.randn(2, 20, channels, 249))
    assert y.shape == (2, depth, 64, 64)
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    assert count_parameters(model) < 2e6  # a low-parameter baseline, unlike E2fNet's 15.7 M


def test_cnn_tc_uses_the_eeg_context_in_time():
    model = build_model("cnn_tc", n_channels=6, n_freqs=40, out_shape=(8, 16, 16), context=10)
    x = torch.randn(1, 10, 6, 40)
    late = x.clone()
    late[:, -1] += 5.0  # change only the last window
    with torch.no_grad():
        model.eval()
        assert not torch.allclose(model(x), model(late))
