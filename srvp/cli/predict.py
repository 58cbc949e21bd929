"""``srvp predict``: the possible futures of a user's clip, at the training frame rate or higher, plus the content
swap (figure 8) and latent interpolation (figure 9) of the paper.

The clip (video file, GIF, folder of frames or ``.npy``) is centre-cropped to a square and resized to the model's
frames. ``--cond-frames K`` conditioning frames are taken at ``--start`` (default: the last ``K + horizon`` frames
when the clip is that long, so the frames after the conditioning ones are the ground truth, else its last ``K``
frames). Outputs in ``--out``:

- ``sample_XX.gif|mp4`` (one per sample: conditioning frames then the sample), or with ``--side-by-side`` one
  ``samples.gif|mp4`` with the ground truth and every sample next to each other;
- ``grid.png``: conditioning | ground truth on the first row, then the best, worst and a random sample by
  ``--metric`` when the ground truth is known (else the first samples); with ``--dt`` smaller than the training step
  every intermediate state is decoded and marked with a red bar at the bottom, as in figure 7;
- ``summary.json``: what was done, the score of every sample and the files written.

With ``--swap-content OTHER`` the latent trajectory of the clip is decoded with the content of OTHER (``swap``);
with ``--interpolate OTHER`` trajectories from initial states interpolated between the two clips' are decoded
(``interpolation``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from srvp.api import Predictor
from srvp.config import StepSize, check_seed, seed_argument
from srvp.errors import ConfigError, DataError, SrvpError
from srvp.evaluation.metrics import METRICS, pixel_metrics, rank_samples
from srvp.evaluation.report import Curve, curves_figure
from srvp.files import atomic_write_bytes, atomic_write_text, read_json_marker, staged_output_dir
from srvp.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_clip, suffix_list
from srvp.visualization import save_grid_png, write_video
from srvp.visualization.video import check_canvas, grid_size

NAME = "predict"
# Bounds on work that would run for hours by mistake (a typo of a zero): far above any figure of the paper.
MAX_SAMPLES, MAX_HORIZON, MAX_STEPS = 1000, 10_000, 100
HELP = "predict the futures of a clip (video, GIF, folder of frames or .npy); content swap and interpolation"
DESCRIPTION = __doc__.split("\n\n", 1)[1] if __doc__ else HELP

FORMATS = ("gif", "mp4")
GRID_SAMPLES_WITHOUT_TRUTH = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--checkpoint", required=True, metavar="NAME|PATH",
                        help="a model name (srvp pretrained list: shipped, or the authors' such as authors-kth), a "
                        "Hub-layout folder, a folder of the authors' code (config.json + model.pt), an srvp train "
                        "checkpoint (.pt), or a Hub repository id owner/name")
    parser.add_argument("--input", required=True, metavar="CLIP",
                        help=f"a video file ({suffix_list(VIDEO_SUFFIXES)}), a folder of frames "
                        f"({suffix_list(IMAGE_SUFFIXES)}; in natural order: frame_2 before frame_10), or .npy "
                        f"(T,H,W) / (T,H,W,C) / (T,C,H,W)")
    parser.add_argument("--cond-frames", type=int, default=None, metavar="K",
                        help="conditioning frames (default: the checkpoint's cond_frames)")
    parser.add_argument("--horizon", type=int, default=None, metavar="H",
                        help="frames to predict (default: the checkpoint's test_seq_len - cond_frames)")
    parser.add_argument("--start", type=int, default=None, metavar="I",
                        help="index of the first conditioning frame in the clip (default: see above)")
    parser.add_argument("--samples", type=int, default=None, metavar="N",
                        help="samples to draw (default 10 for prediction, 1 for --swap-content)")
    parser.add_argument("--dt", type=StepSize.argument, default=None, metavar="DT",
                        help="Euler step of generation, 1/n (e.g. 1/2: every intermediate state is decoded, "
                        "doubling the frame rate; default: the training step)")
    parser.add_argument("--metric", choices=pixel_metrics(), default="psnr",
                        help="score used to pick the best and worst samples against the ground truth")
    parser.add_argument("--mean", action="store_true", help="use distribution means instead of random draws")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output directory (default: predictions/<clip name>)")
    parser.add_argument("--format", choices=FORMATS, default="gif", help="video format")
    parser.add_argument("--side-by-side", action="store_true",
                        help="one video with the ground truth and all samples side by side")
    parser.add_argument("--fps", type=float, default=4.0, help="frames per second of the training frame rate")
    parser.add_argument("--scale", type=int, default=1, help="enlarge frames in the outputs by this factor")
    parser.add_argument("--seed", type=seed_argument, default=0, help="random seed of the samples (0 to 2^32 - 1)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--swap-content", default=None, metavar="OTHER_CLIP",
                      help="decode the dynamics of --input with the content (w, skip connections) of this clip")
    mode.add_argument("--interpolate", default=None, metavar="OTHER_CLIP",
                      help="decode trajectories from initial states interpolated between --input and this clip")
    parser.add_argument("--steps", type=int, default=5,
                        help=f"--interpolate: number of interpolated trajectories (2 to {MAX_STEPS})")
    parser.add_argument("--content", choices=("a", "b", "interpolate"), default="a",
                        help="--interpolate: content of --input (a), of the other clip (b) or interpolated")


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


def _check_common(args: argparse.Namespace, predictor) -> tuple[int, int, StepSize, int]:
    """Conditioning frames, horizon, generation step (one the model accepts) and output frames per frame interval
    (``n = 1/dt`` when ``dt`` is smaller than the training step: every intermediate state is decoded; else 1)."""
    data_cfg = predictor.config.data
    cond = args.cond_frames if args.cond_frames is not None else max(data_cfg.cond_frames,
                                                                     predictor.content_frames)
    horizon = args.horizon if args.horizon is not None else max(1, data_cfg.test_seq_len - data_cfg.cond_frames)
    if cond < predictor.content_frames:
        raise ConfigError(f"--cond-frames {cond}: the model needs at least k={predictor.content_frames}")
    if not 1 <= horizon <= MAX_HORIZON:
        raise ConfigError(f"--horizon {horizon} must be between 1 and {MAX_HORIZON}")
    if args.start is not None and args.start < 0:
        raise ConfigError(f"--start {args.start} must be 0 or more (the index of the first conditioning frame)")
    if not math.isfinite(args.fps) or args.fps <= 0 or args.fps > 1000:
        raise ConfigError(f"--fps {args.fps:g} must be a finite number in (0, 1000]")
    if not 1 <= args.scale <= 64:
        raise ConfigError(f"--scale {args.scale} must be an integer from 1 to 64 (the enlargement of the frames)")
    check_seed(args.seed, "--seed")
    step = predictor.model.step_size(args.dt)
    return cond, horizon, step, (step.n if step.n > predictor.model.step_size().n else 1)


def _check_outputs(args: argparse.Namespace, predictor, video_panels: int, grid_rows: int, grid_columns: int
                   ) -> None:
    """Refuse, before any sampling, a video of ``video_panels`` panels side by side or a grid of ``grid_rows`` rows
    of ``grid_columns`` frames larger than a picture may be (:func:`srvp.visualization.video.check_canvas`)."""
    size, lower = predictor.frame_size, "--samples, --steps, --horizon, --dt or --scale"
    check_canvas(*grid_size(video_panels, video_panels, size, size, 2, args.scale), f"the {args.format} video",
                 lower, gif=args.format == "gif")
    check_canvas(*grid_size(grid_rows * grid_columns, grid_columns, size * args.scale, size * args.scale),
                 "grid.png", lower)


def _write(path: Path, frames, args: argparse.Namespace, fps: float, ncols: int = 1) -> str:
    write_video(path, frames, fps=fps, scale=args.scale, ncols=ncols)
    return path.name


# ----------------------------------------------------------------------------------------------------------------
# Modes
# ----------------------------------------------------------------------------------------------------------------


def _samples(args, default: int) -> int:
    """``--samples``, or the mode's default; it must be positive."""
    n_samples = default if args.samples is None else args.samples
    if not 1 <= n_samples <= MAX_SAMPLES:
        raise ConfigError(f"--samples {n_samples} must be between 1 and {MAX_SAMPLES}")
    return n_samples


def _predict(args, predictor, clip, out: Path) -> dict:
    cond, horizon, step, n = _check_common(args, predictor)
    n_samples = _samples(args, default=10)
    _check_outputs(args, predictor, n_samples + 1 if args.side_by_side else 1, 1 + GRID_SAMPLES_WITHOUT_TRUTH,
                   cond + horizon * n)
    x_cond, truth, start = select_window(clip, cond, horizon, args.start, args.input)
    samples = predictor.predict(x_cond.unsqueeze(0), horizon, n_samples=n_samples, dt=step, use_mean=args.mean,
                                keep_intermediate=n > 1)[0]  # (N, horizon * n, C, H, W)
    times = predictor.frame_times(horizon, step, keep_intermediate=n > 1)
    intermediate = [bool(t != round(t)) for t in times]
    summary = {"mode": "predict", "conditioning": [start, start + cond], "horizon": horizon, "dt": step.dt,
               "frames_per_sample": int(samples.shape[1]), "samples": n_samples,
               "ground_truth_frames": 0 if truth is None else int(truth.shape[0]), "files": []}

    # Videos at n times the training frame rate; training-rate frames are held n frames.
    fps = args.fps * n
    if args.side_by_side:
        panels = [torch.cat([hold(x_cond, n), hold(truth, n)]) if truth is not None else hold(x_cond, n)]
        panels += [torch.cat([hold(x_cond, n), s]) for s in samples]
        summary["files"].append(_write(out / f"samples.{args.format}", panels, args, fps, ncols=len(panels)))
    else:
        for i, s in enumerate(samples):
            summary["files"].append(_write(out / f"sample_{i:02d}.{args.format}", torch.cat([hold(x_cond, n), s]),
                                           args, fps))

    # Grid: conditioning | truth, then chosen samples.
    truth_columns = [cond + n * (t + 1) - 1 for t in range(0 if truth is None else truth.shape[0])]
    rows = [x_cond if truth is None else torch.cat([x_cond, truth])]
    offsets: list = [list(range(cond)) + truth_columns]
    labels = ["conditioning" if truth is None else "conditioning | truth"]
    if truth is not None:
        scores = score_samples(samples, truth, n, args.metric)
        order = rank_samples(scores, args.metric).order.numpy()  # best first
        chosen = [("best", int(order[0]))]
        if n_samples > 1:
            chosen.append(("worst", int(order[-1])))
        others = order[1:-1]
        if len(others):
            chosen.append(("random", int(np.random.default_rng(args.seed).choice(others))))
        unit = f" {METRICS[args.metric].unit}" if METRICS[args.metric].unit else ""
        for name, i in chosen:
            rows.append(samples[i])
            labels.append(f"{name} #{i} ({args.metric} {scores[i]:.3g}{unit})")
        summary["scores"] = {"metric": args.metric, "values": [float(v) for v in scores],
                             **{name: i for name, i in chosen}}
    else:
        for i in range(min(n_samples, GRID_SAMPLES_WITHOUT_TRUTH)):
            rows.append(samples[i])
            labels.append(f"sample #{i}")
    offsets += [cond] * (len(rows) - 1)
    marks = [None] + [intermediate] * (len(rows) - 1)
    save_grid_png(out / "grid.png", rows, labels=labels, offsets=offsets, marks=marks if n > 1 else None,
                  scale=args.scale)
    summary["files"].append("grid.png")
    if truth is not None:
        summary["files"].append(per_step_plot(samples, truth, n, dict(chosen), out / "per_step.png", cond))
    return summary


def _swap(args, predictor, clip, out: Path) -> dict:
    cond, horizon, step, n = _check_common(args, predictor)
    n_samples = _samples(args, default=1)
    _check_outputs(args, predictor, n_samples + 2, n_samples + 2, cond + horizon * n)
    x_dyn, truth, start = select_window(clip, cond, horizon, args.start, args.input)
    other = predictor.prepare(read_clip(args.swap_content), args.swap_content)[0].cpu()
    x_content, _, _ = select_window(other, min(cond, other.shape[0]), 0, None, args.swap_content)
    if x_content.shape[0] < predictor.content_frames:
        raise DataError(f"{args.swap_content}: {x_content.shape[0]} frame(s); the model needs at least "
                        f"k={predictor.content_frames}")
    swapped = predictor.swap_content(x_dyn.unsqueeze(0), x_content.unsqueeze(0), horizon, n_samples=n_samples,
                                     dt=step, use_mean=args.mean, keep_intermediate=n > 1)[0]
    dynamics = x_dyn if truth is None else torch.cat([x_dyn, truth])
    fps = args.fps * n
    dyn_video = torch.cat([hold(x_dyn, n)] + ([hold(truth, n)] if truth is not None else []))
    panels = [dyn_video, hold(x_content, n)] + [s for s in swapped]
    name = _write(out / f"swap.{args.format}", panels, args, fps, ncols=len(panels))
    intermediate = [False] * cond + [bool(t != round(t)) for t in predictor.frame_times(horizon, step, n > 1)]
    rows = [dynamics, x_content] + [s for s in swapped]
    truth_cols = [cond + n * (t + 1) - 1 for t in range(dynamics.shape[0] - cond)]
    offsets = [list(range(cond)) + truth_cols, 0] + [0] * n_samples
    labels = ["dynamics", "content"] + [f"swap #{i}" for i in range(n_samples)]
    marks = [None, None] + [intermediate] * n_samples
    save_grid_png(out / "grid.png", rows, labels=labels, offsets=offsets, marks=marks if n > 1 else None,
                  scale=args.scale)
    return {"mode": "swap-content", "dynamics": args.input, "content": args.swap_content,
            "conditioning": [start, start + cond], "horizon": horizon, "dt": step.dt, "samples": n_samples,
            "frames_per_sample": int(swapped.shape[1]), "files": [name, "grid.png"]}


def _interpolate(args, predictor, clip, out: Path) -> dict:
    if args.dt is not None:
        raise ConfigError("--dt is not used by --interpolate (trajectories are generated at the training step)")
    cond, horizon, _, _ = _check_common(args, predictor)
    if not 2 <= args.steps <= MAX_STEPS:
        raise ConfigError(f"--steps {args.steps} must be between 2 and {MAX_STEPS}")
    _check_outputs(args, predictor, args.steps + 2, args.steps + 4, cond + horizon)
    x_a, truth_a, start = select_window(clip, cond, horizon, args.start, args.input)
    other = predictor.prepare(read_clip(args.interpolate), args.interpolate)[0].cpu()
    x_b, truth_b, _ = select_window(other, cond, horizon, None, args.interpolate)
    length = cond + horizon
    paths = predictor.interpolate(x_a.unsqueeze(0), x_b.unsqueeze(0), args.steps, length, content=args.content)[0]
    rec_a = predictor.reconstruct(x_a.unsqueeze(0), horizon)[0]
    rec_b = predictor.reconstruct(x_b.unsqueeze(0), horizon)[0]
    clip_a = x_a if truth_a is None else torch.cat([x_a, truth_a])
    clip_b = x_b if truth_b is None else torch.cat([x_b, truth_b])
    weights = np.linspace(0.0, 1.0, args.steps)
    rows = [clip_a, rec_a] + list(paths) + [rec_b, clip_b]
    labels = ["A", "A reconstructed"] + [f"a = {w:.2f}" for w in weights] + ["B reconstructed", "B"]
    save_grid_png(out / "grid.png", rows, labels=labels, scale=args.scale)
    name = _write(out / f"interpolation.{args.format}", [clip_a] + list(paths) + [clip_b], args, args.fps,
                  ncols=args.steps + 2)
    return {"mode": "interpolate", "a": args.input, "b": args.interpolate, "conditioning": [start, start + cond],
            "frames_per_trajectory": length, "steps": args.steps, "content": args.content,
            "weights": [float(w) for w in weights], "files": [name, "grid.png"]}


def earlier_outputs(folder: Path) -> list[str] | None:
    """The files an earlier ``srvp predict`` wrote into ``folder``: those its ``summary.json`` lists (None if it is
    not such a summary); only these, and the summary, are replaced by a new run into the same ``--out``."""
    summary = read_json_marker(folder / "summary.json")
    files = summary.get("files") if summary is not None else None
    return files if isinstance(files, list) and all(isinstance(f, str) for f in files) else None


def run(args: argparse.Namespace) -> int:
    predictor = Predictor.from_pretrained(args.checkpoint, device=args.device)
    summary, out = predict_files(args, predictor)
    print(f"wrote {', '.join(summary['files'])} and summary.json to {out}")
    return 0


def predict_files(args: argparse.Namespace, predictor, shown: dict[str, str] | None = None) -> tuple[dict, Path]:
    """Everything ``srvp predict`` does once the model is loaded (the web demo calls it too): read ``args.input``
    with the safe readers, check the options, write the outputs into ``args.out`` whole or not at all. Returns the
    summary and the output folder. ``shown`` maps paths to the names that the summary gives instead (the demo's
    summary names no file of its server)."""
    clip = predictor.prepare(read_clip(args.input), args.input)[0].cpu()  # (T, C, S, S)
    out = Path(args.out) if args.out else Path("predictions") / Path(args.input).stem
    torch.manual_seed(check_seed(args.seed, "--seed"))
    try:
        # every file goes to a staging folder that replaces --out at the end: outputs whole or absent
        with staged_output_dir(out, "summary.json", earlier=earlier_outputs) as stage:
            if args.swap_content:
                summary = _swap(args, predictor, clip, stage)
            elif args.interpolate:
                summary = _interpolate(args, predictor, clip, stage)
            else:
                summary = _predict(args, predictor, clip, stage)
            summary = {"checkpoint": str(args.checkpoint), "input": str(args.input), **summary}
            summary = {k: (shown or {}).get(v, v) if isinstance(v, str) else v for k, v in summary.items()}
            atomic_write_text(stage / "summary.json", json.dumps(summary, indent=1) + "\n")
    except OSError as e:
        where = out if e.filename is None or ".partial-" in str(e.filename) else e.filename
        raise SrvpError(f"{where}: cannot write the outputs ({e.strerror or e}); nothing was written") from None
    return summary, out
