"""EF-Diffusion: an EEG-conditioned 3-D denoising diffusion model of the fMRI volume.

After "Research on fMRI Image Generation from EEG Signals Based on Diffusion Models" (Electronics,
2025; no public code). Two parts:

- **EEG prompt generator (EPG)**: the spectra arranged as the paper's Y [1, Ce, F, T]
  (electrodes, frequency bins, time windows); a 3-D convolution (stride 2 in frequency and
  time, for CPU cost); then per block a 3-D average pooling of frequency and time (never of
  electrodes), a residual block and, after each
  residual block, Multi-Head Recursive Spectral Attention (MHRSA: Z = tanh(MLP1(E)),
  W = sigmoid(MLP2(E)), both split in two halves along the channels, O_i = (1 - W_i) Z_i +
  W_i O_{i-1} along time, the halves concatenated); the frequency axis pooled to `eeg_bands`
  bands; one token per (electrode, band), holding its channels x time steps, with learned
  electrode and band embeddings; a self-attention layer. Output: Ce x eeg_bands
  electrode-specific tokens (keys and values of every cross-attention).
- **FD-UNet**: a 3-D residual U-Net over the volume (zero-padded to a multiple of the
  down-sampling factor), one residual block per level with a sinusoidal time-step embedding,
  3-D average pooling down and nearest-neighbour interpolation up, and a Cross-modal Information
  Interaction Module at the coarsest `attn_levels` levels and in the middle (CIIM: tanh and
  sigmoid of the fMRI features, split in halves, reversed, concatenated and fused by a 1x1x1
  convolution; then cross-attention with queries from every voxel and keys/values from the EEG
  tokens). The voxel coordinates enter as three extra input channels: the paper does not say
  how the network knows where it is, and a purely convolutional denoiser cannot place a fixed
  anatomy in pure noise (it learned to denoise but not to generate: an overfit test stayed at
  SSIM 0.04 without them).

Where the paper is ambiguous, our readings (its words quoted):

- Tokens. "K and V ... of shape [2, 1632, 128] that represent electrode-specific
  time-frequency characteristics", from E in R^{C x Ce x F x T}: one token per electrode and
  frequency band, its time course and channels as features. 1,632 is no multiple of NODDI's
  63 (or 64) electrodes; `eeg_bands: 26` gives 63 x 26 = 1,638, the nearest (ef_diffusion_paper).
- MHRSA "follows each residual block"; the pooling ("downsampling layers", kind not said)
  comes before each block, so the first block already runs on half the bins and windows.
  "Z and W are each split into two parts along the channel dimension ... the two parts of O are
  concatenated": with one recursion the split would change nothing, and the text says it lets
  "each time step integrate information from all other time steps", so the first half recurs
  forwards and the second backwards in time. Eq. 36 prints (1 - W_1); we read (1 - W_i). O is
  added to E (the encoder is "residual"; the paper does not say whether O replaces E).
- CIIM: "Z_X undergoes non-linear transformations via the Tanh and Sigmoid functions to yield
  two complementary feature maps ...; these are then split along the channel dimension,
  reversed, concatenated, and fused to generate an enriched representation": tanh(Z_X) and
  sigmoid(Z_X) with no learned layer before them; the four halves in reverse order
  [sig_2, sig_1, tanh_2, tanh_1], concatenated; "fused" by a learned 1x1x1 convolution, added
  to Z_X. With a learned fusion the order of the halves is a fixed permutation of its inputs,
  so the reversal does not change what the module can express; we keep it as written.
- "down-sampling is performed with a 3-D pooling layer": average pooling (the paper names
  both kinds; an average passes no single noisy voxel, as a denoiser wants).
- "a CIIM ... is inserted at every point in the network where the fMRI tensor has spatial
  dimensions of [8, 8, 4]", yet its query is [2, 2048, 128], i.e. 16 x 16 x 8 voxels at 128
  channels: we follow the text (`attn_levels: 1` at the paper's sizes); `attn_levels: 2` also
  covers the shapes' reading.

Diffusion: DDPM training (linear beta schedule; MSE on epsilon as in the paper, on v, or on the
clean volume x0, which learns by far the fastest on small budgets) and DDIM sampling, both with
MONAI's schedulers (clipping the predicted volume to its range while sampling: without it an
under-trained model diverges); an exponential moving average (EMA) of the weights samples.
Volumes in [0, 1] are diffused as 2y - 1. The generic training loop calls `training_loss`,
`after_step` and `validation_loss`; evaluation calls the model, which samples with DDIM from a
generator seeded when the model enters eval mode, so predictions are reproducible. The DDIM
steps (`sample_steps`) are an integer here; a config may give them per dataset, which training
resolves (training.trainer).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from eeg2fmri.models.base import Model
from eeg2fmri.models.layers import groups_for


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer time steps, [B] -> [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with at least 4 channels per group (see `groups_for`)."""
    return nn.GroupNorm(groups_for(channels, min_per_group=4), channels)


def coordinates(x: torch.Tensor) -> torch.Tensor:
    """[B, 3, D, H, W] voxel coordinates in [-1, 1], the same for every sample."""
    axes = [torch.linspace(-1, 1, n, device=x.device, dtype=x.dtype) for n in x.shape[2:]]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"))
    return grid.expand(len(x), -1, -1, -1, -1)


class ResBlock3d(nn.Module):
    """(GroupNorm, SiLU, 3x3x3 conv) x 2 with an optional time embedding added in between."""

    def __init__(self, c_in: int, c_out: int, t_dim: int | None = None):
        super().__init__()
        self.in_layers = nn.Sequential(norm(c_in), nn.SiLU(),
                                       nn.Conv3d(c_in, c_out, 3, padding=1))
        self.t_proj = nn.Linear(t_dim, c_out) if t_dim else None
        self.out_layers = nn.Sequential(norm(c_out), nn.SiLU(),
                                        nn.Conv3d(c_out, c_out, 3, padding=1))
        self.skip = nn.Identity() if c_in == c_out else nn.Conv3d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.in_layers(x)
        if self.t_proj is not None and t_emb is not None:
            h = h + self.t_proj(t_emb)[:, :, None, None, None]
        return self.skip(x) + self.out_layers(h)


class RecursiveSpectralAttention(nn.Module):
    """MHRSA on the EEG feature map E [B, C, Ce, F, T] (the paper's Eqs. 34-36).

    Per position, two MLPs over the channels (1x1x1 convolutions) give candidates
    Z = tanh(MLP1(E)) and weights W = sigmoid(MLP2(E)); both are split into two halves along the
    channels; each half runs O_i = (1 - W_i) Z_i + W_i O_{i-1} along time (O_{-1} = 0), the
    first forwards and the second backwards in time (our reading: see the module docstring);
    the halves are concatenated and added to E."""

    def __init__(self, channels: int):
        super().__init__()
        if channels % 2:
            raise ValueError(f"ef_diffusion eeg_conv_channels must be even (MHRSA splits them in "
                             f"two halves), not {channels}")

        def mlp() -> nn.Module:
            return nn.Sequential(nn.Conv3d(channels, channels, 1), nn.SiLU(),
                                 nn.Conv3d(channels, channels, 1))

        self.mlp_z, self.mlp_w = mlp(), mlp()

    @staticmethod
    def recur(z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """O_i = (1 - W_i) Z_i + W_i O_{i-1} along the last axis, O_{-1} = 0."""
        o, seq = torch.zeros_like(z[..., 0]), []
        for i in range(z.shape[-1]):
            o = (1 - w[..., i]) * z[..., i] + w[..., i] * o
            seq.append(o)
        return torch.stack(seq, dim=-1)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        z, w = torch.tanh(self.mlp_z(e)), torch.sigmoid(self.mlp_w(e))
        (z1, z2), (w1, w2) = z.chunk(2, dim=1), w.chunk(2, dim=1)
        forward = self.recur(z1, w1)
        backward = self.recur(z2.flip(-1), w2.flip(-1)).flip(-1)
        return e + torch.cat([forward, backward], dim=1)


class EEGPromptGenerator(nn.Module):
    """EPG: EEG spectra [B, T, Ce, F] -> electrode tokens [B, Ce * bands, dim].

    The spectra are arranged as the paper's Y [1, Ce, F, T]; a 3-D convolution, then per block
    a 3-D average pooling of frequency and time (electrodes are never pooled), a residual block
    and MHRSA. The frequency axis is then pooled to `bands` bands; each (electrode, band) token
    holds its channels x time steps, embedded linearly to `dim`, plus a learned electrode and
    band embedding; a self-attention layer mixes the tokens."""

    def __init__(self, n_electrodes: int, context: int, dim: int, conv_channels: int = 8,
                 blocks: int = 2, bands: int = 8, attn_heads: int = 4):
        super().__init__()
        c = conv_channels
        # the front-end convolution halves frequency and time (stride 2; electrodes stay)
        self.stem = nn.Sequential(nn.Conv3d(1, c, 3, stride=(1, 2, 2), padding=1), norm(c),
                                  nn.SiLU())
        self.res = nn.ModuleList(ResBlock3d(c, c) for _ in range(blocks))
        self.rsa = nn.ModuleList(RecursiveSpectralAttention(c) for _ in range(blocks))
        steps = math.ceil(context / 2)
        for _ in range(blocks):
            steps = math.ceil(steps / 2)
        self.bands = bands
        self.embed = nn.Linear(c * steps, dim)
        self.electrode = nn.Parameter(torch.zeros(n_electrodes, 1, dim))
        self.band = nn.Parameter(torch.zeros(1, bands, dim))
        nn.init.normal_(self.electrode, std=0.02)
        nn.init.normal_(self.band, std=0.02)
        self.attn = nn.TransformerEncoderLayer(dim, attn_heads, 2 * dim, dropout=0.0,
                                               batch_first=True, norm_first=True)

    @staticmethod
    def pool(h: torch.Tensor) -> torch.Tensor:
        """3-D average pooling that halves frequency and time (rounding up; an axis of one
        stays) and never pools electrodes."""
        kernel = (1, *(2 if n > 1 else 1 for n in h.shape[3:]))
        return F.avg_pool3d(h, kernel, ceil_mode=True)

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        h = self.stem(eeg.permute(0, 2, 3, 1)[:, None])  # [B, c, Ce, F, T]
        for block, rsa in zip(self.res, self.rsa, strict=True):  # MHRSA after each block
            h = rsa(block(self.pool(h)))
        h = F.adaptive_avg_pool3d(h, (h.shape[2], self.bands, h.shape[4]))  # [B, c, Ce, b, T']
        tokens = self.embed(h.permute(0, 2, 3, 1, 4).flatten(3))  # [B, Ce, bands, dim]
        tokens = tokens + self.electrode + self.band
        return self.attn(tokens.flatten(1, 2))


class CrossModalInteraction(nn.Module):
    """CIIM: enrich the fMRI features Z_X, then cross-attend from voxels to the EEG tokens.

    tanh(Z_X) and sigmoid(Z_X) are each split into two halves along the channels; the four
    halves are taken in reverse order (sigmoid's second, sigmoid's first, tanh's second,
    tanh's first), concatenated and fused by a 1x1x1 convolution, added to Z_X (Z'_X). Queries
    come from Z'_X (every voxel), keys and values from the EEG tokens; the attention's output
    projection updates Z'_X."""

    def __init__(self, channels: int, token_dim: int, heads: int = 4):
        super().__init__()
        if channels % 2:
            raise ValueError(f"ef_diffusion channels with cross-attention must be even (the "
                             f"CIIM splits them in two halves), not {channels}")
        self.fuse = nn.Conv3d(2 * channels, channels, 1)
        self.norm = norm(channels)
        self.attn = nn.MultiheadAttention(channels, heads if channels % heads == 0 else 1,
                                          kdim=token_dim, vdim=token_dim, batch_first=True)

    @staticmethod
    def split_reverse_concat(f: torch.Tensor) -> torch.Tensor:
        """[tanh(f), sigmoid(f)] split in halves, reversed, concatenated: [B, 2C, ...]."""
        parts = [*torch.tanh(f).chunk(2, dim=1), *torch.sigmoid(f).chunk(2, dim=1)]
        return torch.cat(parts[::-1], dim=1)

    def forward(self, f: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        f = f + self.fuse(self.split_reverse_concat(f))
        q = self.norm(f).flatten(2).transpose(1, 2)  # [B, voxels, C]
        a, _ = self.attn(q, tokens, tokens, need_weights=False)
        return f + a.transpose(1, 2).reshape(f.shape)


class FDUNet(nn.Module):
    """3-D residual U-Net predicting the noise of a noisy volume, given time and EEG tokens:
    a residual block per level, 3-D average pooling down, nearest-neighbour interpolation up."""

    def __init__(self, channels: tuple[int, ...], token_dim: int, attn_levels: int = 2,
                 attn_heads: int = 4):
        super().__init__()
        t_freq = max(32, channels[0])  # sinusoidal features of the time step
        self.t_dim = 4 * t_freq
        self.t_mlp = nn.Sequential(nn.Linear(t_freq, self.t_dim), nn.SiLU(),
                                   nn.Linear(self.t_dim, self.t_dim))
        n = len(channels)
        with_attn = [i >= n - attn_levels for i in range(n)]
        self.conv_in = nn.Conv3d(1 + 3, channels[0], 3, padding=1)  # + voxel coordinates
        self.down, self.down_attn, self.downsample = nn.ModuleList(), nn.ModuleList(), \
            nn.ModuleList()
        c_prev = channels[0]
        for i, c in enumerate(channels):
            self.down.append(ResBlock3d(c_prev, c, self.t_dim))
            self.down_attn.append(CrossModalInteraction(c, token_dim, attn_heads)
                                  if with_attn[i] else nn.Identity())
            self.downsample.append(nn.AvgPool3d(2) if i < n - 1 else nn.Identity())
            c_prev = c
        c = channels[-1]
        self.mid1 = ResBlock3d(c, c, self.t_dim)
        self.mid_attn = CrossModalInteraction(c, token_dim, attn_heads)
        self.mid2 = ResBlock3d(c, c, self.t_dim)
        self.up, self.up_attn, self.upsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(n)):
            c_out = channels[i]
            self.up.append(ResBlock3d(c_prev + channels[i], c_out, self.t_dim))
            self.up_attn.append(CrossModalInteraction(c_out, token_dim, attn_heads)
                                if with_attn[i] else nn.Identity())
            self.upsample.append(nn.Conv3d(c_out, channels[i - 1], 3, padding=1) if i > 0
                                 else nn.Identity())
            c_prev = channels[i - 1] if i > 0 else c_out
        self.out = nn.Sequential(norm(channels[0]), nn.SiLU(),
                                 nn.Conv3d(channels[0], 1, 3, padding=1))

    @staticmethod
    def _attend(layer: nn.Module, h: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return layer(h, tokens) if isinstance(layer, CrossModalInteraction) else h

    def forward(self, x: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        t_emb = self.t_mlp(timestep_embedding(t, self.t_mlp[0].in_features))
        x = torch.cat([x, coordinates(x)], dim=1).contiguous(memory_format=torch.channels_last_3d)
        h, skips = self.conv_in(x), []
        for block, attn, down in zip(self.down, self.down_attn, self.downsample, strict=True):
            h = self._attend(attn, block(h, t_emb), tokens)
            skips.append(h)
            h = down(h)
        h = self.mid2(self.mid_attn(self.mid1(h, t_emb), tokens), t_emb)
        for block, attn, up in zip(self.up, self.up_attn, self.upsample, strict=True):
            h = self._attend(attn, block(torch.cat([h, skips.pop()], dim=1), t_emb), tokens)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out(h)


class Denoiser(nn.Module):
    """EPG + FD-UNet: the prediction (epsilon, v or x0) for x_t at step t, given the EEG."""

    def __init__(self, n_electrodes: int, context: int, eeg_dim: int, channels: tuple[int, ...],
                 attn_levels: int, eeg_conv_channels: int, attn_heads: int, eeg_blocks: int,
                 eeg_bands: int):
        super().__init__()
        self.epg = EEGPromptGenerator(n_electrodes, context, eeg_dim, eeg_conv_channels,
                                      eeg_blocks, eeg_bands, attn_heads)
        self.unet = FDUNet(channels, eeg_dim, attn_levels, attn_heads)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, eeg: torch.Tensor) -> torch.Tensor:
        return self.unet(x_t, t, self.epg(eeg))


PREDICTIONS = ("epsilon", "v_prediction", "sample")  # what the network predicts (noise, v, x0)


class EFDiffusion(Model):
    def __init__(self, n_channels: int, n_freqs: int, out_shape: tuple[int, int, int],
                 context: int = 20, eeg_dim: int = 64, channels: tuple[int, ...] = (8, 16, 32),
                 attn_levels: int = 2, eeg_conv_channels: int = 8, attn_heads: int = 4,
                 eeg_blocks: int = 2, eeg_bands: int = 8,
                 train_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 2e-2,
                 sample_steps: int = 50, eta: float = 0.0, ema_decay: float = 0.995,
                 clip_sample: bool = True, prediction: str = "epsilon", sample_seed: int = 0):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"ef_diffusion prediction must be one of {', '.join(PREDICTIONS)}, "
                             f"not {prediction!r}")
        if isinstance(sample_steps, bool) or not isinstance(sample_steps, int):
            raise ValueError(f"ef_diffusion sample_steps must be an integer here, not "
                             f"{sample_steps!r} (a mapping per dataset is resolved by training, "
                             "which knows the dataset)")
        self.out_shape = tuple(out_shape)
        factor = 2 ** (len(channels) - 1)
        self.padded = tuple(math.ceil(s / factor) * factor for s in self.out_shape)
        self.net = Denoiser(n_channels, context, eeg_dim, tuple(channels), attn_levels,
                            eeg_conv_channels, attn_heads, eeg_blocks, eeg_bands)
        self.net.to(memory_format=torch.channels_last_3d)  # 1.6x faster 3-D convs on CPU
        self.ema = copy.deepcopy(self.net).requires_grad_(False)
        self.ema_decay = ema_decay
        sched = {"num_train_timesteps": train_steps, "schedule": "linear_beta",
                 "beta_start": beta_start, "beta_end": beta_end, "clip_sample": clip_sample,
                 "prediction_type": prediction}
        from monai.networks.schedulers import DDIMScheduler, DDPMScheduler  # slow to import

        self.ddpm = DDPMScheduler(**sched)
        self.ddim = DDIMScheduler(**sched)
        self.ddim.set_timesteps(sample_steps)
        self.sample_steps, self.eta, self.seed = sample_steps, eta, sample_seed
        self._gen = torch.Generator().manual_seed(sample_seed)

    # --- volume <-> diffusion space ------------------------------------------------------
    def _to_x0(self, y: torch.Tensor) -> torch.Tensor:
        """[B, D, H, W] in [0, 1] -> [B, 1, D', H', W'] in [-1, 1], zero-padded (value -1)."""
        pads = [p - s for p, s in zip(self.padded, self.out_shape, strict=True)]
        x = F.pad(y[:, None], (0, pads[2], 0, pads[1], 0, pads[0]))
        return 2 * x - 1

    def _from_x0(self, x: torch.Tensor) -> torch.Tensor:
        d, h, w = self.out_shape
        return ((x[:, 0, :d, :h, :w] + 1) / 2).clamp(0, 1)

    # --- training hooks used by the generic loop ------------------------------------------
    def _loss(self, net: nn.Module, eeg: torch.Tensor, y: torch.Tensor,
                  generator: torch.Generator | None) -> torch.Tensor:
        x0 = self._to_x0(y)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        t = torch.randint(0, self.ddpm.num_train_timesteps, (len(x0),), generator=generator)
        t = t.to(x0.device)
        x_t = self.ddpm.add_noise(x0, noise, t)
        kind = self.ddpm.prediction_type
        target = noise if kind == "epsilon" else x0 if kind == "sample" else \
            self.ddpm.get_velocity(x0, noise, t)
        return F.mse_loss(net(x_t, t, eeg), target)

    def training_loss(self, eeg: torch.Tensor, y: torch.Tensor, ssim_weight: float = 0.5
                      ) -> torch.Tensor:
        """Epsilon- (v-, x0-) prediction MSE at a random time step (noise from the global CPU RNG,
        which the loop checkpoints, so a resumed run draws the same)."""
        return self._loss(self.net, eeg, y, None)

    @torch.no_grad()
    def validation_loss(self, eeg: torch.Tensor, y: torch.Tensor, ssim_weight: float = 0.5
                        ) -> torch.Tensor:
        """The same loss for the EMA weights, with noise and steps fixed across epochs (the
        diffusion objective: `ssim_weight` does not apply)."""
        return self._loss(self.ema, eeg, y, torch.Generator().manual_seed(self.seed))

    @torch.no_grad()
    def after_step(self) -> None:
        """EMA update of the sampling weights."""
        for e, p in zip(self.ema.parameters(), self.net.parameters(), strict=True):
            e.lerp_(p.detach(), 1 - self.ema_decay)
        for e, b in zip(self.ema.buffers(), self.net.buffers(), strict=True):
            e.copy_(b)

    # --- sampling --------------------------------------------------------------------------
    def train(self, mode: bool = True) -> EFDiffusion:
        if not mode:  # entering eval: restart the sampling noise, so predictions reproduce
            self._gen = torch.Generator().manual_seed(self.seed)
        return super().train(mode)

    @torch.no_grad()
    def sample(self, eeg: torch.Tensor, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """DDIM from pure noise to a volume, [B, T, C, F] -> [B, D, H, W] in [0, 1]."""
        gen = generator if generator is not None else self._gen
        x = torch.randn((len(eeg), 1, *self.padded), generator=gen).to(eeg.device)
        tokens = self.ema.epg(eeg)  # the EEG prompt does not change across steps
        for t in self.ddim.timesteps:
            step = torch.full((len(eeg),), int(t), device=eeg.device, dtype=torch.long)
            out = self.ema.unet(x, step, tokens)  # epsilon, v or x0
            if self.eta > 0:  # DDIM's stochastic part draws from the same seeded generator
                x, _ = self._ddim_step(out, int(t), x, gen)
            else:
                x, _ = self.ddim.step(out, int(t), x, eta=0.0)
        return self._from_x0(x)

    def _ddim_step(self, out: torch.Tensor, t: int, x: torch.Tensor, gen: torch.Generator
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """A stochastic DDIM step; MONAI draws its noise on the tensors' device, our seeded
        generator lives on the CPU."""
        if x.device.type == "cpu":
            return self.ddim.step(out, t, x, eta=self.eta, generator=gen)
        cpu_x, pred = self.ddim.step(out.cpu(), t, x.cpu(), eta=self.eta, generator=gen)
        return cpu_x.to(x.device), pred.to(x.device)

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        return self.sample(eeg)

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self._gen = torch.Generator().manual_seed(seed)

    def sampling_info(self) -> dict[str, Any]:
        return {"sampler": "DDIM", "steps": self.sample_steps, "eta": self.eta,
                "train_steps": self.ddpm.num_train_timesteps, "seed": self.seed,
                "prediction": self.ddpm.prediction_type}
