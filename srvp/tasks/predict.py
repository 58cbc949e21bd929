"""The prediction task behind ``srvp predict`` and the demo's page: the possible futures of a user's clip at the
training frame rate or higher, the content swap (figure 8) and the latent interpolation (figure 9) of the paper.

A :class:`PredictRequest` holds what is asked (validated when it is made, with the command line's one-line
messages); :func:`run` reads the clip with the safe readers, checks what depends on the model, samples, and writes
every output into a folder whole or not at all (:func:`srvp.files.staged_output_dir`), returning
:class:`PredictOutputs`. Outputs:

- ``sample_XX.gif|mp4`` (one per sample: conditioning frames then the sample), or with ``side_by_side`` one
  ``samples.gif|mp4`` with the ground truth and every sample next to each other;
- ``grid.png``: conditioning | ground truth on the first row, then the best, worst and a random sample by
  ``metric`` when the ground truth is known (else the first samples); with ``dt`` smaller than the training step
  every intermediate state is decoded and marked with a red bar at the bottom, as in figure 7;
- ``per_step.png`` when the ground truth is known: every metric without a network against the frame index;
- ``summary.json``: what was done, the score of every sample and the files written.

With ``swap_content`` the latent trajectory of the clip is decoded with the content of another clip (``swap``);
with ``interpolate`` trajectories from initial states interpolated between the two clips' are decoded
(``interpolation``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srvp.api import Predictor
from srvp.config import StepSize, check_seed
from srvp.errors import ConfigError, DataError, SrvpError
from srvp.evaluation.metrics import METRICS, pixel_metrics, rank_samples
from srvp.evaluation.report import Curve, curves_figure
from srvp.files import atomic_write_bytes, atomic_write_text, read_json_marker, staged_output_dir
from srvp.io import read_clip
from srvp.visualization import save_grid_png, write_video
from srvp.visualization.video import check_canvas, grid_size

# Bounds on work that would run for hours by mistake (a typo of a zero): far above any figure of the paper.
MAX_SAMPLES, MAX_HORIZON, MAX_STEPS = 1000, 10_000, 100
FORMATS = ("gif", "mp4")
CONTENTS = ("a", "b", "interpolate")  # interpolate: the content of the first clip, of the other, or interpolated
GRID_SAMPLES_WITHOUT_TRUTH = 3
DEFAULT_SAMPLES = {"predict": 10, "swap-content": 1}


@dataclass(frozen=True)
class PredictRequest:
    """What ``srvp predict`` is asked to do, checked when it is made: a value no model accepts is a one-line
    :class:`~srvp.errors.ConfigError` naming the command line's option. What depends on the model (the fewest
    conditioning frames, whether ``dt`` is below its step) is checked by :func:`run`. ``None``: the model's or the
    mode's default."""

    input: str
    """The clip: a video file, a GIF, a folder of frames or ``.npy`` (:func:`srvp.io.read_clip`)."""
    checkpoint: str = ""
    """How the model was named (recorded in ``summary.json``)."""
    cond_frames: int | None = None
    """Conditioning frames (None: the model's ``cond_frames``, at least its ``k``)."""
    horizon: int | None = None
    """Frames to predict (None: the model's ``test_seq_len - cond_frames``)."""
    start: int | None = None
    """Index of the first conditioning frame (None: the last ``cond + horizon`` frames when the clip is that long,
    so that the frames after the conditioning ones are the ground truth, else its last ``cond`` frames)."""
    samples: int | None = None
    """Samples to draw (None: 10 for a prediction, 1 for a content swap; unused by an interpolation)."""
    dt: StepSize | None = None
    """Euler step of generation (None: the training step); below it every intermediate state is decoded."""
    metric: str = "psnr"
    """Score (a metric without a network) that picks the best and worst samples against the ground truth."""
    mean: bool = False
    """Distribution means instead of random draws."""
    format: str = "gif"
    """Video format, ``gif`` or ``mp4``."""
    side_by_side: bool = False
    """One video with the ground truth and every sample side by side."""
    fps: float = 4.0
    """Frames per second of the training frame rate."""
    scale: int = 1
    """Enlargement of the frames in the outputs."""
    seed: int = 0
    """Random seed of the samples."""
    swap_content: str | None = None
    """Another clip, whose content (w, skip connections) draws the dynamics of ``input``."""
    interpolate: str | None = None
    """Another clip: trajectories from initial states interpolated between ``input`` and it."""
    steps: int = 5
    """Interpolation: the number of interpolated trajectories."""
    content: str = "a"
    """Interpolation: the content of ``input`` (a), of the other clip (b) or interpolated."""

    def __post_init__(self) -> None:
        for name in ("input", "checkpoint", "swap_content", "interpolate"):  # paths as text, as summary.json has them
            value = getattr(self, name)
            if isinstance(value, Path):
                object.__setattr__(self, name, str(value))
        if self.swap_content and self.interpolate:
            raise ConfigError("--swap-content and --interpolate are two modes; give one of them")
        if self.dt is not None:
            if self.mode == "interpolate":
                raise ConfigError("--dt is not used by --interpolate (trajectories are generated at the training "
                                  "step)")
            object.__setattr__(self, "dt", StepSize.of(self.dt))
        if self.horizon is not None:
            check_horizon(self.horizon)
        if self.start is not None and self.start < 0:
            raise ConfigError(f"--start {self.start} must be 0 or more (the index of the first conditioning frame)")
        if not math.isfinite(self.fps) or self.fps <= 0 or self.fps > 1000:
            raise ConfigError(f"--fps {self.fps:g} must be a finite number in (0, 1000]")
        if not 1 <= self.scale <= 64:
            raise ConfigError(f"--scale {self.scale} must be an integer from 1 to 64 (the enlargement of the frames)")
        check_seed(self.seed, "--seed")
        if self.mode != "interpolate" and not 1 <= self.n_samples <= MAX_SAMPLES:
            raise ConfigError(f"--samples {self.n_samples} must be between 1 and {MAX_SAMPLES}")
        if self.mode == "interpolate" and not 2 <= self.steps <= MAX_STEPS:
            raise ConfigError(f"--steps {self.steps} must be between 2 and {MAX_STEPS}")
        for option, value, choices in (("--metric", self.metric, pixel_metrics()), ("--format", self.format, FORMATS),
                                       ("--content", self.content, CONTENTS)):
            if value not in choices:
                raise ConfigError(f"{option} {value!r}: choose one of {', '.join(choices)}")

    @property
    def mode(self) -> str:
        """``predict``, ``swap-content`` or ``interpolate``."""
        return "swap-content" if self.swap_content else "interpolate" if self.interpolate else "predict"

    @property
    def n_samples(self) -> int:
        """The samples to draw: ``samples``, or the mode's default."""
        return DEFAULT_SAMPLES.get(self.mode, 1) if self.samples is None else self.samples


@dataclass(frozen=True)
class PredictOutputs:
    """What :func:`run` wrote: the folder, and the summary that its ``summary.json`` holds."""

    folder: Path
    summary: dict[str, Any]

    @property
    def files(self) -> list[str]:
        """The names of the files written (``summary.json`` aside)."""
        return list(self.summary["files"])

    @property
    def paths(self) -> dict[str, Path]:
        """Every file written, ``summary.json`` last, by name."""
        return {**{name: self.folder / name for name in self.files}, "summary.json": self.folder / "summary.json"}


def check_horizon(horizon: int) -> int:
    if not 1 <= horizon <= MAX_HORIZON:
        raise ConfigError(f"--horizon {horizon} must be between 1 and {MAX_HORIZON}")
    return horizon


def default_out_dir(clip: str | Path) -> Path:
    """Where ``srvp predict`` writes without ``--out``: ``predictions/<clip name>``."""
    return Path("predictions") / Path(clip).stem


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------


def select_window(clip: torch.Tensor, cond: int, horizon: int, start: int | None, source: str
                  ) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """Conditioning frames ``(cond, C, H, W)``, the ground truth after them (up to ``horizon`` frames, None if the
    clip ends there) and the start index used."""
    length = clip.shape[0]
    if cond > length:
        raise DataError(f"{source}: the clip has {length} frame(s), fewer than the {cond} conditioning frames "
                        f"(--cond-frames)")
    if start is None:
        start = length - cond - horizon if length >= cond + horizon else length - cond
    if start < 0:
        raise ConfigError(f"--start {start} must be 0 or more (the index of the first conditioning frame)")
    if start + cond > length:
        raise DataError(f"{source}: the clip has {length} frame(s); {cond} conditioning frames from index {start} "
                        f"(--start) do not fit")
    truth = clip[start + cond:start + cond + horizon]
    return clip[start:start + cond], (truth if truth.shape[0] else None), start


def score_samples(samples: torch.Tensor, truth: torch.Tensor, steps_per_frame: int, metric: str) -> np.ndarray:
    """Mean ``metric`` ``(N,)`` over the known ground-truth frames ``(Tg, C, H, W)`` of every sample
    ``(N, T', C, H, W)`` (only the integer-time frames of samples that carry intermediate states)."""
    frames = samples[:, steps_per_frame - 1::steps_per_frame][:, :truth.shape[0]]
    target = truth.unsqueeze(0).expand_as(frames)
    return METRICS[metric].score(frames, target).mean(dim=1).double().numpy()


def per_step_plot(samples: torch.Tensor, truth: torch.Tensor, steps_per_frame: int, chosen: dict[str, int],
                  path: Path, cond_frames: int) -> str:
    """PNG of every metric without a network (PSNR, SSIM) against the frame index (the evaluation report's
    :func:`curves_figure`): the chosen samples (best, worst, random), the mean over all samples with its 95% band,
    and a blank frame, on the known ground-truth frames. Returns the file name."""
    frames = samples[:, steps_per_frame - 1::steps_per_frame][:, :truth.shape[0]]
    target = truth.unsqueeze(0).expand_as(frames)
    scores = {m: METRICS[m].score for m in pixel_metrics()}
    per_frame = {m: fn(frames, target).double().numpy() for m, fn in scores.items()}
    blank = {m: fn(torch.zeros_like(truth), truth).double().numpy()[None] for m, fn in scores.items()}
    curves = [Curve(f"{name} sample (#{i})", {m: v[i][None] for m, v in per_frame.items()})
              for name, i in chosen.items()]
    curves += [Curve(f"mean of {len(frames)} samples", per_frame), Curve("blank (black) frame", blank, baseline=True)]
    atomic_write_bytes(path, curves_figure(curves, cond_frames))
    return path.name


def hold(frames: torch.Tensor, n: int) -> torch.Tensor:
    """Repeat each frame ``n`` times, to show frames of the training rate next to ``n``-times faster ones."""
    return frames.repeat_interleave(n, dim=0) if n > 1 else frames


@dataclass(frozen=True)
class _Plan:
    """A request's numbers for one model: conditioning frames, horizon, generation step (one the model accepts) and
    output frames per frame interval (``n = 1/dt`` when ``dt`` is smaller than the training step: every
    intermediate state is decoded; else 1)."""

    cond: int
    horizon: int
    step: StepSize
    n: int


def _plan(request: PredictRequest, predictor: Predictor) -> _Plan:
    data_cfg = predictor.config.data
    cond = request.cond_frames if request.cond_frames is not None else max(data_cfg.cond_frames,
                                                                           predictor.content_frames)
    horizon = request.horizon if request.horizon is not None else max(1, data_cfg.test_seq_len - data_cfg.cond_frames)
    if cond < predictor.content_frames:
        raise ConfigError(f"--cond-frames {cond}: the model needs at least k={predictor.content_frames}")
    check_horizon(horizon)
    step = predictor.model.step_size(request.dt)
    return _Plan(cond, horizon, step, step.n if step.n > predictor.model.step_size().n else 1)


def _check_outputs(request: PredictRequest, predictor: Predictor, video_panels: int, grid_rows: int,
                   grid_columns: int) -> None:
    """Refuse, before any sampling, a video of ``video_panels`` panels side by side or a grid of ``grid_rows`` rows
    of ``grid_columns`` frames larger than a picture may be (:func:`srvp.visualization.video.check_canvas`)."""
    size, scale, lower = predictor.frame_size, request.scale, "--samples, --steps, --horizon, --dt or --scale"
    check_canvas(*grid_size(video_panels, video_panels, size, size, 2, scale), f"the {request.format} video",
                 lower, gif=request.format == "gif")
    check_canvas(*grid_size(grid_rows * grid_columns, grid_columns, size * scale, size * scale), "grid.png", lower)


def _write(path: Path, frames, request: PredictRequest, fps: float, ncols: int = 1) -> str:
    write_video(path, frames, fps=fps, scale=request.scale, ncols=ncols)
    return path.name


def _other_clip(predictor: Predictor, path: str) -> torch.Tensor:
    """The second clip of a swap or an interpolation, as the model sees it ``(T, C, S, S)``."""
    return predictor.prepare(read_clip(path), path)[0].cpu()


# ----------------------------------------------------------------------------------------------------------------
# Modes
# ----------------------------------------------------------------------------------------------------------------


def _predict(request: PredictRequest, predictor: Predictor, clip: torch.Tensor, out: Path) -> dict:
    plan = _plan(request, predictor)
    cond, horizon, step, n = plan.cond, plan.horizon, plan.step, plan.n
    n_samples = request.n_samples
    _check_outputs(request, predictor, n_samples + 1 if request.side_by_side else 1,
                   1 + GRID_SAMPLES_WITHOUT_TRUTH, cond + horizon * n)
    x_cond, truth, start = select_window(clip, cond, horizon, request.start, request.input)
    samples = predictor.predict(x_cond.unsqueeze(0), horizon, n_samples=n_samples, dt=step, use_mean=request.mean,
                                keep_intermediate=n > 1)[0]  # (N, horizon * n, C, H, W)
    summary = {"mode": "predict", "conditioning": [start, start + cond], "horizon": horizon, "dt": step.dt,
               "frames_per_sample": int(samples.shape[1]), "samples": n_samples,
               "ground_truth_frames": 0 if truth is None else int(truth.shape[0]), "files": []}

    # Videos at n times the training frame rate; training-rate frames are held n frames.
    fps = request.fps * n
    if request.side_by_side:
        panels = [torch.cat([hold(x_cond, n), hold(truth, n)]) if truth is not None else hold(x_cond, n)]
        panels += [torch.cat([hold(x_cond, n), s]) for s in samples]
        summary["files"].append(_write(out / f"samples.{request.format}", panels, request, fps, ncols=len(panels)))
    else:
        for i, s in enumerate(samples):
            summary["files"].append(_write(out / f"sample_{i:02d}.{request.format}",
                                           torch.cat([hold(x_cond, n), s]), request, fps))
    chosen = _predict_grid(request, predictor, plan, x_cond, truth, samples, out, summary)
    summary["files"].append("grid.png")
    if truth is not None:
        summary["files"].append(per_step_plot(samples, truth, n, chosen, out / "per_step.png", cond))
    return summary


def _predict_grid(request: PredictRequest, predictor: Predictor, plan: _Plan, x_cond: torch.Tensor,
                  truth: torch.Tensor | None, samples: torch.Tensor, out: Path, summary: dict) -> dict[str, int]:
    """``grid.png``: conditioning | truth, then the chosen samples (best, worst and a random one by the request's
    metric when the truth is known, with their scores added to ``summary``; else the first ones). Returns the
    chosen samples' indices by name."""
    cond, n = plan.cond, plan.n
    truth_columns = [cond + n * (t + 1) - 1 for t in range(0 if truth is None else truth.shape[0])]
    rows = [x_cond if truth is None else torch.cat([x_cond, truth])]
    offsets: list = [list(range(cond)) + truth_columns]
    labels = ["conditioning" if truth is None else "conditioning | truth"]
    chosen: list[tuple[str, int]] = []
    if truth is not None:
        metric = request.metric
        scores = score_samples(samples, truth, n, metric)
        order = rank_samples(scores, metric).order.numpy()  # best first
        chosen = [("best", int(order[0]))]
        if len(samples) > 1:
            chosen.append(("worst", int(order[-1])))
        others = order[1:-1]
        if len(others):
            chosen.append(("random", int(np.random.default_rng(request.seed).choice(others))))
        unit = f" {METRICS[metric].unit}" if METRICS[metric].unit else ""
        for name, i in chosen:
            rows.append(samples[i])
            labels.append(f"{name} #{i} ({metric} {scores[i]:.3g}{unit})")
        summary["scores"] = {"metric": metric, "values": [float(v) for v in scores], **dict(chosen)}
    else:
        for i in range(min(len(samples), GRID_SAMPLES_WITHOUT_TRUTH)):
            rows.append(samples[i])
            labels.append(f"sample #{i}")
    offsets += [cond] * (len(rows) - 1)
    times = predictor.frame_times(plan.horizon, plan.step, keep_intermediate=n > 1)
    marks = [None] + [[bool(t != round(t)) for t in times]] * (len(rows) - 1)
    save_grid_png(out / "grid.png", rows, labels=labels, offsets=offsets, marks=marks if n > 1 else None,
                  scale=request.scale)
    return dict(chosen)


def _swap(request: PredictRequest, predictor: Predictor, clip: torch.Tensor, out: Path) -> dict:
    plan = _plan(request, predictor)
    cond, horizon, step, n = plan.cond, plan.horizon, plan.step, plan.n
    n_samples = request.n_samples
    _check_outputs(request, predictor, n_samples + 2, n_samples + 2, cond + horizon * n)
    x_dyn, truth, start = select_window(clip, cond, horizon, request.start, request.input)
    other = _other_clip(predictor, request.swap_content)
    x_content, _, _ = select_window(other, min(cond, other.shape[0]), 0, None, request.swap_content)
    if x_content.shape[0] < predictor.content_frames:
        raise DataError(f"{request.swap_content}: {x_content.shape[0]} frame(s); the model needs at least "
                        f"k={predictor.content_frames}")
    swapped = predictor.swap_content(x_dyn.unsqueeze(0), x_content.unsqueeze(0), horizon, n_samples=n_samples,
                                     dt=step, use_mean=request.mean, keep_intermediate=n > 1)[0]
    dynamics = x_dyn if truth is None else torch.cat([x_dyn, truth])
    dyn_video = torch.cat([hold(x_dyn, n)] + ([hold(truth, n)] if truth is not None else []))
    panels = [dyn_video, hold(x_content, n)] + [s for s in swapped]
    name = _write(out / f"swap.{request.format}", panels, request, request.fps * n, ncols=len(panels))
    intermediate = [False] * cond + [bool(t != round(t)) for t in predictor.frame_times(horizon, step, n > 1)]
    rows = [dynamics, x_content] + [s for s in swapped]
    truth_cols = [cond + n * (t + 1) - 1 for t in range(dynamics.shape[0] - cond)]
    offsets = [list(range(cond)) + truth_cols, 0] + [0] * n_samples
    labels = ["dynamics", "content"] + [f"swap #{i}" for i in range(n_samples)]
    marks = [None, None] + [intermediate] * n_samples
    save_grid_png(out / "grid.png", rows, labels=labels, offsets=offsets, marks=marks if n > 1 else None,
                  scale=request.scale)
    return {"mode": "swap-content", "dynamics": request.input, "content": request.swap_content,
            "conditioning": [start, start + cond], "horizon": horizon, "dt": step.dt, "samples": n_samples,
            "frames_per_sample": int(swapped.shape[1]), "files": [name, "grid.png"]}


def _interpolate(request: PredictRequest, predictor: Predictor, clip: torch.Tensor, out: Path) -> dict:
    plan = _plan(request, predictor)
    cond, horizon, steps = plan.cond, plan.horizon, request.steps
    _check_outputs(request, predictor, steps + 2, steps + 4, cond + horizon)
    x_a, truth_a, start = select_window(clip, cond, horizon, request.start, request.input)
    other = _other_clip(predictor, request.interpolate)
    x_b, truth_b, _ = select_window(other, cond, horizon, None, request.interpolate)
    length = cond + horizon
    paths = predictor.interpolate(x_a.unsqueeze(0), x_b.unsqueeze(0), steps, length, content=request.content)[0]
    rec_a = predictor.reconstruct(x_a.unsqueeze(0), horizon)[0]
    rec_b = predictor.reconstruct(x_b.unsqueeze(0), horizon)[0]
    clip_a = x_a if truth_a is None else torch.cat([x_a, truth_a])
    clip_b = x_b if truth_b is None else torch.cat([x_b, truth_b])
    weights = np.linspace(0.0, 1.0, steps)
    rows = [clip_a, rec_a] + list(paths) + [rec_b, clip_b]
    labels = ["A", "A reconstructed"] + [f"a = {w:.2f}" for w in weights] + ["B reconstructed", "B"]
    save_grid_png(out / "grid.png", rows, labels=labels, scale=request.scale)
    name = _write(out / f"interpolation.{request.format}", [clip_a] + list(paths) + [clip_b], request, request.fps,
                  ncols=steps + 2)
    return {"mode": "interpolate", "a": request.input, "b": request.interpolate,
            "conditioning": [start, start + cond], "frames_per_trajectory": length, "steps": steps,
            "content": request.content, "weights": [float(w) for w in weights], "files": [name, "grid.png"]}


MODES = {"predict": _predict, "swap-content": _swap, "interpolate": _interpolate}


def earlier_outputs(folder: Path) -> list[str] | None:
    """The files an earlier ``srvp predict`` wrote into ``folder``: those its ``summary.json`` lists (None if it is
    not such a summary); only these, and the summary, are replaced by a new run into the same folder."""
    summary = read_json_marker(folder / "summary.json")
    files = summary.get("files") if summary is not None else None
    return files if isinstance(files, list) and all(isinstance(f, str) for f in files) else None


def run(predictor: Predictor, request: PredictRequest, out_dir: str | Path | None = None,
        shown: Mapping[str, str] | None = None) -> PredictOutputs:
    """Everything ``srvp predict`` does once the model is loaded: read ``request.input`` with the safe readers,
    check what depends on the model, sample, and write the outputs into ``out_dir`` (default
    :func:`default_out_dir`) whole or not at all. ``shown`` maps paths to the names that the summary gives instead
    (the demo's summary names no file of its server)."""
    clip = predictor.prepare(read_clip(request.input), request.input)[0].cpu()  # (T, C, S, S)
    out = Path(out_dir) if out_dir else default_out_dir(request.input)
    torch.manual_seed(request.seed)
    try:
        # every file goes to a staging folder that replaces out at the end: outputs whole or absent
        with staged_output_dir(out, "summary.json", earlier=earlier_outputs) as stage:
            summary = MODES[request.mode](request, predictor, clip, stage)
            summary = {"checkpoint": str(request.checkpoint), "input": str(request.input), **summary}
            summary = {k: (shown or {}).get(v, v) if isinstance(v, str) else v for k, v in summary.items()}
            atomic_write_text(stage / "summary.json", json.dumps(summary, indent=1) + "\n")
    except OSError as e:
        where = out if e.filename is None or ".partial-" in str(e.filename) else e.filename
        raise SrvpError(f"{where}: cannot write the outputs ({e.strerror or e}); nothing was written") from None
    return PredictOutputs(out, summary)
