"""Generation cost of SRVP versus SVG-LP: predicted frames per second at the same batch and number of samples.

The SRVP paper argues that a model whose dynamics live in a latent space is cheaper to sample from than an
image-autoregressive one: SRVP encodes the conditioning frames once, rolls its small latent state forward and decodes
every frame in one batch, whereas SVG-LP decodes each predicted frame and re-encodes it before the next step. Both
models are built at the paper's SM-MNIST sizes (DCGAN 64x64, nf 64, g_dim 128; presets ``smmnist`` and
``svg-smmnist``), with random weights (the cost does not depend on the values), and measured in the same process,
under the same allocator and thread settings, with their timed runs interleaved so that a load change on a shared
machine hits both.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_generation_cost.py --batch 8 --samples 5 --horizon 20

A timed run is ``model.predict(x_cond, horizon, n_samples)`` (conditioning, sampling and decoding, in inference
mode); frames per second = batch x samples x horizon / seconds, median over the repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from srvp.config import preset
from srvp.models import build_model
from srvp.models.cpu_layers import use_cpu_layers


def time_predict(model: torch.nn.Module, x_cond: torch.Tensor, horizon: int, samples: int,
                 precision: str) -> float:
    """Seconds of one ``predict`` call."""
    dtype = {"bf16": torch.bfloat16, "fp32": None}[precision]
    start = time.perf_counter()
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        out = model.predict(x_cond, horizon, n_samples=samples)
    elapsed = time.perf_counter() - start
    assert out.shape[:3] == (x_cond.shape[0], samples, horizon)
    return elapsed


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="conditioning sequences per call")
    parser.add_argument("--samples", type=int, default=5, help="futures drawn per sequence")
    parser.add_argument("--cond", type=int, default=5, help="conditioning frames")
    parser.add_argument("--horizon", type=int, default=20, help="predicted frames")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per model (after one warm-up call)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--srvp-preset", default="smmnist", help="preset of the SRVP model (its model section)")
    parser.add_argument("--svg-preset", default="svg-smmnist", help="preset of the SVG-LP model")
    parser.add_argument("--json", default="", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    models = {"SRVP": build_model(preset(args.srvp_preset).model).eval(),
              "SVG-LP": build_model(preset(args.svg_preset).model).eval()}
    for model in models.values():  # both with the CPU speed layers, as Predictor and the evaluation run them
        use_cpu_layers(model)
    x_cond = torch.rand(args.batch, args.cond, 1, 64, 64)
    times: dict[str, list[float]] = {name: [] for name in models}
    for model in models.values():  # warm-up
        time_predict(model, x_cond, args.horizon, args.samples, args.precision)
    for _ in range(args.repeats):  # interleaved, so that a change of load on a shared machine hits both
        for name, model in models.items():
            times[name].append(time_predict(model, x_cond, args.horizon, args.samples, args.precision))

    frames = args.batch * args.samples * args.horizon
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                   f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        "settings": vars(args),
        "models": {name: {"parameters": sum(p.numel() for p in models[name].parameters()),
                          "seconds": times[name], "frames_per_second": frames / statistics.median(times[name])}
                   for name in models},
    }
    ratio = results["models"]["SRVP"]["frames_per_second"] / results["models"]["SVG-LP"]["frames_per_second"]
    results["srvp_over_svg"] = ratio
    print(f"{results['machine']}; presets {args.srvp_preset} / {args.svg_preset}")
    print(f"batch {args.batch} x {args.samples} samples, {args.cond} -> {args.horizon} "
          f"frames, {args.precision}, median of {args.repeats}")
    for name, r in results["models"].items():
        print(f"  {name:7s} {r['parameters'] / 1e6:5.2f} M parameters  {r['frames_per_second']:8.1f} predicted "
              f"frames/s  (calls: {', '.join(f'{s:.2f}' for s in r['seconds'])} s)")
    print(f"  SRVP generates {ratio:.2f}x as many frames per second as SVG-LP")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
