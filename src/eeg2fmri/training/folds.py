"""Leave-one-subject-out folds with a validation subject drawn from the training subjects."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fold:
    name: str
    test: str
    val: str
    train: tuple[str, ...]

    def subjects_for_training(self) -> tuple[str, ...]:
        """Everything the train job may read: training and validation subjects, never the test."""
        return (*self.train, self.val)


def fold_name(test_subject: str) -> str:
    return f"fold-{test_subject}"


def loso_fold(subjects: list[str] | tuple[str, ...], test: str) -> Fold:
    """The fold testing on `test`; validation is the next subject in order (cyclically)."""
    subjects = list(subjects)
    if test not in subjects:
        raise ValueError(f"test subject {test!r} is not one of {subjects}")
    if len(subjects) < 3:
        raise ValueError(f"leave-one-subject-out needs at least 3 subjects, got {len(subjects)}")
    i = subjects.index(test)
    val = subjects[(i + 1) % len(subjects)]
    train = tuple(s for s in subjects if s not in (test, val))
    return Fold(fold_name(test), test, val, train)


def loso_folds(subjects: list[str] | tuple[str, ...]) -> list[Fold]:
    return [loso_fold(subjects, s) for s in subjects]
