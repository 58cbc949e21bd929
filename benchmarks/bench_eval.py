"""Predicted frames per second of the full best-of-N evaluation protocol on Stochastic-Moving-MNIST-shaped data with
the paper's SM-MNIST model (DCGAN, nf = 64, ny = nz = 20; random weights, which cost the same as trained ones).

Three ways, measured in one run on the same model, data and allocator settings:

- ``protocol fp32``: :func:`srvp.evaluation.evaluate_model` (encoder run once per sequence, samples batched, scores
  only, PSNR + SSIM + baselines);
- ``protocol bf16``: the same under bf16 autocast;
- ``plain fp32``: the authors' approach (their test.py), which re-runs the model on the conditioning frames for every
  sample (encoding them and decoding their reconstructions) with stock PyTorch layers (their batch of 16
  sequences, one future per pass), scored the same way. Its cost per sample is constant, so its
  rate is measured on ``--plain-samples`` samples (default 10) instead of 100.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/bench_eval.py     # a few minutes on 2 idle cores
    python benchmarks/bench_eval.py --sequences 64 --samples 100      # bigger
    python benchmarks/bench_eval.py --device cuda --sequences 256

The machine's load average is printed before and after: numbers taken while other processes use the CPU are
not comparable between runs (the ratios measured within one run are more robust).
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from srvp.config import preset  # noqa: E402
from srvp.evaluation import EvalSettings, evaluate_model  # noqa: E402
from srvp.evaluation.metrics import psnr, ssim  # noqa: E402
from srvp.models import build_model  # noqa: E402
from srvp.models.cpu_layers import use_cpu_layers  # noqa: E402
from srvp.runtime import tune_glibc_malloc  # noqa: E402

COND, HORIZON = 5, 20


def sequences(n: int, seed: int = 0) -> np.ndarray:
    """uint8 (n, 25, 1, 64, 64): two bright squares moving and bouncing, SM-MNIST-like content."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, COND + HORIZON, 1, 64, 64), np.uint8)
    for i in range(n):
        for _ in range(2):
            pos, vel = rng.uniform(0, 36, 2), rng.uniform(-4, 4, 2)
            for t in range(COND + HORIZON):
                y, x = pos.astype(int)
                out[i, t, 0, y:y + 28, x:x + 28] = 255
                pos += vel
                for d in range(2):
                    if not 0 <= pos[d] <= 36:
                        vel[d] = -vel[d]
                        pos[d] = np.clip(pos[d], 0, 36)
    return out


@torch.inference_mode()
def plain_best_of_n(model, seqs: np.ndarray, n_samples: int, device: torch.device) -> np.ndarray:
    """The authors' evaluation loop: for every sample, run the model on the conditioning frames again, generate
    one future per sequence, score it and keep the best PSNR per sequence."""
    x = torch.from_numpy(seqs).float().div(255).to(device)
    x_cond, target = x[:, :COND], x[:, COND:]
    best = torch.full((len(seqs),), -float("inf"))
    for _ in range(n_samples):  # their model(x_cond, ...) also decodes the conditioning frames' reconstructions
        cond = model.condition(x_cond)
        pred = model.sample_futures(cond, HORIZON, 1, include_conditioning=True)[:, 0, COND:].float().clamp(0, 1)
        score = psnr(pred, target).mean(1).cpu()
        ssim(pred, target)  # scored like the protocol
        best = torch.maximum(best, score)
    return best.numpy()


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=4, help="test sequences (default 4)")
    parser.add_argument("--samples", type=int, default=100, help="samples per sequence (default 100)")
    parser.add_argument("--batch-size", type=int, default=None, help="protocol: samples per pass (default: auto)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on CPU (default 2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--plain-batch", type=int, default=16, help="plain approach: sequences per pass (16)")
    parser.add_argument("--plain-samples", type=int, default=10, help="plain approach: samples timed (10)")
    parser.add_argument("--skip-plain", action="store_true", help="do not time the plain approach")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tune_glibc_malloc()  # as `srvp evaluate` does; every approach runs under the same setting
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model(preset("smmnist").model).to(device).eval()
    plain_model = copy.deepcopy(model)  # stock layers (the architecture as built)
    use_cpu_layers(model)
    seqs = sequences(args.sequences)
    frames = args.sequences * args.samples * HORIZON
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, device {device}, "
          f"{args.threads} threads, GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset)')}")
    print(f"started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load average before: {os.getloadavg()[0]:.2f}")
    print(f"{args.sequences} sequences x {args.samples} samples x {HORIZON} predicted frames = {frames} frames, "
          f"model {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters")
    settings = EvalSettings(n_samples=args.samples, metrics=("psnr", "ssim"), batch_size=args.batch_size, elbo=False)
    for precision in ("fp32", "bf16"):  # warm-up (kernel selection, allocator)
        evaluate_model(model, seqs[:1], COND, replace(settings, precision=precision, n_samples=min(args.samples, 10)),
                       device=device, progress=False)
    rates = {}
    results = {}
    for precision in ("fp32", "bf16"):
        results[precision], seconds = timed(lambda p=precision: evaluate_model(
            model, seqs, COND, replace(settings, precision=p), device=device, progress=False))
        rates[f"protocol {precision}"] = frames / seconds
        print(f"protocol {precision}: {seconds:7.1f} s  {frames / seconds:8.1f} predicted frames/s  "
              f"best-of-{args.samples} PSNR {results[precision].settings[0].best['psnr'].mean():.3f}")
    if not args.skip_plain:
        plain_seqs = np.resize(seqs, (args.plain_batch, *seqs.shape[1:]))  # the test sequences, repeated
        plain_frames = args.plain_batch * args.plain_samples * HORIZON
        best, seconds = timed(lambda: plain_best_of_n(plain_model, plain_seqs, args.plain_samples, device))
        rates["plain fp32"] = plain_frames / seconds
        print(f"plain fp32:    {seconds:7.1f} s  {plain_frames / seconds:8.1f} predicted frames/s  "
              f"({args.plain_batch} sequences x {args.plain_samples} samples, best PSNR {best.mean():.3f})")
        print(f"protocol fp32 / plain fp32: {rates['protocol fp32'] / rates['plain fp32']:.2f}x")
        print(f"protocol bf16 / plain fp32: {rates['protocol bf16'] / rates['plain fp32']:.2f}x")
    print(f"protocol bf16 / protocol fp32: {rates['protocol bf16'] / rates['protocol fp32']:.2f}x")
    diff = np.abs(results["bf16"].settings[0].best["psnr"] - results["fp32"].settings[0].best["psnr"]).max()
    print(f"max |best PSNR bf16 - fp32| over sequences: {diff:.4f} dB")
    full = 5000 * 100 * HORIZON
    print("full SM-MNIST protocol (5,000 x 100 x 20 frames) at these rates: "
          + ", ".join(f"{k} {full / r / 3600:.1f} h" for k, r in rates.items()))
    print(f"finished {time.strftime('%H:%M:%S')}; load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
