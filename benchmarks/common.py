"""Shared helpers of the benchmarks: machine description, load, matrix-multiply peak, peak memory, medians.

Every figure a benchmark prints is only meaningful with the state of the machine next to it: this module prints
the CPU, the thread count, the allocator settings, the load average and the processes that used the CPU.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

TUNED_MALLOC = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"


def _cpuinfo(key: str) -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_name() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    return set(_cpuinfo("flags").split())


def machine_summary(device: torch.device) -> str:
    flags = cpu_flags()
    isa = ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags) or "?"
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ", no GPU used"
    return (f"{cpu_name()} ({os.cpu_count()} logical CPUs; {isa}){gpu}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset)')}")


def load_report() -> str:
    """Load average and the five processes using the most CPU (others' processes distort timings)."""
    one, five, fifteen = os.getloadavg()
    try:
        ps = subprocess.run(["ps", "-eo", "pid,pcpu,etime,args", "--sort=-pcpu"], capture_output=True, text=True,
                            timeout=10).stdout.splitlines()
        busy = [line for line in ps[1:] if float(line.split()[1]) >= 5.0]  # processes using >= 5% of a CPU
        top = [line[:110] for line in busy if line.split()[0] != str(os.getpid())][:5]
    except (OSError, subprocess.SubprocessError):
        top = []
    listed = ("\n    " + "\n    ".join(top)) if top else " none"
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}; processes using >= 5% of a CPU:{listed}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[object, float]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


def matmul_peak(dtype: torch.dtype, device: torch.device, n: int = 2048, repeats: int = 8) -> float:
    """Measured GFLOP/s of an ``n x n`` matrix product: the fastest of ``repeats`` after one warm-up (the peak the
    machine reaches; a busy moment only slows some of the repeats)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    torch.mm(a, b)
    times = [timed(lambda: torch.mm(a, b), device)[1] for _ in range(repeats)]
    return 2 * n**3 / min(times) / 1e9


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB: VmHWM on Linux (``ru_maxrss`` survives ``exec`` and
    so reports the parent's memory in a subprocess started by a big process), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20
