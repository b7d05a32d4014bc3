"""EDF and BDF, read by MNE after checking the file's size against its header."""

from __future__ import annotations

from pathlib import Path

import mne

from eeg2fmri.data.formats import ReadOptions, base
from eeg2fmri.errors import InputError


class Reader(base.Reader):
    def check(self, path: Path) -> None:
        check(path)

    def _open(self, path: Path, options: ReadOptions) -> mne.io.BaseRaw:
        read = mne.io.read_raw_bdf if self.name == "bdf" else mne.io.read_raw_edf
        return base.mne_call(read, path, self.name)


def check(path: Path) -> None:
    """An EDF/BDF file's size against its header (records x samples per record x bytes)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(256)
        try:
            header_bytes, n_records = int(head[184:192]), int(head[236:244])
            ns = int(head[252:256])
            if ns < 1 or header_bytes != 256 * (ns + 1) or size < header_bytes:
                raise ValueError(f"{ns} signals, {header_bytes}-byte header, {size}-byte file")
            f.seek(256 + ns * 216)
            per_record = sum(int(f.read(8)) for _ in range(ns))
        except ValueError as e:
            detail = f" ({e})" if "signals" in str(e) else ""
            raise InputError(path, f"not a valid EDF/BDF header{detail}: the file is truncated "
                                   "or not EDF") from None
    if n_records < 0:
        return  # unknown number of records (recording not closed): MNE counts them
    width = 3 if path.suffix.lower() == ".bdf" else 2
    expected = header_bytes + n_records * per_record * width
    if size < expected:
        raise InputError(path, f"is {size:,} bytes but its header ({n_records} records of "
                               f"{per_record} samples x {width} bytes) needs {expected:,}: the "
                               "file is truncated")
