"""The paper's evaluation of a model on its test set (``srvp evaluate``), as a task.

An :class:`EvaluateRequest` holds what is asked (checked when it is made). Within a :func:`session` (the device, and
the process group under ``torchrun``), :func:`prepare` loads the model and the test sequences and refuses, before any
work, what this evaluation cannot do (:meth:`srvp.evaluation.protocol.EvalSettings.check_test_set`: frame shape,
sequence length, LPIPS frame size, FVD length; an output folder that cannot be written); :func:`evaluate` runs the
protocol and :func:`write` writes the report into the output folder whole or not at all. The front end prints what
:func:`prepare` found (:attr:`Evaluation.skipped`, :meth:`Evaluation.description`) before the hours the evaluation may
take, then the table.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from srvp.config import DataConfig, RunConfig, StepSize, distinct_steps
from srvp.data import load_test_set
from srvp.data.npz import load_sequences_npz
from srvp.data.videos import open_split
from srvp.errors import ConfigError, SrvpError
from srvp.evaluation import EvalResult, EvalSettings, evaluate_model, write_report
from srvp.evaluation.metrics import METRICS
from srvp.evaluation.protocol import load_metric_networks
from srvp.evaluation.report import REPORT_FILES
from srvp.files import read_json_marker, replaceable_names, staged_output_dir
from srvp.models.base import VideoPredictor
from srvp.pretrained import PaperProtocol, load_pretrained, paper_protocol
from srvp.runtime import init_distributed, resolve_device, tune_glibc_malloc


@dataclass(frozen=True)
class EvaluateRequest:
    """What ``srvp evaluate`` is asked to do; ``None``: the model's, its test set's or the paper's protocol's."""

    checkpoint: str
    """The model: a name, a folder, a checkpoint or a Hub id (:func:`srvp.pretrained.load_pretrained`)."""
    test_set: str | None = None
    """Test sequences in the official ``.npz`` layout (None: the model's test set)."""
    test_set_layout: str | None = None
    """How ``test_set`` stores its sequences, when the file does not say."""
    data_dir: str | None = None
    """Dataset directory (None: the model's ``data_dir``)."""
    samples: int | None = None
    """Futures drawn per sequence (None: the paper's protocol of the model, else 100)."""
    dts: Sequence[StepSize] | None = None
    """Test step sizes (None: the training step)."""
    metrics: Sequence[str] = ("psnr", "ssim")
    out: str | None = None
    """Output folder (None: ``eval_<checkpoint name>`` next to the checkpoint)."""
    precision: str = "fp32"
    batch_size: int | None = None
    max_sequences: int | None = None
    cond_frames: int | None = None
    horizon: int | None = None
    seed: int = EvalSettings.seed
    device: str = "auto"
    elbo: bool = True
    missing_weights: str = "error"
    """When a weight file of LPIPS or FVD is missing: ``error`` or ``skip`` that metric."""
    weights: dict[str, str | None] = dataclasses.field(default_factory=dict)
    """Weight files of the metric networks (``alexnet``, ``lpips``, ``i3d``; None: the default locations)."""
    fvd_batch_size: int = 8
    progress: bool = True

    def __post_init__(self) -> None:
        if self.dts is not None:
            object.__setattr__(self, "dts", tuple(distinct_steps([StepSize.of(d) for d in self.dts])))
        object.__setattr__(self, "metrics", tuple(self.metrics))
        if self.test_set_layout and not self.test_set:
            raise ConfigError("--test-set-layout says how a --test-set file is laid out; give --test-set too")
        if self.precision == "fp16" and self.device == "cpu":
            raise ConfigError("--precision fp16 needs a GPU; use bf16 on CPU")

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path(self.checkpoint).parent / f"eval_{Path(self.checkpoint).stem}"


@dataclass(frozen=True)
class Session:
    """Where an evaluation runs: the device, and this process's rank among ``world`` (1 outside ``torchrun``)."""

    device: torch.device
    rank: int
    world: int


@contextlib.contextmanager
def session(device: str) -> Iterator[Session]:
    """The device (an unavailable one is a one-line error) and, under ``torchrun``, the process group, left at the
    end."""
    resolved = resolve_device(device)
    tune_glibc_malloc()  # the sampling passes allocate the same large buffers again and again, as training does
    rank, world = init_distributed(resolved)
    try:
        yield Session(resolved, rank, world)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


@dataclass(frozen=True)
class Evaluation:
    """A checked evaluation, ready to run: the model, the test sequences and the protocol's settings."""

    request: EvaluateRequest
    model: VideoPredictor
    config: RunConfig
    sequences: np.ndarray
    """uint8 ``(N, T, C, H, W)``."""
    source: str
    """The test set, as messages and the report name it."""
    cond_frames: int
    settings: EvalSettings
    """The protocol, with the metrics that run (a skipped one removed) and the horizon."""
    networks: dict[str, torch.nn.Module]
    skipped: dict[str, str]
    """Metrics skipped for a missing weight file, with the reason."""
    paper: PaperProtocol | None
    meta: dict[str, Any]

    def description(self) -> str:
        """Which protocol runs: ``N sequences of SOURCE, K conditioning -> H predicted frames, best of S samples``."""
        horizon, samples, paper = self.settings.horizon, self.settings.n_samples, self.paper
        matches = paper is not None and (paper.cond_frames, paper.predicted) == (self.cond_frames, horizon)
        return (f"{len(self.sequences)} sequences of {self.source}, {self.cond_frames} conditioning -> {horizon} "
                f"predicted frames, best of {samples} samples"
                + (f" (the paper's {paper.dataset} protocol)" if matches else ""))


def _load_sequences(request: EvaluateRequest, data_cfg: DataConfig) -> tuple[np.ndarray, str]:
    if request.test_set is not None:
        sequences, source = load_sequences_npz(request.test_set, request.test_set_layout), str(request.test_set)
    else:
        sequences, source = load_test_set(data_cfg), data_cfg.test_set or f"{data_cfg.dataset} test set"
    return (sequences if request.max_sequences is None else sequences[:request.max_sequences]), source


def earlier_report(folder: Path) -> tuple[str, ...] | None:
    """The files of an earlier report in ``folder`` (None if its ``results.json`` is not one of an evaluation)."""
    results = read_json_marker(folder / "results.json")
    return REPORT_FILES if results is not None and "settings" in results else None


def check_output_dir(out_dir: Path) -> None:
    """Refuse an output directory that could not be created or written, with a one-line :class:`ConfigError`."""
    existing = out_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{existing}: exists and is not a directory (--out {out_dir})")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{existing}: no permission to write there (--out {out_dir})")
    replaceable_names(out_dir, "results.json", earlier=earlier_report)


def prepare(request: EvaluateRequest, where: Session) -> Evaluation:
    """Load the model and the test sequences and check everything that can be checked before the evaluation, which
    can take hours: the step sizes the model accepts, the test set against the model and the metrics, the metric
    networks' weight files, and (on rank 0) the output folder."""
    loaded = load_pretrained(request.checkpoint)
    model, cfg = loaded.model.to(where.device), loaded.config
    for step in request.dts or []:  # a step the model does not accept is refused before any work
        model.step_size(step)
    data_cfg = cfg.data if request.data_dir is None else dataclasses.replace(cfg.data, data_dir=request.data_dir)
    sequences, source = _load_sequences(request, data_cfg)
    cond_frames = request.cond_frames or cfg.data.cond_frames
    paper = paper_protocol(request.checkpoint, cfg)
    settings = EvalSettings(n_samples=request.samples or (paper.samples if paper else 100), dts=request.dts,
                            metrics=request.metrics, horizon=request.horizon, batch_size=request.batch_size,
                            precision=request.precision, seed=request.seed, elbo=request.elbo,
                            fvd_batch_size=request.fvd_batch_size)
    horizon = settings.check_test_set(sequences.shape, cond_frames, cfg.model, source, request.checkpoint)
    networks, skipped = load_metric_networks([x for x in request.metrics if METRICS[x].network], request.weights,
                                             request.missing_weights, where.device)
    settings = dataclasses.replace(settings, metrics=[x for x in request.metrics if x not in skipped],
                                   horizon=horizon)
    if where.rank == 0:
        check_output_dir(request.out_dir)  # before the evaluation, which can take hours, not after
    meta = {"checkpoint": str(request.checkpoint), "checkpoint_step": loaded.step, "test_set": source,
            "dataset": cfg.data.dataset, "model": cfg.model.model, "world_size": where.world}
    if cfg.data.dataset == "videos" and not request.test_set:
        meta["test_videos"] = sum(1 for n in open_split(data_cfg, "test").lengths if n >= cond_frames + horizon)
    return Evaluation(request, model, cfg, sequences, source, cond_frames, settings, networks, skipped, paper, meta)


def evaluate(evaluation: Evaluation, where: Session) -> EvalResult:
    """Run the protocol (every process of the group its shard; each returns the whole result)."""
    result = evaluate_model(evaluation.model, evaluation.sequences, evaluation.cond_frames, evaluation.settings,
                            device=where.device, progress=evaluation.request.progress, networks=evaluation.networks,
                            meta=evaluation.meta)
    result.skipped.update(evaluation.skipped)
    return result


def write(evaluation: Evaluation, result: EvalResult) -> dict[str, Path]:
    """The report in the output folder, whole or absent (a staging folder renamed over it); returns its files."""
    out_dir = evaluation.request.out_dir
    try:
        with staged_output_dir(out_dir, "results.json", earlier=earlier_report) as stage:
            paths = write_report(result, stage, train_seq_len=evaluation.config.data.seq_len)
    except OSError as e:
        raise SrvpError(f"{out_dir}: cannot write the report ({e.strerror or e}); nothing was written") from None
    return {kind: out_dir / path.name for kind, path in paths.items()}
