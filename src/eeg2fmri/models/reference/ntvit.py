"""rom42pla/ntvit: its NT-ViT weights converted to ours.

NT-ViT: rom42pla/ntvit (Lanzino et al. 2024; read at commit ec35016, 2024-03-05). The repository
carries no licence file: its code is the authors' (Romeo Lanzino), all rights reserved; nothing
of it is copied here. Its `train.py` (`--save_weights`) saves PyTorch Lightning checkpoints
(`ModelCheckpoint`, `.ckpt`): a dict whose `state_dict` holds the LightningModule's keys with no
prefix (`eegs_encoder.*`, `fmris_decoder.*`, with Domain Matching `fmris_encoder.*`), the
torchaudio MelSpectrogram's buffers (`eegs_mel_spectrogrammer.*`) and, where thop's profiling at
construction failed, thop's counters (`*.total_ops`, `*.total_params`); `hyper_parameters` holds
the constructor's arguments. Both the checkpoint and its bare `state_dict` convert. Our layers
are the reference's (`models.ntvit`), so the conversion renames keys; the mel buffers, which ours
computes from the sampling rate, are checked against ours where `fs` is given.

What the reference feeds the model (`preprocess_datasets.py`, `dataset.py`): per volume one
window of ceil(2.16 s * 512 Hz) = 1106 samples (Oddball: 2 s, 1024) of the EEG band-passed
0.5-150 Hz (Oddball 0.5-50), average-referenced, resampled to 512 Hz, the electrodes in the
recording's order without the ECG (63 on NODDI), each channel of each window min-max scaled to
[-1, 1]; volumes min-max scaled to [0, 1] each. In our harness: context 1, fs 512, that window.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from torch import nn

from eeg2fmri.models.ntvit import NTViT, mel_filterbank, stft_sizes
from eeg2fmri.models.reference.state import unwrap

# the reference's train.py defaults for what its weights do not show
TRAIN_DEFAULTS: dict[str, Any] = {"eeg_patches_size": 8, "fmri_patches_size": 6,
                                  "activation": "selu", "spectrogram_scale": 2,
                                  "fmris_downsampling_factor": 1, "normalized_fmris": True}
HEADS = 8  # fixed in the reference's build_encoder / build_decoder

_PARTS = {"eegs_encoder": "eeg_encoder", "fmris_encoder": "fmri_encoder",
          "fmris_decoder": "decoder"}
_MLP = {"in_reshaper.2": "embed.0", "in_reshaper.3": "embed.1", "in_reshaper.5": "embed.3",
        "out_reshaper.0": "head.0", "out_reshaper.1": "head.1", "out_reshaper.3": "head.3",
        "out_reshaper.6": "conv"}
_SINGLE = {"pos_embeddings": "pos", "learned_tokens": "cls"}
_MEL = "eegs_mel_spectrogrammer."
_THOP = ("total_ops", "total_params")
_DISCRIMINATOR = ("fmris_discriminator_encoder.", "fmris_discriminator.")


def _checkpoint(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict without thop's counters, hyper_parameters) of a Lightning checkpoint or a
    bare state_dict."""
    hp: dict[str, Any] = {}
    if isinstance(state.get("state_dict"), dict):
        state, hp = state["state_dict"], dict(state.get("hyper_parameters") or {})
    return {k: v for k, v in unwrap(state).items() if not k.endswith(_THOP)}, hp


def ntvit_state(state: dict[str, Any], fs: float | None = None) -> dict[str, torch.Tensor]:
    """The reference NTViT's state_dict (or its Lightning checkpoint) as our `NTViT`'s. Drops
    the mel buffers (checked against ours at `fs` Hz when given), thop's counters and a
    discriminator's weights (training only). Refuses a state_dict with a key it does not place
    (another model's weights), naming the keys."""
    state, _ = _checkpoint(state)
    out: dict[str, torch.Tensor] = {}
    unplaced = []
    for key, value in state.items():
        if key.startswith(_DISCRIMINATOR):
            continue
        if key.startswith(_MEL):
            if fs is not None:
                _check_mel(key.removeprefix(_MEL), value, fs)
            continue
        part, _, rest = key.partition(".")
        m = re.fullmatch(r"(in_reshaper\.\d+|out_reshaper\.\d+|pos_embeddings|learned_tokens"
                         r"|(?:encoder|decoder)\.layers)\.(.+)", rest)
        ours = _PARTS.get(part)
        if ours is None or m is None:
            unplaced.append(key)
        elif m[1] in _MLP:
            out[f"{ours}.{_MLP[m[1]]}.{m[2]}"] = value
        elif m[1] in _SINGLE:
            out[f"{ours}.{_SINGLE[m[1]]}.{m[2]}"] = value
        elif m[1].endswith(".layers"):
            out[f"{ours}.transformer.layers.{m[2]}"] = value
        else:
            unplaced.append(key)
    if unplaced or not out:
        raise ValueError("not a state_dict of the reference's NTViT: "
                         + (f"keys {', '.join(unplaced[:5])}{' ...' if len(unplaced) > 5 else ''}"
                            if unplaced else "no key of it"))
    return out


def _check_mel(name: str, value: torch.Tensor, fs: float) -> None:
    n_fft, window, _ = stft_sizes(fs)
    if name == "spectrogram.window":
        ours = torch.hann_window(window)
    elif name == "mel_scale.fb":
        ours = mel_filterbank(n_fft // 2 + 1, value.shape[1], fs).T
    else:
        raise ValueError(f"not a state_dict of the reference's NTViT: key {_MEL}{name}")
    if ours.shape != value.shape or not torch.allclose(ours, value.float(), atol=1e-6):
        raise ValueError(f"the reference's {_MEL}{name} is not ours at {fs} Hz: the weights "
                         "were trained at another sampling rate")


def _count(state: dict[str, torch.Tensor], prefix: str) -> int:
    found = {int(k[len(prefix):].split(".")[0]) for k in state if k.startswith(prefix)}
    return max(found) + 1 if found else 0


def ntvit_settings(state: dict[str, Any], n_channels: int | None = None,
                   depth: int | None = None) -> dict[str, Any]:
    """Our `NTViT` settings that a reference checkpoint fixes. The widths, layer counts, mel
    bands and position table come from the shapes; the patch sizes and activation from the
    Lightning checkpoint's hyper_parameters, else from the shapes given the EEG channels and the
    volume depth (`n_channels`, `depth`), else the reference train.py's defaults (8, 6, selu),
    checked against the shapes. Refuses options our model does not have."""
    sd, hp = _checkpoint(state)
    try:
        embed = sd["eegs_encoder.in_reshaper.2.weight"]
        head = sd["fmris_decoder.out_reshaper.3.weight"]
        settings: dict[str, Any] = {
            "dim": int(sd["eegs_encoder.pos_embeddings.weight"].shape[1]),
            "depth": _count(sd, "eegs_encoder.encoder.layers."),
            "dec_depth": _count(sd, "fmris_decoder.decoder.layers."),
            "heads": HEADS,
            "n_mels": int(sd[_MEL + "mel_scale.fb"].shape[1]) if _MEL + "mel_scale.fb" in sd
            else int(hp.get("n_mels", 16)),
            "mlp_dim": int(embed.shape[0]),
            "ff_dim": int(sd["eegs_encoder.encoder.layers.0.linear1.weight"].shape[0]),
            "n_positions": int(sd["eegs_encoder.pos_embeddings.weight"].shape[0]),
            "domain_matching": any(k.startswith("fmris_encoder.") for k in sd),
        }
    except KeyError as e:
        raise ValueError(f"not a state_dict of the reference's NTViT: no {e}") from None
    options = {**TRAIN_DEFAULTS, **{k: hp[k] for k in TRAIN_DEFAULTS if k in hp}}
    for key in ("spectrogram_scale", "fmris_downsampling_factor", "normalized_fmris"):
        if options[key] != TRAIN_DEFAULTS[key]:
            raise ValueError(f"the reference checkpoint has {key}={options[key]!r}; our NT-ViT "
                             f"has only {TRAIN_DEFAULTS[key]!r}")
    n_channels = hp.get("eegs_channels", n_channels)
    depth = (hp["fmris_shape"][0] if "fmris_shape" in hp else depth)
    for name, size, known, hp_key in (("spec_patch", embed.shape[1], n_channels,
                                       "eeg_patches_size"),
                                      ("patch", head.shape[0], depth, "fmri_patches_size")):
        p = int(hp[hp_key]) if hp_key in hp else (
            math.isqrt(size // known) if known else options[hp_key])
        if known and known * p * p != size or size % (p * p):
            raise ValueError(f"the reference's {hp_key} is not {p}: its layer has {size} inputs"
                             f"{f' for {known}' if known else ''}")
        settings[name] = [p, p]
    settings["activation"] = str(options["activation"])
    return settings


def reference_input(state: dict[str, Any]) -> dict[str, Any]:
    """What a reference Lightning checkpoint says of its input (empty for a bare state_dict):
    fs (Hz), samples per window, EEG channels, volume shape."""
    _, hp = _checkpoint(state)
    out: dict[str, Any] = {}
    if "eegs_sampling_rate" in hp:
        out["fs"] = float(hp["eegs_sampling_rate"])
        if "eegs_seconds" in hp:
            out["samples"] = math.ceil(hp["eegs_sampling_rate"] * hp["eegs_seconds"])
    if "eegs_channels" in hp:
        out["channels"] = int(hp["eegs_channels"])
    if "fmris_shape" in hp:
        out["out_shape"] = tuple(int(n) for n in hp["fmris_shape"])
    return out


def ntvit_parameters(dim: int = 256, layers: int = 3, n_channels: int = 63,
                         depth: int = 30, eeg_patch: int = 8, fmri_patch: int = 6,
                         domain_matching: bool = True, hidden: int = 2048,
                         n_positions: int = 2048) -> int:
    """The reference NTViT's parameter count from its layer sizes (27,683,156 at its defaults
    with Domain Matching, 20,470,868 without)."""
    def mlp(n_in: int, n_out: int) -> int:
        return n_in * hidden + hidden + 2 * hidden + hidden * n_out + n_out

    layer = 4 * dim * dim + 4 * dim + 2 * dim * hidden + hidden + dim + 4 * dim
    enc = layers * layer + n_positions * dim + dim
    total = (mlp(n_channels * eeg_patch ** 2, dim) + enc  # EEG encoder
             + layers * layer + n_positions * dim + mlp(dim, depth * fmri_patch ** 2) + 28)
    if domain_matching:
        total += mlp(depth * fmri_patch ** 2, dim) + enc
    return total


def parameter_note(model: nn.Module) -> str:
    """What `eeg2fmri params` appends to a model's count: how it relates to the reference's
    (empty for a model other than NT-ViT)."""
    if not isinstance(model, NTViT):
        return ""
    enc, dec = model.eeg_encoder, model.decoder
    layer = enc.transformer.layers[0]
    at = dict(dim=enc.pos.weight.shape[1], layers=len(enc.transformer.layers),
              n_channels=enc.embed[0].in_features // math.prod(enc.patch),
              depth=model.out_shape[0], hidden=enc.embed[0].out_features,
              n_positions=enc.pos.weight.shape[0])
    same = (len(dec.transformer.layers) == at["layers"] and enc.patch[0] == enc.patch[1]
            and dec.patch[0] == dec.patch[1]
            and layer.linear1.out_features == at["hidden"] == dec.head[0].out_features
            and layer.self_attn.num_heads == HEADS)
    if not same:
        return ("(the reference's layers, generalised: its encoder and decoder share one "
                "layer count, square patches, 8 heads and one 2048 width)")
    ours = sum(p.numel() for p in model.parameters() if p.requires_grad)
    ref = ntvit_parameters(**at, eeg_patch=enc.patch[0], fmri_patch=dec.patch[0],
                               domain_matching=model.domain_matching)
    default = at == dict(dim=256, layers=3, n_channels=63, depth=30, hidden=2048,
                         n_positions=2048) and enc.patch[0] == 8 and dec.patch[0] == 6
    which = "the reference's at its defaults" if default else "the reference's layers"
    return f"({which}: {ref:,}{'' if ref == ours else ' in the reference'})"
