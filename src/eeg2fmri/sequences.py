"""Sequences of fMRI frames from the features store, for sequence models (EEG sequence -> frame
sequence, with some frames known).

A sequence is `length` consecutive volumes of one run (never across runs) with the EEG windows
from `context` windows before its first volume to the window before its last, so every frame has
the same EEG history as in the single-volume pairs. Which frames are known depends on the task:

- `synthesis`: none (EEG only; comparable to the single-volume models);
- `imputation`: a random `known_fraction` of the frames;
- `super_resolution`: every `factor`-th frame (a `factor` times slower acquisition).

Known frames are fixed per sequence by (`mask_seed`, sequence): the same for every model and
every run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch

from eeg2fmri.models.base import SequenceBatch
from eeg2fmri.pairs import EEGNorm, Frames
from eeg2fmri.store import SubjectFeatures

TASKS = ("synthesis", "imputation", "super_resolution")


@dataclass(frozen=True)
class SequenceTasks:
    """Sequence sampling and task settings (model_settings keys of a sequence model)."""

    tasks: tuple[str, ...] = TASKS  # evaluated (synthesis always is)
    known_fraction: float = 0.5  # imputation
    factor: int = 4  # super-resolution: every factor-th frame known
    seq_len: int = 32  # training crops (validation and evaluation use whole runs)
    seq_stride: int = 4  # between training crops
    mask_seed: int = 0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown:
            raise ValueError(f"tasks must be a list of {TASKS}, not {list(self.tasks)}")
        if not 0 < self.known_fraction < 1:
            raise ValueError(f"known_fraction must be in (0, 1), not {self.known_fraction}")
        if self.factor < 2:
            raise ValueError(f"factor must be at least 2, not {self.factor}")

    @property
    def evaluated(self) -> tuple[str, ...]:
        return ("synthesis", *self.with_known)

    @property
    def with_known(self) -> tuple[str, ...]:
        """The tasks with known frames."""
        return tuple(t for t in self.tasks if t != "synthesis")

    @classmethod
    def split(cls, params: dict[str, Any]) -> tuple[SequenceTasks, dict[str, Any]]:
        """(task settings, the remaining model parameters) from a model's settings."""
        names = {f.name for f in fields(cls)}
        mine = {k: v for k, v in params.items() if k in names}
        if "tasks" in mine:
            mine["tasks"] = tuple(mine["tasks"])
        return cls(**mine), {k: v for k, v in params.items() if k not in names}

    def state(self) -> dict[str, Any]:
        return {**asdict(self), "tasks": list(self.tasks)}


def known_frames(task: str, n: int, rng: np.random.Generator, settings: SequenceTasks
                 ) -> np.ndarray:
    """The known-frame mask [n] of one sequence for `task`."""
    known = np.zeros(n, dtype=bool)
    if task == "imputation":
        k = min(n - 1, max(1, round(settings.known_fraction * n))) if n > 1 else 0
        known[rng.choice(n, size=k, replace=False)] = True
    elif task == "super_resolution":
        known[::settings.factor] = True
    elif task != "synthesis":
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    return known


class SequenceDataset(Frames):
    """Frame sequences of some subjects: training crops of `settings.seq_len` volumes every
    `seq_stride` volumes, or (`crops=False`) each run from its first volume with a full context to
    its end as one sequence, concatenated in the order of `index`."""

    def __init__(self, subjects: list[SubjectFeatures], context: int, norm: EEGNorm,
                 settings: SequenceTasks, *, crops: bool, shuffle_seed: int | None = None):
        super().__init__(subjects, context, norm, shuffle_seed)
        self.settings, self.crops = settings, crops
        seqs = []  # (subject, first volume, length)
        for i, s in enumerate(subjects):
            for a, b in s.segments:
                first = a + context
                if crops:
                    length = settings.seq_len
                    seqs += [(i, t, length) for t in range(first, b - length + 1,
                                                            settings.seq_stride)]
                elif b > first:
                    seqs.append((i, first, b - first))
        if not seqs:
            raise ValueError(f"no run of {', '.join(s.subject for s in subjects)} has "
                             f"context={context} + {settings.seq_len if crops else 1} volumes "
                             "for one sequence")
        self.sequences = np.array(seqs, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.sequences)

    def mask(self, k: int, task: str) -> np.ndarray:
        """Sequence k's known frames for `task`, fixed by (mask_seed, k)."""
        rng = np.random.default_rng([self.settings.mask_seed, k])
        return known_frames(task, int(self.sequences[k, 2]), rng, self.settings)

    def batch(self, rows: np.ndarray, task: str) -> tuple[SequenceBatch, torch.Tensor]:
        """Sequences `rows` (all of one length) with the known frames of `task`."""
        eeg, frames, known = [], [], []
        for k in rows:
            i, t0, n = (int(v) for v in self.sequences[k])
            eeg.append(self.eeg(i, t0 - self.context, t0 + n - 1))
            frames.append(np.asarray(self.subjects[i].bold[t0:t0 + n], dtype=np.float32))
            known.append(self.mask(int(k), task))
        y = torch.from_numpy(np.stack(frames))
        m = torch.from_numpy(np.stack(known))
        x = torch.from_numpy(self.norm(np.stack(eeg)).astype(np.float32))
        seen = y * m.reshape(*m.shape, 1, 1, 1)
        return SequenceBatch(x, seen, m), y

    def batches(self, batch_size: int, generator: torch.Generator | None = None,
                task: str = "synthesis", release_every: int = 8
                ) -> Iterator[tuple[SequenceBatch, torch.Tensor]]:
        """Batches of sequences (see `row_batches`); whole runs (different lengths) come one
        per batch."""
        size = batch_size if self.crops else 1
        for rows in self.row_batches(len(self), size, generator, release_every):
            yield self.batch(rows, task)
