"""Import of checkpoints written by the authors' official SRVP code.

The official ``state_dict`` uses the same layers in the same order as :class:`srvp.models.srvp.SRVP`; only the
names differ. :func:`config_from_official` maps the official ``config.json`` options onto a :class:`RunConfig`
and :func:`convert_state_dict` renames the keys.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from srvp.config import PRESETS, RunConfig
from srvp.errors import CheckpointError

# Official option -> (section, our field, converter)
_OPTIONS = {
    "nx": ("model", "frame_size", int), "nc": ("model", "channels", int), "nf": ("model", "filters", int),
    "nhx": ("model", "frame_dim", int), "ny": ("model", "state_dim", int), "nz": ("model", "noise_dim", int),
    "skipco": ("model", "skip_connections", bool), "nt_inf": ("model", "content_frames", int),
    "nh_inf": ("model", "inference_hidden", int), "nlayers_inf": ("model", "inference_layers", int),
    "nh_res": ("model", "forward_hidden", int), "nlayers_res": ("model", "forward_layers", int),
    "archi": ("model", "architecture", str), "n_euler_steps": ("model", "dt", lambda n: 1.0 / int(n)),
    "obs_scale": ("model", "obs_scale", float), "res_gain": ("model", "residual_gain", float),
    "beta_y": ("model", "beta_y", float), "beta_z": ("model", "beta_z", float),
    "l2_res": ("model", "residual_penalty", float), "seq_len": ("data", "seq_len", int),
    "nt_cond": ("data", "cond_frames", int), "lr": ("train", "lr", float), "batch_size": ("train", "batch_size", int),
}
_DATASETS = {"smmnist": "smmnist", "mmnist": "mmnist", "kth": "kth", "bair": "bair", "human": "videos"}
_REQUIRED = ("nx", "nc", "nf", "nhx", "ny", "nz", "skipco", "nt_inf", "nh_inf", "nlayers_inf", "nh_res",
             "nlayers_res", "archi", "n_euler_steps")

# Official key prefix -> ours
_PREFIXES = [
    ("encoder.conv.", "frame_encoder.blocks."), ("encoder.last_conv.", "frame_encoder.head."),
    ("decoder.first_upconv.", "frame_decoder.first."), ("decoder.conv.", "frame_decoder.blocks."),
    ("w_proj.", "content_proj."), ("w_inf.", "content_out."), ("inf_z.", "posterior_z_lstm."),
    ("q_z.", "posterior_z."),
]
_MLPS = {"q_y": "posterior_y1", "p_z": "prior_z", "dynamics": "transition"}


def config_from_official(options: dict[str, Any], source: str = "config.json") -> RunConfig:
    """A :class:`RunConfig` equivalent to the official code's options."""
    missing = [k for k in _REQUIRED if k not in options]
    if missing:
        raise CheckpointError(f"{source}: missing official option(s) {', '.join(missing)}")
    data: dict[str, dict[str, Any]] = {"model": {"content": True, "activation": "relu"}, "data": {}, "train": {}}
    for key, value in options.items():
        if key in _OPTIONS:
            section, name, convert = _OPTIONS[key]
            try:
                data[section][name] = convert(value)
            except (TypeError, ValueError, ArithmeticError):  # ArithmeticError: n_euler_steps=0, an infinite size
                raise CheckpointError(f"{source}: option {key}={value!r} has the wrong type or value") from None
    dataset = options.get("dataset")
    if dataset == "smmnist" and options.get("deterministic") is True:  # the classic (deterministic) Moving MNIST
        dataset = "mmnist"
    if dataset in _DATASETS:
        data["data"]["dataset"] = _DATASETS[dataset]
    cond = data["data"].get("cond_frames", data["model"]["content_frames"])
    data["data"].setdefault("cond_frames", cond)
    protocol = PRESETS.get(data["data"].get("dataset", ""), {}).get("data", {})
    if protocol.get("cond_frames") == cond:
        # the paper's test protocol of the dataset (its preset): SM-MNIST 5 -> 20, MM-NIST 5 -> 95, KTH 10 -> 30,
        # BAIR 2 -> 28; the training clips are shorter than the test clips
        data["data"]["test_seq_len"] = protocol["test_seq_len"]
    else:  # an unknown dataset, or conditioned otherwise than the paper: predict as far as it was trained
        data["data"]["test_seq_len"] = max(cond + 1, data["data"].get("seq_len", cond + 1))
    data["data"]["seq_len"] = max(data["data"].get("seq_len", 2), data["model"]["content_frames"], 2)
    return RunConfig.from_dict(data, source)


def convert_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the official parameter names to ours (values untouched)."""
    out = {}
    for key, value in state.items():
        new = key
        m = re.match(r"^(q_y|p_z|dynamics)\.module\.(\d+)\.(\d+)\.(weight|bias)$", key)
        if m:
            new = f"{_MLPS[m.group(1)]}.net.{2 * int(m.group(2))}.{m.group(4)}"
        else:
            for old, ours in _PREFIXES:
                if key.startswith(old):
                    new = ours + key[len(old):]
                    break
        out[new] = value
    return out
