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
import sys

from srvp.config import PRECISIONS, StepSize, seed_argument
from srvp.data.npz import LAYOUTS
from srvp.evaluation.metrics import METRICS
from srvp.evaluation.report import markdown_table
from srvp.tasks import evaluate as task
from srvp.tasks.evaluate import EvaluateRequest

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
    parser.add_argument("--metrics", nargs="+", choices=tuple(METRICS), default=list(EvaluateRequest.metrics),
                        help="metrics (default: psnr ssim; " + " and ".join(m for m in METRICS if METRICS[m].network)
                        + " need weight files)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output directory (default: eval_<checkpoint name> next to the checkpoint)")
    parser.add_argument("--precision", choices=PRECISIONS, default=EvaluateRequest.precision,
                        help="autocast precision of the model (metrics are always fp32)")
    parser.add_argument("--batch-size", type=_positive, default=None, metavar="S",
                        help="samples drawn per forward pass (bounds memory; default: 512 predicted frames per pass)")
    parser.add_argument("--max-sequences", type=_positive, default=None, metavar="N",
                        help="evaluate only the first N test sequences")
    parser.add_argument("--cond-frames", type=_positive, default=None, metavar="K",
                        help="conditioning frames (default: the checkpoint's cond_frames)")
    parser.add_argument("--horizon", type=_positive, default=None, metavar="H",
                        help="predicted frames (default: the rest of each test sequence)")
    parser.add_argument("--seed", type=seed_argument, default=EvaluateRequest.seed,
                        help=f"base seed of the per-sequence draws, 0 to 2^32 - 1 (default {EvaluateRequest.seed}, "
                        f"as EvalSettings)")
    parser.add_argument("--device", default=EvaluateRequest.device, help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--no-elbo", action="store_true", help="skip the test-set ELBO")
    parser.add_argument("--missing-weights", choices=("error", "skip"), default=EvaluateRequest.missing_weights,
                        help="when an LPIPS/FVD weight file is missing: stop (default) or skip that metric")
    parser.add_argument("--alexnet-weights", metavar="FILE", default=None,
                        help="alexnet-owt-7be5be79.pth (default: $TORCH_HOME/hub/checkpoints/)")
    parser.add_argument("--lpips-weights", metavar="FILE", default=None,
                        help="LPIPS v0.1 AlexNet heads (default: $TORCH_HOME/hub/checkpoints/lpips_v0.1_alex.pth)")
    parser.add_argument("--i3d-weights", metavar="FILE", default=None,
                        help="I3D Kinetics-400 (default: $TORCH_HOME/hub/checkpoints/i3d_pretrained_400.pt)")
    parser.add_argument("--fvd-batch-size", type=_positive, default=EvaluateRequest.fvd_batch_size, metavar="B",
                        help="videos per I3D pass")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def request(args: argparse.Namespace) -> EvaluateRequest:
    """The evaluation the options ask for."""
    return EvaluateRequest(
        checkpoint=args.checkpoint, test_set=args.test_set, test_set_layout=args.test_set_layout,
        data_dir=args.data_dir, samples=args.samples, dts=args.dt, metrics=args.metrics, out=args.out,
        precision=args.precision, batch_size=args.batch_size, max_sequences=args.max_sequences,
        cond_frames=args.cond_frames, horizon=args.horizon, seed=args.seed, device=args.device,
        elbo=not args.no_elbo, missing_weights=args.missing_weights,
        weights={"alexnet": args.alexnet_weights, "lpips": args.lpips_weights, "i3d": args.i3d_weights},
        fvd_batch_size=args.fvd_batch_size, progress=not args.no_progress)


def run(args: argparse.Namespace) -> int:
    wanted = request(args)
    with task.session(wanted.device) as where:
        evaluation = task.prepare(wanted, where)
        if where.rank == 0:  # what was skipped and which protocol runs, before the hours it may take
            for metric, why in evaluation.skipped.items():
                print(f"srvp evaluate: {METRICS[metric].label} skipped: {why}", file=sys.stderr)
            print(f"srvp evaluate: {evaluation.description()}", file=sys.stderr)
        result = task.evaluate(evaluation, where)
        if where.rank == 0:
            paths = task.write(evaluation, result)
            print(markdown_table(result))
            print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
