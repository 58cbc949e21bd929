"""Where and how tensors are computed: device resolution and autocast, shared by training, evaluation and the API."""

from __future__ import annotations

import os

import torch

from srvp.config import PRECISIONS
from srvp.errors import ConfigError


def resolve_device(name: str | torch.device, local_rank: int | None = None) -> torch.device:
    """``auto`` -> CUDA when available, else CPU. Under torch.distributed (``WORLD_SIZE`` > 1) a plain ``cuda``
    means this process's GPU, ``cuda:LOCAL_RANK``. An invalid or unavailable device is a :class:`ConfigError`."""
    name = str(name)
    if local_rank is None:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        name = f"cuda:{local_rank}"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a valid device (auto, cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available on this machine (use cpu or auto)")
    return device


def autocast_context(device: torch.device, precision: str):
    """Autocast of the model's forward pass: bf16 or fp16, or explicitly none for fp32 (which also switches off an
    enclosing autocast)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    if device.type == "cpu" and precision == "fp16":
        raise ConfigError("precision=fp16 needs a GPU; use bf16 on CPU")
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
