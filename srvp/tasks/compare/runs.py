"""The runs of a comparison: each model trained (or resumed, or reused) under its budget, or given as a checkpoint;
each evaluated once with the paper's protocol (read back when a rerun finds the same evaluation); and the cost of
generation measured side by side."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srvp.config import RunConfig, StepSize
from srvp.data import to_float
from srvp.errors import ConfigError, DataError
from srvp.evaluation import EvalResult, EvalSettings, evaluate_model, read_scores, write_report
from srvp.evaluation.report import REPORT_FILES
from srvp.files import atomic_write_text, read_json_marker, sha256_file, staged_output_dir
from srvp.tasks.compare.settings import COMPARED, CompareSettings
from srvp.tasks.compare.variants import VARIANTS, apply_budget, seeded, training_units, variant_config
from srvp.training.checkpoint import CheckpointManager, load_checkpoint
from srvp.training.trainer import Trainer


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


def run_configs(settings: CompareSettings) -> dict[str, RunConfig]:
    """The configuration of every training run (``runs/<run>``): each variant to train, with each training seed,
    under the comparison's budget of steps."""
    return {unit: apply_budget(seeded(variant_config(settings.preset, name, settings.overrides), seed), settings.steps,
                               settings.out / "runs" / unit)
            for name in settings.names if name not in settings.checkpoints
            for unit, seed in training_units(name, settings.seeds)}


def train_runs(settings: CompareSettings, configs: dict[str, RunConfig]) -> list[TrainedModel]:
    """Every model of the comparison with its weights: the given checkpoints as they are, the others trained (or
    resumed, or reused) with ``configs`` (:func:`run_configs`) under the wall-clock budget, in the order given."""
    trained: list[TrainedModel] = []
    for name in settings.names:
        label = VARIANTS[name][0] if name in VARIANTS else name
        if name in settings.checkpoints:
            trained.append(TrainedModel(name, label, Path(settings.checkpoints[name])))
            continue
        for unit, train_seed in training_units(name, settings.seeds):
            print(f"compare: training {label} ({unit}) in {configs[unit].train.out_dir}")
            ckpt, elapsed = train_with_budget(configs[unit], settings.seconds, settings.progress)
            trained.append(TrainedModel(unit, label, ckpt, elapsed, model=name, seed=train_seed))
    return trained


def evaluate_runs(settings: CompareSettings, trained: list[TrainedModel], test: np.ndarray, base: RunConfig
                  ) -> tuple[dict[str, EvalResult], dict[str, torch.nn.Module]]:
    """Each run evaluated on ``test`` (:func:`evaluate_once`; its ``info`` filled in), at the training step and, for
    models with an Euler step, at the comparison's test step sizes. Returns the results by run and the first run's
    model of each variant."""
    results: dict[str, EvalResult] = {}
    first_of_model: dict[str, torch.nn.Module] = {}
    test_key = hashlib.sha256(np.ascontiguousarray(test).tobytes()).hexdigest()
    for tm in trained:
        loaded = load_checkpoint(tm.checkpoint, map_location=settings.device)
        model, data_cfg = loaded.model, loaded.config.data
        if data_cfg.dataset != base.data.dataset:
            raise ConfigError(f"{tm.checkpoint}: trained on {data_cfg.dataset!r}, but the comparison uses "
                              f"{base.data.dataset!r} (preset {settings.preset})")
        train_step = model.step_size()
        test_steps = [train_step, *(s for s in settings.test_dts if s != train_step)] if model.supports_dt \
            else [train_step]
        key = {"checkpoint_sha256": sha256_file(tm.checkpoint), "test_sequences_sha256": test_key,
               "cond_frames": base.data.cond_frames, "n_samples": settings.n_samples,
               "dts": [s.dt for s in test_steps], "precision": settings.precision, "seed": settings.seed,
               "device": str(settings.device)}
        tm.info = {"steps": loaded.step, "model": loaded.config.model.model,
                   "parameters": sum(p.numel() for p in model.parameters())}
        results[tm.name] = evaluate_once(model, tm, test, key, settings.out / "eval" / tm.name, base.data.seq_len,
                                         settings.progress)
        first_of_model.setdefault(tm.model, model)
    return results, first_of_model


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
