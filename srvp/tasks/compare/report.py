"""The files of a comparison: ``comparison.json`` (the summary), ``comparison.md`` (the tables), ``per_step.csv`` and
``per_step.png`` (figure 2) and ``samples.png`` (figure 3 in miniature)."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srvp.config import RunConfig
from srvp.data import to_float
from srvp.evaluation import EvalResult
from srvp.evaluation.metrics import METRICS, rank_samples
from srvp.evaluation.report import Curve, curves_figure, per_step_csv
from srvp.files import atomic_write_bytes, atomic_write_text
from srvp.tasks.compare.runs import TrainedModel
from srvp.tasks.compare.settings import COMPARED, CompareSettings
from srvp.tasks.compare.statistics import group_runs, group_scores, model_record, paired_differences
from srvp.visualization import save_grid_png

#: the table's columns: each compared metric for the best of N, then for one random sample
COLUMNS = [(m, "best") for m in COMPARED] + [(m, "random") for m in COMPARED]


def comparison_summary(settings: CompareSettings, base: RunConfig, test: np.ndarray, trained: list[TrainedModel],
                       results: dict[str, EvalResult], speeds: dict[str, float]) -> dict[str, Any]:
    """What ``comparison.json`` holds: the settings, one record per model (:func:`model_record`, its runs pooled),
    the baselines of the first evaluation, and the paired differences to the first model."""
    groups = group_runs(trained)
    records = [model_record(runs, results, speeds[model]) for model, runs in groups.items()]
    first = results[trained[0].name]
    baselines = {s["name"]: s["metrics"] for s in first.summary()["settings"] if s["dt"] is None}
    reference = next(iter(groups))
    cond = base.data.cond_frames
    return {
        "preset": settings.preset, "dataset": base.data.dataset, "n_sequences": int(len(test)), "cond_frames": cond,
        "horizon": test.shape[1] - cond, "n_samples": settings.n_samples, "seed": settings.seed,
        "precision": settings.precision,
        "budget": {"steps": settings.steps, "seconds": settings.seconds, "batch_size": base.train.batch_size},
        "overrides": dict(settings.overrides),
        "training_seeds": list(settings.seeds) if settings.seeds is not None else None,
        "test_dts": [s.dt for s in settings.test_dts],
        "cost": {"batch": min(settings.cost_batch, len(test)), "samples": settings.cost_samples},
        "machine": machine_description(), "command": settings.command, "note": settings.note,
        "train_seq_len": base.data.seq_len, "models": records, "baselines": baselines, "paired_reference": reference,
        "paired": paired_differences({m: group_scores(runs, results) for m, runs in groups.items()}, reference),
    }


def write_comparison(settings: CompareSettings, summary: dict[str, Any], trained: list[TrainedModel],
                     results: dict[str, EvalResult], models: dict[str, torch.nn.Module], test: np.ndarray) -> None:
    """The comparison's files in ``settings.out``: ``comparison.json``, ``comparison.md``, ``per_step.csv``,
    ``per_step.png`` and ``samples.png`` (``models``: the first run's model of each variant)."""
    out, cond, groups = settings.out, summary["cond_frames"], group_runs(trained)
    curves = model_curves(groups, results)
    atomic_write_text(out / "comparison.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / "comparison.md", comparison_markdown(summary))
    atomic_write_text(out / "per_step.csv", per_step_csv(curves, cond, first_column="model"))
    atomic_write_bytes(out / "per_step.png", curves_figure(curves, cond, summary["train_seq_len"]))
    save_samples_figure(out / "samples.png", {groups[m][0].label: models[m] for m in groups}, test, cond,
                        n_samples=min(settings.n_samples, 100), seed=settings.seed, device=settings.device)


def machine_description() -> str:
    return (f"{platform.machine()} {platform.processor() or ''}".strip() + f", {os.cpu_count()} CPUs, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")


def _best_marks(records: list[dict[str, Any]], metric: str, kind: str) -> set[str]:
    """Names whose mean lies within the 95% interval of the best mean (the paper's bold convention)."""
    sign = 1.0 if METRICS[metric].higher_is_better else -1.0
    best = max(records, key=lambda r: sign * r[metric][kind]["mean"])
    bound = sign * best[metric][kind]["mean"] - best[metric][kind]["ci95"]
    return {r["name"] for r in records if sign * r[metric][kind]["mean"] >= bound}


def _column_titles(n_samples: int, prefix: str = "") -> list[str]:
    """Titles of the :data:`COLUMNS`: ``PSNR best of 20`` ... ``SSIM random sample`` (``prefix``: e.g. Δ)."""
    return [f"{prefix}{METRICS[m].label} " + (f"best of {n_samples}" if kind == "best" else "random sample")
            for m, kind in COLUMNS]


def comparison_markdown(summary: dict[str, Any]) -> str:
    """The comparison table (best of N and one random sample, mean ± 95% interval), with its settings."""
    records = summary["models"]

    def cell(r: dict[str, Any], metric: str, kind: str, marks: set[str]) -> str:
        a = r[metric][kind]
        text = METRICS[metric].interval_text(a["mean"], a["ci95"])
        return f"**{text}**" if r["name"] in marks else text

    n = summary["n_samples"]
    marks = {c: _best_marks(records, *c) for c in COLUMNS}
    lines = ["| Model | checkpoint step | training (s) | parameters | " + " | ".join(_column_titles(n))
             + " | predicted frames/s |", "|---|---:|---:|---:|" + "---|" * len(COLUMNS) + "---:|"]
    for r in records:
        secs = "given" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}"
        lines.append(f"| {r['label']} | {r['steps']} | {secs} | {r['parameters'] / 1e6:.2f} M | "
                     + " | ".join(cell(r, m, k, marks[(m, k)]) for m, k in COLUMNS)
                     + f" | {r['frames_per_second']:.0f} |")
    for name, metrics in summary["baselines"].items():  # a baseline's best is its only sample: in both columns
        vals = {m: METRICS[m].interval_text(metrics[m]["best"]["mean"], metrics[m]["best"]["ci95"]) for m in COMPARED}
        lines.append(f"| baseline: {name} | | | | " + " | ".join(vals[m] for m, _ in COLUMNS) + " | |")
    budget = summary["budget"]
    budget_text = ", ".join(x for x in (f"{budget['steps']} steps" if budget["steps"] else "",
                                        f"{budget['seconds']:g} s of wall-clock" if budget["seconds"] else "") if x)
    cost = summary["cost"]
    out = [
        f"# Model comparison on {summary['dataset']} (preset `{summary['preset']}`)", "",
        f"Equal training budget: {budget_text or 'the preset steps'} per model at batch {budget['batch_size']}, "
        f"same training clips. Test: {summary['n_sequences']} sequences, {summary['cond_frames']} conditioning -> "
        f"{summary['horizon']} predicted frames, best of {n} samples per sequence (and the first sample, a random "
        f"one); mean ± 95% interval over sequences; bold: within the interval of the best. Each model is evaluated "
        f"at its `best.pt` (the trainer's model selection by best-of-N PSNR on the validation set) if it has one, "
        f"else at its last step. Generation cost: conditioning + sampling of {cost['batch']} sequences x "
        f"{cost['samples']} futures, fp32, the models' timed calls interleaved.", "",
        *_recipe_lines(summary),
        *lines, "",
        *_seeds_table(summary),
        *_paired_table(summary),
        *_dt_table(summary),
        f"![per-step {' and '.join(METRICS[m].label for m in COMPARED)}](per_step.png)", "",
        "![best samples of each model on the same test clips](samples.png)", "",
        f"Machine: {summary['machine']}.", "",
    ]
    if summary.get("note"):
        out += [summary["note"], ""]
    if summary.get("command"):
        out += ["Command:", "", "```", summary["command"], "```", ""]
    return "\n".join(out)


def _recipe_lines(summary: dict[str, Any]) -> list[str]:
    """The options every run shares beyond the preset (``--set``), and what SVG-LP keeps of its own."""
    overrides = summary.get("overrides") or {}
    if not overrides:
        return []
    text = ", ".join(f"`{k}={v}`" for k, v in overrides.items())
    return [f"Recipe of every run beyond the preset: {text} (SVG-LP keeps its published optimiser: Adam lr 2e-3, "
            f"betas 0.9/0.999, no clipping, one learning rate).", ""]


def _seeds_table(summary: dict[str, Any]) -> list[str]:
    """Markdown lines: each run's own mean when the models were trained with several seeds (empty otherwise)."""
    seeds = summary.get("training_seeds")
    if not seeds:
        return []
    n = summary["n_samples"]
    lines = [f"Trained with seeds {', '.join(map(str, seeds))}: the table above averages each model's runs; its "
             f"intervals add the variance between the seeds' means (ddof 1, / number of seeds) to the test "
             f"sequences' (a rough estimate with {len(seeds)} seeds). Each run alone:", "",
             "| Model | run | " + " | ".join(_column_titles(n)) + " |", "|---|---|" + "---:|" * len(COLUMNS)]
    for r in summary["models"]:
        for i, run in enumerate(r.get("runs", [r["name"]])):
            cells = [f"{r[m][k]['seeds'][i]:.{METRICS[m].digits}f}" for m, k in COLUMNS]
            lines.append(f"| {r['label']} | {run} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _dt_table(summary: dict[str, Any]) -> list[str]:
    """Markdown lines: the scores of the models evaluated at several test step sizes (empty without any)."""
    records = [r for r in summary["models"] if r.get("dts")]
    if not records:
        return []
    n = summary["n_samples"]
    lines = ["Test step size Δt (models whose transition is an Euler step; the conditioning frames' states are "
             "inferred with the training Δt, the future generated with the test Δt):", "",
             "| Model | test Δt | " + " | ".join(_column_titles(n)) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    for r in records:
        for dt, scores in r["dts"].items():
            cells = [METRICS[m].interval_text(scores[m][k]["mean"], scores[m][k]["ci95"]) for m, k in COLUMNS]
            lines.append(f"| {r['label']} | {dt} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _paired_table(summary: dict[str, Any]) -> list[str]:
    """Markdown lines: each model's paired difference to the reference model (empty without one)."""
    paired, ref = summary.get("paired"), summary.get("paired_reference")
    if not paired:
        return []
    labels = {r["name"]: r["label"] for r in summary["models"]}
    n = summary["n_samples"]
    lines = [f"Paired differences to {labels.get(ref, ref)} on the same test sequences (model minus reference, "
             f"mean ± 95% interval; an interval that excludes 0 is a difference this test set resolves):", "",
             "| Model | " + " | ".join(_column_titles(n, "Δ")) + " |", "|---|" + "---|" * len(COLUMNS)]
    for name, d in paired.items():
        cells = []
        for m, kind in COLUMNS:
            a, digits = d[m][kind], METRICS[m].digits
            cells.append(f"{a['mean']:+.{digits}f} ± {a['ci95']:.{digits}f}")
        lines.append(f"| {labels.get(name, name)} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def model_curves(groups: dict[str, list[TrainedModel]], results: dict[str, EvalResult]) -> list[Curve]:
    """One :class:`Curve` per model (the best samples' per-frame scores at the training step, averaged over the
    model's runs), then one per baseline (from the first model's evaluation)."""
    curves, first = [], None
    for runs in groups.values():
        per_run = [results[tm.name].settings[0].best_curves for tm in runs]
        first = first or results[runs[0].name]
        curves.append(Curve(runs[0].label, {m: np.mean([c[m] for c in per_run], axis=0) for m in COMPARED}))
    curves += [Curve(f"baseline: {s.name}", {m: s.best_curves[m] for m in COMPARED}, baseline=True)
               for s in first.settings if s.dt is None]
    return curves


def save_samples_figure(path: Path, models: dict[str, torch.nn.Module], test: np.ndarray, cond_frames: int,
                        n_samples: int, seed: int, device: str = "cpu", clips: Sequence[int] = (0, 1),
                        max_columns: int = 25) -> Path:
    """The paper's figure 3 in miniature: for each test clip of ``clips``, the conditioning frames and the ground
    truth, then each model's best of ``n_samples`` futures by PSNR (drawn with ``seed``), one labelled row each;
    long horizons show every k-th frame so that at most ``max_columns`` frames are drawn per row."""
    rows, labels = [], []
    for c in clips[:len(test)]:
        clip = to_float(torch.from_numpy(np.ascontiguousarray(test[c:c + 1])))
        truth = clip[0, cond_frames:]
        every = max(1, -(-clip.shape[1] // max_columns))
        shown = list(range(0, clip.shape[1], every))
        rows.append(clip[0, shown])
        labels.append(f"test clip {c}: truth (t = 1..{clip.shape[1]}, every {every})" if every > 1
                      else f"test clip {c}: truth")
        for label, model in models.items():
            torch.manual_seed(seed)
            with torch.inference_mode():
                futures = model.to(device).predict(clip[:, :cond_frames].to(device), truth.shape[0], n_samples)
            futures = futures[0].float().cpu()
            ranking = rank_samples(torch.stack([METRICS["psnr"].score(f, truth).mean() for f in futures]), "psnr")
            rows.append(torch.cat([clip[0, :cond_frames], futures[int(ranking.best)]])[shown])
            labels.append(f"{label}: best of {n_samples}, {float(ranking.best_score):.1f} dB")
    return save_grid_png(path, rows, labels=labels)
