"""``srvp evaluate``: the paper's evaluation of a checkpoint on its test set.

For each test sequence, N futures (``--samples``, default 100) are drawn from the conditioning frames and the best
sample is reported per metric (PSNR, SSIM, LPIPS), with 95% intervals over sequences, beside two trivial predictions
(last conditioning frame repeated, blank frame); per-step curves, the test ELBO and FVD complete it. Several
``--dt`` values give the paper's step-size tables. The test set is the checkpoint's (its ``data`` section: dataset,
cond_frames, test_seq_len) or ``--test-set FILE.npz`` in the official layout.

LPIPS and FVD need pretrained weight files that are never downloaded (see docs/evaluation.md):
``alexnet-owt-7be5be79.pth`` and ``lpips_v0.1_alex.pth`` (LPIPS), ``i3d_pretrained_400.pt`` (FVD), looked up in
``$TORCH_HOME/hub/checkpoints/`` or given with ``--alexnet-weights``, ``--lpips-weights``, ``--i3d-weights``; when
one is missing the run stops (``--missing-weights error``) or skips that metric (``skip``).

Outputs in ``--out``: results.json, results.md, per_sequence.csv, per_step.csv, per_step.png. Run with
``torchrun --nproc-per-node K -m srvp.cli.main evaluate ...`` to shard the sequences over K processes (gloo on CPU,
NCCL on GPUs); the results are identical to a single-process run.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch.distributed as dist

from srvp.config import PRECISIONS, StepSize, distinct_steps, seed_argument
from srvp.data import load_test_set
from srvp.data.npz import LAYOUTS, load_sequences_npz
from srvp.data.videos import open_split
from srvp.errors import ConfigError, DataError, SrvpError
from srvp.evaluation import EvalSettings, evaluate_model, write_report
from srvp.evaluation.metrics import METRICS
from srvp.evaluation.protocol import load_metric_networks
from srvp.evaluation.report import REPORT_FILES, markdown_table
from srvp.files import read_json_marker, replaceable_names, staged_output_dir
from srvp.pretrained import load_pretrained, paper_protocol
from srvp.runtime import init_distributed, resolve_device, tune_glibc_malloc

NAME = "evaluate"
HELP = "evaluate a checkpoint with the paper's protocol (best of N; PSNR, SSIM, LPIPS, FVD, ELBO; tables 1-3, 5-7)"
DESCRIPTION = __doc__.split("\n\n", 1)[1] if __doc__ else HELP


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--checkpoint", required=True, metavar="NAME|PATH",
                        help="a model name (srvp pretrained list: shipped, or the authors' such as authors-smmnist), "
                        "a Hub-layout folder, a folder of the authors' code (config.json + model.pt), an srvp train "
                        "checkpoint (.pt), or a Hub repository id owner/name[/folder]")
    parser.add_argument("--test-set", metavar="FILE.npz", default=None,
                        help="test sequences in the official .npz layout (default: the checkpoint's test set)")
    parser.add_argument("--test-set-layout", choices=tuple(LAYOUTS), default=None,
                        help="how --test-set stores its sequences: time-first (T, N, H, W), the official layout, or "
                        "sequence-first (N, T, H, W); needed only when the file does not say (no 'layout' entry, "
                        "nor the KTH or Moving MNIST keys)")
    parser.add_argument("--data-dir", metavar="DIR", default=None,
                        help="dataset directory (default: the checkpoint's data_dir)")
    parser.add_argument("--samples", type=_positive, default=None, metavar="N",
                        help="futures drawn per sequence; the best is reported (default: the paper's protocol of the "
                        "model, 100; 1 for deterministic Moving MNIST)")
    parser.add_argument("--dt", type=StepSize.argument, nargs="+", default=None, metavar="DT",
                        help="test Euler step size(s), 1/n, e.g. --dt 1 1/2 1/3 (default: the training step)")
    parser.add_argument("--metrics", nargs="+", choices=tuple(METRICS), default=["psnr", "ssim"],
                        help="metrics (default: psnr ssim; " + " and ".join(m for m in METRICS if METRICS[m].network)
                        + " need weight files)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output directory (default: eval_<checkpoint name> next to the checkpoint)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="autocast precision of the model (metrics are always fp32)")
    parser.add_argument("--batch-size", type=_positive, default=None, metavar="S",
                        help="samples drawn per forward pass (bounds memory; default: 512 predicted frames per pass)")
    parser.add_argument("--max-sequences", type=_positive, default=None, metavar="N",
                        help="evaluate only the first N test sequences")
    parser.add_argument("--cond-frames", type=_positive, default=None, metavar="K",
                        help="conditioning frames (default: the checkpoint's cond_frames)")
    parser.add_argument("--horizon", type=_positive, default=None, metavar="H",
                        help="predicted frames (default: the rest of each test sequence)")
    parser.add_argument("--seed", type=seed_argument, default=EvalSettings.seed,
                        help=f"base seed of the per-sequence draws, 0 to 2^32 - 1 (default {EvalSettings.seed}, "
                        f"as EvalSettings)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--no-elbo", action="store_true", help="skip the test-set ELBO")
    parser.add_argument("--missing-weights", choices=("error", "skip"), default="error",
                        help="when an LPIPS/FVD weight file is missing: stop (default) or skip that metric")
    parser.add_argument("--alexnet-weights", metavar="FILE", default=None,
                        help="alexnet-owt-7be5be79.pth (default: $TORCH_HOME/hub/checkpoints/)")
    parser.add_argument("--lpips-weights", metavar="FILE", default=None,
                        help="LPIPS v0.1 AlexNet heads (default: $TORCH_HOME/hub/checkpoints/lpips_v0.1_alex.pth)")
    parser.add_argument("--i3d-weights", metavar="FILE", default=None,
                        help="I3D Kinetics-400 (default: $TORCH_HOME/hub/checkpoints/i3d_pretrained_400.pt)")
    parser.add_argument("--fvd-batch-size", type=_positive, default=8, metavar="B", help="videos per I3D pass")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _load_sequences(args: argparse.Namespace, cfg) -> tuple[np.ndarray, str]:
    data_cfg = cfg.data
    if args.data_dir is not None:
        data_cfg.data_dir = args.data_dir
    if args.test_set is not None:
        return load_sequences_npz(args.test_set, args.test_set_layout), str(args.test_set)
    return load_test_set(data_cfg), data_cfg.test_set or f"{data_cfg.dataset} test set"


#: the files of an evaluation report (srvp.evaluation.report.write_report), which a new report into the same --out
#: replaces; tests/test_predict.py checks that the list covers what write_report writes


def earlier_report(folder: Path) -> tuple[str, ...] | None:
    """The files of an earlier report in ``folder`` (None if its ``results.json`` is not one of an evaluation)."""
    results = read_json_marker(folder / "results.json")
    return REPORT_FILES if results is not None and "settings" in results else None


def _check_output_dir(out_dir: Path) -> None:
    """Refuse an output directory that could not be created or written, with a one-line :class:`ConfigError`."""
    existing = out_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{existing}: exists and is not a directory (--out {out_dir})")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{existing}: no permission to write there (--out {out_dir})")
    replaceable_names(out_dir, "results.json", earlier=earlier_report)


def run(args: argparse.Namespace) -> int:
    distinct_steps(args.dt)
    if args.test_set_layout and not args.test_set:
        raise ConfigError("--test-set-layout says how a --test-set file is laid out; give --test-set too")
    if args.precision == "fp16" and args.device == "cpu":
        raise ConfigError("--precision fp16 needs a GPU; use bf16 on CPU")
    device = resolve_device(args.device)
    tune_glibc_malloc()  # the sampling passes allocate the same large buffers again and again, as training does
    rank, world = init_distributed(device)
    try:
        loaded = load_pretrained(args.checkpoint)
        model, cfg = loaded.model.to(device), loaded.config
        for step in args.dt or []:  # a step the model does not accept is refused before any work
            model.step_size(step)
        sequences, source = _load_sequences(args, cfg)
        if args.max_sequences is not None:
            sequences = sequences[: args.max_sequences]
        C, H, W = sequences.shape[2:]
        m = cfg.model
        expected = (m.channels, m.frame_size, m.frame_size)
        if tuple(sequences.shape[2:]) != expected:
            raise DataError(f"{source}: frames are {C}x{H}x{W} (C x H x W) but the model of {args.checkpoint} "
                            f"expects {m.channels}x{m.frame_size}x{m.frame_size}")
        cond_frames = args.cond_frames or cfg.data.cond_frames
        horizon = args.horizon or sequences.shape[1] - cond_frames
        if cond_frames + horizon > sequences.shape[1] or horizon < 1:
            raise DataError(f"{source}: sequences have {sequences.shape[1]} frames, fewer than {cond_frames} "
                            f"conditioning + {max(horizon, 1)} predicted")
        if cond_frames < m.content_frames:
            raise ConfigError(f"--cond-frames {cond_frames} is fewer than the model's content_frames "
                              f"{m.content_frames}")
        if "lpips" in args.metrics and m.frame_size < 32:
            raise ConfigError(f"LPIPS needs frames of at least 32x32 pixels; the model of {args.checkpoint} has "
                              f"{m.frame_size}x{m.frame_size}")
        if "fvd" in args.metrics and (len(sequences) < 2 or cond_frames + horizon < 9):
            raise ConfigError(f"FVD needs at least 2 test sequences of at least 9 frames, got {len(sequences)} of "
                              f"{cond_frames + horizon}")
        weights = {"alexnet": args.alexnet_weights, "lpips": args.lpips_weights, "i3d": args.i3d_weights}
        networks, skipped = load_metric_networks([x for x in args.metrics if METRICS[x].network], weights,
                                                 args.missing_weights, device)
        for metric, why in skipped.items():
            if rank == 0:
                print(f"srvp evaluate: {METRICS[metric].label} skipped: {why}", file=sys.stderr)
        metrics = [x for x in args.metrics if x not in skipped]
        out_dir = Path(args.out) if args.out else Path(args.checkpoint).parent / f"eval_{Path(args.checkpoint).stem}"
        if rank == 0:
            _check_output_dir(out_dir)  # before the evaluation, which can take hours, not after
        meta = {"checkpoint": str(args.checkpoint), "checkpoint_step": loaded.step,
                "test_set": source, "dataset": cfg.data.dataset, "model": m.model, "world_size": world}
        if cfg.data.dataset == "videos" and not args.test_set:
            meta["test_videos"] = sum(1 for n in open_split(cfg.data, "test").lengths if n >= cond_frames + horizon)
        paper = paper_protocol(args.checkpoint, cfg)
        samples = args.samples or (paper.samples if paper else 100)
        settings = EvalSettings(n_samples=samples, dts=args.dt, metrics=metrics, horizon=horizon,
                                batch_size=args.batch_size, precision=args.precision, seed=args.seed,
                                elbo=not args.no_elbo, fvd_batch_size=args.fvd_batch_size)
        if rank == 0:  # which protocol runs, before the hours it may take
            matches = paper is not None and (paper.cond_frames, paper.predicted) == (cond_frames, horizon)
            print(f"srvp evaluate: {len(sequences)} sequences of {source}, {cond_frames} conditioning -> {horizon} "
                  f"predicted frames, best of {samples} samples"
                  + (f" (the paper's {paper.dataset} protocol)" if matches else ""), file=sys.stderr)
        result = evaluate_model(model, sequences, cond_frames, settings, device=device,
                                progress=not args.no_progress, networks=networks, meta=meta)
        result.skipped.update(skipped)
        if rank == 0:
            try:  # every file to a staging folder that replaces out_dir at the end: a report whole or absent
                with staged_output_dir(out_dir, "results.json", earlier=earlier_report) as stage:
                    paths = write_report(result, stage, train_seq_len=cfg.data.seq_len)
            except OSError as e:
                raise SrvpError(f"{out_dir}: cannot write the report ({e.strerror or e}); nothing was written") \
                    from None
            print(markdown_table(result))
            print(f"wrote {', '.join(str(out_dir / p.name) for p in paths.values())}")
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    return 0
