"""Sampling throughput of SRVP for the evaluation protocol: predicted frames per second, plain versus optimised.

The paper's SM-MNIST model (preset ``smmnist``: DCGAN, nf 64, ny = nz = 20; random weights, which cost the same as
trained ones), ``--sequences`` test sequences of 5 conditioning and 20 predicted frames, ``--samples`` futures
each, every future scored (PSNR against the truth) and only the best score per sequence kept. Approaches::

    plain                    the authors' evaluation loop (their test.py): for every sample, run the model on the
                             conditioning frames again (encoding them, inferring y and z, and decoding their
                             reconstructions), then generate and decode one future per sequence; fp32,
                             torch.no_grad, stock PyTorch layers
    once fp32                condition() once per batch of sequences, then the samples in chunks of --chunk futures
                             per sequence (sample_futures, futures only), inference_mode, fp32, stock layers
    once bf16                the same under bf16 autocast
    once bf16+cl             and channels-last weights
    once bf16+cl+fast        and the model's own layers (the 1x1 <-> 4x4 projections as matrix products) with batch
                             norm folded into the convolutions (srvp.models.inference.inference_layers): what
                             srvp.evaluation.evaluate_model(..., EvalSettings(precision="bf16")) runs
    once bf16+cl+fast+comp   and the frame decoder compiled (torch.compile, in place; not in the default list)
    once fp32+cl+fast        the fast layers in fp32 (EvalSettings' default precision)

The timed runs are interleaved (one run of each approach, then again) and the figure is the median, so that a
change of load on a shared machine hits all of them. Also printed: the FLOPs of each approach
(``torch.utils.flop_counter``) and the achieved GFLOP/s against the measured 2048^2 matrix-multiply peak, the peak
resident memory of plain and optimised sampling (each in its own subprocess) with the futures scored chunk by chunk
or all at once, and how many futures :func:`srvp.evaluation.evaluate_model` holds at a time.

    OMP_NUM_THREADS=2 python benchmarks/bench_sampling.py                  # 8 sequences x 20 samples, ~2 min
    python benchmarks/bench_sampling.py --sequences 16 --samples 100 --repeats 3
    python benchmarks/bench_sampling.py --device cuda --sequences 256 --samples 100 --chunk 100
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_eval import sequences  # noqa: E402
from common import (  # noqa: E402
    load_report,
    machine_summary,
    matmul_peak,
    median,
    peak_rss_mb,
    timed,
)

from srvp.config import preset  # noqa: E402
from srvp.evaluation import EvalSettings, evaluate_model  # noqa: E402
from srvp.evaluation.metrics import psnr  # noqa: E402
from srvp.models import build_model  # noqa: E402
from srvp.models.cpu_layers import use_cpu_layers  # noqa: E402
from srvp.models.inference import inference_layers  # noqa: E402
from srvp.runtime import tune_glibc_malloc  # noqa: E402

COND, HORIZON = 5, 20
APPROACHES = ("plain", "once fp32", "once bf16", "once bf16+cl", "once bf16+cl+fast", "once bf16+cl+fast+comp",
              "once fp32+cl+fast")
DEFAULT_APPROACHES = ("plain", "once fp32", "once bf16", "once bf16+cl", "once bf16+cl+fast", "once fp32+cl+fast")


def plain_best(model, x: torch.Tensor, n_samples: int) -> torch.Tensor:
    """The authors' loop (test.py): every sample runs the model on the conditioning frames (which also decodes their
    reconstructions), then generates and decodes the future; best PSNR per sequence ``(B,)``."""
    x_cond, target = x[:, :COND], x[:, COND:]
    best = torch.full((x.shape[0],), -float("inf"), device=x.device)
    with torch.no_grad():
        for _ in range(n_samples):
            frames = model.sample_futures(model.condition(x_cond), HORIZON, 1, include_conditioning=True)
            future = frames[:, 0, COND:].float().clamp(0, 1)
            best = torch.maximum(best, psnr(future, target).mean(1))
    return best


def once_best(model, x: torch.Tensor, n_samples: int, chunk: int, bf16: bool, fast: bool) -> torch.Tensor:
    """Conditioning encoded once, ``chunk`` futures per sequence and pass, scored as they come (only the running
    best is kept); with ``fast``, inside :func:`inference_layers` (batch norm folded, channels-last). Best PSNR per
    sequence ``(B,)``."""
    x_cond, target = x[:, :COND], x[:, COND:]
    best = torch.full((x.shape[0],), -float("inf"), device=x.device)
    layout = inference_layers(model, channels_last=True) if fast else contextlib.nullcontext()
    with layout, torch.inference_mode(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        cond = model.condition(x_cond)
        for start in range(0, n_samples, chunk):
            n = min(chunk, n_samples - start)
            futures = model.sample_futures(cond, HORIZON, n).float().clamp_(0, 1)  # (B, n, T, C, H, W)
            scores = psnr(futures, target.unsqueeze(1).expand_as(futures)).mean(-1)  # (B, n)
            best = torch.maximum(best, scores.max(1).values)
    return best


def build(approach: str, device: torch.device):
    torch.manual_seed(0)
    model = build_model(preset("smmnist").model).to(device).eval()
    if "+fast" in approach:
        use_cpu_layers(model)
    if "+cl" in approach:
        model = model.to(memory_format=torch.channels_last)
    if approach.endswith("+comp"):
        model.frame_decoder.compile()
    return model


def runner(approach: str, model, x: torch.Tensor, n_samples: int, chunk: int):
    if approach == "plain":
        return lambda: plain_best(model, x, n_samples)
    return lambda: once_best(model, x, n_samples, chunk, bf16="bf16" in approach, fast="+fast" in approach)


def probe(args: argparse.Namespace) -> None:
    """Child process: one run of ``--probe`` (after a warm-up run), prints its peak resident memory as JSON."""
    tune_glibc_malloc()
    device = torch.device(args.device)
    x = torch.from_numpy(sequences(args.sequences)).float().div(255).to(device)
    model = build(args.probe, device)
    run = runner(args.probe, model, x, args.samples, args.probe_chunk)
    before = peak_rss_mb()
    run()
    out = {"peak_rss_mb": peak_rss_mb(), "before_mb": before}
    if device.type == "cuda":
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    print(json.dumps(out))


def run_probe(args: argparse.Namespace, approach: str, chunk: int) -> dict:
    cmd = [sys.executable, __file__, "--device", args.device, "--threads", str(args.threads), "--sequences",
           str(args.sequences), "--samples", str(args.samples), "--probe", approach, "--probe-chunk", str(chunk)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def protocol_chunking(device: torch.device, n_samples: int = 100) -> str:
    """Largest number of futures one ``sample_futures`` call of :func:`evaluate_model` returns (per sequence)."""
    model = build("once fp32", device)
    sizes: list[tuple[int, int]] = []
    original = model.sample_futures

    def recording(cond, horizon, n=1, *a, **kw):
        out = original(cond, horizon, n, *a, **kw)
        sizes.append((out.shape[1], out.numel() * out.element_size()))
        return out

    model.sample_futures = recording
    evaluate_model(model, sequences(1), COND, EvalSettings(n_samples=n_samples, metrics=("psnr", "ssim"), elbo=False),
                   device=device, progress=False)
    largest = max(sizes)
    all_bytes = n_samples * HORIZON * 64 * 64 * 4
    return (f"evaluate_model(..., EvalSettings(n_samples={n_samples})) called sample_futures {len(sizes)} times, "
            f"at most {largest[0]} futures ({largest[1] / 2**20:.1f} MB) at once, never all {n_samples} "
            f"({all_bytes / 2**20:.1f} MB); only the scores of each chunk are kept")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=8, help="test sequences per batch")
    parser.add_argument("--samples", type=int, default=20, help="futures per sequence")
    parser.add_argument("--chunk", type=int, default=10, help="futures per sequence and pass (optimised approaches)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per approach (after one warm-up)")
    parser.add_argument("--approaches", nargs="+", default=list(DEFAULT_APPROACHES), choices=APPROACHES,
                        help="the first one is the reference of the ratios")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                        help="peak resident memory of plain and optimised sampling, in subprocesses")
    parser.add_argument("--json", default="")
    parser.add_argument("--probe", default="", help=argparse.SUPPRESS)
    parser.add_argument("--probe-chunk", type=int, default=10, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.probe:
        return probe(args)
    tune_glibc_malloc()
    device = torch.device(args.device)
    print(machine_summary(device))
    print(f"started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {load_report()}", flush=True)
    peaks = {"fp32": matmul_peak(torch.float32, device), "bf16": matmul_peak(torch.bfloat16, device)}
    print(f"matmul 2048^2 peak: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s")
    x = torch.from_numpy(sequences(args.sequences)).float().div(255).to(device)
    frames = args.sequences * args.samples * HORIZON
    print(f"{args.sequences} sequences x {args.samples} samples x {HORIZON} predicted frames = {frames} frames per "
          f"run; optimised approaches draw {args.chunk} futures per sequence and pass", flush=True)
    runs, first, flops, best = {}, {}, {}, {}
    for a in args.approaches:
        model = build(a, device)
        runs[a] = runner(a, model, x, args.samples, args.chunk)
        best[a], first[a] = timed(runs[a], device)  # warm-up (compilation happens here)
        # Counted on the fp32 eager version of the approach (the same operations; the counter cannot trace
        # oneDNN's bf16 LSTM).
        kind = "plain" if a == "plain" else "once fp32"
        if kind not in flops:
            with FlopCounterMode(display=False) as counter:
                runner(kind, build(kind, device), x, args.samples, args.chunk)()
            flops[kind] = counter.get_total_flops()
        flops[a] = flops[kind]
    times: dict[str, list[float]] = {a: [] for a in args.approaches}
    for _ in range(args.repeats):
        for a in args.approaches:  # interleaved
            times[a].append(timed(runs[a], device)[1])
    ref = args.approaches[0]
    results = {"machine": machine_summary(device), "settings": vars(args), "peaks_gflops": peaks, "approaches": {}}
    print(f"\n  {'approach':18s} {'run s':>7s} {'frames/s':>9s} {'x ' + ref:>9s} {'GFLOP':>7s} {'GFLOP/s':>8s} "
          f"{'% peak':>7s} {'1st run s':>9s}  best PSNR  runs (s)")
    for a in args.approaches:
        t = median(times[a])
        peak = peaks["bf16"] if "bf16" in a else peaks["fp32"]
        r = {"seconds": times[a], "median_s": t, "frames_per_s": frames / t, "ratio": median(times[ref]) / t,
             "gflop": flops[a] / 1e9, "gflops": flops[a] / t / 1e9, "first_run_s": first[a],
             "best_psnr_mean": float(best[a].mean())}
        results["approaches"][a] = r
        print(f"  {a:18s} {t:7.2f} {r['frames_per_s']:9.1f} {r['ratio']:9.2f} {r['gflop']:7.1f} {r['gflops']:8.1f} "
              f"{100 * r['gflops'] / peak:6.0f}% {first[a]:9.1f}  {r['best_psnr_mean']:9.3f}  "
              + " ".join(f"{s:.2f}" for s in times[a]))
    full = 5000 * 100 * HORIZON
    print("  full SM-MNIST protocol (5,000 x 100 x 20 frames, sampling only) at these rates: "
          + ", ".join(f"{a} {full / r['frames_per_s'] / 3600:.1f} h" for a, r in results["approaches"].items()))
    if args.memory:
        last = "once bf16+cl+fast" if "once bf16+cl+fast" in args.approaches else args.approaches[-1]
        results["memory"] = {}
        for a, chunk in ((ref, args.chunk), (last, args.chunk), (last, args.samples)):
            key = f"{a}, {chunk} futures per pass" if a != "plain" else "plain"
            results["memory"][key] = run_probe(args, a, chunk)
        print("  peak resident memory: " + "; ".join(f"{k} {v.get('peak_rss_mb', float('nan')):.0f} MB"
                                                    for k, v in results["memory"].items()))
    note = protocol_chunking(device)
    results["protocol_chunking"] = note
    print(f"  {note}")
    print(f"\nfinished {time.strftime('%H:%M:%S')}; {load_report()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
