"""Preprocessing: pairing plans, EEG window spectra, fMRI volume scaling, writing the features
store."""
