"""eeg2fmri: EEG-to-fMRI synthesis experiments, from raw recordings to tables and figures."""

__version__ = "0.1.0"
