"""EEG file formats: a reader module each (`eeg2fmri.data.formats.<module>`), registered below
with one line: the format's name, the file name endings that mean it, and its module.

Every caller gets a format from here and nowhere else: the dataset entries (`eeg_format`),
preprocessing, inspect, synthesis and the fetch manifests. This module is light (no MNE), so the
workflow can read it when it starts; a reader module is imported when its format is first used.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eeg2fmri.data.formats.base import Reader

# name: (file name endings, reader module)
FORMATS: dict[str, tuple[tuple[str, ...], str]] = {
    "brainvision": ((".vhdr",), "brainvision"),
    "edf": ((".edf",), "edf"),
    "bdf": ((".bdf",), "edf"),
    "eeglab": ((".set",), "eeglab"),
    "fif": ((".fif", ".fif.gz"), "fif"),
    "mat": ((".mat",), "mat"),
    "egi": ((".mff",), "egi"),
}


@dataclass(frozen=True)
class ReadOptions:
    """What a dataset entry says about files that do not say it themselves (a .mat matrix)."""

    mat_variable: str = "data"
    eeg_rows: int | None = None
    fs: float | None = None
    fs_key: str = "fs"  # the config key of `fs`, for errors


def format_by_extension(path: str | Path) -> str | None:
    """The format a file name's ending says, if any."""
    name = Path(path).name.lower()
    return next((fmt for fmt, (ends, _) in FORMATS.items() if name.endswith(ends)), None)


def reader(fmt: str) -> Reader:
    """The reader of a registered format."""
    from eeg2fmri.errors import InputError

    if fmt not in FORMATS:
        raise InputError(None, f"unknown EEG format {fmt!r} (known: {', '.join(FORMATS)})")
    return import_module(f"eeg2fmri.data.formats.{FORMATS[fmt][1]}").Reader(fmt)


def extensions() -> list[str]:
    """Every registered file name ending."""
    return [e for ends, _ in FORMATS.values() for e in ends]
