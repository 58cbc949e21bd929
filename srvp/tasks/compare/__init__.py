"""Side-by-side comparison of models on one dataset (``srvp compare``): equal training budgets, one evaluation
protocol, one table and one per-step plot (the paper's tables 1-2 and figure 2).

The models are variants of one base preset (:mod:`~srvp.tasks.compare.variants`): SRVP with its residual transition
and the paper's ablations (MLP or GRU transition, no ``z``, no content variable), and the SVG-LP baseline. Every
model sees the same data configuration (dataset, clip length, seed, hence the same training batches) and the same
number of optimisation steps (or of wall-clock seconds), keeps its own published optimiser settings (SRVP: Adam
3e-4; SVG-LP: Adam 2e-3), and is scored on the same test sequences with
:func:`srvp.evaluation.protocol.evaluate_model` (best of N samples, PSNR and SSIM, 95% intervals;
:mod:`~srvp.tasks.compare.runs`). Trained models can also be given as checkpoints. The table pools each model's
runs over training seeds and adds paired differences (:mod:`~srvp.tasks.compare.statistics`).

A :class:`CompareSettings` record says what to compare; :func:`run` does it. Files written to ``settings.out_dir``
(:mod:`~srvp.tasks.compare.report`): ``runs/<model>/`` (training runs), ``eval/<model>/`` (each model's full
evaluation report), ``comparison.md``, ``comparison.json``, ``per_step.csv``, ``per_step.png`` and ``samples.png``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from srvp.data import load_test_set
from srvp.errors import ConfigError
from srvp.runtime import resolve_device
from srvp.tasks.compare.report import comparison_markdown, comparison_summary, write_comparison
from srvp.tasks.compare.runs import (
    TrainedModel,
    evaluate_once,
    evaluate_runs,
    generation_speeds,
    run_configs,
    train_runs,
)
from srvp.tasks.compare.settings import COMPARED, CompareSettings
from srvp.tasks.compare.statistics import paired_differences, seed_interval
from srvp.tasks.compare.variants import DEFAULT_MODELS, VARIANTS, apply_budget, variant_config

__all__ = ["COMPARED", "DEFAULT_MODELS", "VARIANTS", "CompareSettings", "TrainedModel", "apply_budget",
           "comparison_markdown", "evaluate_once", "paired_differences", "run", "seed_interval", "variant_config"]


def run(settings: CompareSettings) -> dict[str, Any]:
    """Train (or load) every model, evaluate them identically and write the comparison files; returns the summary
    that ``comparison.json`` holds (with ``settings.train_only``: ``{"trained": [...]}`` once the runs are
    trained)."""
    resolve_device(settings.device)  # an unavailable device is named before any run is trained or loaded
    configs = run_configs(settings)
    for name, path in settings.checkpoints.items():
        if not Path(path).is_file():
            raise ConfigError(f"{path}: checkpoint file of model {name!r} not found")
    base = settings.base_config()
    test = load_test_set(base.data)
    if settings.test_sequences is not None:
        test = test[:settings.test_sequences]
    trained = train_runs(settings, configs)
    if settings.train_only:
        return {"trained": [dataclasses.asdict(tm) | {"checkpoint": str(tm.checkpoint)} for tm in trained]}
    results, models = evaluate_runs(settings, trained, test, base)
    cond = base.data.cond_frames
    speeds = generation_speeds(models, test, cond, test.shape[1] - cond, min(settings.cost_batch, len(test)),
                               settings.cost_samples)
    summary = comparison_summary(settings, base, test, trained, results, speeds)
    write_comparison(settings, summary, trained, results, models, test)
    return summary
