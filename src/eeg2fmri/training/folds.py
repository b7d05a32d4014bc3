"""Folds: leave-one-subject-out (`fold-sub-07`) or a dataset's fixed split (`split-paper`), each
with a validation subject drawn from the training subjects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Fold:
    name: str
    tests: tuple[str, ...]
    val: str
    train: tuple[str, ...]

    def subjects_for_training(self) -> tuple[str, ...]:
        """Everything the train job may read: training and validation subjects, never a test."""
        return (*self.train, self.val)


def fold_name(test_subject: str) -> str:
    return f"fold-{test_subject}"


def loso_fold(subjects: Sequence[str], test: str) -> Fold:
    """The fold testing on `test`; validation is the next subject in order (cyclically)."""
    subjects = list(subjects)
    if test not in subjects:
        raise ValueError(f"test subject {test!r} is not one of {subjects}")
    if len(subjects) < 3:
        raise ValueError(f"leave-one-subject-out needs at least 3 subjects, got {len(subjects)}")
    i = subjects.index(test)
    val = subjects[(i + 1) % len(subjects)]
    train = tuple(s for s in subjects if s not in (test, val))
    return Fold(fold_name(test), (test,), val, train)


def loso_folds(subjects: Sequence[str]) -> list[Fold]:
    return [loso_fold(subjects, s) for s in subjects]


def split_fold(subjects: Sequence[str], name: str, tests: Sequence[str]) -> Fold:
    """A fixed split testing on `tests`; validation is the last remaining subject."""
    unknown = sorted(set(tests) - set(subjects))
    if unknown:
        raise ValueError(f"split {name!r}: test subjects {unknown} are not subjects of the "
                         "dataset")
    rest = [s for s in subjects if s not in tests]
    if len(rest) < 2:
        raise ValueError(f"split {name!r} leaves {len(rest)} subject(s) for training and "
                         "validation; need at least 2")
    return Fold(f"split-{name}", tuple(tests), rest[-1], tuple(rest[:-1]))


def fold_by_name(subjects: Sequence[str], name: str,
                 splits: Mapping[str, Sequence[str]] | None = None) -> Fold:
    """`fold-<subject>` (leave that subject out) or `split-<name>` (a fixed split)."""
    if name.startswith("split-"):
        split = name.removeprefix("split-")
        if not splits or split not in splits:
            raise ValueError(f"unknown fold {name!r}; this dataset's splits: "
                             f"{', '.join(sorted(splits or {})) or 'none'}")
        return split_fold(subjects, split, splits[split])
    if not name.startswith("fold-"):
        raise ValueError(f"fold name {name!r} must start with 'fold-' or 'split-'")
    return loso_fold(subjects, name.removeprefix("fold-"))
