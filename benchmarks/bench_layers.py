"""Per-layer cost of the SM-MNIST frame networks: forward and backward time and GFLOP/s of every convolution.

Shows which layers run far from the machine's matrix-multiply peak, the measurement behind the CPU projection
layers (``srvp.models.cpu_layers.ProjectionConv2d`` / ``ProjectionConvTranspose2d``: the encoders' last and the
decoders' first layer as one matrix product) and behind the inference layout
(``srvp.models.inference.inference_layers``: batch norm folded into the convolutions). For each layer of the DCGAN
encoder and decoder (preset ``smmnist``, ``--frames`` frames at once, 240 = a training batch of 16 clips of 15
frames), in the chosen precision and memory format:

- forward and backward time of the stock PyTorch layer and of the model's own layer (they differ only for the
  projection layers), the backward covering the weight gradient and, except for the first layer, the input gradient;
  for the thin output layer, the forward time of its inference version (``ThinConvTranspose2d``, bf16 input as it
  arrives from the previous layer);
- then the whole decoder in inference (``--decode-frames`` frames, bf16 by default): stock layers, the model's
  layers, and the model's layers inside ``inference_layers``.

Each figure is the median of ``--repeats`` runs after a warm-up.

    OMP_NUM_THREADS=2 python benchmarks/bench_layers.py
    python benchmarks/bench_layers.py --precision fp32 --no-channels-last
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_report, machine_summary, matmul_peak, median, timed  # noqa: E402

from srvp.config import preset  # noqa: E402
from srvp.models import build_model  # noqa: E402
from srvp.models.cpu_layers import use_cpu_layers  # noqa: E402
from srvp.models.inference import ThinConvTranspose2d, inference_layers  # noqa: E402


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


def decoder_input_size(model: nn.Module) -> int:
    return conv_layers(model.frame_decoder)[0][1].in_channels  # state, and content when the model has it


def input_shapes(model: nn.Module, frames: int) -> dict[nn.Module, tuple[int, ...]]:
    """The input shape of every convolution, recorded on one forward pass of ``frames`` frames."""
    shapes: dict[nn.Module, tuple[int, ...]] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args: shapes.__setitem__(mod, tuple(args[0].shape)))
             for _, m in conv_layers(model)]
    with torch.no_grad():
        model.frame_encoder(torch.rand(frames, model.config.channels, 64, 64))
        model.frame_decoder(torch.zeros(frames, decoder_input_size(model)))
    for hook in hooks:
        hook.remove()
    return shapes


def gflop(layer: nn.Module, shape: tuple[int, ...]) -> float:
    """Multiply-adds x 2 of one forward pass, from the weight and the spatial sizes."""
    n, _, h, w = shape
    if isinstance(layer, nn.Conv2d):
        with torch.no_grad():
            out = layer(torch.zeros(1, *shape[1:]))
        return 2 * n * out.shape[-2] * out.shape[-1] * layer.out_channels * layer.weight[0].numel() / 1e9
    return 2 * n * h * w * layer.in_channels * layer.weight[0].numel() / 1e9  # weight[0]: (C_out, k, k)


def time_layer(layer: nn.Module, shape: tuple[int, ...], dtype: torch.dtype | None, channels_last: bool,
               input_grad: bool, repeats: int) -> tuple[float, float]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    layer = layer.to(memory_format=fmt)
    x = torch.randn(shape).contiguous(memory_format=fmt).requires_grad_(input_grad)
    device = torch.device("cpu")

    def forward():
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            return layer(x)

    grad = torch.randn(forward().shape)

    def both():
        forward().backward(grad)

    fwd = median([timed(forward, device)[1] for _ in range(repeats + 1)][1:])
    total = median([timed(both, device)[1] for _ in range(repeats + 1)][1:])
    return fwd, max(total - fwd, 1e-9)


def inference_forward(layer: nn.Module, shape: tuple[int, ...], dtype: torch.dtype | None, channels_last: bool,
                      repeats: int) -> float:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(shape).to(dtype or torch.float32).contiguous(memory_format=fmt)
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        return median([timed(lambda: layer(x), torch.device("cpu"))[1] for _ in range(repeats + 1)][1:])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=240, help="frames per layer call (training: batch x frames)")
    parser.add_argument("--decode-frames", type=int, default=1600, help="frames of the whole-decoder measurement")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    dtype = torch.bfloat16 if args.precision == "bf16" else None
    print(machine_summary(device))
    print(f"started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {load_report()}", flush=True)
    peak = matmul_peak(torch.bfloat16 if dtype else torch.float32, device)
    print(f"matmul 2048^2 peak ({args.precision}): {peak:.0f} GFLOP/s; {args.frames} frames per call, "
          f"{'channels-last' if args.channels_last else 'contiguous'}\n")
    torch.manual_seed(0)
    model = build_model(preset("smmnist").model)
    stock = copy.deepcopy(model)
    use_cpu_layers(model)
    shapes = input_shapes(model, args.frames)
    first = conv_layers(model)[0][1]
    print(f"  {'layer':34s} {'input':>18s} {'GFLOP':>6s}   {'stock fwd ms':>12s} {'bwd ms':>7s} {'fwd GF/s':>8s} "
          f"{'bwd GF/s':>8s}   {'ours fwd ms':>11s} {'bwd ms':>7s}")
    for (name, ours), (_, theirs) in zip(conv_layers(model), conv_layers(stock)):
        shape = shapes[ours]
        flops = gflop(theirs, shape)
        backward_flops = flops * (1 if ours is first else 2)
        f0, b0 = time_layer(theirs, shape, dtype, args.channels_last, ours is not first, args.repeats)
        row = (f"  {name:34s} {str(shape):>18s} {flops:6.2f}   {f0 * 1e3:12.1f} {b0 * 1e3:7.1f} {flops / f0:8.0f} "
               f"{backward_flops / b0:8.0f}")
        if type(ours) is not type(theirs):
            f1, b1 = time_layer(ours, shape, dtype, args.channels_last, ours is not first, args.repeats)
            row += f"   {f1 * 1e3:11.1f} {b1 * 1e3:7.1f}   ({type(ours).__name__})"
        elif ThinConvTranspose2d.applies_to(theirs):  # replaced by inference_layers when sampling
            f1 = inference_forward(ThinConvTranspose2d(theirs), shape, dtype, args.channels_last, args.repeats)
            row += f"   {f1 * 1e3:11.1f} {'-':>7s}   (ThinConvTranspose2d, inference only)"
        print(row, flush=True)

    n = args.decode_frames
    h = torch.randn(n, decoder_input_size(model))
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    decoders = {"stock layers": stock.eval().to(memory_format=fmt), "srvp layers": model.eval().to(memory_format=fmt)}
    print(f"\nwhole decoder, {n} frames, inference ({args.precision}):")
    results = {}
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        for label, m in decoders.items():
            results[label] = median([timed(lambda m=m: m.frame_decoder(h), device)[1]
                                     for _ in range(args.repeats + 1)][1:])
        with inference_layers(model, channels_last=args.channels_last):
            results["srvp layers + inference_layers"] = median(
                [timed(lambda: model.frame_decoder(h), device)[1] for _ in range(args.repeats + 1)][1:])
    base = results["stock layers"]
    for label, t in results.items():
        print(f"  {label:32s} {t * 1e3:8.0f} ms  {n / t:8.0f} frames/s  x{base / t:.2f}")
    print(f"\nfinished {time.strftime('%H:%M:%S')}; {load_report()}")


if __name__ == "__main__":
    main()
