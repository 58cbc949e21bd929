"""The paper's evaluation protocol: best of N sampled futures per test sequence, scored frame by frame.

For each test sequence (uint8 ``(T, C, H, W)``): condition on the first ``cond_frames`` frames (encoded once), draw
``n_samples`` futures of ``horizon`` frames ``batch_size`` samples at a time, clamp them to [0, 1] and score only the
predicted frames. Per sample each metric is averaged over frames; the best sample is chosen separately per metric
(highest PSNR and SSIM, lowest LPIPS), and the worst and the first few samples (independent draws, i.e. random
samples) are kept too, with the per-frame scores of the best. Two trivial predictions are scored the same way: the
last conditioning frame repeated and a blank (zero) frame. Only scores are kept, never all the futures.

Beside the prediction, the model's posterior reconstruction (``model.reconstruct``: every latent variable inferred
from the frames themselves, at its mean) is scored frame by frame on the whole test clip (content from the
conditioning frames, as for the prediction) and on the conditioning frames alone: a prediction can only be as good
as the frames the model can redraw, so the gap between the two rows is what the dynamics lose, and the gap between
the reconstruction and a perfect score is what the frame autoencoder loses.

Several test step sizes ``dts`` can be evaluated in one run (the paper's tables 5-7): the conditioning frames are
inferred with the training step ``cond_dt`` (the model's ``config.dt``) and the future generated with ``dt``, as in
the authors' evaluation. FVD compares, at the level of the whole set, I3D embeddings of conditioning + first sample
against conditioning + ground truth (the authors use their first random sample). The test-set ELBO is a one-sample
estimate per sequence (``model(x)`` then ``model.loss(x, out)["elbo"]`` in evaluation mode), averaged over sequences.

Reproducibility: every random draw for sequence ``i`` comes from a generator seeded with ``(seed, i, chunk)``, so the
results depend only on ``(seed, n_samples, batch_size)`` and the model, never on how the sequences are split across
processes; the same draws are used for every ``dt`` (common random numbers, which makes the step-size comparison
less noisy). Under ``torch.distributed`` each process evaluates a contiguous shard and the per-sequence results are
gathered in sequence order, identical to a single-process run.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from srvp.config import ModelConfig, StepSize
from srvp.data.base import to_float
from srvp.errors import ConfigError, DataError
from srvp.evaluation.i3d import i3d_embeddings, load_i3d
from srvp.evaluation.lpips import load_lpips
from srvp.evaluation.metrics import (
    METRICS,
    confidence_interval,
    frame_metrics,
    frechet_distance_of_features,
    rank_samples,
)
from srvp.evaluation.weights import MissingWeightsError
from srvp.models.base import VideoPredictor
from srvp.models.inference import inference_layers
from srvp.runtime import autocast_context

BASELINES = ("last frame", "blank")
RANDOM_KEPT = 5  # scores of the first (independent, hence random) samples kept per sequence
_ELBO_CHUNK = 2**20  # chunk index reserved for the ELBO's draws in the seed


@dataclass(frozen=True)
class EvalSettings:
    """What defines an evaluation with the protocol and its numbers (everything but where and how it runs).

    ``dts`` and ``metrics`` given as lists are stored as tuples (step sizes as the numbers ``1/n`` of their
    :class:`~srvp.config.StepSize`); a step that is not 1/n, an unknown metric or ``n_samples < 1`` is refused here,
    before any work.
    """

    n_samples: int = 100
    """Futures drawn per sequence (the paper: 100; 1 for deterministic Moving MNIST)."""
    dts: tuple[float, ...] | None = None
    """Test step sizes 1/n (None: the model's training ``config.dt``); given as numbers, text or StepSize."""
    metrics: tuple[str, ...] = ("psnr", "ssim")
    """Names of :data:`srvp.evaluation.metrics.METRICS` (``psnr``, ``ssim``, ``lpips``, ``fvd``)."""
    horizon: int | None = None
    """Predicted frames after the conditioning ones (None: all the remaining ones)."""
    batch_size: int | None = None
    """Samples drawn per forward pass (None: as many as fit 512 predicted frames); it bounds memory and, through the
    seeding, is part of what determines the draws."""
    precision: str = "fp32"
    """``fp32``, ``bf16`` or ``fp16`` autocast of the model (metrics are computed in fp32)."""
    seed: int = 0
    """Base of the per-sequence seeds."""
    elbo: bool = True
    """Also compute the test-set ELBO (models with ``loss``; at the training step size)."""
    fvd_batch_size: int = 8
    """Videos per I3D forward pass for FVD."""
    reconstruction: bool = True
    """Also score the posterior reconstruction of every test clip and of its conditioning frames."""
    inference_layout: bool = True
    """Sample inside :func:`srvp.models.inference.inference_layers` with channels-last weights (batch norm folded,
    the thin output layer as a product, in-place activations: the same function up to rounding, faster); the model
    is left as it was."""

    def __post_init__(self) -> None:
        if self.dts is not None:
            object.__setattr__(self, "dts", tuple(StepSize.of(d).dt for d in self.dts))
        if not isinstance(self.metrics, tuple):
            object.__setattr__(self, "metrics", tuple(self.metrics))
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; choose among {', '.join(METRICS)}")
        if self.n_samples < 1:
            raise ValueError(f"n_samples must be positive, got {self.n_samples}")

    def check_test_set(self, shape: Sequence[int], cond_frames: int, model: ModelConfig, source: str,
                       model_name: str) -> int:
        """Refuse, before any work, test sequences of ``shape`` ``(N, T, C, H, W)`` that this evaluation cannot
        score with ``cond_frames`` conditioning frames and a model of configuration ``model``, with a one-line
        error naming the test set (``source``) or the model (``model_name``): frames of another size than the
        model's (:class:`~srvp.errors.DataError`), sequences shorter than the conditioning and predicted frames,
        fewer conditioning frames than the model's ``k``, LPIPS on frames below 32 pixels, FVD on fewer than 2
        sequences or 9 frames (I3D's smallest input; :class:`~srvp.errors.ConfigError`). Returns the horizon:
        ``horizon``, else the rest of each sequence."""
        n, length, *frame = shape
        expected = (model.channels, model.frame_size, model.frame_size)
        if tuple(frame) != expected:
            C, H, W = frame
            raise DataError(f"{source}: frames are {C}x{H}x{W} (C x H x W) but the model of {model_name} "
                            f"expects {'x'.join(map(str, expected))}")
        horizon = self.horizon or length - cond_frames
        if cond_frames + horizon > length or horizon < 1:
            raise DataError(f"{source}: sequences have {length} frames, fewer than {cond_frames} conditioning + "
                            f"{max(horizon, 1)} predicted")
        if cond_frames < model.content_frames:
            raise ConfigError(f"--cond-frames {cond_frames} is fewer than the model's content_frames "
                              f"{model.content_frames}")
        if "lpips" in self.metrics and model.frame_size < 32:
            raise ConfigError(f"LPIPS needs frames of at least 32x32 pixels; the model of {model_name} has "
                              f"{model.frame_size}x{model.frame_size}")
        if "fvd" in self.metrics and (n < 2 or cond_frames + horizon < 9):
            raise ConfigError(f"FVD needs at least 2 test sequences of at least 9 frames, got {n} of "
                              f"{cond_frames + horizon}")
        return horizon


@dataclass
class SettingScores:
    """Scores of one way of predicting (the model at one test ``dt``, or a baseline) on ``N`` sequences.

    Arrays are indexed by sequence; ``best_curves[m]`` ``(N, horizon)`` holds the per-frame scores of the sample
    that is best for ``m``; ``random[m]`` ``(N, R)`` the mean scores of the first ``R`` samples.
    """

    name: str
    dt: float | None
    best: dict[str, np.ndarray] = field(default_factory=dict)
    worst: dict[str, np.ndarray] = field(default_factory=dict)
    best_index: dict[str, np.ndarray] = field(default_factory=dict)
    random: dict[str, np.ndarray] = field(default_factory=dict)
    best_curves: dict[str, np.ndarray] = field(default_factory=dict)
    fvd: float | None = None

    @property
    def step(self) -> StepSize | None:
        """The test step of the model's setting (None for a baseline)."""
        return None if self.dt is None else StepSize.from_dt(self.dt)

    @property
    def label(self) -> str:
        return self.name if self.step is None else f"{self.name} dt={self.step.label}"


@dataclass
class EvalResult:
    """Everything one evaluation produced; :func:`write_report` turns it into files."""

    metrics: tuple[str, ...]  # frame metrics scored, plus "fvd" if computed
    cond_frames: int
    horizon: int
    n_samples: int
    batch_size: int
    seed: int
    precision: str
    train_dt: float
    indices: np.ndarray  # (N,) global indices of the evaluated sequences
    settings: list[SettingScores]  # one per test dt, then the baselines
    elbo: np.ndarray | None  # (N,) per-sequence ELBO, or None
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why it was not computed
    meta: dict[str, Any] = field(default_factory=dict)  # free-form (checkpoint, dataset, ...)
    # posterior reconstruction: part ("clip": all cond + horizon frames, "conditioning": the conditioning frames
    # from themselves) -> metric -> per-frame scores (N, frames of the part); None when not computed
    reconstruction: dict[str, dict[str, np.ndarray]] | None = None

    @property
    def frame_metrics(self) -> tuple[str, ...]:
        return tuple(m for m in self.metrics if m in frame_metrics())

    @property
    def train_step(self) -> StepSize:
        """The model's training step, at which the conditioning frames' states are inferred."""
        return StepSize.from_dt(self.train_dt)

    def summary(self) -> dict[str, Any]:
        """Aggregates with 95% intervals: ``{"settings": [{label, name, dt, metrics: {m: {best: {mean, ci95},
        worst, random}}, fvd}], "elbo": {mean, ci95} | None, ...}``."""

        def agg(values: np.ndarray) -> dict[str, float]:
            mean, ci = confidence_interval(values.reshape(len(values), -1).mean(axis=1))
            return {"mean": float(mean), "ci95": float(ci)}

        settings = []
        for s in self.settings:
            entry: dict[str, Any] = {"label": s.label, "name": s.name,
                                     "dt": None if s.step is None else s.step.label, "metrics": {}}
            for m in self.frame_metrics:
                entry["metrics"][m] = {"best": agg(s.best[m]), "worst": agg(s.worst[m]), "random": agg(s.random[m])}
            if s.fvd is not None:
                entry["fvd"] = s.fvd
            settings.append(entry)
        elbo = None
        if self.elbo is not None:
            mean, ci = confidence_interval(self.elbo)
            elbo = {"mean": float(mean), "ci95": float(ci), "dt": self.train_step.label}
        reconstruction = None
        if self.reconstruction is not None:
            reconstruction = {part: {m: agg(v) for m, v in scores.items()}
                              for part, scores in self.reconstruction.items()}
        return {"n_sequences": int(len(self.indices)), "n_samples": self.n_samples, "cond_frames": self.cond_frames,
                "horizon": self.horizon, "batch_size": self.batch_size, "seed": self.seed,
                "precision": self.precision, "train_dt": self.train_step.label, "metrics": list(self.metrics),
                "skipped": dict(self.skipped), "settings": settings, "elbo": elbo, "reconstruction": reconstruction,
                "meta": dict(self.meta)}


# --------------------------------------------------------------------------------------------------------------------
# Metric networks
# --------------------------------------------------------------------------------------------------------------------


def load_metric_networks(metrics: Sequence[str], weights: dict[str, str | None] | None = None,
                         missing_weights: str = "error", device: str | torch.device = "cpu",
                         ) -> tuple[dict[str, torch.nn.Module], dict[str, str]]:
    """Pretrained networks for the requested ``lpips`` / ``fvd`` metrics: ``({"lpips": LPIPS, "fvd": I3D}, skipped)``.

    ``weights`` may give file paths for ``alexnet``, ``lpips`` and ``i3d`` (default locations otherwise). A missing
    file raises :class:`MissingWeightsError` (``missing_weights="error"``) or drops the metric, recording why in
    ``skipped`` (``"skip"``).
    """
    if missing_weights not in ("error", "skip"):
        raise ValueError(f"missing_weights must be 'error' or 'skip', got {missing_weights!r}")
    weights = weights or {}
    nets: dict[str, torch.nn.Module] = {}
    skipped: dict[str, str] = {}
    for metric in metrics:
        network = METRICS[metric].network if metric in METRICS else None
        try:
            if network is not None:
                nets[metric] = _NETWORK_LOADERS[network](weights, device)
        except MissingWeightsError as e:
            if missing_weights == "error":
                raise
            skipped[metric] = str(e)
    return nets, skipped


# --------------------------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------------------------


#: how each pretrained network of :data:`~srvp.evaluation.metrics.METRICS` is loaded from the user's weight files
_NETWORK_LOADERS: dict[str, Callable[[dict[str, str | None], str | torch.device], torch.nn.Module]] = {
    "lpips": lambda weights, device: load_lpips(weights.get("alexnet"), weights.get("lpips"), device),
    "i3d": lambda weights, device: load_i3d(weights.get("i3d"), device),
}


def _seed_for(seed: int, index: int, chunk: int) -> int:
    return int(np.random.SeedSequence([seed, index, chunk]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _shard(n: int, rank: int, world: int) -> range:
    """Contiguous shard of ``range(n)`` for ``rank`` of ``world`` (sizes differ by at most one)."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


class _Scorer:
    """Per-frame scores ``(S, T)`` of futures ``(S, T, C, H, W)`` against one target ``(T, C, H, W)``."""

    def __init__(self, metrics: Sequence[str], lpips_net: torch.nn.Module | None):
        self.metrics = tuple(metrics)
        self.lpips = lpips_net
        self._target_feats: list[torch.Tensor] | None = None

    def set_target(self, target: torch.Tensor) -> None:
        self.target = target
        self._target_feats = self.lpips.features(target) if self.lpips is not None and "lpips" in self.metrics \
            else None

    def __call__(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        S, T = frames.shape[:2]
        target = self.target.unsqueeze(0).expand_as(frames)
        out = {}
        for name, metric in METRICS.items():  # the table's order
            if name not in self.metrics:
                continue
            if metric.score is not None:
                out[name] = metric.score(frames, target)
            elif name == "lpips" and self._target_feats is not None:  # the target's features computed once
                feats = self.lpips.features(frames.reshape(S * T, *frames.shape[2:]))
                ref = [f.repeat(S, 1, 1, 1) for f in self._target_feats]
                out[name] = self.lpips.distance_from_features(feats, ref).reshape(S, T)
        return {k: v.float().cpu() for k, v in out.items()}


def _select(per_frame: dict[str, torch.Tensor]) -> dict[str, dict[str, np.ndarray]]:
    """Best/worst/random of the per-frame scores ``(S, T)`` of one sequence, per metric (samples ranked by their
    mean over frames, :func:`~srvp.evaluation.metrics.rank_samples`)."""
    out = {}
    for m, scores in per_frame.items():
        mean = scores.double().mean(dim=1)
        ranking = rank_samples(mean, m)
        best, worst = int(ranking.best), int(ranking.worst)
        out[m] = {"best": mean[best].item(), "worst": mean[worst].item(), "best_index": best,
                  "random": mean[:RANDOM_KEPT].numpy(), "best_curve": scores[best].double().numpy()}
    return out


@torch.inference_mode()
def _evaluate_sequence(model: VideoPredictor, clip: torch.Tensor, index: int, settings: EvalSettings, *,
                       cond_frames: int, steps: tuple[StepSize, ...], train_step: StepSize, scorer: _Scorer,
                       device: torch.device, keep_video: bool) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Scores of one sequence ``(T, C, H, W)`` uint8 and, with ``keep_video``, its videos for FVD (uint8).

    ``settings`` is resolved: ``horizon`` and ``batch_size`` are set; ``steps`` are its ``dts``."""
    horizon, n_samples, batch_size = settings.horizon, settings.n_samples, settings.batch_size
    seed, precision = settings.seed, settings.precision
    x = to_float(clip[: cond_frames + horizon]).to(device).unsqueeze(0)
    x_cond, target = x[:, :cond_frames], x[0, cond_frames:]
    scorer.set_target(target)
    videos: dict[str, torch.Tensor] = {}
    record: dict[str, Any] = {"index": index, "model": {}, "baselines": {}}
    with autocast_context(device, precision):
        cond = model.condition(x_cond)
    for step in steps:
        chunks: dict[str, list[torch.Tensor]] = {}
        for c, start in enumerate(range(0, n_samples, batch_size)):
            n = min(batch_size, n_samples - start)
            torch.manual_seed(_seed_for(seed, index, c))
            with autocast_context(device, precision):
                frames = model.sample_futures(cond, horizon, n, dt=step.dt, cond_dt=train_step.dt)
            frames = frames[0].float().clamp_(0, 1)  # (n, horizon, C, H, W)
            for m, v in scorer(frames).items():
                chunks.setdefault(m, []).append(v)
            if keep_video and c == 0:
                videos[step.label] = _to_uint8(torch.cat([x_cond[0], frames[0]]))
        record["model"][step.label] = _select({m: torch.cat(v) for m, v in chunks.items()})
    last = x_cond[0, -1:].expand(horizon, *x_cond.shape[2:])
    for name, pred in (("last frame", last), ("blank", torch.zeros_like(target))):
        record["baselines"][name] = _select(scorer(pred.unsqueeze(0)))
        if keep_video:
            videos[name] = _to_uint8(torch.cat([x_cond[0], pred]))
    if keep_video:
        videos["ground truth"] = _to_uint8(x[0])
    if settings.reconstruction:
        record["reconstruction"] = {}
        for part, clip in (("clip", x), ("conditioning", x_cond)):
            with autocast_context(device, precision):
                frames = model.reconstruct(clip, cond_frames)
            part_scorer = _Scorer(scorer.metrics, scorer.lpips)
            part_scorer.set_target(clip[0])
            record["reconstruction"][part] = {m: v[0].double().numpy() for m, v in
                                              part_scorer(frames.float().clamp_(0, 1)).items()}
    if settings.elbo:
        torch.manual_seed(_seed_for(seed, index, _ELBO_CHUNK))
        out = model(x)
        record["elbo"] = float(model.loss(x, out)["elbo"])
    return record, videos


def _to_uint8(frames: torch.Tensor) -> torch.Tensor:
    return frames.mul(255).round_().to(torch.uint8).cpu()


def evaluate_model(model: VideoPredictor, sequences: np.ndarray | torch.Tensor, cond_frames: int,
                   settings: EvalSettings | None = None, *, device: str | torch.device = "cpu", progress: bool = True,
                   weights: dict[str, str | None] | None = None, missing_weights: str = "error",
                   networks: dict[str, torch.nn.Module] | None = None, meta: dict[str, Any] | None = None,
                   ) -> EvalResult:
    """Evaluate ``model`` on test ``sequences`` ``(N, T, C, H, W)`` uint8 with the paper's protocol.

    Args:
        model: a :class:`~srvp.models.base.VideoPredictor` (SRVP, SVG-LP): ``condition`` once per sequence, then
            ``sample_futures``; the ELBO from ``model(x)`` and ``model.loss(x, out)["elbo"]``.
        cond_frames: conditioning frames; ``settings.horizon`` predicted frames follow.
        settings: the protocol's :class:`EvalSettings` (samples, step sizes, metrics, horizon, batch size,
            precision, seed, ELBO, FVD batch, inference layout); None: ``EvalSettings()``.
        device: where the model and the metric networks run.
        progress: show a progress bar (on rank 0).
        weights, missing_weights, networks: pretrained files / policy for LPIPS and FVD (see
            :func:`load_metric_networks`), or networks already loaded.
        meta: free-form information stored with the result (checkpoint, dataset ...).

    Under an initialised ``torch.distributed`` process group each process evaluates its shard and every process
    returns the full gathered result.
    """
    settings = EvalSettings() if settings is None else settings
    if not isinstance(settings, EvalSettings):
        raise TypeError(f"settings must be an EvalSettings, got {type(settings).__name__}; "
                        f"e.g. evaluate_model(model, sequences, cond_frames, EvalSettings(n_samples=100))")
    sequences = torch.as_tensor(np.asarray(sequences)) if not isinstance(sequences, torch.Tensor) else sequences
    if sequences.dim() != 5 or sequences.dtype != torch.uint8:
        raise ValueError(f"expected uint8 sequences (N, T, C, H, W), got {sequences.dtype} {tuple(sequences.shape)}")
    N, T = sequences.shape[:2]
    horizon = T - cond_frames if settings.horizon is None else settings.horizon
    if cond_frames < 1 or horizon < 1 or cond_frames + horizon > T:
        raise ValueError(f"cond_frames={cond_frames} + horizon={horizon} do not fit sequences of {T} frames")
    n_samples = settings.n_samples
    device = torch.device(device)
    train_step = model.step_size()
    # a step the model does not accept is refused here, before any work
    steps = tuple(model.step_size(d) for d in settings.dts) if settings.dts else (train_step,)
    batch_size = settings.batch_size or max(1, min(n_samples, 512 // horizon))
    metrics = tuple(dict.fromkeys(settings.metrics))
    nets = dict(networks or {})
    wanted = [m for m, facts in METRICS.items() if facts.network is not None and m in metrics and m not in nets]
    loaded, skipped = load_metric_networks(wanted, weights, missing_weights, device)
    nets.update(loaded)
    metrics = tuple(m for m in metrics if m not in skipped)
    resolved = replace(settings, dts=tuple(s.dt for s in steps), metrics=metrics, horizon=horizon,
                       batch_size=batch_size)
    scored = tuple(m for m in metrics if m in frame_metrics())
    i3d = nets.get("fvd") if "fvd" in metrics else None
    lpips_net = nets.get("lpips") if "lpips" in metrics else None
    if lpips_net is not None:
        lpips_net.to(device).eval()
    if i3d is not None:
        i3d.to(device).eval()
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() \
        else (0, 1)

    was_training = model.training
    model.eval()
    layout = inference_layers(model, channels_last=True) if settings.inference_layout else contextlib.nullcontext()
    scorer = _Scorer(scored, lpips_net)
    records: list[dict[str, Any]] = []
    embeddings: dict[str, list[torch.Tensor]] = {}
    pending: dict[str, list[torch.Tensor]] = {}
    fork_devices = [device] if device.type == "cuda" else []
    shard = _shard(N, rank, world)
    try:
        with layout, torch.random.fork_rng(devices=fork_devices), \
                tqdm(total=len(shard), desc="evaluate", unit="seq", disable=not progress or rank != 0,
                     file=sys.stderr, dynamic_ncols=True) as bar:
            for i in shard:
                record, videos = _evaluate_sequence(model, sequences[i], i, resolved, cond_frames=cond_frames,
                                                    steps=steps, train_step=train_step, scorer=scorer,
                                                    device=device, keep_video=i3d is not None)
                records.append(record)
                for key, video in videos.items():
                    pending.setdefault(key, []).append(video)
                    if len(pending[key]) >= settings.fvd_batch_size:
                        _flush_embeddings(i3d, pending, embeddings, key, settings.fvd_batch_size)
                bar.update(1)
            for key in list(pending):
                _flush_embeddings(i3d, pending, embeddings, key, settings.fvd_batch_size)
    finally:
        model.train(was_training)
    local_embeddings = {k: torch.cat(v).numpy() for k, v in embeddings.items()}
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, (records, local_embeddings))
        records = [r for part, _ in gathered for r in part]
        local_embeddings = {k: np.concatenate([emb[k] for _, emb in gathered if k in emb])
                            for k in gathered[0][1]}
    records.sort(key=lambda r: r["index"])
    return _assemble(records, local_embeddings, resolved, steps, scored, train_step, cond_frames, skipped, meta or {})


def _flush_embeddings(i3d: torch.nn.Module | None, pending: dict[str, list[torch.Tensor]],
                      embeddings: dict[str, list[torch.Tensor]], key: str, batch_size: int) -> None:
    if i3d is None or not pending.get(key):
        return
    videos = torch.stack(pending.pop(key)).float().div_(255)
    embeddings.setdefault(key, []).append(i3d_embeddings(i3d, videos, batch_size))


def _assemble(records: list[dict[str, Any]], embeddings: dict[str, np.ndarray], resolved: EvalSettings,
              steps: tuple[StepSize, ...], scored: tuple[str, ...], train_step: StepSize, cond_frames: int,
              skipped: dict[str, str], meta: dict[str, Any]) -> EvalResult:
    """The :class:`EvalResult` of the gathered per-sequence ``records`` (``resolved``: settings with ``dts``
    (``steps``), ``horizon``, ``batch_size`` set and the skipped metrics removed; ``scored``: its frame metrics)."""
    metrics = resolved.metrics
    settings: list[SettingScores] = []
    entries = [("model", s.dt, "model", s.label) for s in steps] + [(b, None, "baselines", b) for b in BASELINES]
    for name, dt, group, key in entries:
        s = SettingScores(name=name, dt=dt)
        for m in scored:
            per_seq = [r[group][key][m] for r in records]
            s.best[m] = np.array([p["best"] for p in per_seq])
            s.worst[m] = np.array([p["worst"] for p in per_seq])
            s.best_index[m] = np.array([p["best_index"] for p in per_seq])
            s.random[m] = np.stack([p["random"] for p in per_seq])
            s.best_curves[m] = np.stack([p["best_curve"] for p in per_seq])
        if "fvd" in metrics and len(embeddings.get(key, ())) >= 2 and len(embeddings.get("ground truth", ())) >= 2:
            s.fvd = frechet_distance_of_features(embeddings[key], embeddings["ground truth"])
        settings.append(s)
    elbo = np.array([r["elbo"] for r in records]) if records and "elbo" in records[0] else None
    reconstruction = None
    if records and "reconstruction" in records[0]:
        reconstruction = {part: {m: np.stack([r["reconstruction"][part][m] for r in records]) for m in scored}
                          for part in records[0]["reconstruction"]}
    return EvalResult(metrics=metrics, cond_frames=cond_frames, horizon=resolved.horizon,
                      n_samples=resolved.n_samples, batch_size=resolved.batch_size, seed=resolved.seed,
                      precision=resolved.precision, train_dt=train_step.dt,
                      indices=np.array([r["index"] for r in records]), settings=settings, elbo=elbo,
                      skipped=skipped, meta=meta, reconstruction=reconstruction)

