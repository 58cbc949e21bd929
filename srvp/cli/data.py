"""``srvp data <dataset> <action> ...``: convert, verify and generate datasets.

The command line lives here, the work in the dataset modules: each action is ``(help, add_arguments(parser),
run(args) -> int)`` in :data:`COMMANDS`, and ``run`` calls the module's plain functions (``convert``,
``generate`` ...) with explicit parameters. A dataset's help is the first line of its module's
docstring.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from srvp.config import DataConfig, seed_argument
from srvp.data import bair, kth, moving_mnist, pendulum, videos
from srvp.data.idx import download_mnist
from srvp.data.npz import save_sequences_npz
from srvp.data.storage import VideoStore, format_report
from srvp.errors import ConfigError
from srvp.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, suffix_list

NAME = "data"
HELP = "prepare datasets: convert KTH, BAIR or your own videos to the fast on-disk format, verify, generate"
DESCRIPTION = ("Prepare datasets. Conversions are idempotent (finished parts are skipped; --force redoes them) and "
               "never leave a partial result that looks complete.")

Action = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]


# ----------------------------------------------------------------------------------------------------------------
# `srvp data kth ...`
# ----------------------------------------------------------------------------------------------------------------


def _kth_convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="folder holding boxing.zip ... walking.zip and/or the extracted "
                                  "personXX_<action>_dY_uncomp.avi files")
    p.add_argument("--out", required=True, help="directory of the converted dataset (use it as --data-dir)")
    p.add_argument("--test-size", type=int, default=1000, help="sequences in the fixed test set")
    p.add_argument("--test-seq-len", type=int, default=40, help="frames per test sequence")
    p.add_argument("--seed", type=seed_argument, default=42, help="seed of the test-set draw (the authors': 42)")
    p.add_argument("--force", action="store_true", help="convert again even if finished parts exist")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _kth_convert(args: argparse.Namespace) -> int:
    for report in kth.convert(args.source, args.out, args.test_size, args.test_seq_len, args.seed, args.force,
                              not args.no_progress):
        print(format_report(report))
    path = kth.test_set_path(args.out, args.test_seq_len)
    sequences = kth.load_test_npz(path)
    print(f"test set: {path}: {sequences.shape[0]} sequences of {sequences.shape[1]} frames")
    return 0


def _kth_verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", help="directory of the converted dataset")
    p.add_argument("--test-seq-len", type=int, default=40, help="frames per test sequence")


def _kth_verify(args: argparse.Namespace) -> int:
    for split in ("train", "test"):
        print(format_report(VideoStore(args.store, split).verify(frame_shape=(1, kth.FRAME_SIZE, kth.FRAME_SIZE))))
    sequences = kth.load_test_npz(kth.test_set_path(args.store, args.test_seq_len))
    print(f"test set: {sequences.shape[0]} sequences of {sequences.shape[1]} frames, pixels "
          f"{sequences.min()}-{sequences.max()}")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# `srvp data bair ...`
# ----------------------------------------------------------------------------------------------------------------


def _bair_convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="folder holding softmotion30_44k/ (or its train/ and test/ folders)")
    p.add_argument("--out", required=True, help="directory of the converted dataset (use it as --data-dir)")
    p.add_argument("--force", action="store_true", help="convert again even if finished splits exist")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _bair_convert(args: argparse.Namespace) -> int:
    for report in bair.convert(args.source, args.out, args.force, not args.no_progress):
        print(format_report(report))
    return 0


def _bair_verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", help="directory of the converted dataset")


def _bair_verify(args: argparse.Namespace) -> int:
    for split in bair.SPLITS:
        store = VideoStore(args.store, split)
        print(format_report(store.verify(frame_shape=(3, bair.FRAME_SIZE, bair.FRAME_SIZE))))
    return 0


# ----------------------------------------------------------------------------------------------------------------
# `srvp data pendulum ...`
# ----------------------------------------------------------------------------------------------------------------


def _pendulum_generate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help=".npz file to write (official layout, usable as --test-set)")
    p.add_argument("--sequences", type=int, default=5000, help="number of sequences")
    p.add_argument("--seq-len", type=int, default=15, help="frames per sequence")
    p.add_argument("--seed", type=seed_argument, default=pendulum.TEST_SEED,
                   help=f"seed (the built-in test set uses {pendulum.TEST_SEED})")


def _pendulum_generate(args: argparse.Namespace) -> int:
    if args.sequences < 1 or args.seq_len < 1:
        raise ConfigError(f"--sequences {args.sequences} and --seq-len {args.seq_len} must be positive")
    sequences = pendulum.generate(args.sequences, args.seq_len, args.seed)
    pendulum.save_set(args.out, sequences)
    print(f"{Path(args.out)}: {len(sequences)} sequences of {args.seq_len} frames of 16x16, pixels "
          f"{sequences.min()}-{sequences.max()} (mean {sequences.mean() / 255:.3f})")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# `srvp data videos ...`
# ----------------------------------------------------------------------------------------------------------------


#: clip lengths of the training command printed after a conversion (the quickstart preset's): a video must hold a
#: test clip, so --min-frames defaults to TEST_CLIP and may not go below PRINTED_COND + 1
PRINTED_SEQ_LEN, PRINTED_COND, PRINTED_TEST_CLIP = 10, 5, 15


def _videos_convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help=f"folder of video files ({suffix_list(VIDEO_SUFFIXES)}) and/or folders of frame "
                                  f"images ({suffix_list(IMAGE_SUFFIXES)}), optionally in train/, val/, test/ "
                                  f"sub-folders")
    p.add_argument("--out", required=True, help="directory of the converted store (use it as --data-dir)")
    p.add_argument("--size", type=int, default=64, help="frame width and height after centre-crop and resize")
    p.add_argument("--channels", type=int, choices=(1, 3), default=3, help="1: grey, 3: colour")
    p.add_argument("--min-frames", type=int, default=PRINTED_TEST_CLIP, metavar="N",
                   help=f"refuse a video of fewer frames: clips are cut from one video, and the training command "
                        f"printed at the end tests on clips of min(N, {PRINTED_TEST_CLIP}) frames (at least "
                        f"{PRINTED_COND + 1}; default {PRINTED_TEST_CLIP})")
    p.add_argument("--force", action="store_true", help="convert again even if finished splits exist")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _videos_convert(args: argparse.Namespace) -> int:
    if args.size < 1:
        raise ConfigError(f"--size {args.size} must be positive")
    if args.min_frames < PRINTED_COND + 1:
        raise ConfigError(f"--min-frames {args.min_frames} must be at least {PRINTED_COND + 1} ({PRINTED_COND} "
                          f"conditioning frames and one to predict)")
    for report in videos.convert(args.source, args.out, args.size, args.channels, args.force, not args.no_progress,
                                 min_frames=args.min_frames):
        print(format_report(report))
    # A command that finishes in minutes on a CPU (the quickstart's small model and recipe); the paper's settings
    # (--preset smmnist: batch 128, 1.1 M steps) are for GPUs.
    test_clip = min(args.min_frames, PRINTED_TEST_CLIP)  # every video holds a clip of either length
    command = ["srvp", "train", "--preset", "quickstart", "--dataset", "videos", "--data-dir", str(args.out),
               "--video-size", str(args.size), "--video-channels", str(args.channels), "--channels",
               str(args.channels), "--seq-len", str(min(PRINTED_SEQ_LEN, test_clip)), "--test-seq-len",
               str(test_clip), "--out-dir", str(Path(args.out) / "run")]
    if args.size != 64:
        command += ["--architecture", "mlp", "--frame-size", str(args.size), "--filters", "256"]
    print(f"train a small model on them in minutes on a CPU with:\n  {shlex.join(command)}")
    return 0


def _videos_verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", help="directory of a converted store")


def _videos_verify(args: argparse.Namespace) -> int:
    for split in videos.SPLITS:
        print(format_report(VideoStore(args.store, split).verify()))
    return 0


# ----------------------------------------------------------------------------------------------------------------
# `srvp data mnist ...`
# ----------------------------------------------------------------------------------------------------------------


def _mnist_download_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="data/mnist", help="directory for the four IDX files (default data/mnist)")


def _mnist_download(args: argparse.Namespace) -> int:
    download_mnist(args.out)
    return 0


def _mnist_test_set_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output .npz (official SRVP layout)")
    p.add_argument("--digits", default="auto", help="directory of MNIST IDX files, 'embedded' or 'auto' "
                   "(data/mnist if present, else embedded); test digits are used")
    p.add_argument("--deterministic", action="store_true", help="deterministic Moving MNIST (default: "
                   "stochastic)")
    p.add_argument("--num-digits", type=int, default=2)
    p.add_argument("--sequences", type=int, default=5000)
    p.add_argument("--frames", type=int, default=None, help="frames per sequence (default 25 stochastic, "
                   "100 deterministic)")
    p.add_argument("--max-speed", type=int, default=4)
    p.add_argument("--seed", type=seed_argument, default=moving_mnist.TEST_SEED)


def _mnist_test_set(args: argparse.Namespace) -> int:
    frames = args.frames if args.frames is not None else (100 if args.deterministic else 25)
    if min(args.num_digits, args.sequences, frames) < 1 or args.max_speed < 0:
        raise ConfigError("--num-digits, --sequences and --frames must be positive and --max-speed >= 0")
    digits = moving_mnist.resolve_digits(DataConfig(digits=args.digits, data_dir="data"), "test")
    data = moving_mnist.make_test_set(digits, args.sequences, frames, args.num_digits, args.max_speed,
                                      args.deterministic, seed=args.seed)
    save_sequences_npz(args.out, data)
    kind = "deterministic" if args.deterministic else "stochastic"
    print(f"{args.out}: {args.sequences} {kind} sequences of {frames} frames, {args.num_digits} digit(s), "
          f"from {len(digits)} test digits (seed {args.seed})")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# The table and the parser
# ----------------------------------------------------------------------------------------------------------------

#: dataset on the command line -> its module (whose docstring's first line is the dataset's help)
DATASET_MODULES: dict[str, ModuleType] = {
    "kth": kth,
    "bair": bair,
    "pendulum": pendulum,
    "videos": videos,
    "mnist": moving_mnist,
}

#: dataset -> action -> (help, add_arguments(parser), run(args) -> int)
COMMANDS: dict[str, dict[str, Action]] = {
    "kth": {
        "convert": ("convert the KTH archives or videos and draw the fixed test set", _kth_convert_arguments,
                    _kth_convert),
        "verify": ("check a converted KTH dataset and report its contents", _kth_verify_arguments, _kth_verify),
    },
    "bair": {
        "convert": ("convert the softmotion30_44k TFRecord files", _bair_convert_arguments, _bair_convert),
        "verify": ("check a converted BAIR dataset and report its contents", _bair_verify_arguments, _bair_verify),
    },
    "pendulum": {
        "generate": ("write a fixed pendulum set (.npz) from a seed", _pendulum_generate_arguments,
                     _pendulum_generate),
    },
    "videos": {
        "convert": ("convert a folder of videos to the fast on-disk format", _videos_convert_arguments,
                    _videos_convert),
        "verify": ("check a converted store and report its contents", _videos_verify_arguments, _videos_verify),
    },
    "mnist": {
        "download": ("download the MNIST IDX files and verify their MD5 checksums", _mnist_download_arguments,
                     _mnist_download),
        "test-set": ("write a fixed Moving MNIST test set as .npz in the official SRVP layout",
                     _mnist_test_set_arguments, _mnist_test_set),
    },
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    datasets = parser.add_subparsers(dest="data_dataset", metavar="DATASET")
    for dataset, actions_of_dataset in COMMANDS.items():
        doc = (DATASET_MODULES[dataset].__doc__ or dataset).strip().splitlines()[0]
        p = datasets.add_parser(dataset, help=doc, description=doc)
        actions = p.add_subparsers(dest="data_action", metavar="ACTION")
        for action, (help_text, add_action_arguments, run_action) in actions_of_dataset.items():
            a = actions.add_parser(action, help=help_text, description=help_text)
            add_action_arguments(a)
            a.set_defaults(_data_run=run_action)
        p.set_defaults(_data_help=p.print_help)
    parser.set_defaults(_data_help=parser.print_help)


def run(args: argparse.Namespace) -> int:
    if not hasattr(args, "_data_run"):
        args._data_help()
        return 2
    out = Path(args.out) if args.data_action in ("convert", "download") else None  # the actions writing a folder
    created = out is not None and not out.exists()
    try:
        return int(args._data_run(args) or 0)
    except BaseException:
        if created and out.is_dir():  # a failed conversion into a new folder leaves nothing (finished splits too)
            shutil.rmtree(out, ignore_errors=True)
        raise
