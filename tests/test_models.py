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
