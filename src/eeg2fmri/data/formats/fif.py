"""MNE's own FIF."""

from __future__ import annotations

from eeg2fmri.data.formats import base


class Reader(base.Reader):
    mne_reader = "read_raw_fif"
