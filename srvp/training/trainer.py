"""Training loop: one CPU, one GPU, or many GPUs / machines through torch.distributed (DDP).

Design points:

- A batch is a pure function of ``(seed, step, rank)`` (:class:`StepBatchSampler` + :class:`~srvp.data.ClipDataset`),
  so a run killed at any moment and resumed from a checkpoint sees exactly the same batches, with any number of
  loader workers and without saving their state.
- Checkpoints (rank 0 only) hold model, optimizer, scheduler, step, RNG state and the full config; they are written
  atomically and listed in a manifest with checksums (:mod:`srvp.training.checkpoint`).
- SIGTERM / SIGINT finish the current step, save a checkpoint and exit cleanly.
- One process per run directory: :meth:`Trainer.fit` holds a lock on it (:func:`srvp.files.folder_lock`) and a
  second run there is refused; a run that fails before its first checkpoint leaves nothing it created. A resumed
  run keeps the run's first ``config.json`` and appends what each resume changed to ``resumes.jsonl``.
- A non-finite loss term or gradient skips the step and names the term; after ``max_nonfinite`` consecutive
  failures the run stops with the last good checkpoint intact.
- Learning rate: an optional linear warm-up, then the paper's schedule (constant, then linear decay to 0 over the
  last ``decay_steps`` steps) or a cosine decay to 0. Under DDP each process takes ``batch_size`` clips, so the
  global batch is ``batch_size x world_size``; the learning rate is not scaled.
- Recipe options that change how the model is trained, never what it computes: Adam's betas and epsilon, a learning
  rate of the frame encoder and decoder of their own (``frame_lr_scale``, :func:`parameter_groups`), gradient
  clipping, KL annealing (``kl_warmup_steps``) and an exponential moving average of the weights (``ema_decay``),
  which validation uses and which ``best.pt`` / ``last.pt`` hold as their model.
- ``train_seconds``, the wall-clock time spent training (validation, sample logging and step callbacks excluded),
  and ``train_cpu_seconds``, the CPU time this process spent on the same steps (all its threads; data-loader worker
  processes excluded), are saved with every checkpoint and survive ``--resume``: the clocks of the time-to-quality
  benchmark (CPU time does not count the time another process held the cores).
- Staged recipes: the first ``autoencoder_steps`` steps optimise the frame-autoencoder objective
  (:mod:`srvp.training.autoencoder`), the others the paper's; the first ``short_clip_steps`` steps see only the
  first ``short_clip_len`` frames of their clips (a clip-length curriculum); ``init_weights`` (what ``init_from``
  names, read by :func:`srvp.pretrained.init_weights`) start the model from trained weights with a fresh optimiser
  and schedule.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from srvp.config import RunConfig
from srvp.data import build_train_dataset, load_val_set, to_float
from srvp.errors import SrvpError
from srvp.evaluation.metrics import psnr, rank_samples
from srvp.files import atomic_write_text, folder_lock, load_state_checked, remove_stale_temporaries
from srvp.models import build_model
from srvp.models.cpu_layers import use_cpu_layers
from srvp.models.inference import inference_layers
from srvp.runtime import (
    autocast_context,
    init_distributed,
    require_memory,
    resolve_device,
    training_bytes,
    tune_glibc_malloc,
    warn_if_bf16_is_slow,
)
from srvp.training.autoencoder import FrameAutoencoder
from srvp.training.checkpoint import (
    CheckpointManager,
    InitialWeights,
    atomic_torch_save,
    config_of,
    make_checkpoint,
)


class TrainingError(SrvpError):
    """The run cannot go on (for example, repeated non-finite losses)."""


#: the log of a run's resumes (one JSON object per line: time, step, checkpoint, the fields the resume changed)
RESUMES = "resumes.jsonl"


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """``{"section.field": [before, after]}`` for every field of two config dicts that differs."""
    return {f"{section}.{name}": [before.get(section, {}).get(name), value]
            for section, values in after.items() for name, value in values.items()
            if before.get(section, {}).get(name) != value}


class StepBatchSampler(Sampler[list[int]]):
    """Yields, for steps ``start..stop-1``, the clip indices of this process: ``((step * world + rank) * B + i)``."""

    def __init__(self, start: int, stop: int, batch_size: int, rank: int = 0, world: int = 1):
        self.start, self.stop, self.batch_size, self.rank, self.world = start, stop, batch_size, rank, world

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            first = (step * self.world + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


#: the parameters that ``frame_lr_scale`` concerns: the frame encoder and decoder (SRVP and SVG-LP name them alike)
FRAME_NETWORK_PREFIXES = ("frame_encoder.", "frame_decoder.")


def parameter_groups(model: torch.nn.Module, lr: float, frame_lr_scale: float = 1.0) -> list[dict[str, Any]]:
    """Adam's parameter groups: one group of every parameter (the paper), or with ``frame_lr_scale != 1`` the frame
    encoder and decoder at ``lr * frame_lr_scale`` and the rest at ``lr`` (the schedule scales both alike)."""
    if frame_lr_scale == 1.0:
        return [{"params": list(model.parameters())}]
    frame = [p for n, p in model.named_parameters() if n.startswith(FRAME_NETWORK_PREFIXES)]
    rest = [p for n, p in model.named_parameters() if not n.startswith(FRAME_NETWORK_PREFIXES)]
    return [{"params": frame, "lr": lr * frame_lr_scale}, {"params": rest, "lr": lr}]


def lr_factor(step: int, steps: int, decay_steps: int, warmup_steps: int = 0, schedule: str = "linear-decay") -> float:
    """Learning-rate multiplier of optimisation step ``step`` (0-based): linear from 1/warmup to 1 over the first
    ``warmup_steps``, then ``linear-decay`` (1 until ``steps - decay_steps``, then linear to 0 at ``steps``) or
    ``cosine`` (half a cosine from 1 to 0 at ``steps``)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "cosine":
        progress = (step - warmup_steps) / max(1, steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if decay_steps <= 0:
        return 1.0
    return max(0.0, min(1.0, (steps - step) / decay_steps))


def kl_factor(step: int, kl_warmup_steps: int) -> float:
    """Weight of the KL terms at optimisation step ``step`` (0-based) under KL annealing: linear from
    1/kl_warmup_steps to 1, then 1 (the paper's objective)."""
    if step >= kl_warmup_steps:
        return 1.0
    return (step + 1) / kl_warmup_steps


def ema_model(model: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of ``model``'s parameters and buffers (PyTorch's ``AveragedModel``). The decay
    grows as ``min(decay, (1 + n) / (10 + n))`` with the number ``n`` of updates, so that an average started at
    step 0 does not stay close to the random initialisation for ~1/(1-decay) steps."""

    def average(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = float(num_averaged)
        weight = 1.0 - min(decay, (1.0 + n) / (10.0 + n))
        floats = [(a, c) for a, c in zip(averaged, current) if a.is_floating_point()]
        if floats:
            torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], weight)
        for a, c in zip(averaged, current):  # integer buffers (batch norm's counters): the latest value
            if not a.is_floating_point():
                a.copy_(c)

    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=average, use_buffers=True)


def frames_channels_last(x: torch.Tensor) -> torch.Tensor:
    """Clips ``(B, T, C, H, W)`` with the same values, stored so that every frame ``x[b, t]`` (and the
    ``(B*T, C, H, W)`` view the frame encoder takes) is channels-last (``.contiguous()`` would not do it in 5D)."""
    return x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


def validation_scores(model: torch.nn.Module, sequences: np.ndarray, cond_frames: int, n_samples: int,
                      device: torch.device, batch_size: int = 16, precision: str = "fp32", seed: int = 0,
                      inference_layout: bool = True) -> dict[str, float]:
    """Validation scores, each a mean over sequences of PSNR averaged over frames:

    - ``best_of_n_psnr``: the best of ``n_samples`` futures on the predicted frames (the authors' model-selection
      criterion);
    - ``reconstruction_psnr``: the posterior reconstruction of the whole clip (:meth:`reconstruct` with the
      conditioning frames' content), all frames: what the frame autoencoder can draw when the states are known;
    - ``conditioning_reconstruction_psnr``: the reconstruction of the conditioning frames from themselves.

    With ``inference_layout`` the model runs inside :func:`srvp.models.inference.inference_layers` (same function,
    faster; not for compiled networks, which would recompile for the swapped layers)."""
    model.eval()
    scores: dict[str, list[torch.Tensor]] = {"best_of_n_psnr": [], "reconstruction_psnr": [],
                                             "conditioning_reconstruction_psnr": []}
    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)
    layout = inference_layers(model) if inference_layout else contextlib.nullcontext()
    try:
        with layout, torch.inference_mode(), autocast_context(device, precision):
            for start in range(0, len(sequences), batch_size):
                x = to_float(torch.from_numpy(sequences[start:start + batch_size])).to(device)
                cond = model.condition(x[:, :cond_frames])
                futures = model.sample_futures(cond, x.shape[1] - cond_frames, n_samples).float().clamp(0, 1)
                target = x[:, cond_frames:].unsqueeze(1).expand_as(futures)
                per_sample = psnr(futures, target).mean(dim=-1)  # (B, S)
                scores["best_of_n_psnr"].append(rank_samples(per_sample, "psnr").best_score.cpu())
                for key, clip in (("reconstruction_psnr", x), ("conditioning_reconstruction_psnr",
                                                               x[:, :cond_frames])):
                    frames = model.reconstruct(clip, cond_frames).float().clamp(0, 1)
                    scores[key].append(psnr(frames, clip).mean(dim=-1).cpu())
    finally:
        torch.set_rng_state(generator_state)
        model.train()
    return {key: float(torch.cat(values).mean()) for key, values in scores.items()}


@dataclass
class _Loop:
    """What one :meth:`Trainer.fit` keeps from step to step besides the trainer's own state: the validation clips,
    the TensorBoard writer and progress bar (rank 0), the count of consecutive non-finite steps, the clock of the
    throughput figure, and when the training time not yet counted began (wall clock and CPU)."""

    val_set: np.ndarray | None
    writer: Any
    bar: Any
    step_last: int  # the step of the last throughput report
    failures: int = 0
    t_last: float = field(default_factory=time.perf_counter)  # the time of the last throughput report
    clock: float = field(default_factory=time.perf_counter)
    cpu_clock: float = field(default_factory=time.process_time)

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()


class Trainer:
    """Trains the model of a :class:`RunConfig`; see the module docstring. ``Trainer(cfg).fit()``."""

    def __init__(self, cfg: RunConfig, resume: bool = False, progress: bool = True,
                 callbacks: list[Callable[[Trainer], None]] | None = None,
                 init_weights: InitialWeights | None = None):
        """``callbacks`` are called on rank 0 after every optimisation step with the trainer (its ``step``,
        ``train_seconds``, :meth:`eval_model`); their time is not counted in ``train_seconds``. ``init_weights``: the
        weights to start from and their history (required when ``cfg.train.init_from`` is set, unless ``resume``
        finds a checkpoint, whose weights win; :func:`srvp.pretrained.init_weights` reads them)."""
        self.init_weights = init_weights
        self.cfg = cfg
        self.resume = resume
        self.progress = progress
        self.callbacks = list(callbacks or [])
        self.out_dir = Path(cfg.train.out_dir)
        self.rank, self.world, self.local_rank = 0, 1, 0
        self._stop_signal: int | None = None
        self.train_seconds = 0.0
        self.train_cpu_seconds = 0.0
        self.ema: torch.optim.swa_utils.AveragedModel | None = None
        self._resumed: tuple[Path, RunConfig] | None = None  # the checkpoint restored and its config

    # -- setup ------------------------------------------------------------------------------------------------------

    def _build(self) -> None:
        cfg = self.cfg
        torch.manual_seed(cfg.train.seed)
        self.model = build_model(cfg.model).to(self.device)
        self.lineage: list[dict[str, Any]] = []  # the training stages before this run (saved with every checkpoint)
        if self.init_weights is not None:
            load_state_checked(self.model, self.init_weights.state_dict, cfg.train.init_from or "init_weights")
            self.lineage = list(self.init_weights.history)
        if self.device.type == "cpu":  # the CPU speed layers: the same function, faster (models/cpu_layers.py)
            use_cpu_layers(self.model)
        # refuse a batch that cannot fit before the first step allocates it (one line saying what to lower)
        require_memory(training_bytes(self.model, cfg.train.batch_size, cfg.data.seq_len), self.device,
                       f"a training step of {cfg.train.batch_size} clips x {cfg.data.seq_len} frames",
                       "--batch-size, --seq-len or the model's sizes (--filters, --state-dim ...)")
        if self.world > 1 and self.device.type == "cuda":
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        if cfg.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # The fused (one-kernel) Adam: about 10 ms instead of about 100 ms of CPU per step for the 10.7 M parameters
        # of the SM-MNIST model on 2 cores, the same updates to rounding (docs/benchmarks.md).
        fused = self.device.type in ("cpu", "cuda")
        t = cfg.train
        self.optimizer = torch.optim.Adam(parameter_groups(self.model, t.lr, t.frame_lr_scale), lr=t.lr,
                                          betas=(t.adam_beta1, t.adam_beta2), eps=t.adam_eps, fused=fused)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, t.steps, t.decay_steps, t.warmup_steps, t.lr_schedule))
        self.ema = ema_model(self.model, t.ema_decay) if t.ema_decay > 0 else None
        # fp16 (GPUs) scales the loss; for bf16/fp32 the disabled scaler passes everything through unchanged
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.train.precision == "fp16")
        self.forward_model: torch.nn.Module = self.model
        # the frame-autoencoder stage's objective (a module over the same parameters, so that DDP can wrap it)
        self.autoencoder: torch.nn.Module | None = FrameAutoencoder(self.model) if t.autoencoder_steps else None
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward_model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
            if self.autoencoder is not None:  # the dynamics get no gradient during the stage
                self.autoencoder = torch.nn.parallel.DistributedDataParallel(
                    self.autoencoder, device_ids=ids, find_unused_parameters=True)
        if cfg.train.compile:
            # In place (Module.compile): replacing the submodules by torch.compile's wrappers would prefix every
            # state-dict key with '_orig_mod.' and the checkpoints would no longer load into a plain model.
            self.model.frame_encoder.compile()
            self.model.frame_decoder.compile()
        self.step = 0
        self.best_val: float | None = None
        self.checkpoints = CheckpointManager(self.out_dir / "checkpoints", cfg.train.keep_checkpoints)
        if self.world > 1:
            # Same initial weights everywhere (seeded above; DDP also broadcasts them), then a random stream per
            # process: with one seed for all, every process drew the same noise and content frames for its clips.
            torch.manual_seed(cfg.train.seed + 1_000_003 * self.rank)

    def _restore(self) -> bool:
        """The run's state from its latest good checkpoint; False when there is none yet (a fresh start)."""
        if self.rank == 0:  # what writes killed in the middle left behind
            for directory in (self.out_dir, self.checkpoints.directory):
                remove_stale_temporaries(directory)
        found = self.checkpoints.latest_good(map_location="cpu")
        if found is None:
            if not any(self.checkpoints.directory.glob("step_*.pt")):
                # no checkpoint at all (the run was stopped before its first one): nothing to lose, start it from
                # the beginning, so that a job script can always pass --resume
                if self.rank == 0:
                    print(f"{self.out_dir}: no checkpoint yet; starting the run from step 0")
                return False
            raise SrvpError(f"{self.out_dir}: --resume given but no usable checkpoint in "
                            f"{self.out_dir / 'checkpoints'}")
        state, path = found
        saved = config_of(state, path)
        self._resumed = (path, saved)
        if saved.model != self.cfg.model:
            raise SrvpError(f"{path}: the checkpoint's model config differs from this run's; resume with the "
                            f"same model options (see {self.out_dir / 'config.json'})")
        load_state_checked(self.model, state["model"], path)
        if len(state["optimizer"]["param_groups"]) != len(self.optimizer.param_groups):
            raise SrvpError(f"{path}: the checkpoint's optimiser has {len(state['optimizer']['param_groups'])} "
                            f"parameter group(s), this run {len(self.optimizer.param_groups)}: resume with the "
                            f"run's frame_lr_scale ({saved.train.frame_lr_scale:g})")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        per_rank = state["rng"].get("per_rank", [])
        if len(per_rank) == self.world:  # saved by a run with as many processes: this process's own stream
            torch.set_rng_state(per_rank[self.rank]["torch"])
            if "cuda_device" in per_rank[self.rank] and self.device.type == "cuda":
                torch.cuda.set_rng_state(per_rank[self.rank]["cuda_device"], self.device)
        else:
            torch.set_rng_state(state["rng"]["torch"])
            if "cuda" in state["rng"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.step = int(state["step"])
        self.best_val = state.get("extra", {}).get("best_val")
        self.train_seconds = float(state.get("extra", {}).get("train_seconds", 0.0))
        self.train_cpu_seconds = float(state.get("extra", {}).get("train_cpu_seconds", 0.0))
        self.lineage = list(state.get("extra", {}).get("lineage", self.lineage))
        if self.ema is not None:
            if "ema" not in state.get("extra", {}):
                raise SrvpError(f"{path}: the checkpoint has no weight average; resume with the run's ema_decay "
                                f"(see {self.out_dir / 'config.json'})")
            load_state_checked(self.ema, state["extra"]["ema"], path)
        if self.scaler.is_enabled() and state.get("extra", {}).get("grad_scaler"):
            self.scaler.load_state_dict(state["extra"]["grad_scaler"])
        if self.rank == 0:
            print(f"resumed from {path} at step {self.step}")
        return True

    def _save(self) -> Path | None:
        per_rank = None
        if self.world > 1:  # every process's random state (collective: all processes save at the same steps)
            mine = {"torch": torch.get_rng_state()}
            if self.device.type == "cuda":
                mine["cuda_device"] = torch.cuda.get_rng_state(self.device)
            per_rank = [None] * self.world
            dist.all_gather_object(per_rank, mine)
        if self.rank != 0:
            return None
        extra: dict[str, Any] = {"best_val": self.best_val, **self.clocks()}
        if self.ema is not None:
            extra["ema"] = self.ema.state_dict()
        if self.scaler.is_enabled():  # fp16: without its scale a resumed run re-calibrates (skipped steps)
            extra["grad_scaler"] = self.scaler.state_dict()
        state = make_checkpoint(self.model, self.cfg, self.step, self.optimizer, self.scheduler, extra=extra)
        if per_rank is not None:
            state["rng"]["per_rank"] = per_rank
        path = self.checkpoints.save(state)
        atomic_torch_save(make_checkpoint(self.eval_model(), self.cfg, self.step, extra=self.clocks()),
                          self.out_dir / "last.pt")
        return path

    def clocks(self) -> dict[str, Any]:
        """What every checkpoint records of the training: wall-clock and CPU seconds spent training, and the
        training stages before this run (``lineage``; :func:`srvp.training.checkpoint.load_checkpoint` appends this
        run's stage to form the model's history)."""
        return {"train_seconds": self.train_seconds, "train_cpu_seconds": self.train_cpu_seconds,
                "lineage": self.lineage}

    def eval_model(self) -> torch.nn.Module:
        """The model to evaluate and ship: the weight average with ``ema_decay``, else the trained model."""
        return self.model if self.ema is None else self.ema.module

    def setup(self) -> Trainer:
        """Everything before the first step: the process group (under ``torchrun``), device, model, optimizer,
        schedule and weight average; the run's state from its latest good checkpoint with ``resume`` (a run
        directory that already holds checkpoints is refused without it); ``config.json``. Called by :meth:`fit`;
        call it directly to drive :meth:`train_step` yourself (benchmarks, tests)."""
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = resolve_device(self.cfg.train.device, self.local_rank)
        self.rank, self.world = init_distributed(self.device)
        self._build()
        restored = self._restore() if self.resume else False
        if not self.resume and self.rank == 0 and self.checkpoints.latest_good() is not None:
            raise SrvpError(f"{self.out_dir}: holds checkpoints of an earlier run; pass --resume to continue it or "
                            f"choose another --out-dir")
        if self.cfg.train.init_from and self.init_weights is None and not restored:
            raise SrvpError(f"train.init_from={self.cfg.train.init_from!r}: its weights were not given; read them "
                            f"with srvp.pretrained.init_weights(source, cfg.model) (srvp train --init-from does)")
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if self._resumed is None:  # a new run (or one that had no checkpoint yet): its configuration
                atomic_write_text(self.out_dir / "config.json", _json(self.cfg.to_dict()))
            else:
                self._log_resume(*self._resumed)
        return self

    def _log_resume(self, checkpoint: Path, saved: RunConfig) -> None:
        """Keep the run's history on resume: ``config.json`` stays the run's first configuration (written again
        from the checkpoint only if it is missing) and ``resumes.jsonl`` gains a line with the time, the step, the
        checkpoint and every field this call changes from the checkpoint's configuration."""
        if not (self.out_dir / "config.json").is_file():
            atomic_write_text(self.out_dir / "config.json", _json(saved.to_dict()))
        log = self.out_dir / RESUMES
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "step": self.step,
                 "checkpoint": checkpoint.name, "changed": changed_fields(saved.to_dict(), self.cfg.to_dict())}
        try:
            earlier = log.read_text() if log.is_file() else ""
        except (OSError, UnicodeDecodeError):
            earlier = ""
        if earlier and not earlier.endswith("\n"):  # a line cut by a kill
            earlier += "\n"
        atomic_write_text(log, earlier + json.dumps(entry, sort_keys=True) + "\n")

    # -- one step ---------------------------------------------------------------------------------------------------

    def train_step(self, x: torch.Tensor) -> dict[str, float] | str:
        """One optimisation step on clips ``x`` ``(B, T, C, H, W)`` in [0, 1] on the trainer's device (after
        :meth:`setup`); returns the loss terms and the gradient norm, or the name of the non-finite term (then
        nothing is updated). It does not advance :attr:`step`."""
        cfg = self.cfg.train
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        kl_scale = kl_factor(self.step, cfg.kl_warmup_steps)
        if self.step < cfg.autoencoder_steps:  # the frame-autoencoder stage
            with autocast_context(self.device, cfg.precision):
                losses = self.autoencoder(x, kl_scale=kl_scale)
        else:
            with autocast_context(self.device, cfg.precision):
                out = self.forward_model(x)
            losses = self.model.loss(x, out, kl_scale)
        # One device-to-host transfer for all the terms (a check and a float() per term would each wait for the
        # device); the values are those of the forward pass, returned below when the step succeeds.
        values = torch.stack([v.detach().float() for v in losses.values()]).cpu()
        bad = [k for k, v in zip(losses, values.tolist()) if not math.isfinite(v)]
        if self.world > 1:  # every rank must take the same decision, or DDP's all-reduce would hang
            flag = torch.tensor([1.0 if bad else 0.0], device=self.device)
            dist.all_reduce(flag)
            if flag.item() > 0 and not bad:
                bad = ["loss on another rank"]
        if bad:
            return bad[0]
        self.scaler.scale(losses["total"]).backward()
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        # The norm only (clip_grad_norm_ with an infinite bound would also multiply every gradient by 1).
        grad_norm = float(torch.nn.utils.get_total_norm([p.grad for p in params]))
        if cfg.grad_clip > 0 and math.isfinite(grad_norm):
            torch.nn.utils.clip_grads_with_norm_(params, cfg.grad_clip, torch.tensor(grad_norm))
        if not math.isfinite(grad_norm):
            if self.scaler.is_enabled():  # fp16 overflow: the scaler lowers its scale and skips the step
                self.scaler.step(self.optimizer)
                self.scaler.update()
            return "gradient"
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        terms = dict(zip(losses, values.tolist()))
        terms["grad_norm"] = grad_norm
        return terms

    # -- loop -------------------------------------------------------------------------------------------------------

    def _handle_signal(self, signum, frame) -> None:  # noqa: ARG002
        self._stop_signal = signum

    def request_stop(self) -> None:
        """Ask a running :meth:`fit` to finish its current step, save a checkpoint and return, as on SIGTERM.
        Safe to call from another thread (a wall-clock budget, a UI)."""
        self._handle_signal(signal.SIGTERM, None)

    @property
    def stopped_early(self) -> bool:
        """Whether the last :meth:`fit` stopped before its last step (signal or :meth:`request_stop`)."""
        return self._stop_signal is not None

    def _should_stop(self) -> bool:
        """Whether to stop after this step. Under DDP a signal that reached any process stops them all at the same
        step (a process that went on alone would wait forever in the next all-reduce)."""
        if self.world > 1:
            flag = torch.tensor([float(self._stop_signal or 0)], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            if flag.item() > 0 and self._stop_signal is None:
                self._stop_signal = int(flag.item())
        return self._stop_signal is not None

    def fit(self) -> Path:
        """Train to ``cfg.train.steps``; returns the run directory.

        The run directory is locked for the whole run (a second ``fit`` on it, in any process, is refused with a
        one-line error; the lock ends with the process, however it ends). A run that fails before its first
        checkpoint removes what it created (``config.json``, ``tensorboard/``, the empty folders), so a failed
        start leaves nothing behind; a run with checkpoints keeps everything."""
        if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 holds the lock and writes the files
            return self._fit()
        new_folder = not self.out_dir.exists()
        try:
            with folder_lock(self.out_dir, "another srvp train"):
                created = [p for p in (self.out_dir / "config.json", self.out_dir / "tensorboard",
                                       self.out_dir / "checkpoints", self.out_dir / RESUMES) if not p.exists()]
                try:
                    return self._fit()
                except BaseException:
                    if not self._has_checkpoint():
                        for path in created:
                            if path.is_dir():
                                shutil.rmtree(path, ignore_errors=True)
                            else:
                                path.unlink(missing_ok=True)
                    raise
        finally:
            if new_folder and not self._has_checkpoint():
                with contextlib.suppress(OSError):
                    self.out_dir.rmdir()  # only if a failed start left it empty (the lock file is gone by now)

    def _has_checkpoint(self) -> bool:
        """Whether the run directory holds a model of this run (a periodic checkpoint, ``last.pt``, ``best.pt``)."""
        return (any((self.out_dir / "checkpoints").glob("step_*.pt")) or (self.out_dir / "last.pt").exists()
                or (self.out_dir / "best.pt").exists())

    def _fit(self) -> Path:
        """The loop: one :meth:`train_step` per batch, then what is due after it (:meth:`_after_step`: progress,
        validation, samples, the callbacks) and a checkpoint when due (:meth:`_checkpoint_due`), until the last
        step or a stop request."""
        tune_glibc_malloc()
        self.setup()
        loader, val_set, writer = self._loader(), self._val_set(), self._writer()
        if self.rank == 0:  # once the data is known to load: a bad input stays a one-line error
            warn_if_bf16_is_slow(self.device, self.cfg.train.precision)
        previous = {s: signal.signal(s, self._handle_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        bar = tqdm(total=self.cfg.train.steps, initial=self.step, disable=not self.progress or self.rank != 0,
                   dynamic_ncols=True, desc="train")
        loop = _Loop(val_set, writer, bar, step_last=self.step)  # its clocks start now
        try:
            for batch in loader:
                x = self._clips(batch)
                result = self.train_step(x)
                skipped = isinstance(result, str)
                if skipped:
                    self._skip_step(result, loop)
                else:
                    loop.failures = 0
                self.step += 1
                loop.bar.update(1)
                self.train_seconds += time.perf_counter() - loop.clock
                self.train_cpu_seconds += time.process_time() - loop.cpu_clock
                if self.rank == 0 and not skipped:
                    self._after_step(x, result, loop)
                # validation, samples and callbacks are not training time
                loop.clock, loop.cpu_clock = time.perf_counter(), time.process_time()
                if self._checkpoint_due(skipped):
                    self._save()
                if self._should_stop():
                    break
            self._end_of_loop(loop)
        finally:
            loop.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
        if self.rank == 0 and self.best_val is None and self._stop_signal is None:
            # No validation ran: the final model is the best one we know of.
            atomic_torch_save(make_checkpoint(self.eval_model(), self.cfg, self.step, extra=self.clocks()),
                              self.out_dir / "best.pt")
        return self.out_dir

    def _loader(self) -> DataLoader:
        """The training batches from the current step to the last (each a function of seed, step and rank)."""
        cfg = self.cfg
        dataset = build_train_dataset(cfg.data, cfg.train.seed)
        sampler = StepBatchSampler(self.step, cfg.train.steps, cfg.train.batch_size, self.rank, self.world)
        return DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.data.num_workers,
                          pin_memory=self.device.type == "cuda", persistent_workers=False,
                          # its own generator: creating the iterator must not consume the global RNG, whose
                          # state the checkpoints restore
                          generator=torch.Generator().manual_seed(cfg.train.seed))

    def _val_set(self) -> np.ndarray | None:
        """The validation clips (rank 0, when validation is on), else None."""
        cfg = self.cfg
        if cfg.train.val_interval > 0 and cfg.data.val_sequences > 0 and self.rank == 0:
            return load_val_set(cfg.data, cfg.train.seed)
        return None

    def _clips(self, batch: torch.Tensor) -> torch.Tensor:
        """A batch of uint8 clips as the step's input: float in [0, 1] on the device, cut to the curriculum's first
        frames while it lasts, channels last if asked."""
        if self.step < self.cfg.train.short_clip_steps:  # clip-length curriculum: the clips' first frames
            batch = batch[:, : self.cfg.train.short_clip_len]
        x = to_float(batch).to(self.device, non_blocking=True)
        return frames_channels_last(x) if self.cfg.train.channels_last else x

    def _skip_step(self, term: str, loop: _Loop) -> None:
        """A step whose ``term`` was not finite: say so, stop after ``max_nonfinite`` in a row, else step the
        schedule as if the step had run."""
        loop.failures += 1
        msg = f"step {self.step + 1}: non-finite {term}; step skipped ({loop.failures} in a row)"
        loop.bar.write(msg) if self.rank == 0 else None
        if loop.failures >= self.cfg.train.max_nonfinite:
            raise TrainingError(f"{loop.failures} consecutive non-finite steps (last: {term}); stopped "
                                f"with the last good checkpoint in {self.out_dir / 'checkpoints'}")
        # The step's batch is used up, so the step still counts (without an update): batches stay a function of the
        # step index (a resumed run sees the same ones) and the loader, which yields exactly `steps` batches, does not
        # run out. No logging, validation or periodic checkpoint.
        with warnings.catch_warnings():  # stepping the schedule without an optimizer step is intended
            warnings.simplefilter("ignore", UserWarning)
            self.scheduler.step()

    def _after_step(self, x: torch.Tensor, terms: dict[str, float], loop: _Loop) -> None:
        """What is due after a step that updated the weights (rank 0; not training time), in this order: progress
        and TensorBoard scalars every ``log_interval`` steps and at the last, validation every ``val_interval``,
        samples every ``sample_interval``, then the callbacks given to the trainer."""
        t = self.cfg.train
        if self.step % t.log_interval == 0 or self.step == t.steps:
            self._log_progress(terms, loop)
        if loop.val_set is not None and self.step % t.val_interval == 0:
            self._validate(loop.val_set, loop.writer, loop.bar)
        if loop.writer is not None and t.sample_interval and self.step % t.sample_interval == 0:
            self._log_samples(x, loop.writer)
        for callback in self.callbacks:
            callback(self)

    def _log_progress(self, terms: dict[str, float], loop: _Loop) -> None:
        """The loss terms and the clips per second since the last report, on the progress bar and in TensorBoard."""
        now = time.perf_counter()
        rate = (self.step - loop.step_last) * self.cfg.train.batch_size * self.world / max(now - loop.t_last, 1e-9)
        loop.t_last, loop.step_last = now, self.step
        loop.bar.set_postfix(loss=f"{terms['total']:.1f}", nll=f"{terms['nll']:.1f}",
                             kl_z=f"{terms.get('kl_z', 0.0):.2f}", clips_s=f"{rate:.1f}", refresh=False)
        if loop.writer is not None:
            for k, v in terms.items():
                loop.writer.add_scalar(f"train/{k}", v, self.step)
            loop.writer.add_scalar("train/lr", self.scheduler.get_last_lr()[0], self.step)
            loop.writer.add_scalar("train/clips_per_second", rate, self.step)

    def _checkpoint_due(self, skipped: bool) -> bool:
        """A periodic checkpoint every ``checkpoint_interval`` steps (not after a skipped step), and one at the last
        step whatever happened."""
        t = self.cfg.train
        return (not skipped and self.step % t.checkpoint_interval == 0) or self.step == t.steps

    def _end_of_loop(self, loop: _Loop) -> None:
        """After the loop: a stop request saves a checkpoint and says how to continue; a loader that ran out early is
        an error."""
        if self._stop_signal is not None:
            name = signal.Signals(self._stop_signal).name
            self._save()
            loop.bar.write(f"{name} received: saved a checkpoint at step {self.step} in {self.out_dir}; continue "
                           f"with --resume") if self.rank == 0 else None
        elif self.step < self.cfg.train.steps:  # pragma: no cover - the loader always yields the full range
            raise TrainingError(f"the data loader stopped early at step {self.step}")

    def _writer(self):
        if self.rank != 0:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.out_dir / "tensorboard"))

    def _validate(self, val_set: np.ndarray, writer, bar) -> None:
        cfg = self.cfg
        scores = validation_scores(self.eval_model(), val_set, cfg.data.cond_frames, cfg.train.val_samples,
                                   self.device, batch_size=max(1, min(cfg.train.batch_size, 32)),
                                   precision=cfg.train.precision, seed=cfg.train.seed,
                                   inference_layout=not cfg.train.compile)
        score = scores["best_of_n_psnr"]
        improved = self.best_val is None or score > self.best_val
        if improved:
            self.best_val = score
            atomic_torch_save(make_checkpoint(self.eval_model(), cfg, self.step,
                                              extra={"val_psnr": score, **self.clocks()}),
                              self.out_dir / "best.pt")
        bar.write(f"step {self.step}: validation best-of-{cfg.train.val_samples} PSNR {score:.2f} dB"
                  + (" (best so far, saved best.pt)" if improved else f" (best {self.best_val:.2f})")
                  + f"; posterior reconstruction {scores['reconstruction_psnr']:.2f} dB (conditioning frames "
                  f"{scores['conditioning_reconstruction_psnr']:.2f} dB)")
        if writer is not None:
            for key, value in scores.items():
                writer.add_scalar(f"val/{key}", value, self.step)

    def _log_samples(self, x: torch.Tensor, writer) -> None:
        """Conditioning frames, ground truth and one sample of the future, side by side, as a video."""
        cfg = self.cfg
        n_cond = min(cfg.data.cond_frames, x.shape[1] - 1)
        clips = x[:4]
        gen_state = torch.get_rng_state()
        try:
            with torch.inference_mode():
                future = self.eval_model().predict(clips[:, :n_cond], x.shape[1] - n_cond)[:, 0].float()
        finally:
            torch.set_rng_state(gen_state)
        pred = torch.cat([clips[:, :n_cond], future], dim=1)
        video = torch.cat([clips, pred], dim=-1).clamp(0, 1).cpu()  # (B, T, C, H, 2W)
        if video.shape[2] == 1:
            video = video.repeat(1, 1, 3, 1, 1)
        try:
            writer.add_video("samples/truth_vs_sample", video, self.step, fps=4)
        except (ImportError, ModuleNotFoundError):
            writer.add_images("samples/last_frame_truth_vs_sample", video[:, -1], self.step)


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def train(cfg: RunConfig, resume: bool = False, progress: bool = True,
          callbacks: list[Callable[[Trainer], None]] | None = None,
          init_weights: InitialWeights | None = None) -> Path:
    """Train the model of ``cfg`` (from ``init_weights`` when given); returns the run directory (``config.json``,
    ``best.pt``, ``last.pt``, ``checkpoints/``, ``tensorboard/``)."""
    return Trainer(cfg, resume=resume, progress=progress, callbacks=callbacks, init_weights=init_weights).fit()


__all__ = ["StepBatchSampler", "Trainer", "TrainingError", "ema_model", "frames_channels_last", "kl_factor",
           "lr_factor", "train", "validation_scores"]

