"""``srvp compare``: train (or load) several models with equal budgets, evaluate them identically, and write one
table and one per-step plot (:mod:`srvp.tasks.compare`)."""

from __future__ import annotations

import argparse
import shlex
import sys

from srvp.config import PRECISIONS, PRESETS, StepSize, seed_argument
from srvp.errors import ConfigError
from srvp.tasks.compare import DEFAULT_MODELS, CompareSettings
from srvp.tasks.compare import run as compare

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
    parser.add_argument("--preset", default=CompareSettings.preset,
                        choices=sorted(p for p in PRESETS if not p.startswith("svg-")),
                        help="base preset: dataset, clip lengths, batch size and SRVP hyperparameters")
    parser.add_argument("--out-dir", default=CompareSettings.out_dir,
                        help="directory of the runs and of the comparison")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated models to train: " + ", ".join(DEFAULT_MODELS))
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                        help="use this trained checkpoint for model NAME instead of training it (repeatable; NAME "
                             "may also be a new label)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="overrides",
                        help="a training or data option for every run, as srvp train's --NAME (repeatable; e.g. "
                             "--set frame_lr_scale=3 --set precision=fp32); SVG-LP keeps its published optimiser")
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
    parser.add_argument("--samples", type=int, default=CompareSettings.n_samples,
                        help="futures per test sequence (best of N)")
    parser.add_argument("--test-sequences", type=int, help="evaluate on the first N test sequences (default: all)")
    parser.add_argument("--precision", default=CompareSettings.precision, choices=PRECISIONS,
                        help="autocast precision of the evaluation")
    parser.add_argument("--device", default=CompareSettings.device,
                        help="evaluation device (training uses the preset's)")
    parser.add_argument("--seed", type=seed_argument, default=CompareSettings.seed,
                        help=f"evaluation seed, 0 to 2^32 - 1 (default {CompareSettings.seed}, as srvp evaluate)")
    parser.add_argument("--cost-batch", type=int, default=CompareSettings.cost_batch,
                        help="sequences per generation-cost measurement")
    parser.add_argument("--cost-samples", type=int, default=CompareSettings.cost_samples,
                        help="futures per sequence in the cost measurement")
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


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``--set NAME=VALUE`` options as {field name: value text} (dashes in NAME read as underscores)."""
    overrides: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name or not value.strip():
            raise ConfigError(f"--set {item!r}: expected NAME=VALUE, e.g. --set grad_clip=3000")
        if name in overrides:
            raise ConfigError(f"--set {name}: given twice")
        overrides[name] = value.strip()
    return overrides


def parse_seeds(text: str | None) -> list[int] | None:
    """``--seeds 1,2,3`` as integers (None when not given)."""
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected comma-separated integers") from None


def _command_line() -> str:
    """The command as typed, when this process is ``srvp compare ...`` (empty when called from Python)."""
    return "srvp " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == [NAME] else ""


def settings(args: argparse.Namespace) -> CompareSettings:
    """The comparison the options ask for."""
    return CompareSettings(
        preset=args.preset, out_dir=args.out_dir, models=[m.strip() for m in args.models.split(",") if m.strip()],
        checkpoints=parse_checkpoints(args.checkpoint), overrides=parse_overrides(args.overrides),
        steps=args.steps, seconds=args.seconds,
        seeds=parse_seeds(args.seeds), train_only=args.train_only, test_dts=args.test_dt or (),
        n_samples=args.samples, test_sequences=args.test_sequences, precision=args.precision, device=args.device,
        seed=args.seed, cost_batch=args.cost_batch, cost_samples=args.cost_samples, progress=not args.no_progress,
        command=_command_line(), note=args.note)


def run(args: argparse.Namespace) -> int:
    summary = compare(settings(args))
    if args.train_only:
        print(f"compare: {len(summary['trained'])} runs trained in {args.out_dir}/runs")
        return 0
    print(f"compare: wrote {args.out_dir}/comparison.md and per_step.png")
    for r in summary["models"]:
        print(f"  {r['label']:30s} best-of-{summary['n_samples']} PSNR {r['psnr']['best']['mean']:6.2f} ± "
              f"{r['psnr']['best']['ci95']:.2f}  SSIM {r['ssim']['best']['mean']:.4f}  "
              f"{r['frames_per_second']:7.0f} frames/s")
    return 0
