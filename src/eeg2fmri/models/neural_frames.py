"""Spatiotemporal neural frames: an EEG sequence -> a sequence of fMRI frames, consistent with the
frames that were measured (after "Modeling Spatiotemporal Neural Frames for High Resolution Brain
Dynamics", CVPR 2026; no public code, so the layers below are our choices).

- **Multi-scale temporal EEG encoder.** Each window's spectrum [C, F] is pooled by a learnt
  filterbank into `n_bands` bands per electrode and embedded (`dim`); a stack of causal dilated
  temporal convolutions (dilations 1, 2, 4, ...; receptive field 1 + (kernel-1)(2^levels - 1)
  windows) runs over the whole window sequence and the outputs of all levels are summed (one
  scale per level). Frame j reads the encoder at the window just before it, so, as for the
  single-volume models, it depends on EEG before its volume only.
- **Temporal coherence.** A bidirectional GRU over the frames' EEG features gives each frame's
  coefficients z; the loss adds `smoothness` x the mean squared difference of consecutive frames.
- **Spatial decoder on the volume grid, through a low-rank basis.** Frame = mean + U (s * z), U
  [voxels, rank] the principal components of the training subjects' volumes (`prepare`, training
  subjects only), fixed unless `learn_basis` (learning its ~1 M weights overfit the four training
  subjects of the simulated folds). Why the grid and a basis rather than parcels or mask voxels:
  every metric and every other model is on the grid, the stores carry no parcellation, and BOLD
  frames are low rank, so the cost is linear in `rank`, not in voxels x frames.
- **Completion.** With network frames x (deviations d = x - mean), known frames y and their
  sampling operator P, the output is

      x <- mean + b d + L(y - mean - b P d),   then   x <- x + P^T (y - P x)

  The lift L carries the known frames' residual to every frame (`lift`): `prior` (default)
  interpolates its in-basis part linearly in time, keeps the mean of its out-of-basis part (the
  subject's own anatomy) and adds that part's changes interpolated and blurred by `rest_blur`
  voxels (so the measurement noise of the known frames is not copied); `interp` is plain linear
  interpolation; `adjoint` puts nothing on unknown frames. The last step is the null-space
  projection: known frames are reproduced exactly (up to float rounding). b, the trust in the
  EEG between known frames, is fitted by least squares on the validation subject after
  training (`calibrate`) and clipped to [0, 1]: 0 gives the lift of the known frames alone,
  1 the network's frames corrected by the lifted residual. Sequences without known frames
  (synthesis) are the network's frames.

The network is trained on synthesis (EEG only); imputation and super-resolution use it through
the completion, with b from the validation subject, so no test-subject frame shapes any weight.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from eeg2fmri.models.base import Model, SequenceBatch
from eeg2fmri.models.completion import complete, lift_weights
from eeg2fmri.models.losses import ssim_mse_loss

LIFTS = ("prior", "interp", "adjoint")


class CausalBlock(nn.Module):
    """Residual dilated causal temporal convolution; returns (residual output, skip)."""

    def __init__(self, dim: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv = nn.Conv1d(dim, dim, kernel, dilation=dilation)
        self.mix = nn.Conv1d(dim, dim, 1)
        self.norm = nn.GroupNorm(1, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.drop(self.mix(F.gelu(self.norm(self.conv(F.pad(h, (self.pad, 0)))))))
        return h + out, out


class NeuralFrames(Model):
    kind = "sequence"

    def __init__(self, n_channels: int, n_freqs: int, out_shape: tuple[int, int, int],
                 context: int = 20, n_bands: int = 8, dim: int = 64, levels: int = 4,
                 kernel: int = 3, rank: int = 64, hidden: int = 64, dropout: float = 0.1,
                 smoothness: float = 2.0, lift: str = "prior", rest_blur: float = 1.0,
                 learn_basis: bool = False):
        super().__init__()
        if lift not in LIFTS:
            raise ValueError(f"lift must be one of {LIFTS}, not {lift!r}")
        self.out_shape, self.context, self.lift = tuple(out_shape), context, lift
        self.smoothness, self.rest_blur = smoothness, rest_blur
        n_vox = math.prod(self.out_shape)
        self.bands = nn.Linear(n_freqs, n_bands)
        self.embed = nn.Sequential(nn.Linear(n_channels * n_bands, dim), nn.GELU())
        self.blocks = nn.ModuleList(CausalBlock(dim, kernel, 2**i, dropout)
                                    for i in range(levels))
        self.coherence = nn.GRU(dim, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, rank)
        nn.init.zeros_(self.head.weight)  # starts as the mean volume
        nn.init.zeros_(self.head.bias)
        self.basis = nn.Parameter(torch.linalg.qr(torch.randn(n_vox, rank))[0],
                                  requires_grad=learn_basis)
        self.register_buffer("mean", torch.zeros(n_vox))
        self.register_buffer("scale", torch.ones(rank))
        self.register_buffer("trust", torch.zeros(()))  # b: set by `calibrate`

    @torch.no_grad()
    def prepare(self, volumes: torch.Tensor) -> None:
        """Mean volume and principal components of training volumes [N, D, H, W]."""
        x = volumes.reshape(len(volumes), -1).double()
        mean = x.mean(0)
        x = x - mean
        evals, evecs = torch.linalg.eigh(x @ x.T)  # via the N x N Gram matrix (N << voxels)
        k = min(self.basis.shape[1], int((evals > evals.max() * 1e-9).sum()))
        evals, evecs = evals.flip(0)[:k], evecs.flip(1)[:, :k]
        self.mean.copy_(mean.float())
        self.basis[:, :k] = (x.T @ evecs / evals.sqrt()).float()
        self.scale[:k] = (evals / len(x)).sqrt().float()

    def eeg_features(self, eeg: torch.Tensor, n_frames: int) -> torch.Tensor:
        """[B, L + context - 1, C, F] windows -> [B, L, dim]: frame j at the window before it."""
        b, w, _, _ = eeg.shape
        h = self.embed(self.bands(eeg).reshape(b, w, -1)).transpose(1, 2)  # [B, dim, W]
        total = torch.zeros_like(h)
        for block in self.blocks:
            h, skip = block(h)
            total = total + skip
        return total[:, :, self.context - 1:self.context - 1 + n_frames].transpose(1, 2)

    def synthesise(self, eeg: torch.Tensor, n_frames: int) -> torch.Tensor:
        """The network's frames as deviations from the mean volume [B, L, voxels]."""
        h, _ = self.coherence(self.eeg_features(eeg, n_frames))
        return (self.head(h) * self.scale) @ self.basis.T

    def lift_residual(self, r: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """L: residuals [B, L, voxels] of the known frames (zeros elsewhere) -> every frame."""
        if self.lift == "adjoint":
            return r
        w = lift_weights(known, "interp").to(r.dtype)
        if self.lift == "interp":
            return torch.bmm(w, r)
        coeff = r @ self.basis
        rest = r - coeff @ self.basis.T
        static = rest.sum(1, keepdim=True) / known.sum(1).clamp_min(1)[:, None, None]
        moving = self.smooth((torch.bmm(w, rest) - static).reshape(-1, *self.out_shape))
        return torch.bmm(w, coeff) @ self.basis.T + static + moving.reshape(r.shape)

    def smooth(self, v: torch.Tensor) -> torch.Tensor:
        """Separable Gaussian blur of volumes [N, D, H, W] (sigma `rest_blur` voxels)."""
        if self.rest_blur <= 0:
            return v
        r = max(1, round(3 * self.rest_blur))
        t = torch.arange(-r, r + 1, device=v.device, dtype=v.dtype)
        k = torch.exp(-0.5 * (t / self.rest_blur) ** 2)
        k = k / k.sum()
        out = v[:, None]
        for axis in range(3):
            shape = [1, 1, 1, 1, 1]
            shape[2 + axis] = len(k)
            pad = [0, 0, 0, 0, 0, 0]
            pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = r
            out = F.conv3d(F.pad(out, pad, mode="replicate"), k.reshape(shape))
        return out[:, 0]

    def parts(self, x: SequenceBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(lift of the known frames alone, the network's part between them), both
        [B, L, voxels]: the output before the projection is mean + first + b * second."""
        b, n = x.known.shape
        d = self.synthesise(x.eeg, n)
        if not x.known.any():  # synthesis: nothing to lift
            return torch.zeros_like(d), d
        known = x.known[..., None].to(d.dtype)
        y = (x.frames.reshape(b, n, -1) - self.mean) * known
        return self.lift_residual(y, x.known), d - self.lift_residual(d * known, x.known)

    def forward(self, x: SequenceBatch) -> torch.Tensor:
        base, between = self.parts(x)
        trust = torch.where(x.known.any(1), self.trust, 1.0)[:, None, None].to(base.dtype)
        out = (self.mean + base + trust * between).reshape(x.frames.shape)
        return complete(out, x.frames, x.known, "adjoint")

    @torch.no_grad()
    def calibrate(self, batches: Iterable[tuple[SequenceBatch, torch.Tensor]]) -> float:
        """b = argmin over unknown frames of |y - mean - base - b between|^2, clipped to [0, 1]
        (batches: the validation subject's sequences with known frames)."""
        num = den = 0.0
        for x, y in batches:
            base, between = self.parts(x)
            unknown = ~x.known
            target = y.reshape(*x.known.shape, -1) - self.mean - base
            num += float((target[unknown] * between[unknown]).double().sum())
            den += float(between[unknown].double().pow(2).sum())
        self.trust.fill_(min(1.0, max(0.0, num / den)) if den > 0 else 0.0)
        return float(self.trust)

    def sequence_loss(self, x: SequenceBatch, y: torch.Tensor, ssim_weight: float,
                      smoothness: float) -> torch.Tensor:
        out = self(x)
        if bool(x.known.any()):
            scored, truth = out[~x.known], y[~x.known]
        else:  # synthesis: every frame is scored, in the same order, without a gathered copy
            scored, truth = out.flatten(0, 1), y.flatten(0, 1)
        loss = ssim_mse_loss(scored, truth, ssim_weight)
        if smoothness > 0:
            loss = loss + smoothness * temporal_smoothness(out)
        return loss

    def training_step(self, x: SequenceBatch, y: torch.Tensor, step, ssim_weight: float = 0.5
                      ) -> torch.Tensor:
        loss = self.sequence_loss(x, y, ssim_weight, self.smoothness)
        step("model", loss)
        return loss

    def validation_loss(self, x: SequenceBatch, y: torch.Tensor, ssim_weight: float = 0.5
                        ) -> torch.Tensor:
        """What evaluation scores: the loss on unknown frames (no smoothness term)."""
        return self.sequence_loss(x, y, ssim_weight, 0.0)


def temporal_smoothness(x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of consecutive frames of [B, L, ...] sequences."""
    return (x[:, 1:] - x[:, :-1]).float().pow(2).mean()
