"""The one exception type users see: it names the file and the problem."""

from __future__ import annotations

import errno
import os
from pathlib import Path


class InputError(Exception):
    """Bad input data or configuration; the message names the file (when there is one)."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


def missing(path: Path, what: str) -> str:
    """Why `path` cannot be read, in words: a link loop, a broken link, a folder, nothing."""
    try:
        path.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"{what} is a symbolic link loop"
        if path.is_symlink():
            return f"{what} is a broken symbolic link (to {os.readlink(path)})"
        if e.errno in (errno.EACCES, errno.EPERM):
            return f"{what} cannot be read: {e.strerror}"
        return f"{what} does not exist"
    return f"{what} is a folder" if path.is_dir() else f"{what} is not a regular file"
