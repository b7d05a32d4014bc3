"""The one exception type users see: it names the file and the problem."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input data or configuration; the message names the file (when there is one)."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
