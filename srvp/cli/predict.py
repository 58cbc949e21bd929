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
from dataclasses import fields

from srvp.api import Predictor
from srvp.config import StepSize, seed_argument
from srvp.evaluation.metrics import pixel_metrics
from srvp.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, suffix_list
from srvp.tasks.predict import CONTENTS, FORMATS, MAX_STEPS, PredictRequest
from srvp.tasks.predict import run as predict

NAME = "predict"
HELP = "predict the futures of a clip (video, GIF, folder of frames or .npy); content swap and interpolation"
DESCRIPTION = __doc__.split("\n\n", 1)[1] if __doc__ else HELP
#: the options that make the request (every field of PredictRequest); --out and --device say where and on what it runs
REQUEST_OPTIONS = tuple(f.name for f in fields(PredictRequest))


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
    parser.add_argument("--metric", choices=pixel_metrics(), default=PredictRequest.metric,
                        help="score used to pick the best and worst samples against the ground truth")
    parser.add_argument("--mean", action="store_true", help="use distribution means instead of random draws")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output directory (default: predictions/<clip name>)")
    parser.add_argument("--format", choices=FORMATS, default=PredictRequest.format, help="video format")
    parser.add_argument("--side-by-side", action="store_true",
                        help="one video with the ground truth and all samples side by side")
    parser.add_argument("--fps", type=float, default=PredictRequest.fps,
                        help="frames per second of the training frame rate")
    parser.add_argument("--scale", type=int, default=PredictRequest.scale,
                        help="enlarge frames in the outputs by this factor")
    parser.add_argument("--seed", type=seed_argument, default=PredictRequest.seed,
                        help="random seed of the samples (0 to 2^32 - 1)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--swap-content", default=None, metavar="OTHER_CLIP",
                      help="decode the dynamics of --input with the content (w, skip connections) of this clip")
    mode.add_argument("--interpolate", default=None, metavar="OTHER_CLIP",
                      help="decode trajectories from initial states interpolated between --input and this clip")
    parser.add_argument("--steps", type=int, default=PredictRequest.steps,
                        help=f"--interpolate: number of interpolated trajectories (2 to {MAX_STEPS})")
    parser.add_argument("--content", choices=CONTENTS, default=PredictRequest.content,
                        help="--interpolate: content of --input (a), of the other clip (b) or interpolated")


def run(args: argparse.Namespace) -> int:
    request = PredictRequest(**{name: getattr(args, name) for name in REQUEST_OPTIONS})
    outputs = predict(Predictor.from_pretrained(args.checkpoint, device=args.device), request, args.out)
    print(f"wrote {', '.join(outputs.files)} and summary.json to {outputs.folder}")
    return 0
