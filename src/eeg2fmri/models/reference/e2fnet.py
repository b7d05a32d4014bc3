"""kgr20/E2fNet: its E2fNet and E2fGAN weights converted to ours.

E2fNet and E2fGAN: kgr20/E2fNet (MIT licence, Copyright (c) 2025 Kristofer Roos; read at commit
867704c). Its train_E2fNet.py and train_E2fGAN.py save `model.state_dict()` of `EEG2fMRINet`
(keys `eeg_encoder.*`, `unet_module.*` (a diffusers UNet2DModel), `fmri_decoder.*`); the GAN
script saves only the generator's. Its `Discriminator` state_dict (keys `model.<i>.*`), where a
user saved one, converts too. Our layers are the reference's (`models.e2fnet`,
`models.e2fgan`), so the conversion renames keys, concatenates the attention's q/k/v
projections into one in-projection, and folds the U-Net's time embedding, which the reference
evaluates at timestep 0 on every call, into each ResNet block's first convolution bias.

What the reference feeds the model (utils.py, train_E2fNet.py): per (window, frequency) a
z-score of the |FFT| across channels, then one min-max over the whole dataset (train and test
subjects together) with the run's `min_eeg` / `max_eeg` (commandline_args.txt); our `paper`
normalisation with those two numbers (`EEG_RANGES`: the values the reference's
inference.ipynb gives per dataset).
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from eeg2fmri.models.e2fgan import Discriminator, E2fGAN
from eeg2fmri.models.e2fnet import E2fNet
from eeg2fmri.models.layers import ResBlock
from eeg2fmri.models.reference.state import unwrap

# the global EEG min / max of the reference's inference.ipynb (z-scored |FFT|), per dataset
EEG_RANGES: dict[str, tuple[float, float]] = {
    "noddi": (-3.904906883760493, 7.937204954155734),
    "oddball": (-2.466110737041575, 6.480417369333849),
    "cnepfl": (-4.551622643288133, 7.93715188090758),
}

_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
# the reference's EEGEncoder / fMRIDecoder sub-modules -> our nn.Sequential indices
_ENCODER = {"conv1.0": 0, "conv1.1": 1, "conv2.0": 3, "conv2.1": 4, "conv3.0": 6, "conv3.1": 7,
            "conv4": 9}
_DECODER = {"conv1.0": 0, "conv1.1": 1, "conv2.0": 3, "conv2.1": 4, "conv3.0": 6, "conv3.1": 7,
            "conv_channels": 9}
# diffusers UNet2DModel -> our UNet2d
_RESNETS = {"down_blocks.0.resnets.0": "down1", "down_blocks.1.resnets.0": "down2",
            "mid_block.resnets.0": "mid.0", "mid_block.resnets.1": "mid.2",
            "up_blocks.0.resnets.0": "up2.0", "up_blocks.0.resnets.1": "up2.1",
            "up_blocks.1.resnets.0": "up1.0", "up_blocks.1.resnets.1": "up1.1"}
_RESNET_PARTS = {"norm1": "body.0", "conv1": "body.2", "norm2": "body.3", "conv2": "body.5",
                 "conv_shortcut": "skip"}
_UNET = {"conv_in": "conv_in", "down_blocks.0.downsamplers.0.conv": "downsample",
         "up_blocks.0.upsamplers.0.conv": "upsample", "conv_norm_out": "out.0",
         "conv_out": "out.2", "mid_block.attentions.0.group_norm": "mid.1.norm",
         "mid_block.attentions.0.to_out.0": "mid.1.attn.out_proj"}
_ATTENTION = "mid_block.attentions.0."
_TIME = "time_embedding."


def time_embedding_at_zero(unet: dict[str, torch.Tensor]) -> torch.Tensor:
    """SiLU(TimestepEmbedding(Timesteps(0))) of the reference's UNet2DModel (positional
    embedding, flip_sin_to_cos, freq_shift 0): one vector, the same for every sample. At t = 0
    the sinusoid is sin(0) = 0 and cos(0) = 1, cosines first: [1] * dim/2 + [0] * dim/2."""
    dim = unet[_TIME + "linear_1.weight"].shape[1]
    w1, w2 = unet[_TIME + "linear_1.weight"], unet[_TIME + "linear_2.weight"]
    emb = torch.cat([torch.ones(dim // 2), torch.zeros(dim - dim // 2)]).to(w1)
    h = F.silu(F.linear(emb, w1, unet[_TIME + "linear_1.bias"]))
    return F.silu(F.linear(h, w2, unet[_TIME + "linear_2.bias"]))


def _convert_unet(unet: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our UNet2d's weights from the reference U-Net's (consumed from `unet`: what is left
    was not placed)."""
    temb = time_embedding_at_zero(unet)
    for key in [k for k in unet if k.startswith(_TIME)]:
        del unet[key]
    out: dict[str, torch.Tensor] = {}
    for ref, ours in _RESNETS.items():
        for part, o in _RESNET_PARTS.items():
            for t in ("weight", "bias"):
                if f"{ref}.{part}.{t}" in unet:
                    out[f"{ours}.{o}.{t}"] = unet.pop(f"{ref}.{part}.{t}")
        proj = F.linear(temb, unet.pop(f"{ref}.time_emb_proj.weight"),
                        unet.pop(f"{ref}.time_emb_proj.bias"))
        out[f"{ours}.body.2.bias"] = out[f"{ours}.body.2.bias"] + proj  # the constant, folded
    for ref, ours in _UNET.items():
        for t in ("weight", "bias"):
            out[f"{ours}.{t}"] = unet.pop(f"{ref}.{t}")
    for t, ours in (("weight", "in_proj_weight"), ("bias", "in_proj_bias")):
        out[f"mid.1.attn.{ours}"] = torch.cat([unet.pop(f"{_ATTENTION}to_{x}.{t}")
                                               for x in "qkv"])
    return out


def e2fnet_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference's `EEG2fMRINet` state_dict as our `E2fNet`'s. Refuses a state_dict with
    a key it does not place (another model's weights), naming the keys."""
    out: dict[str, torch.Tensor] = {}
    unet: dict[str, torch.Tensor] = {}
    unplaced = []
    for key, value in unwrap(state).items():
        part, _, rest = key.partition(".")
        m = re.fullmatch(rf"(.+)\.{_BN}", rest)
        table = {"eeg_encoder": _ENCODER, "fmri_decoder": _DECODER}.get(part)
        if table is not None and m and m[1] in table:
            ours = "encoder" if part == "eeg_encoder" else "decoder"
            out[f"{ours}.{table[m[1]]}.{m[2]}"] = value
        elif part == "unet_module":
            unet[rest] = value
        else:
            unplaced.append(key)
    try:
        out.update({f"unet.{k}": v for k, v in _convert_unet(unet).items()})
    except KeyError as e:
        raise ValueError(f"not a state_dict of the reference's EEG2fMRINet: its U-Net lacks "
                         f"{e}") from None
    unplaced += [f"unet_module.{k}" for k in unet]
    if unplaced:
        raise ValueError(f"not a state_dict of the reference's EEG2fMRINet: keys "
                         f"{', '.join(unplaced[:5])}{' ...' if len(unplaced) > 5 else ''}")
    return out


def discriminator_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference's `Discriminator` state_dict (`model.<i>.*`) as ours (`net.<i>.*`): the
    same nn.Sequential, layer for layer."""
    state = unwrap(state)
    wrong = [k for k in state if not k.startswith("model.")]
    if wrong:
        raise ValueError(f"not a state_dict of the reference's Discriminator: keys "
                         f"{', '.join(wrong[:5])}")
    return {"net." + k.removeprefix("model."): v for k, v in state.items()}


def e2fnet_settings(state: dict[str, torch.Tensor]) -> dict[str, int]:
    """What a reference E2fNet state_dict fixes: its width (256 in the reference's scripts),
    context (EEG windows, 20) and depth (fMRI slices, `--fmri_channel`)."""
    state = unwrap(state)
    try:
        conv1 = state["eeg_encoder.conv1.0.weight"]
        return {"width": int(state["eeg_encoder.conv4.weight"].shape[0]),
                "context": int(conv1.shape[1]),
                "depth": int(state["fmri_decoder.conv_channels.weight"].shape[0])}
    except KeyError as e:
        raise ValueError(f"not a state_dict of the reference's EEG2fMRINet: no {e}") from None


def discriminator_width(state: dict[str, torch.Tensor]) -> int:
    """The reference Discriminator's first width (64 in the reference)."""
    return int(unwrap(state)["model.0.weight"].shape[0])


def folded_time_embedding(width: int, n_resnets: int = len(_RESNETS)) -> int:
    """Parameters of the reference U-Net's time embedding, which our E2fNet folds into biases:
    TimestepEmbedding (width -> 4 width -> 4 width) and each ResNet block's projection
    (4 width -> width). 3,411,968 at width 256."""
    t = 4 * width
    return (width * t + t) + (t * t + t) + n_resnets * (t * width + width)


def parameter_note(model: nn.Module) -> str:
    """What `eeg2fmri params` appends to a model's count: how it relates to the reference's
    (empty for a model without a reference here)."""
    if isinstance(model, E2fNet):
        return " " + _e2fnet_note(model)
    if isinstance(model, E2fGAN):
        return (f": generator {_count(model.generator):,} {_e2fnet_note(model.generator)}, "
                f"discriminator {_count(model.discriminator):,} "
                f"{_discriminator_note(model.discriminator)}")
    return ""


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _e2fnet_note(model: E2fNet) -> str:
    width = model.unet.conv_in.out_channels
    n_resnets = sum(isinstance(m, ResBlock) for m in model.unet.modules())
    folded = folded_time_embedding(width, n_resnets)
    which = "the reference's" if width == 256 else f"the reference's layers at width {width}:"
    return (f"({which} {_count(model) + folded:,} less {folded:,} of its time embedding, "
            "constant at t = 0, folded into biases)")


def _discriminator_note(disc: Discriminator) -> str:
    width, last = disc.net[0].out_channels, disc.net[-1].kernel_size
    if width == 64 and tuple(last) == (4, 4):
        return "(the reference's)"
    return (f"(the reference's layers at width {width}, ending in a {last[0]}x{last[1]} "
            "convolution; the reference: width 64, 4x4)")


def reference_parameters(state: dict[str, torch.Tensor]) -> int:
    """The parameters (not buffers) a reference state_dict holds."""
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    return sum(v.numel() for k, v in unwrap(state).items() if not k.endswith(buffers))

