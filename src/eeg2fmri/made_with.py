"""What a stored thing was made with, compared with what its reader expects.

A simulated tree, a features store, a model record and a metrics file carry the settings that made
them. Snakemake's rerun triggers live in one working directory and the data do not (two clones
sharing a `data_root`, a deleted `.snakemake/`), so whatever reads a stored thing compares its
settings with the ones it expects and refuses in one line naming the file, the first settings
that differ (both values) and the remedy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eeg2fmri.errors import InputError
from eeg2fmri.io import _json_default, write_text

MISSING = "<not set>"


def plain_json(obj: Any) -> Any:
    """`obj` as JSON would give it back (tuples as lists, numpy numbers as Python ones)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=_json_default))


def differences(made: Any, expected: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(key, made, expected) of every leaf setting that differs, keys dotted (`features.n_bins`)."""
    made, expected = plain_json(made), plain_json(expected)
    if isinstance(made, dict) and isinstance(expected, dict):
        out = []
        for key in sorted(set(made) | set(expected)):
            sub = f"{prefix}.{key}" if prefix else str(key)
            out += differences(made.get(key, MISSING), expected.get(key, MISSING), sub)
        return out
    return [] if made == expected else [(prefix or "(settings)", made, expected)]


def describe(diffs: list[tuple[str, Any, Any]], made: str = "made with",
             expected: str = "this run's config") -> str:
    """The first differences in words: `features.n_bins 60 (made with) vs 30 (config)`."""
    shown = [f"{key} {_short(a)} ({made}) vs {_short(b)} ({expected})" for key, a, b in diffs[:3]]
    more = f" and {len(diffs) - 3} more" if len(diffs) > 3 else ""
    return "; ".join(shown) + more


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def refuse_if_differs(path: str | Path, what: str, made: Any, expected: Any, remedy: str,
                      prefix: str = "", other: str = "this run's config") -> None:
    """One InputError naming `path`, the settings that differ and `remedy`, if any differ."""
    diffs = differences(made, expected, prefix)
    if diffs:
        raise InputError(path, f"{what} was made with other settings than {other}: "
                               f"{describe(diffs, expected=other)}. {remedy}")


def stamp(path: str | Path, settings: Any) -> str:
    """A workflow job's settings as a file it reads: rewritten (atomically) only when they
    differ from the ones recorded, so that its newer time reruns the job in any working
    directory (Snakemake's own params trigger lives in one `.snakemake/`). Returns `path`."""
    text = json.dumps(plain_json(settings), indent=1, sort_keys=True) + "\n"
    path = Path(path)
    try:
        unchanged = path.read_text() == text
    except (OSError, UnicodeDecodeError):
        unchanged = False
    if not unchanged:
        write_text(path, text)
    return str(path)
