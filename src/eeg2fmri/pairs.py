"""Training pairs from the features store: EEG context windows -> the following fMRI volume.

EEG normalisation statistics are fitted on the fold's training subjects only and saved with the
model, so the validation and test subjects are transformed with statistics they did not shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from eeg2fmri.errors import InputError
from eeg2fmri.store import SubjectFeatures

NORMS = ("paper", "log_standard", "raw_standard", "window_minmax")
RAW_NORMS = ("raw_standard", "window_minmax")


@dataclass
class EEGNorm:
    """`paper`: z-score across channels per (window, frequency), then min-max to [0, 1] with the
    training set's min and max (the references fit these on train+test; we do not).
    `log_standard`: log1p magnitudes standardised per (channel, frequency) with training stats.
    `raw_standard`: raw EEG windows (the store's `raw`, for models with their own front end)
    standardised per channel with training stats.
    `window_minmax`: raw EEG windows, each channel of each window min-max scaled to [-1, 1]
    (NT-ViT's reference; nothing fitted)."""

    mode: str
    a: np.ndarray  # paper: global min; log_standard: mean [C, F]; raw_standard: mean [C, 1]
    b: np.ndarray  # paper: global max; log_standard: std [C, F]; raw_standard: std [C, 1]

    @property
    def source(self) -> str:
        """The store array this normalisation applies to: `eeg` (spectra) or `raw`."""
        return "raw" if self.mode in RAW_NORMS else "eeg"

    @staticmethod
    def _pre(mode: str, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if mode == "paper":
            mu = x.mean(axis=-2, keepdims=True)
            sd = x.std(axis=-2, keepdims=True)
            return (x - mu) / np.maximum(sd, 1e-8)
        return np.log1p(x)

    @classmethod
    def fit(cls, mode: str, subjects: list[SubjectFeatures]) -> EEGNorm:
        if mode not in NORMS:
            raise ValueError(f"eeg_norm must be one of {NORMS}, not {mode!r}")
        if mode == "window_minmax":
            return cls(mode, np.float32(-1.0), np.float32(1.0))
        if mode == "raw_standard":  # per channel, over windows and samples (float16: chunks)
            mean, std = _moments((np.asarray(s.raw[i:i + 64], dtype=np.float64)
                                  for s in _releasing(subjects)
                                  for i in range(0, s.raw.shape[0], 64)), axes=(0, 2))
            return cls(mode, mean[:, None].astype(np.float32), std[:, None].astype(np.float32))
        if mode == "paper":
            lo, hi = np.inf, -np.inf
            for s in _releasing(subjects):
                z = cls._pre(mode, s.eeg)
                lo, hi = min(lo, float(z.min())), max(hi, float(z.max()))
            return cls(mode, np.float32(lo), np.float32(hi))
        mean, std = _moments((cls._pre(mode, s.eeg).astype(np.float64)
                              for s in _releasing(subjects)), axes=(0,))
        return cls(mode, mean.astype(np.float32), std.astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.mode == "raw_standard":
            return (np.asarray(x, dtype=np.float32) - self.a) / self.b
        if self.mode == "window_minmax":
            x = np.asarray(x, dtype=np.float32)
            lo, hi = x.min(-1, keepdims=True), x.max(-1, keepdims=True)
            return 2 * (x - lo) / np.maximum(hi - lo, 1e-12) - 1
        z = self._pre(self.mode, x)
        if self.mode == "paper":
            return (z - self.a) / max(float(self.b - self.a), 1e-8)
        return (z - self.a) / self.b

    def state(self) -> dict[str, object]:
        return {"mode": self.mode, "a": np.asarray(self.a), "b": np.asarray(self.b)}

    @classmethod
    def from_state(cls, state: dict[str, object]) -> EEGNorm:
        return cls(str(state["mode"]), np.asarray(state["a"], dtype=np.float32),
                   np.asarray(state["b"], dtype=np.float32))


def _releasing(subjects: list[SubjectFeatures]) -> Iterator[SubjectFeatures]:
    """Each subject in turn, its memory-mapped pages released once the caller is done with it."""
    for s in subjects:
        yield s
        s.release()


def _moments(blocks: Iterable[np.ndarray], axes: tuple[int, ...]
             ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over `axes` of all blocks together, in one pass."""
    n, total, sq = 0, 0.0, 0.0
    for z in blocks:
        n += int(np.prod([z.shape[a] for a in axes]))
        total = total + z.sum(axis=axes)
        sq = sq + (z**2).sum(axis=axes)
    mean = total / n
    return mean, np.sqrt(np.maximum(sq / n - mean**2, 1e-12))


class Frames:
    """The volumes with a full EEG context before them: every run's volumes from `context` on,
    subject by subject, run by run (`index`: (subject, volume); `run`: a label per (subject,
    run)). With `shuffle_seed`, each subject's EEG windows are permuted in time before contexts
    are built (the shuffled-EEG control): `order` maps window positions to store rows."""

    def __init__(self, subjects: list[SubjectFeatures], context: int, norm: EEGNorm,
                 shuffle_seed: int | None = None):
        self.subjects, self.context, self.norm = subjects, context, norm
        self.order = []
        index, runs, n_runs = [], [], 0
        for i, s in enumerate(subjects):
            n = s.eeg.shape[0]
            before = len(index)
            for a, b in s.segments:
                index += [(i, t) for t in range(a + context, b)]
                runs += [n_runs] * max(0, b - a - context)
                n_runs += 1
            if len(index) == before:
                raise InputError(s.directory, f"{s.subject}: no run has more than features.context "
                                         f"= {context} volumes (runs, as store rows: "
                                         f"{s.segments}): lower features.context")
            if shuffle_seed is None:
                self.order.append(np.arange(n))
            else:
                self.order.append(np.random.default_rng([shuffle_seed, i]).permutation(n))
        self.index = np.array(index, dtype=np.int64)
        self.run = np.array(runs, dtype=np.int64)

    def targets(self, field: str = "bold", rows: np.ndarray | None = None) -> np.ndarray:
        """The volumes (or noise-free volumes, `clean`) of all frames (or of `rows`), in index
        order."""
        pick = self.index if rows is None else self.index[rows]
        return np.stack([getattr(self.subjects[i], field)[t] for i, t in pick])

    def sample_volumes(self, n: int) -> np.ndarray:
        """At most `n` volumes spread evenly over all frames (e.g. to initialise a model)."""
        rows = np.unique(np.linspace(0, len(self.index) - 1, min(n, len(self.index))).round())
        return self.targets(rows=rows.astype(np.int64)).astype(np.float32)

    def eeg(self, i: int, start: int, stop: int) -> np.ndarray:
        """Subject i's EEG windows start..stop-1 (spectra or raw windows, as the norm reads)."""
        return getattr(self.subjects[i], self.norm.source)[self.order[i][start:stop]]

    def release(self) -> None:
        for s in self.subjects:
            s.release()

    def row_batches(self, n: int, size: int, generator: torch.Generator | None = None,
                    release_every: int = 8) -> Iterator[np.ndarray]:
        """Rows 0..n-1 in batches of `size`, in a random order when a generator is given. Every
        `release_every` batches the memory-mapped pages read so far are released, so the
        process's resident memory does not grow with the size of the dataset."""
        order = (torch.randperm(n, generator=generator).numpy() if generator is not None
                 else np.arange(n))
        for i, start in enumerate(range(0, n, size)):
            yield order[start:start + size]
            if (i + 1) % release_every == 0:
                self.release()


class PairDataset(Frames):
    """All (context, volume) pairs of some subjects, one per frame."""

    def __len__(self) -> int:
        return len(self.index)

    def batch(self, rows: np.ndarray, with_clean: bool = False
              ) -> tuple[torch.Tensor, ...]:
        """EEG [B, context, C, F] (spectra, or raw windows [B, context, C, S]) and target
        volumes [B, D, H, W] for the given pair indices."""
        eeg, vol, clean = [], [], []
        for i, t in self.index[rows]:
            s = self.subjects[i]
            eeg.append(self.eeg(i, t - self.context, t))
            vol.append(s.bold[t])
            if with_clean:
                clean.append(s.clean[t])
        x = torch.from_numpy(self.norm(np.stack(eeg)).astype(np.float32))
        out = (x, torch.from_numpy(np.stack(vol).astype(np.float32)))
        if with_clean:
            out += (torch.from_numpy(np.stack(clean).astype(np.float32)),)
        return out

    def batches(self, batch_size: int, generator: torch.Generator | None = None,
                with_clean: bool = False, release_every: int = 8):
        """Yield batches of pairs (see `row_batches`)."""
        for rows in self.row_batches(len(self), batch_size, generator, release_every):
            yield self.batch(rows, with_clean)
