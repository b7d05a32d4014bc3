"""EF-Diffusion: an EEG-conditioned 3-D denoising diffusion model of the fMRI volume.

After "Research on fMRI Image Generation from EEG Signals Based on Diffusion Models" (Electronics,
2025; no public code). Two parts:

- **EEG prompt generator (EPG)**: a 3-D convolution over the (window, electrode, frequency)
  tensor, residual blocks, pooling to a fixed grid and one token per EEG window; then
  Multi-Head Recursive Spectral Attention (per head, a half of the channels:
  Z = tanh(MLP1(E)), W = sigmoid(MLP2(E)), O_i = (1 - W_i) Z_i + W_i O_{i-1} along the windows)
  and a self-attention layer. Output: one token per window for cross-attention.
- **FD-UNet**: a 3-D residual U-Net over the volume (zero-padded to a multiple of the
  down-sampling factor) with a sinusoidal time-step embedding added in every residual block and a
  Cross-modal Information Interaction Module (tanh/sigmoid gating of the fMRI features, then
  cross-attention with queries from fMRI voxels and keys/values from the EEG tokens) at the
  coarsest `attn_levels` levels and in the middle. The voxel coordinates enter as three extra
  input channels: the paper does not say how the network knows where it is, and a purely
  convolutional denoiser cannot place a fixed anatomy in pure noise (it learned to denoise but
  not to generate: an overfit test stayed at SSIM 0.04 without them).

Diffusion: DDPM training (linear beta schedule; MSE on epsilon as in the paper, on v, or on the
clean volume x0, which learns by far the fastest on small budgets) and DDIM sampling, both with
MONAI's schedulers (clipping the predicted volume to its range while sampling: without it an
under-trained model diverges); an exponential moving average (EMA) of the weights samples.
Volumes in [0, 1] are diffused as 2y - 1. The generic training loop calls `training_loss`,
`after_step` and `validation_loss`; evaluation calls the model, which samples with DDIM from a
generator seeded when the model enters eval mode, so predictions are reproducible.
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
    """Multi-Head Recursive Spectral Attention along the window axis of [B, T, dim] tokens."""

    def __init__(self, dim: int, heads: int = 2):
        super().__init__()
        if dim % heads:
            raise ValueError(f"EEG token dim {dim} is not divisible by {heads} heads")
        hd = dim // heads
        self.heads = heads

        def mlp() -> nn.Module:
            return nn.Sequential(nn.Linear(hd, hd), nn.SiLU(), nn.Linear(hd, hd))

        self.mlp_z = nn.ModuleList(mlp() for _ in range(heads))
        self.mlp_w = nn.ModuleList(mlp() for _ in range(heads))
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        outs = []
        for h, part in enumerate(e.chunk(self.heads, dim=-1)):
            z, w = torch.tanh(self.mlp_z[h](part)), torch.sigmoid(self.mlp_w[h](part))
            o, seq = torch.zeros_like(z[:, 0]), []
            for i in range(z.shape[1]):  # O_i = (1 - W_i) Z_i + W_i O_{i-1}
                o = (1 - w[:, i]) * z[:, i] + w[:, i] * o
                seq.append(o)
            outs.append(torch.stack(seq, dim=1))
        return self.norm(e + self.proj(torch.cat(outs, dim=-1)))


class EEGPromptGenerator(nn.Module):
    """[B, T, C, F] spectra -> [B, T, dim] tokens, one per EEG window."""

    def __init__(self, context: int, dim: int, conv_channels: int = 8, res_blocks: int = 2,
                 heads: int = 2, attn_heads: int = 4, pooled: tuple[int, int] = (8, 16)):
        super().__init__()
        c = conv_channels
        self.stem = nn.Sequential(nn.Conv3d(1, c, (3, 3, 7), stride=(1, 1, 4), padding=(1, 1, 3)),
                                  norm(c), nn.SiLU())
        self.pool = nn.AdaptiveAvgPool3d((context, *pooled))  # any montage/band -> fixed grid
        self.res = nn.ModuleList(ResBlock3d(c, c) for _ in range(res_blocks))
        self.embed = nn.Linear(c * pooled[0] * pooled[1], dim)
        self.pos = nn.Parameter(torch.zeros(1, context, dim))
        self.rsa = RecursiveSpectralAttention(dim, heads)
        self.attn = nn.TransformerEncoderLayer(dim, attn_heads, 2 * dim, dropout=0.0,
                                               batch_first=True, norm_first=True)

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.stem(eeg[:, None]))  # [B, c, T, C, F/4] -> [B, c, T, 8, 16]
        for block in self.res:
            h = block(h)
        tokens = self.embed(h.permute(0, 2, 1, 3, 4).flatten(2)) + self.pos
        return self.attn(self.rsa(tokens))


class CrossModalInteraction(nn.Module):
    """CIIM: gate the fMRI features, then cross-attend from voxels to EEG tokens."""

    def __init__(self, channels: int, token_dim: int, heads: int = 4):
        super().__init__()
        self.gate_t = nn.Conv3d(channels, channels, 1)
        self.gate_s = nn.Conv3d(channels, channels, 1)
        self.norm = norm(channels)
        self.attn = nn.MultiheadAttention(channels, heads if channels % heads == 0 else 1,
                                          kdim=token_dim, vdim=token_dim, batch_first=True)

    def forward(self, f: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        f = f + torch.tanh(self.gate_t(f)) * torch.sigmoid(self.gate_s(f))
        q = self.norm(f).flatten(2).transpose(1, 2)  # [B, voxels, C]
        a, _ = self.attn(q, tokens, tokens, need_weights=False)
        return f + a.transpose(1, 2).reshape(f.shape)


class FDUNet(nn.Module):
    """3-D residual U-Net predicting the noise of a noisy volume, given time and EEG tokens."""

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
            self.downsample.append(nn.Conv3d(c, c, 3, stride=2, padding=1) if i < n - 1
                                   else nn.Identity())
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

    def __init__(self, context: int, eeg_dim: int, channels: tuple[int, ...], attn_levels: int,
                 eeg_conv_channels: int, attn_heads: int):
        super().__init__()
        self.epg = EEGPromptGenerator(context, eeg_dim, eeg_conv_channels,
                                      attn_heads=attn_heads)
        self.unet = FDUNet(channels, eeg_dim, attn_levels, attn_heads)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, eeg: torch.Tensor) -> torch.Tensor:
        return self.unet(x_t, t, self.epg(eeg))


PREDICTIONS = ("epsilon", "v_prediction", "sample")  # what the network predicts (noise, v, x0)


class EFDiffusion(Model):
    def __init__(self, n_channels: int, n_freqs: int, out_shape: tuple[int, int, int],
                 context: int = 20, eeg_dim: int = 64, channels: tuple[int, ...] = (8, 16, 32),
                 attn_levels: int = 2, eeg_conv_channels: int = 8, attn_heads: int = 4,
                 train_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 2e-2,
                 sample_steps: int = 50, eta: float = 0.0, ema_decay: float = 0.995,
                 clip_sample: bool = True, prediction: str = "epsilon", sample_seed: int = 0):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"ef_diffusion prediction must be one of {', '.join(PREDICTIONS)}, "
                             f"not {prediction!r}")
        self.out_shape = tuple(out_shape)
        factor = 2 ** (len(channels) - 1)
        self.padded = tuple(math.ceil(s / factor) * factor for s in self.out_shape)
        self.net = Denoiser(context, eeg_dim, tuple(channels), attn_levels, eeg_conv_channels,
                            attn_heads)
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
