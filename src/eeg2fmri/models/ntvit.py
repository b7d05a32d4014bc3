"""NT-ViT (Lanzino et al. 2024), layer for layer the authors' code (rom42pla/ntvit, `ntvit.py`,
the configuration of its `train.py`): raw EEG -> sign-log1p -> mel spectrogram -> log1p -> ViT
encoder to one CLS vector -> causally masked transformer over the volume's patches -> volume;
optionally with Domain Matching. With the reference's weights (`models.reference.ntvit`) it
predicts what the reference predicts on the same input tensor.

Input [B, context, C, S]: the windows' raw samples (S per window), joined in time per electrode
into one signal of context * S samples (the reference reads one 2.16-s window per volume:
context 1, S = ceil(2.16 * 512) = 1106 at its 512 Hz; a longer signal gives more spectrogram
frames, hence more EEG tokens, up to `n_positions` - 1). What the reference's data pipeline does
before the model (0.5-150 Hz band-pass, average reference, 512 Hz, per-window per-channel min-max
to [-1, 1]) is not done here; the sign-log1p is the model's own (the reference's forward).
- Spectrogram (torchaudio's MelSpectrogram with the reference's arguments, computed in torch):
  n_fft the smallest power of 2 >= fs, a periodic Hann window of floor(fs / 16) samples, hop
  round(window / 2), centred with reflect padding, power 2, `n_mels` HTK mel bands (no
  normalisation) over 1-45 Hz of rFFT bins spaced over 0..fs // 2; then log1p. The electrodes
  are the image channels.
- Encoder (EEG, and the fMRI one of Domain Matching): the image zero-padded (split evenly,
  the odd pixel after) to whole patches, each patch flattened (channel, row, column) through
  Linear -> LayerNorm -> activation -> Linear to `dim`, a learned CLS token (an embedding), learned
  positions (a table of `n_positions`), post-norm transformer layers (8 heads in the reference,
  feed-forward `ff_dim`); the CLS output is the latent.
- Decoder: the latent plus a learned position per 2-D patch of the (zero-padded) H x W plane,
  through causally masked post-norm transformer layers, Linear -> LayerNorm -> activation ->
  Linear to each patch's D x h x w voxels (the depth as channels), folded, cropped, a 3x3x3
  Conv3d, sigmoid.
- Domain Matching (`domain_matching: true`): an fMRI encoder reads log1p of the target volume
  (depth as channels). Training adds the reconstruction of the volume decoded from the fMRI
  latent and the MSE between the EEG and fMRI latents (weight `dm_weight`, 1 in the reference),
  both with the fMRI latent detached, as the reference does: the fMRI encoder gets no gradient
  (it keeps its initial weights). Prediction uses the EEG path only.
- Loss: MSE (the reference's `train.py` leaves its KL, centre-of-mass, displacement and
  discriminator terms off; they are not implemented here, nor its input noise, 0 by default).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from eeg2fmri.models.base import Model

F_MIN, F_MAX = 1.0, 45.0  # the reference's mel band (Hz)
SPECTROGRAM_SCALE = 2  # the reference's hop: the window over this (its --spectrogram_scale)
_ACTIVATIONS = {"selu": (nn.SELU, F.selu), "gelu": (nn.GELU, F.gelu),
                "softplus": (nn.Softplus, F.softplus)}


def stft_sizes(fs: float) -> tuple[int, int, int]:
    """(n_fft, window, hop) of the reference's spectrogram at `fs` Hz."""
    n_fft = 1
    while n_fft < fs:
        n_fft *= 2
    window = math.floor(fs / 16)
    if window < 1:
        raise ValueError(f"NT-ViT's spectrogram needs fs >= 16 Hz, not {fs}")
    return n_fft, window, round(window / SPECTROGRAM_SCALE)


def mel_filterbank(n_bins: int, n_mels: int, fs: float, f_min: float = F_MIN,
                   f_max: float = F_MAX) -> torch.Tensor:
    """Triangular HTK mel filters [n_mels, n_bins] over `n_bins` rFFT bins spaced evenly over
    0..fs // 2, no normalisation: torchaudio's `melscale_fbanks` (transposed), step by step in
    float32 so that the values are its own."""
    freqs = torch.linspace(0, fs // 2, n_bins)
    m_min, m_max = (2595.0 * math.log10(1.0 + f / 700.0) for f in (f_min, f_max))
    f_pts = 700.0 * (10.0 ** (torch.linspace(m_min, m_max, n_mels + 2) / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - freqs.unsqueeze(1)
    down = (-1.0 * slopes[:, :-2]) / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return torch.max(torch.zeros(1), torch.min(down, up)).T.contiguous()


class LogMel(nn.Module):
    """[B, C, T] raw samples -> [B, C, n_mels, frames]: log1p(mel(sign(x) log1p|x|))."""

    def __init__(self, fs: float, n_mels: int = 16):
        super().__init__()
        self.n_fft, self.win, self.hop = stft_sizes(fs)
        self.register_buffer("window", torch.hann_window(self.win), persistent=False)
        self.register_buffer("fb", mel_filterbank(self.n_fft // 2 + 1, n_mels, fs).T.contiguous(),
                             persistent=False)  # [bins, mels], as torchaudio's

    def frames(self, n_samples: int) -> int:
        return n_samples // self.hop + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        x = (torch.sign(x) * torch.log1p(torch.abs(x))).float()
        spec = torch.stft(x.reshape(b * c, t), self.n_fft, self.hop, self.win, self.window,
                          center=True, pad_mode="reflect", return_complex=True)
        power = spec.abs().pow(2.0)
        mel = torch.matmul(power.transpose(-1, -2), self.fb).transpose(-1, -2)
        return torch.log1p(mel.reshape(b, c, *mel.shape[-2:]))


def centred_padding(size: int, patch: int) -> tuple[int, int]:
    """Zeros before and after `size` to whole patches (the odd one after)."""
    total = patch * math.ceil(size / patch) - size
    return total // 2, total - total // 2


def _transformer(dim: int, layers: int, heads: int, ff_dim: int, dropout: float,
                 activation: str) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(dim, heads, ff_dim, dropout,
                                       activation=_ACTIVATIONS[activation][1], batch_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


def _mlp(n_in: int, hidden: int, n_out: int, activation: str) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.LayerNorm(hidden),
                         _ACTIVATIONS[activation][0](), nn.Linear(hidden, n_out))


class PatchEncoder(nn.Module):
    """An image [B, channels, H, W] -> its CLS latent [B, dim] (the reference's encoder)."""

    def __init__(self, channels: int, size: tuple[int, int], patch: tuple[int, int], dim: int,
                 layers: int, heads: int, mlp_dim: int, ff_dim: int, n_positions: int,
                 dropout: float, activation: str):
        super().__init__()
        self.patch = tuple(patch)
        pad_h, pad_w = (centred_padding(n, p) for n, p in zip(size, self.patch, strict=True))
        self.padding = (*pad_w, *pad_h)
        self.n_tokens = math.prod(math.ceil(n / p) for n, p in zip(size, self.patch,
                                                                   strict=True))
        if self.n_tokens + 1 > n_positions:
            raise ValueError(f"{self.n_tokens} patches and the CLS token exceed the "
                             f"{n_positions} positions")
        self.embed = _mlp(channels * math.prod(self.patch), mlp_dim, dim, activation)
        self.transformer = _transformer(dim, layers, heads, ff_dim, dropout, activation)
        self.pos = nn.Embedding(n_positions, dim)
        self.cls = nn.Embedding(1, dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        ph, pw = self.patch
        x = F.pad(image, self.padding).unfold(2, ph, ph).unfold(3, pw, pw)
        b, c, gh, gw = x.shape[:4]
        tokens = self.embed(x.permute(0, 2, 3, 1, 4, 5).reshape(b, gh * gw, c * ph * pw))
        tokens = torch.cat([self.cls.weight.expand(b, 1, -1), tokens], 1)
        tokens = tokens + self.pos.weight[:tokens.shape[1]]
        return self.transformer(tokens)[:, 0]


class PatchDecoder(nn.Module):
    """A latent [B, dim] -> volume [B, D, H, W] in [0, 1] (the reference's decoder)."""

    def __init__(self, out_shape: tuple[int, int, int], patch: tuple[int, int], dim: int,
                 layers: int, heads: int, mlp_dim: int, ff_dim: int, n_positions: int,
                 dropout: float, activation: str):
        super().__init__()
        depth, h, w = out_shape
        self.patch = tuple(patch)
        self.crop = [centred_padding(n, p) for n, p in zip((h, w), self.patch, strict=True)]
        self.padded = tuple(n + sum(p) for n, p in zip((h, w), self.crop, strict=True))
        self.n_tokens = math.prod(n // p for n, p in zip(self.padded, self.patch, strict=True))
        if self.n_tokens > n_positions:
            raise ValueError(f"{self.n_tokens} volume patches exceed the {n_positions} "
                             "positions")
        self.pos = nn.Embedding(n_positions, dim)
        self.transformer = _transformer(dim, layers, heads, ff_dim, dropout, activation)
        self.head = _mlp(dim, mlp_dim, depth * math.prod(self.patch), activation)
        self.conv = nn.Conv3d(1, 1, 3, padding=1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        tokens = latent.unsqueeze(1) + self.pos.weight[:self.n_tokens]
        mask = nn.Transformer.generate_square_subsequent_mask(self.n_tokens,
                                                              device=latent.device)
        h = self.head(self.transformer(tokens, mask=mask, is_causal=True))
        vol = F.fold(h.transpose(1, 2), self.padded, self.patch, stride=self.patch)
        (top, bottom), (left, right) = self.crop
        vol = vol[:, :, top:vol.shape[2] - bottom, left:vol.shape[3] - right]
        return torch.sigmoid(self.conv(vol.unsqueeze(1)).squeeze(1))


class NTViT(Model):
    input = "raw"  # its own mel front end on the windows' samples

    def __init__(self, n_channels: int, n_freqs: int, out_shape: tuple[int, int, int],
                 context: int = 1, fs: float = 512.0, dim: int = 256, depth: int = 3,
                 dec_depth: int = 3, heads: int = 8, n_mels: int = 16,
                 spec_patch: tuple[int, int] = (8, 8), patch: tuple[int, int] = (6, 6),
                 mlp_dim: int = 2048, ff_dim: int = 2048, n_positions: int = 2048,
                 activation: str = "selu", domain_matching: bool = False,
                 dm_weight: float = 1.0, dropout: float = 0.0):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation {activation!r}: one of {', '.join(_ACTIVATIONS)}")
        if len(spec_patch) != 2 or len(patch) != 2:
            raise ValueError(f"spec_patch {list(spec_patch)} (mels x frames) and patch "
                             f"{list(patch)} (H x W: the depth is the channels) take 2 sizes")
        self.out_shape = tuple(out_shape)
        self.logmel = LogMel(fs, n_mels)
        frames = self.logmel.frames(context * n_freqs)  # n_freqs: samples per raw window
        if context * n_freqs <= self.logmel.n_fft // 2:
            raise ValueError(f"{context} x {n_freqs} samples are too few for the "
                             f"{self.logmel.n_fft}-point STFT at {fs} Hz")
        common = dict(dim=dim, heads=heads, mlp_dim=mlp_dim, ff_dim=ff_dim,
                      n_positions=n_positions, dropout=dropout, activation=activation)
        self.eeg_encoder = PatchEncoder(n_channels, (n_mels, frames), spec_patch, layers=depth,
                                        **common)
        self.decoder = PatchDecoder(self.out_shape, patch, layers=dec_depth, **common)
        self.domain_matching = domain_matching
        self.dm_weight = dm_weight
        if domain_matching:
            self.fmri_encoder = PatchEncoder(self.out_shape[0], self.out_shape[1:], patch,
                                             layers=depth, **common)

    def encode_eeg(self, x: torch.Tensor) -> torch.Tensor:
        b, ctx, c, s = x.shape
        return self.eeg_encoder(self.logmel(x.permute(0, 2, 1, 3).reshape(b, c, ctx * s)))

    def encode_fmri(self, vol: torch.Tensor) -> torch.Tensor:
        return self.fmri_encoder(torch.log1p(vol))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode_eeg(x))

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, ssim_weight: float = 0.5
                      ) -> torch.Tensor:
        """The reference's MSE (plus, with Domain Matching, its two terms on the detached fMRI
        latent); `ssim_weight` does not apply."""
        eeg = self.encode_eeg(x)
        loss = F.mse_loss(self.decoder(eeg), y)
        if self.domain_matching:
            with torch.no_grad():  # the reference detaches it: no gradient reaches it
                fmri = self.encode_fmri(y)
            loss = (loss + F.mse_loss(self.decoder(fmri), y)
                    + self.dm_weight * F.mse_loss(eeg, fmri))
        return loss
