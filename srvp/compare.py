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

import csv
import dataclasses
import io
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

from srvp.config import PRESETS, ModelConfig, RunConfig, preset
from srvp.errors import ConfigError

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
    from srvp.training.checkpoint import CheckpointManager, atomic_write_text
    from srvp.training.trainer import Trainer

    out_dir = Path(cfg.train.out_dir)
    done, spent_file = out_dir / "compare_train.json", out_dir / "compare_seconds.txt"
    if done.exists():
        finished = json.loads(done.read_text())
        if finished.get("config") != cfg.to_dict() or finished.get("seconds_budget") != seconds:
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
    from srvp.data import to_float

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
                   seeds: Sequence[int] | None = None, train_only: bool = False) -> dict:
    """Train (or load) every model, evaluate them identically and write the comparison files; returns the summary
    that ``comparison.json`` holds."""
    from srvp.data import load_test_set
    from srvp.evaluation import evaluate_model, write_report
    from srvp.training.checkpoint import load_model

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
    configs = {unit: apply_budget(seeded(variant_config(base_name, n), seed), steps, out / "runs" / unit)
               for n in names if n not in checkpoints for unit, seed in training_units(n, seeds)}
    for name, path in checkpoints.items():
        if not Path(path).is_file():
            raise ConfigError(f"{path}: checkpoint file of model {name!r} not found")
    test = load_test_set(base.data)
    if test_sequences is not None:
        test = test[:test_sequences]
    cond, horizon = base.data.cond_frames, test.shape[1] - base.data.cond_frames

    trained: list[TrainedModel] = []
    for name in names:
        label = VARIANTS[name][0] if name in VARIANTS else name
        if name in checkpoints:
            trained.append(TrainedModel(name, label, Path(checkpoints[name])))
            continue
        for unit, seed in training_units(name, seeds):
            print(f"compare: training {label} ({unit}) in {configs[unit].train.out_dir}")
            ckpt, elapsed = train_with_budget(configs[unit], seconds, progress)
            trained.append(TrainedModel(unit, label, ckpt, elapsed, model=name, seed=seed))
    if train_only:
        return {"trained": [dataclasses.asdict(tm) | {"checkpoint": str(tm.checkpoint)} for tm in trained]}

    records = []
    results = {}
    loaded: dict[str, torch.nn.Module] = {}
    for tm in trained:
        model = load_model(tm.checkpoint, map_location=device)
        data_cfg = model.run_config.data
        if data_cfg.dataset != base.data.dataset:
            raise ConfigError(f"{tm.checkpoint}: trained on {data_cfg.dataset!r}, but the comparison uses "
                              f"{base.data.dataset!r} (preset {base_name})")
        print(f"compare: evaluating {tm.label} on {len(test)} test sequences, best of {n_samples}")
        result = evaluate_model(model, test, cond, n_samples=n_samples, metrics=("psnr", "ssim"),
                                precision=precision, device=device, seed=seed, progress=progress, elbo=False,
                                meta={"model": tm.name, "checkpoint": str(tm.checkpoint)})
        write_report(result, out / "eval" / tm.name, train_seq_len=base.data.seq_len)
        results[tm.name] = result
        loaded[tm.name] = model
        summary = result.summary()
        model_entry = summary["settings"][0]["metrics"]
        records.append({
            "name": tm.name, "label": tm.label, "checkpoint": str(tm.checkpoint),
            "steps": int(getattr(model, "checkpoint_step", 0)), "train_seconds": tm.train_seconds,
            "parameters": sum(p.numel() for p in model.parameters()),
            "model": model.run_config.model.model,
            "psnr": model_entry["psnr"], "ssim": model_entry["ssim"],
        })
    speeds = generation_speeds(loaded, test, cond, horizon, min(cost_batch, len(test)), cost_samples)
    for record in records:
        record["frames_per_second"] = speeds[record["name"]]
    baselines = {s["name"]: s["metrics"] for s in next(iter(results.values())).summary()["settings"][1:]}
    summary = {
        "preset": base_name, "dataset": base.data.dataset, "n_sequences": int(len(test)), "cond_frames": cond,
        "horizon": horizon, "n_samples": n_samples, "seed": seed, "precision": precision,
        "budget": {"steps": steps, "seconds": seconds, "batch_size": base.train.batch_size},
        "cost": {"batch": min(cost_batch, len(test)), "samples": cost_samples},
        "machine": machine_description(), "command": command, "note": note, "train_seq_len": base.data.seq_len,
        "models": records, "baselines": baselines, "paired_reference": trained[0].name,
        "paired": paired_differences({tm.name: per_sequence_scores(results[tm.name]) for tm in trained},
                                     trained[0].name),
    }
    from srvp.training.checkpoint import atomic_write_bytes, atomic_write_text

    atomic_write_text(out / "comparison.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / "comparison.md", comparison_markdown(summary))
    atomic_write_text(out / "per_step.csv", per_step_csv(results, trained))
    atomic_write_bytes(out / "per_step.png", per_step_figure(results, trained, base.data.seq_len))
    return summary


def per_sequence_scores(result: Any) -> dict[str, dict[str, np.ndarray]]:
    """``{metric: {"best": (N,), "random": (N,)}}`` of the model (its first test dt) in an evaluation result; "random"
    is the mean over the kept random samples, as in the result's summary."""
    s = result.settings[0]
    return {m: {"best": np.asarray(s.best[m]), "random": np.asarray(s.random[m]).reshape(len(s.best[m]), -1)
                .mean(axis=1)} for m in ("psnr", "ssim")}


def paired_differences(scores: dict[str, dict[str, dict[str, np.ndarray]]], reference: str) -> dict[str, Any]:
    """Per model, the mean and 95% interval of its per-sequence score minus the reference model's on the same test
    sequences (paired, hence far tighter than comparing two intervals): ``{name: {metric: {kind: {mean, ci95}}}}``."""
    from srvp.evaluation.metrics import confidence_interval

    out = {}
    ref = scores[reference]
    for name, sc in scores.items():
        if name == reference:
            continue
        out[name] = {}
        for m, kinds in sc.items():
            out[name][m] = {}
            for kind, values in kinds.items():
                mean, ci = confidence_interval(values - ref[m][kind])
                out[name][m][kind] = {"mean": float(mean), "ci95": float(ci)}
    return out


def machine_description() -> str:
    return (f"{platform.machine()} {platform.processor() or ''}".strip() + f", {os.cpu_count()} CPUs, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")


def _best_marks(records: list[dict[str, Any]], metric: str, kind: str) -> set[str]:
    """Names whose mean lies within the 95% interval of the best mean (the paper's bold convention)."""
    best = max(records, key=lambda r: r[metric][kind]["mean"])
    low = best[metric][kind]["mean"] - best[metric][kind]["ci95"]
    return {r["name"] for r in records if r[metric][kind]["mean"] >= low}


def comparison_markdown(summary: dict[str, Any]) -> str:
    """The comparison table (best of N and one random sample, mean ± 95% interval), with its settings."""
    records = summary["models"]
    digits = {"psnr": 2, "ssim": 4}

    def cell(r: dict[str, Any], metric: str, kind: str, marks: set[str]) -> str:
        a = r[metric][kind]
        text = f"{a['mean']:.{digits[metric]}f} ± {a['ci95']:.{digits[metric]}f}"
        return f"**{text}**" if r["name"] in marks else text

    n = summary["n_samples"]
    cols = [("psnr", "best"), ("ssim", "best"), ("psnr", "random"), ("ssim", "random")]
    marks = {c: _best_marks(records, *c) for c in cols}
    lines = [f"| Model | checkpoint step | training (s) | parameters | PSNR best of {n} | SSIM best of {n} "
             f"| PSNR random sample | SSIM random sample | predicted frames/s |",
             "|---|---:|---:|---:|---|---|---|---|---:|"]
    for r in records:
        secs = "given" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}"
        lines.append(f"| {r['label']} | {r['steps']} | {secs} | {r['parameters'] / 1e6:.2f} M | "
                     + " | ".join(cell(r, m, k, marks[(m, k)]) for m, k in cols)
                     + f" | {r['frames_per_second']:.0f} |")
    for name, metrics in summary["baselines"].items():
        vals = [f"{metrics[m]['best']['mean']:.{digits[m]}f} ± {metrics[m]['best']['ci95']:.{digits[m]}f}"
                for m in ("psnr", "ssim")]
        lines.append(f"| baseline: {name} | | | | {vals[0]} | {vals[1]} | {vals[0]} | {vals[1]} | |")
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
        *_paired_table(summary),
        "![per-step PSNR and SSIM](per_step.png)", "",
        f"Machine: {summary['machine']}.", "",
    ]
    if summary.get("note"):
        out += [summary["note"], ""]
    if summary.get("command"):
        out += ["Command:", "", "```", summary["command"], "```", ""]
    return "\n".join(out)


def _paired_table(summary: dict[str, Any]) -> list[str]:
    """Markdown lines: each model's paired difference to the reference model (empty without one)."""
    paired, ref = summary.get("paired"), summary.get("paired_reference")
    if not paired:
        return []
    labels = {r["name"]: r["label"] for r in summary["models"]}
    n = summary["n_samples"]
    lines = [f"Paired differences to {labels.get(ref, ref)} on the same test sequences (model minus reference, "
             f"mean ± 95% interval; an interval that excludes 0 is a difference this test set resolves):", "",
             f"| Model | ΔPSNR best of {n} | ΔSSIM best of {n} | ΔPSNR random sample | ΔSSIM random sample |",
             "|---|---|---|---|---|"]
    for name, d in paired.items():
        cells = []
        for m, kind in (("psnr", "best"), ("ssim", "best"), ("psnr", "random"), ("ssim", "random")):
            a, digits = d[m][kind], 2 if m == "psnr" else 4
            cells.append(f"{a['mean']:+.{digits}f} ± {a['ci95']:.{digits}f}")
        lines.append(f"| {labels.get(name, name)} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def per_step_csv(results: dict[str, Any], trained: list[TrainedModel]) -> str:
    """Rows ``model, metric, t, mean, ci95`` of the best samples' per-frame scores (baselines included)."""
    from srvp.evaluation.metrics import confidence_interval

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["model", "metric", "t", "mean", "ci95"])
    for label, result, setting in _curves(results, trained):
        for m in ("psnr", "ssim"):
            mean, ci = confidence_interval(setting.best_curves[m])
            for k in range(result.horizon):
                w.writerow([label, m, result.cond_frames + 1 + k, f"{mean[k]:.6g}", f"{ci[k]:.6g}"])
    return buf.getvalue()


def _curves(results: dict[str, Any], trained: list[TrainedModel]):
    """(label, result, setting) for every model (its first test dt), then the baselines of the first result."""
    first = None
    for tm in trained:
        result = results[tm.name]
        first = first or result
        yield tm.label, result, result.settings[0]
    for s in first.settings:
        if s.dt is None:
            yield f"baseline: {s.name}", first, s


def per_step_figure(results: dict[str, Any], trained: list[TrainedModel], train_seq_len: int) -> bytes:
    """PNG: PSNR and SSIM of the best samples against t, one line per model with its 95% band (figure 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from srvp.evaluation.metrics import confidence_interval

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, m, title in zip(axes, ("psnr", "ssim"), ("PSNR (best sample) ↑", "SSIM (best sample) ↑")):
        for label, result, s in _curves(results, trained):
            t = np.arange(result.cond_frames + 1, result.cond_frames + result.horizon + 1)
            mean, ci = confidence_interval(s.best_curves[m])
            baseline = s.dt is None
            style = (":" if s.name == "blank" else "-.") if baseline else "-"
            (line,) = ax.plot(t, mean, style, label=label, linewidth=1.6, color="grey" if baseline else None)
            ax.fill_between(t, mean - ci, mean + ci, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.axvline(train_seq_len, color="black", linewidth=0.8)
        ax.set_xlabel("t")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()
