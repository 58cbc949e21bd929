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


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype an autocast-eligible operation on ``x`` computes in: the autocast dtype of ``x``'s device when
    autocast is on there, else ``x``'s own."""
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


def tune_glibc_malloc() -> bool:
    """Keep freed memory in the process instead of returning it to the system (glibc only; returns whether it
    applied).

    glibc serves the large activation buffers of a training step with ``mmap`` and unmaps them when they are freed,
    so every step faults the same memory in again: about 350,000 minor page faults per SM-MNIST step at batch 16
    and 17-30% of the CPU time in the kernel on a 2-core machine. No ``mmap`` for large blocks and a high trim
    threshold remove these faults (1.24x at batch 16, 1.39x at batch 32; docs/benchmarks.md); the process keeps its
    peak memory. The same as ``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=...``.
    """
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):
        return False
