"""EEGLAB .set (samples inside it or in a separate .fdt), read by MNE; an .fdt whose size
disagrees with the .set is refused (MNE reads the header alone and fails only when the samples
are read, asking for a bug report)."""

from __future__ import annotations

from pathlib import Path

import mne

from eeg2fmri.data.formats import ReadOptions, base
from eeg2fmri.errors import InputError


class Reader(base.Reader):
    def companions(self, path: Path) -> list[Path]:
        fdt = path.with_suffix(".fdt")
        return [fdt] if fdt.is_file() else []

    def _open(self, path: Path, options: ReadOptions) -> mne.io.BaseRaw:
        raw = base.mne_call(mne.io.read_raw_eeglab, path, self.name)
        data = Path(raw.filenames[0])
        if data.suffix.lower() != ".fdt":
            return raw  # samples inside the .set
        if not data.is_file():
            raise InputError(data, f"does not exist, but {path.name} keeps its samples there")
        n_channels, n_samples = raw.info["nchan"], raw.n_times
        expected = n_channels * n_samples * 4
        size = data.stat().st_size
        if size != expected:
            what = "truncated" if size < expected else "longer than its header"
            raise InputError(data, f"is {size:,} bytes but {path.name} declares {n_channels} "
                                   f"channels x {n_samples} samples x 4 bytes = {expected:,}: the "
                                   f"file is {what}")
        return raw
