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
    m.fit(vols)
    assert torch.allclose(m.mean, torch.full((2, 3, 3), 2.0))
    a, b = m(torch.randn(5, 20, 8, 10)), m(torch.zeros(5, 20, 8, 10))
    assert a.shape == (5, 2, 3, 3) and torch.equal(a, b)
