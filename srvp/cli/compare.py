"""``srvp compare``: train (or load) several models with equal budgets, evaluate them identically, and write one
table and one per-step plot (:mod:`srvp.training.compare`)."""

from __future__ import annotations

import argparse
import math
import shlex
import sys

from srvp.config import PRESETS, StepSize, check_seed, distinct_steps, seed_argument
from srvp.errors import ConfigError
from srvp.evaluation import EvalSettings
from srvp.runtime import resolve_device
from srvp.training.compare import DEFAULT_MODELS, run_comparison

NAME = "compare"
HELP = "compare SRVP, its ablations and SVG-LP on one dataset with equal training budgets"
DESCRIPTION = (
    "Train each model (SRVP residual, mlp and gru transitions, deterministic = no z, no-content, and the SVG-LP "
    "baseline) from one preset with the same data and the same budget (--steps or --seconds), or take trained "
    "checkpoints (--checkpoint NAME=PATH), evaluate all of them on the same test sequences with the paper's "
    "best-of-N protocol, and write comparison.md / comparison.json (table with 95% intervals and generation cost), "
    "per_step.csv / per_step.png (figure 2) and each model's own report into --out-dir. Rerunning the same command "
    "reuses finished runs and resumes interrupted ones."
)
SHOW_DEFAULTS = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="cpu", choices=sorted(p for p in PRESETS if not p.startswith("svg-")),
                        help="base preset: dataset, clip lengths, batch size and SRVP hyperparameters")
    parser.add_argument("--out-dir", default="runs/compare", help="directory of the runs and of the comparison")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated models to train: " + ", ".join(DEFAULT_MODELS))
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                        help="use this trained checkpoint for model NAME instead of training it (repeatable; NAME "
                             "may also be a new label)")
    parser.add_argument("--steps", type=int, help="training steps per model (default: the preset's)")
    parser.add_argument("--seconds", type=float, help="wall-clock training budget per model, in seconds")
    parser.add_argument("--seeds", help="comma-separated training seeds: each model is trained once per seed "
                                        "(runs <model>-seed<k>) and the table's intervals include the spread "
                                        "between seeds (default: the preset's seed, one run per model)")
    parser.add_argument("--train-only", action="store_true",
                        help="train (or resume) the runs and stop before the evaluation")
    parser.add_argument("--test-dt", nargs="+", type=StepSize.argument, metavar="DT",
                        help="also evaluate the models whose transition is an Euler step (srvp, deterministic, "
                             "no-content, half-dt) at these step sizes, e.g. 1 1/2 1/3 1/4 (a Δt table)")
    parser.add_argument("--samples", type=int, default=20, help="futures per test sequence (best of N)")
    parser.add_argument("--test-sequences", type=int, help="evaluate on the first N test sequences (default: all)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                        help="autocast precision of the evaluation")
    parser.add_argument("--device", default="cpu", help="evaluation device (training uses the preset's)")
    parser.add_argument("--seed", type=seed_argument, default=EvalSettings.seed,
                        help=f"evaluation seed, 0 to 2^32 - 1 (default {EvalSettings.seed}, as srvp evaluate)")
    parser.add_argument("--cost-batch", type=int, default=16, help="sequences per generation-cost measurement")
    parser.add_argument("--cost-samples", type=int, default=10, help="futures per sequence in the cost measurement")
    parser.add_argument("--note", default="", help="free text written under the table (e.g. the machine's load)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def parse_checkpoints(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--checkpoint {item!r}: expected NAME=PATH")
        out[name] = path
    return out


def _command_line() -> str:
    """The command as typed, when this process is ``srvp compare ...`` (empty when called from Python)."""
    return "srvp " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == [NAME] else ""


def run(args: argparse.Namespace) -> int:
    resolve_device(args.device)  # an unavailable device is named before any run is trained or loaded
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.seconds is not None and not (math.isfinite(args.seconds) and args.seconds > 0):
        raise ConfigError(f"--seconds {args.seconds:g} must be a positive finite number")
    seeds = None
    if args.seeds is not None:
        try:
            seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"--seeds {args.seeds!r}: expected comma-separated integers") from None
        for seed in seeds:
            check_seed(seed, "--seeds: seed")
        if len(set(seeds)) < len(seeds):
            raise ConfigError(f"--seeds {args.seeds!r}: a seed appears twice (each seed is one run per model)")
    summary = run_comparison(
        args.preset, args.out_dir, models=models, checkpoints=parse_checkpoints(args.checkpoint), steps=args.steps,
        seconds=args.seconds, n_samples=args.samples, test_sequences=args.test_sequences, precision=args.precision,
        device=args.device, seed=args.seed, cost_batch=args.cost_batch, cost_samples=args.cost_samples,
        progress=not args.no_progress, command=_command_line(), note=args.note, seeds=seeds,
        train_only=args.train_only, test_dts=distinct_steps(args.test_dt, "--test-dt"))
    if args.train_only:
        print(f"compare: {len(summary['trained'])} runs trained in {args.out_dir}/runs")
        return 0
    print(f"compare: wrote {args.out_dir}/comparison.md and per_step.png")
    for r in summary["models"]:
        print(f"  {r['label']:30s} best-of-{summary['n_samples']} PSNR {r['psnr']['best']['mean']:6.2f} ± "
              f"{r['psnr']['best']['ci95']:.2f}  SSIM {r['ssim']['best']['mean']:.4f}  "
              f"{r['frames_per_second']:7.0f} frames/s")
    return 0
