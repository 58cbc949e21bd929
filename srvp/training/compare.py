"""Side-by-side comparison of models on one dataset: equal training budgets, one evaluation protocol, one table and
one per-step plot (the paper's tables 1-2 and figure 2).

The models are variants of one base preset (``srvp.config.PRESETS``): SRVP with its residual transition and the
paper's ablations (MLP or GRU transition, no ``z``, no content variable), and the SVG-LP baseline. Every model sees
the same data configuration (dataset, clip length, seed, hence the same training batches) and the same number of
optimisation steps (or of wall-clock seconds), keeps its own published optimiser settings (SRVP: Adam 3e-4; SVG-LP:
Adam 2e-3), and is scored on the same test sequences with :func:`srvp.evaluation.protocol.evaluate_model` (best of
N samples, PSNR and SSIM, 95% intervals). Trained models can also be given as checkpoints.

Files written to ``out_dir``: ``runs/<model>/`` (training runs), ``eval/<model>/`` (each model's full evaluation
report), ``comparison.md``, ``comparison.json``, ``per_step.csv`` and ``per_step.png``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srvp.config import PRESETS, ModelConfig, RunConfig, StepSize, preset
from srvp.data import load_test_set, to_float
from srvp.errors import ConfigError, DataError
from srvp.evaluation import EvalResult, EvalSettings, evaluate_model, read_scores, write_report
from srvp.evaluation.metrics import METRICS, pixel_metrics, rank_samples
from srvp.evaluation.report import REPORT_FILES, Curve, curves_figure, per_step_csv
from srvp.files import atomic_write_bytes, atomic_write_text, read_json_marker, sha256_file, staged_output_dir
from srvp.training.checkpoint import CheckpointManager, load_checkpoint
from srvp.training.trainer import Trainer
from srvp.visualization import save_grid_png

#: name -> (label in tables and plots, changes to the base preset's model section; None: the SVG-LP baseline)
VARIANTS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "srvp": ("SRVP (residual)", {"transition": "residual"}),
    "mlp": ("SRVP - MLP transition", {"transition": "mlp", "dt": 1.0}),
    "gru": ("SRVP - GRU transition", {"transition": "gru", "dt": 1.0}),
    "deterministic": ("SRVP - deterministic (no z)", {"transition": "deterministic"}),
    "no-content": ("SRVP - no content variable", {"content": False, "skip_connections": False}),
    "svg": ("SVG-LP", None),
    "half-dt": ("SRVP (residual), trained with Δt = 1/2", {"transition": "residual", "dt": 0.5}),
}
DEFAULT_MODELS = ("srvp", "mlp", "gru", "deterministic", "no-content", "svg")
#: the metrics compared (those of :data:`srvp.evaluation.metrics.METRICS` that need no pretrained network: PSNR, SSIM)
COMPARED = pixel_metrics()
#: the table's columns: each compared metric for the best of N, then for one random sample
COLUMNS = [(m, "best") for m in COMPARED] + [(m, "random") for m in COMPARED]
SVG_LR = 2e-3  # Denton & Fergus's Adam learning rate (edenton/svg, train_svg_lp.py)


def variant_config(base_name: str, variant: str) -> RunConfig:
    """The :class:`RunConfig` of ``variant`` derived from preset ``base_name``: the same data and training schedule,
    the model section changed as listed in :data:`VARIANTS`.

    SVG-LP takes the model section of preset ``svg-<base_name>`` when there is one (else SVG's published sizes on
    the base's encoder/decoder family), with the base's frame encoder/decoder family, size and width, and SVG's
    learning rate.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"unknown model {variant!r}; choose among {', '.join(VARIANTS)}")
    base = preset(base_name)
    changes = VARIANTS[variant][1]
    if changes is not None:
        model = dataclasses.replace(base.model, **changes)
        train = base.train
    else:
        b = base.model
        svg_name = f"svg-{base_name}"
        svg_model = preset(svg_name).model if svg_name in PRESETS else ModelConfig(
            model="svg", frame_dim=128, noise_dim=10, svg_rnn_hidden=256, svg_predictor_layers=2,
            svg_latent_layers=1, beta_z=1e-4)
        model = dataclasses.replace(svg_model, architecture=b.architecture, channels=b.channels,
                                    frame_size=b.frame_size, filters=b.filters, dt=1.0,
                                    content_frames=min(base.data.cond_frames, base.data.seq_len))
        train = dataclasses.replace(base.train, lr=SVG_LR)
    cfg = RunConfig(model=model, data=base.data, train=train)
    cfg.validate(f"compare: {variant} on preset {base_name}")
    return cfg


def apply_budget(cfg: RunConfig, steps: int | None, out_dir: Path) -> RunConfig:
    """``cfg`` trained for ``steps`` steps, writing to ``out_dir``: linear decay over the same fraction of the run
    as the preset's; the warm-up keeps its length in steps (it tames Adam's first updates, whatever the budget) up
    to a third of the run."""
    train = cfg.train
    if steps is not None:
        if steps < 1:
            raise ConfigError(f"--steps={steps} must be positive")
        decay = round(steps * train.decay_steps / train.steps)
        train = dataclasses.replace(train, steps=steps, decay_steps=decay,
                                    warmup_steps=min(train.warmup_steps, steps // 3),
                                    checkpoint_interval=min(train.checkpoint_interval, steps))
    cfg = RunConfig(model=cfg.model, data=cfg.data, train=dataclasses.replace(train, out_dir=str(out_dir)))
    cfg.validate(str(out_dir))
    return cfg


@dataclass
class TrainedModel:
    """One model of the comparison: where its weights are and how it was trained."""

    name: str
    label: str
    checkpoint: Path
    train_seconds: float | None = None  # None for given checkpoints
    info: dict[str, Any] = field(default_factory=dict)
    model: str = ""  # the variant (``name`` without its seed); empty: ``name``
    seed: int | None = None  # training seed when the comparison trains several

    def __post_init__(self) -> None:
        self.model = self.model or self.name


def training_units(model: str, seeds: Sequence[int] | None) -> list[tuple[str, int | None]]:
    """``(run name, training seed)`` of each run of ``model``: the model's name with the preset's seed, or
    ``<model>-seed<k>`` per seed of ``seeds``."""
    return [(model, None)] if seeds is None else [(f"{model}-seed{s}", s) for s in seeds]


def seeded(cfg: RunConfig, seed: int | None) -> RunConfig:
    """``cfg`` with training seed ``seed`` (initial weights, training clips and draws); ``None`` keeps it."""
    if seed is None:
        return cfg
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed))


def train_with_budget(cfg: RunConfig, seconds: float | None, progress: bool) -> tuple[Path, float]:
    """Train (or resume an interrupted run, or reuse a finished one with the same configuration in
    ``cfg.train.out_dir``); stop after ``seconds`` of wall-clock time if given. Returns the checkpoint to evaluate
    (``best.pt``, else ``last.pt``) and the training seconds, summed over sessions."""
    out_dir = Path(cfg.train.out_dir)
    done, spent_file = out_dir / "compare_train.json", out_dir / "compare_seconds.txt"
    if done.exists():
        finished = json.loads(done.read_text())
        if not _same_config(finished.get("config"), cfg) or finished.get("seconds_budget") != seconds:
            raise ConfigError(f"{out_dir}: holds a finished run with another configuration or budget; choose "
                              f"another --out-dir or delete it")
        print(f"compare: reusing the finished run in {out_dir}")
        return _checkpoint_of(out_dir), float(finished["seconds"])
    spent = float(spent_file.read_text()) if spent_file.exists() else 0.0
    resume = CheckpointManager(out_dir / "checkpoints").latest_good() is not None
    trainer = Trainer(cfg, resume=resume, progress=progress)
    timed_out = threading.Event()

    def stop() -> None:
        # Wall-clock budget: the trainer stops cleanly (checkpoint saved), as on SIGTERM.
        timed_out.set()
        trainer.request_stop()

    timer = None
    if seconds is not None:
        timer = threading.Timer(max(0.0, seconds - spent), stop)
        timer.daemon = True
        timer.start()
    start = time.perf_counter()
    try:
        trainer.fit()
    finally:
        if timer is not None:
            timer.cancel()
        spent += time.perf_counter() - start
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(spent_file, f"{spent:.3f}\n")
    if trainer.stopped_early and not timed_out.is_set():
        raise KeyboardInterrupt  # stopped by the user: not finished; rerunning the command resumes it
    atomic_write_text(done, json.dumps({"seconds": spent, "seconds_budget": seconds, "config": cfg.to_dict()})
                      + "\n")
    return _checkpoint_of(out_dir), spent


def _same_config(saved: Any, cfg: RunConfig) -> bool:
    """Whether a run's saved configuration is ``cfg``, compared as configurations (read by the current code, so
    that a field added with its default since the run does not make a finished run unusable) and wherever the run
    folder is now (moved, or reached through a link from another comparison's folder)."""
    try:
        run = RunConfig.from_dict(saved, "compare_train.json")
    except (ConfigError, TypeError, ValueError):
        return False
    return dataclasses.replace(run, train=dataclasses.replace(run.train, out_dir=cfg.train.out_dir)) == cfg


def _checkpoint_of(run_dir: Path) -> Path:
    for name in ("best.pt", "last.pt"):
        if (run_dir / name).exists():
            return run_dir / name
    raise ConfigError(f"{run_dir}: no best.pt or last.pt after training")


def generation_speeds(models: dict[str, torch.nn.Module], sequences: np.ndarray, cond_frames: int, horizon: int,
                      batch: int, samples: int, repeats: int = 3) -> dict[str, float]:
    """Predicted frames per second of ``condition`` + ``sample_futures`` on ``batch`` test sequences x ``samples``
    futures, per model: median of ``repeats`` timed calls after one warm-up, the models' calls interleaved so that
    a change of load on a shared machine affects all of them alike."""
    x_cond = to_float(torch.from_numpy(np.ascontiguousarray(sequences[:batch, :cond_frames])))
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for r in range(repeats + 1):
            for name, model in models.items():
                model.eval()
                device = next(model.parameters()).device
                x = x_cond.to(device)
                sync = torch.cuda.synchronize if device.type == "cuda" else (lambda *_: None)
                sync(device)
                start = time.perf_counter()
                model.sample_futures(model.condition(x), horizon, samples)
                sync(device)
                if r:
                    times[name].append(time.perf_counter() - start)
    return {name: x_cond.shape[0] * samples * horizon / statistics.median(t) for name, t in times.items()}


def run_comparison(base_name: str, out_dir: str | Path, models: Sequence[str] = DEFAULT_MODELS,
                   checkpoints: dict[str, str] | None = None, steps: int | None = None,
                   seconds: float | None = None, n_samples: int = 20, test_sequences: int | None = None,
                   precision: str = "fp32", device: str = "cpu", seed: int = 0, cost_batch: int = 16,
                   cost_samples: int = 10, progress: bool = True, command: str = "", note: str = "",
                   seeds: Sequence[int] | None = None, train_only: bool = False,
                   test_dts: Sequence[StepSize | float] | None = None) -> dict:
    """Train (or load) every model, evaluate them identically and write the comparison files; returns the summary
    that ``comparison.json`` holds.

    ``seeds``: train each model once per seed (the table's intervals then include the spread between seeds);
    ``test_dts``: also evaluate the models whose transition is an Euler step at these step sizes (Δt table);
    ``train_only``: stop after training (returns ``{"trained": [...]}``)."""
    if base_name not in PRESETS:
        raise ConfigError(f"unknown preset {base_name!r}; choose one of {', '.join(PRESETS)}")
    checkpoints = dict(checkpoints or {})
    names = list(dict.fromkeys([*models, *checkpoints]))
    for name in names:
        if name not in VARIANTS and name not in checkpoints:
            raise ConfigError(f"unknown model {name!r}; choose among {', '.join(VARIANTS)} or give --checkpoint "
                              f"{name}=PATH")
    if seconds is not None and seconds <= 0:
        raise ConfigError(f"--seconds={seconds} must be positive")
    out = Path(out_dir)
    base = preset(base_name)
    if seeds is not None and (not seeds or len(set(seeds)) != len(seeds)):
        raise ConfigError(f"--seeds {','.join(map(str, seeds))}: give distinct training seeds")
    configs = {unit: apply_budget(seeded(variant_config(base_name, n), s), steps, out / "runs" / unit)
               for n in names if n not in checkpoints for unit, s in training_units(n, seeds)}
    for name, path in checkpoints.items():
        if not Path(path).is_file():
            raise ConfigError(f"{path}: checkpoint file of model {name!r} not found")
    test = load_test_set(base.data)
    if test_sequences is not None:
        test = test[:test_sequences]
    cond, horizon = base.data.cond_frames, test.shape[1] - base.data.cond_frames
    extra_steps = [StepSize.of(d) for d in test_dts] if test_dts else []

    trained: list[TrainedModel] = []
    for name in names:
        label = VARIANTS[name][0] if name in VARIANTS else name
        if name in checkpoints:
            trained.append(TrainedModel(name, label, Path(checkpoints[name])))
            continue
        for unit, train_seed in training_units(name, seeds):
            print(f"compare: training {label} ({unit}) in {configs[unit].train.out_dir}")
            ckpt, elapsed = train_with_budget(configs[unit], seconds, progress)
            trained.append(TrainedModel(unit, label, ckpt, elapsed, model=name, seed=train_seed))
    if train_only:
        return {"trained": [dataclasses.asdict(tm) | {"checkpoint": str(tm.checkpoint)} for tm in trained]}

    results: dict[str, EvalResult] = {}
    first_of_model: dict[str, torch.nn.Module] = {}
    test_key = hashlib.sha256(np.ascontiguousarray(test).tobytes()).hexdigest()
    for tm in trained:
        loaded = load_checkpoint(tm.checkpoint, map_location=device)
        model, data_cfg = loaded.model, loaded.config.data
        if data_cfg.dataset != base.data.dataset:
            raise ConfigError(f"{tm.checkpoint}: trained on {data_cfg.dataset!r}, but the comparison uses "
                              f"{base.data.dataset!r} (preset {base_name})")
        train_step = model.step_size()
        test_steps = [train_step, *(s for s in extra_steps if s != train_step)] if model.supports_dt \
            else [train_step]
        settings = {"checkpoint_sha256": sha256_file(tm.checkpoint), "test_sequences_sha256": test_key,
                    "cond_frames": cond, "n_samples": n_samples, "dts": [s.dt for s in test_steps],
                    "precision": precision, "seed": seed, "device": str(device)}
        tm.info = {"steps": loaded.step, "model": loaded.config.model.model,
                   "parameters": sum(p.numel() for p in model.parameters())}
        results[tm.name] = evaluate_once(model, tm, test, settings, out / "eval" / tm.name, base.data.seq_len,
                                         progress)
        first_of_model.setdefault(tm.model, model)
    speeds = generation_speeds(first_of_model, test, cond, horizon, min(cost_batch, len(test)), cost_samples)
    groups = group_runs(trained)
    records = [model_record(runs, results, speeds[model]) for model, runs in groups.items()]
    first = results[trained[0].name]
    baselines = {s["name"]: s["metrics"] for s in first.summary()["settings"] if s["dt"] is None}
    reference = next(iter(groups))
    summary = {
        "preset": base_name, "dataset": base.data.dataset, "n_sequences": int(len(test)), "cond_frames": cond,
        "horizon": horizon, "n_samples": n_samples, "seed": seed, "precision": precision,
        "budget": {"steps": steps, "seconds": seconds, "batch_size": base.train.batch_size},
        "training_seeds": list(seeds) if seeds is not None else None, "test_dts": [s.dt for s in extra_steps],
        "cost": {"batch": min(cost_batch, len(test)), "samples": cost_samples},
        "machine": machine_description(), "command": command, "note": note, "train_seq_len": base.data.seq_len,
        "models": records, "baselines": baselines, "paired_reference": reference,
        "paired": paired_differences({m: group_scores(runs, results) for m, runs in groups.items()}, reference),
    }
    curves = model_curves(groups, results)
    atomic_write_text(out / "comparison.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / "comparison.md", comparison_markdown(summary))
    atomic_write_text(out / "per_step.csv", per_step_csv(curves, cond, first_column="model"))
    atomic_write_bytes(out / "per_step.png", curves_figure(curves, cond, base.data.seq_len))
    save_samples_figure(out / "samples.png", {groups[m][0].label: first_of_model[m] for m in groups}, test, cond,
                        n_samples=min(n_samples, 100), seed=seed, device=device)
    return summary


def evaluate_once(model: torch.nn.Module, tm: TrainedModel, test: np.ndarray, settings: dict[str, Any],
                  out_dir: Path, train_seq_len: int, progress: bool) -> EvalResult:
    """The evaluation of ``tm`` on ``test`` with ``settings``, computed and written to ``out_dir`` (its report,
    ``scores.npz`` and ``compare_eval.json``, whole or not at all: :func:`srvp.files.staged_output_dir`), or read
    back when ``out_dir`` already holds one for the same checkpoint, test sequences and settings: rerunning a
    comparison does not evaluate twice."""
    key_file = out_dir / "compare_eval.json"
    if key_file.exists() and (out_dir / "scores.npz").exists():
        try:
            if json.loads(key_file.read_text()) == settings:
                print(f"compare: reusing the evaluation in {out_dir}")
                return read_scores(out_dir / "scores.npz")
        except (ValueError, DataError):
            pass  # unreadable: evaluated again and overwritten
    print(f"compare: evaluating {tm.label} ({tm.name}) on {len(test)} test sequences, best of "
          f"{settings['n_samples']}, dt {', '.join(StepSize.from_dt(d).label for d in settings['dts'])}")
    protocol = EvalSettings(n_samples=settings["n_samples"], dts=settings["dts"], metrics=COMPARED,
                            precision=settings["precision"], seed=settings["seed"], elbo=False)
    result = evaluate_model(model, test, settings["cond_frames"], protocol, device=settings["device"],
                            progress=progress, meta={"model": tm.name, "checkpoint": str(tm.checkpoint)})
    # the report and its key written aside and renamed into place: a kill leaves the earlier evaluation or this one,
    # never a part (the key, which says the report is complete, last)
    with staged_output_dir(out_dir, key_file.name, "--out-dir", earlier_evaluation) as stage:
        write_report(result, stage, train_seq_len=train_seq_len)
        atomic_write_text(stage / key_file.name, json.dumps(settings, indent=2) + "\n")
    return result


def earlier_evaluation(folder: Path) -> tuple[str, ...] | None:
    """The files of an earlier evaluation of :func:`evaluate_once` in ``folder`` (its report and key), which a new
    one replaces; None if its key is not one."""
    return REPORT_FILES if read_json_marker(folder / "compare_eval.json") is not None else None


def group_runs(trained: Sequence[TrainedModel]) -> dict[str, list[TrainedModel]]:
    """The runs of each model (one per training seed), in the order given."""
    groups: dict[str, list[TrainedModel]] = {}
    for tm in trained:
        groups.setdefault(tm.model, []).append(tm)
    return groups


def group_scores(runs: Sequence[TrainedModel], results: dict[str, EvalResult], setting: int = 0
                 ) -> dict[str, dict[str, np.ndarray]]:
    """``{metric: {"best" | "random": (S, N)}}``: per-sequence scores of each of the ``S`` runs of a model."""
    per_run = [per_sequence_scores(results[tm.name], setting) for tm in runs]
    return {m: {k: np.stack([p[m][k] for p in per_run]) for k in ("best", "random")} for m in COMPARED}


def seed_interval(values: np.ndarray) -> dict[str, Any]:
    """Mean and 95% interval of a model's score from ``values`` ``(S, N)`` (``S`` training seeds, ``N`` test
    sequences; ``(N,)`` is one seed).

    The estimate is the mean over seeds and sequences. Its variance has two parts: the test sequences' (variance
    over sequences of the seed-averaged scores, / N, with ddof 0 as the paper's intervals) and the training
    noise (variance between the seeds' means, ddof 1, / S; zero with one seed, where the interval is the paper's
    1.96 std / sqrt(N)). With few seeds the second part is itself a rough estimate."""
    a = np.atleast_2d(np.asarray(values, dtype=np.float64))
    n_seeds, n = a.shape
    per_sequence = a.mean(axis=0)
    var_sequences = per_sequence.var() / n
    var_seeds = a.mean(axis=1).var(ddof=1) / n_seeds if n_seeds > 1 else 0.0
    return {"mean": float(per_sequence.mean()), "ci95": float(1.96 * np.sqrt(var_sequences + var_seeds)),
            "ci95_sequences": float(1.96 * np.sqrt(var_sequences)), "seeds": [float(v) for v in a.mean(axis=1)]}


def model_record(runs: Sequence[TrainedModel], results: dict[str, EvalResult], speed: float) -> dict[str, Any]:
    """A model's row of the table: scores over its runs (:func:`seed_interval`), training cost, and its scores
    at each test step size."""
    first = runs[0]
    scores = group_scores(runs, results)
    record: dict[str, Any] = {
        "name": first.model, "label": first.label, "runs": [tm.name for tm in runs],
        "seeds": [tm.seed for tm in runs], "checkpoints": [str(tm.checkpoint) for tm in runs],
        "checkpoint": str(first.checkpoint), "steps": first.info["steps"],
        "train_seconds": None if first.train_seconds is None else
        float(np.mean([tm.train_seconds or 0.0 for tm in runs])),
        "parameters": first.info["parameters"], "model": first.info["model"], "frames_per_second": speed,
    }
    for m in COMPARED:
        record[m] = {k: seed_interval(scores[m][k]) for k in ("best", "random")}
    settings = [s for s in results[first.name].settings if s.step is not None]
    if len(settings) > 1:
        record["dts"] = {}
        for i, s in enumerate(settings):
            sc = group_scores(runs, results, i)
            record["dts"][s.step.label] = {m: {k: seed_interval(sc[m][k]) for k in ("best", "random")}
                                           for m in COMPARED}
    return record


def per_sequence_scores(result: EvalResult, setting: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """``{metric: {"best": (N,), "random": (N,)}}`` of the model at its ``setting``-th test dt in an evaluation
    result; "random" is the mean over the kept random samples, as in the result's summary."""
    s = result.settings[setting]
    return {m: {"best": np.asarray(s.best[m]), "random": np.asarray(s.random[m]).reshape(len(s.best[m]), -1)
                .mean(axis=1)} for m in COMPARED}


def paired_differences(scores: dict[str, dict[str, dict[str, np.ndarray]]], reference: str) -> dict[str, Any]:
    """Per model, the mean and 95% interval of its per-sequence score minus the reference model's on the same test
    sequences (paired, hence far tighter than comparing two intervals): ``{name: {metric: {kind: {mean, ci95}}}}``.

    Scores are ``(N,)`` or ``(S, N)`` (``S`` training seeds): the difference of the seed-averaged scores, whose
    variance adds both models' variance between seeds (/ S) to the sequences' (see :func:`seed_interval`)."""
    out = {}
    ref = scores[reference]
    for name, sc in scores.items():
        if name == reference:
            continue
        out[name] = {}
        for m, kinds in sc.items():
            out[name][m] = {}
            for kind, values in kinds.items():
                a, r = np.atleast_2d(values), np.atleast_2d(ref[m][kind])
                d = a.mean(axis=0) - r.mean(axis=0)
                var = d.var() / len(d) + sum(x.mean(axis=1).var(ddof=1) / len(x) for x in (a, r) if len(x) > 1)
                out[name][m][kind] = {"mean": float(d.mean()), "ci95": float(1.96 * np.sqrt(var))}
    return out


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
