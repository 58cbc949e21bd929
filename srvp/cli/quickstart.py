"""``srvp quickstart``: the main job on the embedded default, offline, on CPU, in 6-15 minutes on 2 cores: train a
small SRVP on one-digit Stochastic Moving MNIST, evaluate it best of N beside the trivial baselines, and write a
labelled animation of its samples (:mod:`srvp.tasks.quickstart`). Re-running it continues an interrupted run and
recomputes the evaluation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from srvp.tasks.quickstart import QuickstartSettings
from srvp.tasks.quickstart import run as quickstart

NAME = "quickstart"
HELP = "train, evaluate and animate a small model on the embedded Moving MNIST digits (6-15 min on a 2-core CPU)"
SHOW_DEFAULTS = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-dir", type=Path, default=QuickstartSettings.out_dir, help="output directory")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the quickstart preset's)")
    parser.add_argument("--samples", type=int, default=QuickstartSettings.samples,
                        help="samples per test sequence (best of N)")
    parser.add_argument("--test-sequences", type=int, default=None, help="test sequences (default: the preset's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    outputs = quickstart(QuickstartSettings(args.out_dir, args.steps, args.samples, args.test_sequences,
                                            progress=not args.no_progress))
    report, run_dir = outputs.report, outputs.run_dir
    print()
    print(report["markdown"].read_text())
    print(f"checkpoint: {outputs.checkpoint}\nmetrics: {report['markdown']} and {report['json']}\n"
          f"per-step plot: {report.get('plot')}\nanimation: {outputs.gif} (picture: {outputs.png})\n"
          f"tensorboard: tensorboard --logdir "
          f"{run_dir / 'tensorboard'}")
    return 0
