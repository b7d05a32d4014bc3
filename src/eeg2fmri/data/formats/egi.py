"""EGI's MFF (a .mff folder: signal1.bin, info.xml, Events_*.xml), as written by Net Station
and the GES MR system inside the scanner; read by MNE (with mffpy). MNE turns each event code
into a stim channel; they become markers named by their code (e.g. "TREV" for the scanner's
volume trigger), and the recording's channels are its data channels."""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np

from eeg2fmri.data.formats import ReadOptions, base
from eeg2fmri.errors import InputError


class Reader(base.Reader):
    is_folder = True

    def companions(self, path: Path) -> list[Path]:
        return sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else []

    def check(self, path: Path) -> None:
        for needed in ("info.xml", "signal1.bin"):
            if not (path / needed).is_file():
                raise InputError(path, f"an MFF recording folder needs {needed}; it is missing")

    def _open(self, path: Path, options: ReadOptions) -> mne.io.BaseRaw:
        try:
            import mffpy  # noqa: F401  (MNE reads MFF through it)
        except ImportError:
            raise InputError(path, "reading EGI MFF needs mffpy: pip install mffpy") from None
        raw = base.mne_call(mne.io.read_raw_egi, path, self.name)
        stims = [raw.ch_names[i] for i in mne.pick_types(raw.info, stim=True)]
        onsets, names = [], []
        for name in stims:
            events = mne.find_events(raw, stim_channel=name, shortest_event=1, verbose="error")
            onsets += list(events[:, 0] - raw.first_samp)
            names += [name] * len(events)
        if onsets:
            order = np.argsort(onsets, kind="stable")
            raw.set_annotations(raw.annotations + mne.Annotations(
                np.asarray(onsets)[order] / raw.info["sfreq"], 0.0, np.asarray(names)[order],
                orig_time=raw.annotations.orig_time))
        return raw.pick([c for c in raw.ch_names if c not in stims])
