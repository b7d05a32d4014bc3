"""Weights from the authors' reference code, converted to our models (`eeg2fmri import`), one
module per reference repository: `e2fnet` (kgr20/E2fNet: E2fNet and E2fGAN), `spec2vol`
(hdy6438/Spec2VolCAMU-Net), `ntvit` (rom42pla/ntvit)."""

from __future__ import annotations

from torch import nn

from eeg2fmri.models.reference import ntvit, spec2vol
from eeg2fmri.models.reference.e2fnet import (
    EEG_RANGES,
    discriminator_state,
    discriminator_width,
    e2fnet_settings,
    e2fnet_state,
    folded_time_embedding,
    reference_parameters,
    time_embedding_at_zero,
)
from eeg2fmri.models.reference.e2fnet import parameter_note as _e2fnet_note
from eeg2fmri.models.reference.state import unwrap

__all__ = ["EEG_RANGES", "discriminator_state", "discriminator_width", "e2fnet_settings",
           "e2fnet_state", "folded_time_embedding", "parameter_note", "reference_parameters",
           "time_embedding_at_zero",
           "ntvit", "spec2vol", "unwrap"]


def parameter_note(model: nn.Module) -> str:
    """What `eeg2fmri params` appends to a model's count: how it relates to the reference's
    (empty for a model without a reference here)."""
    for note in (_e2fnet_note, spec2vol.parameter_note, ntvit.parameter_note):
        text = note(model)
        if text:
            return text if text.startswith((" ", ":")) else " " + text
    return ""
