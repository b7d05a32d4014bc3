"""Preprocessing: EEG window spectra, fMRI volume scaling, the features store."""

# The files every subject's features store holds (read by the workflow rules at parse time, so
# this lives here, free of heavy imports).
STORE_FILES = ("eeg.npy", "raw.npy", "bold.npy", "mask.npy", "meta.json")
