"""Where and how tensors are computed: device resolution and autocast, shared by training, evaluation and the API."""

from __future__ import annotations

import os
import time
import warnings

import torch
import torch.distributed as dist

from srvp.config import PRECISIONS
from srvp.errors import ConfigError


def resolve_device(name: str | torch.device, local_rank: int | None = None) -> torch.device:
    """``auto`` -> CUDA when available, else CPU. Under torch.distributed (``WORLD_SIZE`` > 1) a plain ``cuda``
    means this process's GPU, ``cuda:LOCAL_RANK``. An invalid or unavailable device (``mps`` or ``xpu`` on a
    machine or PyTorch build without one, a GPU index beyond the machine's, ``meta``) is a :class:`ConfigError`."""
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
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r}: this machine has {torch.cuda.device_count()} GPU(s), numbered from 0")
    if device.type == "meta":
        raise ConfigError(f"device {name!r} holds no values (use cpu, cuda or auto)")
    if device.type not in ("cpu", "cuda"):  # mps, xpu ...: usable only if this PyTorch and machine have one
        try:
            torch.empty(1, device=device)
        except Exception:  # noqa: BLE001 - each backend refuses in its own way (RuntimeError, AssertionError ...)
            raise ConfigError(f"device {name!r} is not available on this machine or in this PyTorch build (use "
                              f"cpu, cuda or auto)") from None
    return device


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE`` > 1), once per process: NCCL with this
    process's GPU made current for a CUDA ``device``, gloo otherwise. Returns ``(rank, world size)``; ``(0, 1)``
    outside ``torchrun``."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


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


_BF16_SPEEDUP: dict[int, float] = {}


def cpu_bf16_speedup(size: int = 1024, repeats: int = 4) -> float:
    """How much faster a bf16 matrix product is than a float32 one on this CPU with the current threads (CPU
    time; measured once per thread count, about 0.3 s): about 2.3 on CPUs that compute bf16 natively (AVX512-BF16
    on AMD EPYC, AMX), below 1 where bf16 is emulated or its units are hidden (0.6 on a KVM Intel Xeon without
    AMX, where a whole bf16 training step was 0.81x the fp32 one; docs/benchmarks.md)."""
    threads = torch.get_num_threads()
    if threads not in _BF16_SPEEDUP:
        seconds = {}
        generator = torch.Generator().manual_seed(0)
        for dtype in (torch.float32, torch.bfloat16):
            a = torch.randn(size, size, generator=generator).to(dtype)
            a @ a  # warm-up (kernel selection, packing buffers)
            started = time.process_time()
            for _ in range(repeats):
                a @ a
            seconds[dtype] = time.process_time() - started
        _BF16_SPEEDUP[threads] = seconds[torch.float32] / max(seconds[torch.bfloat16], 1e-9)
    return _BF16_SPEEDUP[threads]


def warn_if_bf16_is_slow(device: torch.device, precision: str, option: str = "--precision") -> None:
    """A warning when bf16 autocast was asked for on a CPU whose bf16 products are slower than float32 ones
    (:func:`cpu_bf16_speedup` below 0.9): the run computes as asked, more slowly than with fp32."""
    if device.type == "cpu" and precision == "bf16" and (speedup := cpu_bf16_speedup()) < 0.9:
        warnings.warn(f"bf16 matrix products run at {speedup:.2f}x the speed of float32 ones on this CPU (no "
                      f"native bf16 units): {option} fp32 is faster here", stacklevel=2)


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


# --------------------------------------------------------------------------------------------------------------------
# Memory guards: estimate what a request needs before allocating it
# --------------------------------------------------------------------------------------------------------------------

GIB = 1024 ** 3
# Calibration of the estimates below against the peak resident memory they predict (benchmarks/bench_memory_guard.py,
# 2026-12-02, docs/benchmarks.md): the raw estimates were 0.79-0.91 of the real growth for large requests (0.47-0.72
# for small ones, where fixed costs dominate); the margins make them cover the large requests.
GENERATION_MARGIN, TRAINING_MARGIN = 1.25, 1.35


def available_memory(device: torch.device) -> int:
    """Bytes that can still be allocated: the kernel's MemAvailable on CPU, free memory on a GPU."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def frame_activations(model: torch.nn.Module) -> tuple[int, int, int]:
    """Per frame: (elements of every encoder and decoder layer output summed, the largest sum of two consecutive
    decoder layer outputs, elements of a frame), measured by running the frame networks once on one frame."""
    cfg = model.config
    outputs: list[tuple[str, int]] = []

    def hook(name):
        def record(module, args, output):
            if isinstance(output, torch.Tensor):
                outputs.append((name, output.numel()))
        return record

    handles = [m.register_forward_hook(hook(name.split(".")[0])) for name, m in model.named_modules()
               if name.startswith(("frame_encoder", "frame_decoder")) and not list(m.children())]
    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            x = torch.zeros(1, 1, cfg.channels, cfg.frame_size, cfg.frame_size, device=device)
            cond = model.condition(x.expand(1, max(cfg.content_frames, 2), *x.shape[2:]))
            model.sample_futures(cond, 1)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    decoder = [n for name, n in outputs if name == "frame_decoder"]
    per_frame_all = sum(n for _, n in outputs) // max(1, max(cfg.content_frames, 2) + 1)
    pair = max((a + b for a, b in zip(decoder, decoder[1:])), default=sum(decoder))
    return per_frame_all, pair, cfg.channels * cfg.frame_size * cfg.frame_size


def require_memory(need: int, device: torch.device, what: str, lower: str, fraction: float = 0.8) -> None:
    """Raise a one-line :class:`ConfigError` before any allocation when ``need`` bytes exceed ``fraction`` of what
    the device has available (``what``: the request; ``lower``: the options to lower)."""
    have = available_memory(device)
    if need > fraction * have:
        raise ConfigError(f"{what} needs about {need / GIB:.1f} GiB of memory; {have / GIB:.1f} GiB are available, "
                          f"of which srvp uses at most {fraction:.0%} ({fraction * have / GIB:.1f} GiB, the rest left "
                          f"to the system); lower {lower}")


def generation_bytes(model: torch.nn.Module, clips: int, samples: int, frames: int) -> int:
    """Estimated peak bytes of drawing ``samples`` futures of ``frames`` frames for ``clips`` clips in one batch
    (without gradients): two consecutive decoder activations per frame at once, plus the decoded frames kept in
    float32 three times (output, clamp, copy)."""
    _, pair, frame = frame_activations(model)
    n = clips * samples * frames
    return int(GENERATION_MARGIN * n * 4 * (1.5 * pair + 3 * frame))


def training_bytes(model: torch.nn.Module, batch: int, frames: int) -> int:
    """Estimated peak bytes of one training step: every frame-network activation saved for the backward pass and
    its gradient (float32), plus weights, gradients and Adam's two moments."""
    per_frame, _, _ = frame_activations(model)
    params = sum(p.numel() for p in model.parameters())
    return int(TRAINING_MARGIN * (batch * frames * per_frame * 4 * 2 + params * 4 * 4))
