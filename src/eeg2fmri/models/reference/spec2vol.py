"""hdy6438/Spec2VolCAMU-Net: its Spectrogram2fMRI weights converted to our Spec2Vol.

Spec2VolCAMU-Net: hdy6438/Spec2VolCAMU-Net (read at commit 7b27545, 2025-05-15). The repository
states no licence (no LICENSE file, none in README.md or pyproject.toml), so its code is read and
run outside this repository only; its `vmunet/vmamba.py` is VM-UNet's / VMamba's. Its
train_Spectrogram2fMRI.py saves `model.state_dict()` of `Spectrogram2fMRI(in_dim=20,
hidden_dim=256, out_dim=--fmri_channel)`: keys `encoder.*` (`initial_conv.0`, `block<i>.
{multi_scale.branch<j>.0, multi_scale.fusion.0, ln1, attn.attn, ln2, downsample}`) and
`decoder.model.vmunet.*` (a VSSM: `patch_embed`, `layers.<s>.blocks.<b>`, `layers.<s>.downsample`,
`layers_up.<s>.upsample`, `layers_up.<s>.blocks.<b>`, `final_up`, `final_conv`). Our layers are
the reference's (`models.spec2vol`, `models.vmunet`), so the conversion only renames keys.

What the reference feeds the model (utils.py, train_Spectrogram2fMRI.py, inference.ipynb; the
same preprocessing as kgr20/E2fNet, whose fork it is): per window |FFT| bins 1..249, a z-score
across channels per (window, frequency), then one min-max over the whole dataset with the run's
`min_eeg` / `max_eeg` (commandline_args.txt; inference.ipynb gives the same per-dataset values as
E2fNet's, `reference.e2fnet.EEG_RANGES`); input [N, 20, electrodes, 249] (at most 64 electrodes:
the encoder's map is zero-padded to 64 x 64), output [N, D, 64, 64] (D = --fmri_channel: 30 for
NODDI and CN-EPFL, 32 for Oddball), trained against per-volume min-max scaled volumes, with no
output activation (unbounded; a sigmoid only when D = 1).
"""

from __future__ import annotations

import re

import torch
from torch import nn

from eeg2fmri.models.reference.state import unwrap
from eeg2fmri.models.spec2vol import Spec2Vol

_VSSM = "decoder.model.vmunet."
# the reference's SS2D parameter names -> ours
_SS2D = {"in_proj.weight": "in_proj.weight", "conv2d.weight": "conv.weight",
         "conv2d.bias": "conv.bias", "x_proj_weight": "x_proj_weight",
         "dt_projs_weight": "dt_proj_weight", "dt_projs_bias": "dt_bias", "A_logs": "A_log",
         "Ds": "D", "out_norm.weight": "out_norm.weight", "out_norm.bias": "out_norm.bias",
         "out_proj.weight": "out_proj.weight"}
_MULTI_SCALE = {"branch1.0": "branches.0", "branch2.0": "branches.1", "branch3.0": "branches.2",
                "fusion.0": "fuse"}
_BLOCK = {"ln1": "norm1.norm", "ln2": "norm2.norm", "downsample": "down"}
_ATTENTION = ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")

# the settings of the reference's training script (Spectrogram2fMRI and VMUNet defaults)
REFERENCE_SETTINGS: dict[str, object] = {
    "context": 20, "embed": 256, "heads": 8, "n_blocks": 2, "branch": 32, "axis": "frequency",
    "dims": [96, 192, 384, 768], "depths": [2, 2, 9, 2], "dec_depths": [2, 9, 2, 2]}


def _n_stages(state: dict[str, torch.Tensor], part: str) -> int:
    found = [int(m[1]) for k in state if (m := re.match(rf"{re.escape(_VSSM)}{part}\.(\d+)\.", k))]
    return max(found) + 1 if found else 0


def _depth(state: dict[str, torch.Tensor], part: str, stage: int) -> int:
    blocks = {m[1] for k in state
              if (m := re.match(rf"{re.escape(_VSSM)}{part}\.{stage}\.blocks\.(\d+)\.", k))}
    return len(blocks)


def spec2vol_settings(state: dict[str, torch.Tensor]) -> dict[str, object]:
    """Our Spec2Vol settings that a reference Spectrogram2fMRI state_dict fixes: embed (256 in
    the reference's script), n_blocks (2), dims, depths and dec_depths of the VM-UNet, context
    (EEG windows, 20) and depth (fMRI slices, `--fmri_channel`); and those it does not record,
    at the reference's values: heads 8, axis frequency, drop_path 0.2, output linear (sigmoid
    for one slice, as the reference's VMUNet)."""
    state = unwrap(state)
    try:
        first = state["encoder.initial_conv.0.weight"]
        embed_dim = int(state[_VSSM + "patch_embed.proj.weight"].shape[0])
        depth = int(state[_VSSM + "final_conv.weight"].shape[0])
    except KeyError as e:
        raise ValueError(f"not a state_dict of the reference's Spectrogram2fMRI: no {e}") from None
    n_blocks = len({m[1] for k in state if (m := re.match(r"encoder\.block(\d+)\.", k))})
    stages = _n_stages(state, "layers")
    if not n_blocks or not stages or _n_stages(state, "layers_up") != stages:
        raise ValueError("not a state_dict of the reference's Spectrogram2fMRI: no encoder "
                         "blocks or no matching VM-UNet stages")
    return {"embed": int(first.shape[0]), "heads": 8, "n_blocks": n_blocks, "axis": "frequency",
            "dims": [embed_dim * 2**s for s in range(stages)],
            "depths": [_depth(state, "layers", s) for s in range(stages)],
            "dec_depths": [_depth(state, "layers_up", s) for s in range(stages)],
            "drop_path": 0.2, "output": "sigmoid" if depth == 1 else "linear",
            "context": int(first.shape[1]), "depth": depth}


def _place(key: str, stages: int) -> str | None:
    """Our name of one reference key, or None."""
    if m := re.fullmatch(r"encoder\.initial_conv\.0\.(weight|bias)", key):
        return f"proj.0.{m[1]}"
    if m := re.fullmatch(r"encoder\.block(\d+)\.(.+)", key):
        i, rest = int(m[1]) - 1, m[2]
        if i < 0:
            return None
        if (n := re.fullmatch(r"multi_scale\.(branch\d\.0|fusion\.0)\.(weight|bias)", rest)) \
                and n[1] in _MULTI_SCALE:
            return f"blocks.{i}.{_MULTI_SCALE[n[1]]}.{n[2]}"
        if (n := re.fullmatch(r"(ln1|ln2|downsample)\.(weight|bias)", rest)):
            return f"blocks.{i}.{_BLOCK[n[1]]}.{n[2]}"
        if rest.startswith("attn.attn.") and rest.removeprefix("attn.attn.") in _ATTENTION:
            return f"blocks.{i}.attn.{rest.removeprefix('attn.attn.')}"
        return None
    if not key.startswith(_VSSM):
        return None
    rest = key.removeprefix(_VSSM)
    fixed = {"patch_embed.proj.weight": "patch_embed.weight",
             "patch_embed.proj.bias": "patch_embed.bias",
             "patch_embed.norm.weight": "embed_norm.weight",
             "patch_embed.norm.bias": "embed_norm.bias",
             "final_up.expand.weight": f"expand.{stages - 1}.expand.weight",
             "final_up.norm.weight": f"expand.{stages - 1}.norm.weight",
             "final_up.norm.bias": f"expand.{stages - 1}.norm.bias",
             "final_conv.weight": "head.weight", "final_conv.bias": "head.bias"}
    if rest in fixed:
        return "decoder." + fixed[rest]
    if m := re.fullmatch(r"(layers|layers_up)\.(\d+)\.blocks\.(\d+)\.(.+)", rest):
        ours = "enc" if m[1] == "layers" else "dec"
        if m[4] in ("ln_1.weight", "ln_1.bias"):
            return f"decoder.{ours}.{m[2]}.{m[3]}.norm.{m[4].removeprefix('ln_1.')}"
        part = m[4].removeprefix("self_attention.")
        if m[4].startswith("self_attention.") and part in _SS2D:
            return f"decoder.{ours}.{m[2]}.{m[3]}.ss2d.{_SS2D[part]}"
        return None
    if m := re.fullmatch(r"layers\.(\d+)\.downsample\.(norm\.weight|norm\.bias|reduction\.weight)",
                         rest):
        return f"decoder.merge.{m[1]}.{m[2]}"
    if m := re.fullmatch(r"layers_up\.(\d+)\.upsample\.(expand\.weight|norm\.weight|norm\.bias)",
                         rest):
        return f"decoder.expand.{int(m[1]) - 1}.{m[2]}" if int(m[1]) > 0 else None
    return None


def spec2vol_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference's `Spectrogram2fMRI` state_dict as our `Spec2Vol`'s (load it into a Spec2Vol
    built with `spec2vol_settings`). Refuses a state_dict with a key it does not place (another
    model's weights), naming the keys."""
    state = unwrap(state)
    stages = _n_stages(state, "layers_up")
    out: dict[str, torch.Tensor] = {}
    unplaced = []
    for key, value in state.items():
        ours = _place(key, stages)
        if ours is None:
            unplaced.append(key)
        else:
            out[ours] = value
    if unplaced:
        raise ValueError(f"not a state_dict of the reference's Spectrogram2fMRI: keys "
                         f"{', '.join(unplaced[:5])}{' ...' if len(unplaced) > 5 else ''}")
    return out


def _settings(model: Spec2Vol) -> dict[str, object]:
    block, unet = model.blocks[0], model.decoder
    return {"context": model.proj[0].in_channels, "embed": model.proj[0].out_channels,
            "heads": block.attn.num_heads, "n_blocks": len(model.blocks),
            "branch": block.branches[0].out_channels, "axis": block.axis,
            "dims": [unet.patch_embed.out_channels * 2**s for s in range(len(unet.enc))],
            "depths": [len(s) for s in unet.enc], "dec_depths": [len(s) for s in unet.dec]}


def parameter_note(model: nn.Module) -> str:
    """What `eeg2fmri params` appends to a Spec2Vol's count: " (the reference's)" at the
    reference's settings (any number of slices; its scripts: 30 or 32), else the settings in
    which its layers differ from the reference's; "" for any other model."""
    if not isinstance(model, Spec2Vol):
        return ""
    ours = _settings(model)
    differ = [k for k, v in REFERENCE_SETTINGS.items() if ours[k] != v]
    if not differ:
        return " (the reference's)"
    text = ", ".join(f"{k} {_show(ours[k])}" for k in differ)
    ref = ", ".join(f"{_show(REFERENCE_SETTINGS[k])}" for k in differ)
    return f" (the reference's layers with {text}; the reference: {ref})"


def _show(value: object) -> str:
    return "-".join(map(str, value)) if isinstance(value, list) else str(value)
