"""NT-ViT (Lanzino et al. 2024): raw EEG -> in-model log-mel spectrogram -> ViT encoder ->
transformer decoder to 3-D patches of the volume; optionally with Domain Matching.

Input [B, context, C, S]: the store's raw windows (S = fs * TR samples each), joined in time per
electrode into one ~context * TR long signal. Choices where the paper leaves room, documented:
- Spectrogram: Hann STFT with a 1 s window and a 1/4 s hop, power mapped to `n_mels` HTK mel
  bands from 0 to fs / 2, log(1e-6 + .). The electrodes are the image channels of the ViT.
- Encoder: non-overlapping `spec_patch` (mel x frame) patches, a CLS token, learned positions,
  pre-norm transformer layers. Decoder: one learned query per 3-D patch of the (zero-padded)
  volume, pre-norm transformer decoder layers cross-attending to all encoder tokens, a linear
  map to the patch's voxels, sigmoid.
- Domain Matching (`domain_matching: true`): an fMRI encoder (3-D patches of the target volume,
  same transformer layout) whose tokens go through the same decoder; training adds its
  reconstruction loss and the MSE between the EEG and fMRI CLS latents (weight `dm_weight`), so
  that EEG latents land where volumes are encoded. Prediction uses the EEG path only.
- Loss: MSE, as in the paper.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from eeg2fmri.models.base import Model


def mel_filterbank(n_bins: int, n_mels: int, fs: float) -> torch.Tensor:
    """Triangular HTK-mel filters [n_mels, n_bins] over the rFFT bins 0..fs/2."""
    def to_mel(hz: torch.Tensor) -> torch.Tensor:
        return 2595.0 * torch.log10(1.0 + hz / 700.0)

    freqs = torch.linspace(0.0, fs / 2, n_bins, dtype=torch.float64)
    edges_mel = torch.linspace(0.0, float(to_mel(torch.tensor(fs / 2))), n_mels + 2,
                               dtype=torch.float64)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    return torch.clamp(torch.minimum(up, down), min=0.0).float()


class LogMel(nn.Module):
    def __init__(self, fs: float, n_mels: int, window_s: float = 1.0, hop_s: float = 0.25):
        super().__init__()
        self.n_fft = max(8, int(round(fs * window_s)))
        self.hop = max(1, int(round(fs * hop_s)))
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.register_buffer("fb", mel_filterbank(self.n_fft // 2 + 1, n_mels, fs),
                             persistent=False)

    def frames(self, n_samples: int) -> int:
        return n_samples // self.hop + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, T] -> [B, C, n_mels, frames]."""
        b, c, t = x.shape
        spec = torch.stft(x.reshape(b * c, t).float(), self.n_fft, self.hop,
                          window=self.window, center=True, return_complex=True)
        mel = torch.matmul(self.fb, spec.abs() ** 2)
        return torch.log(mel + 1e-6).reshape(b, c, *mel.shape[-2:])


def _encoder(dim: int, depth: int, heads: int, dropout: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)


class NTViT(Model):
    input = "raw"  # its own log-mel front end on the windows' samples

    def __init__(self, n_channels: int, n_freqs: int, out_shape: tuple[int, int, int],
                 context: int = 20, fs: float = 250.0, dim: int = 256, depth: int = 8,
                 dec_depth: int = 8, heads: int = 8, n_mels: int = 64,
                 spec_patch: tuple[int, int] = (8, 8), patch: tuple[int, int, int] = (5, 8, 8),
                 domain_matching: bool = False, dm_weight: float = 1.0, dropout: float = 0.0):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.patch = tuple(patch)
        self.grid = tuple(math.ceil(n / p) for n, p in zip(self.out_shape, self.patch,
                                                          strict=True))
        self.logmel = LogMel(fs, n_mels)
        frames = self.logmel.frames(context * n_freqs)  # n_freqs: samples per raw window
        sp = tuple(spec_patch)
        if n_mels < sp[0] or frames < sp[1]:
            raise ValueError(f"spectrogram {n_mels}x{frames} is smaller than a {sp} patch")
        self.spec_embed = nn.Conv2d(n_channels, dim, sp, stride=sp)
        n_tokens = (n_mels // sp[0]) * (frames // sp[1])
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.eeg_pos = nn.Parameter(torch.randn(1, n_tokens + 1, dim) * 0.02)
        self.eeg_encoder = _encoder(dim, depth, heads, dropout)
        n_patches = math.prod(self.grid)
        self.queries = nn.Parameter(torch.randn(1, n_patches, dim) * 0.02)
        layer = nn.TransformerDecoderLayer(dim, heads, 4 * dim, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, dec_depth)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, math.prod(self.patch)))
        self.domain_matching = domain_matching
        self.dm_weight = dm_weight
        if domain_matching:
            self.vol_embed = nn.Conv3d(1, dim, self.patch, stride=self.patch)
            self.vol_cls = nn.Parameter(torch.zeros(1, 1, dim))
            self.vol_pos = nn.Parameter(torch.randn(1, n_patches + 1, dim) * 0.02)
            self.fmri_encoder = _encoder(dim, depth, heads, dropout)

    def _pad(self, vol: torch.Tensor) -> torch.Tensor:
        pads = [g * p - n for g, p, n in zip(self.grid, self.patch, self.out_shape, strict=True)]
        return F.pad(vol, (0, pads[2], 0, pads[1], 0, pads[0]))

    @staticmethod
    def _with_cls(cls: torch.Tensor, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return torch.cat([cls.expand(len(tokens), -1, -1), tokens], 1) + pos

    def encode_eeg(self, x: torch.Tensor) -> torch.Tensor:
        b, ctx, c, s = x.shape
        signal = x.permute(0, 2, 1, 3).reshape(b, c, ctx * s)
        tokens = self.spec_embed(self.logmel(signal)).flatten(2).transpose(1, 2)
        return self.eeg_encoder(self._with_cls(self.cls, tokens, self.eeg_pos))

    def encode_fmri(self, vol: torch.Tensor) -> torch.Tensor:
        tokens = self.vol_embed(self._pad(vol).unsqueeze(1)).flatten(2).transpose(1, 2)
        return self.fmri_encoder(self._with_cls(self.vol_cls, tokens, self.vol_pos))

    def decode(self, memory: torch.Tensor) -> torch.Tensor:
        h = self.head(self.decoder(self.queries.expand(len(memory), -1, -1), memory))
        (gd, gh, gw), (pd, ph, pw) = self.grid, self.patch
        vol = h.reshape(-1, gd, gh, gw, pd, ph, pw).permute(0, 1, 4, 2, 5, 3, 6)
        vol = vol.reshape(-1, gd * pd, gh * ph, gw * pw)
        d, hh, w = self.out_shape
        return torch.sigmoid(vol[:, :d, :hh, :w])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode_eeg(x))

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, ssim_weight: float = 0.5
                      ) -> torch.Tensor:
        """The paper's MSE (plus the domain-matching terms); `ssim_weight` does not apply."""
        eeg = self.encode_eeg(x)
        loss = F.mse_loss(self.decode(eeg), y)
        if self.domain_matching:
            fmri = self.encode_fmri(y)
            loss = (loss + F.mse_loss(self.decode(fmri), y)
                    + self.dm_weight * F.mse_loss(eeg[:, 0], fmri[:, 0]))
        return loss
