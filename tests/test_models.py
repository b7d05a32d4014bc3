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
    m = MeanVolume(n_channels=8, n_freqs=10, out_shape=(2, 3, 3), context=20)
    vols = [torch.full((4, 2, 3, 3), 1.0), torch.full((2, 2, 3, 3), 4.0)]
    m.fit_closed_form((torch.randn(len(v), 20, 8, 10), v) for v in vols)
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
    m.fit_closed_form([(x[:200], y[:200])])
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
    assert "spec2vol: 45,927,230 trainable parameters (the reference's)" in capsys.readouterr().out
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
    torch.manual_seed(0)  # some random initialisations leave every ReLU of the head dead
    model = build_model("cnn_tc", n_channels=6, n_freqs=40, out_shape=(8, 16, 16), context=10)
    x = torch.randn(1, 10, 6, 40)
    late = x.clone()
    late[:, -1] += 5.0  # change only the last window
    with torch.no_grad():
        model.eval()
        assert not torch.allclose(model(x), model(late))


@pytest.mark.parametrize("channels,depth", [(43, 32), (64, 30)])
def test_e2fgan_shapes_and_paper_parameter_count(channels, depth):
    small = build_model("e2fgan", n_channels=channels, n_freqs=249, out_shape=(depth, 64, 64),
                        context=20, width=16, disc_width=16)
    with torch.no_grad():
        y = small(torch.randn(2, 20, channels, 249))
        logits = small.discriminator(y)
    assert y.shape == (2, depth, 64, 64) and logits.shape == (2, 1, 1, 1)  # one logit
    paper = build_model("e2fgan", n_channels=channels, n_freqs=249, out_shape=(depth, 64, 64),
                        context=20, width=256)
    n_d = count_parameters(paper.discriminator)
    assert 15.5e6 < count_parameters(paper.generator) < 16.0e6 and 0.4e6 < n_d < 0.5e6


@pytest.mark.parametrize("channels,depth,samples,fs", [(64, 30, 540, 250.0),
                                                       (43, 32, 2000, 1000.0)])
def test_ntvit_shapes_on_raw_windows(channels, depth, samples, fs):
    """NODDI- and Oddball-shaped raw windows (540 samples at 250 Hz, 2000 at 1 kHz)."""
    model = build_model("ntvit", n_channels=channels, n_freqs=samples, out_shape=(depth, 64, 64),
                        context=20, fs=fs, dim=32, depth=1, dec_depth=1, heads=4, n_mels=32,
                        domain_matching=True)
    x, y = torch.randn(2, 20, channels, samples), torch.rand(2, depth, 64, 64)
    with torch.no_grad():
        out = model(x)
        eeg_only = torch.nn.functional.mse_loss(out, y)
        with_dm = model.training_loss(x, y)
    assert out.shape == (2, depth, 64, 64) and float(out.min()) >= 0 and float(out.max()) <= 1
    assert float(with_dm) > float(eeg_only)  # the fMRI path and latent matching add terms


def test_ntvit_log_mel_puts_a_sine_in_its_band():
    from eeg2fmri.models.ntvit import LogMel, mel_filterbank

    fb = mel_filterbank(126, 32, 250.0)
    assert fb.shape == (32, 126) and float(fb.min()) >= 0 and float(fb.max()) <= 1
    logmel = LogMel(250.0, 32)
    t = torch.arange(5000) / 250.0
    spec = logmel(torch.sin(2 * torch.pi * 40.0 * t)[None, None])[0, 0].mean(-1)
    peak_hz = float((fb[int(spec.argmax())] * torch.linspace(0, 125, 126)).sum()
                    / fb[int(spec.argmax())].sum())
    assert abs(peak_hz - 40.0) < 6.0


def test_ntvit_paper_configuration_parameter_count():
    """The reference's defaults (dim 256, 3 + 3 layers, FF 2048) at NODDI shapes with 64
    electrodes (tests/test_reference_ntvit.py checks the reference's own 63)."""
    kw = dict(n_channels=64, n_freqs=1106, out_shape=(30, 64, 64), context=1, fs=512.0)
    assert count_parameters(build_model("ntvit", domain_matching=True, **kw)) == 27_814_228
