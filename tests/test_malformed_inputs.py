"""A corpus of malformed inputs, each given to the `srvp` command line: every one must end with a one-line error that
names the file and the problem, exit status 2, no traceback, and nothing half-written in the output directory.

The files are generated in a temporary directory by the builders below (one per case, so each case is its own test
id); most cases run the command line in-process (``srvp.cli.main.main``), the ones marked ``subprocess`` run
``python -m srvp.cli.main`` as a user would.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import random
import re
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from srvp.cli.main import main
from srvp.config import ModelConfig
from srvp.data.bair import IMAGE_KEY
from srvp.data.idx import write_idx
from srvp.data.tfrecord import make_example, masked_crc32c, write_records
from srvp.models import SRVP
from tests.conftest import REPO
from tests.test_predict import save_tiny_checkpoint


class Payload:
    """Unpickling this creates the file ``path``: what a malicious file would do with arbitrary code."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@dataclass
class Case:
    """``argv`` for `srvp`, the fragments the error line must contain (the first names the file), the output
    location to inspect, and a file whose existence would mean that code from the input ran."""

    argv: list[str]
    fragments: list[str]
    out: Path
    marker: Path | None = None
    subprocess: bool = False


CASES: dict[str, Callable[[Path], Case]] = {}


def case(name: str):
    def register(builder: Callable[[Path], Case]) -> Callable[[Path], Case]:
        assert name not in CASES, name
        CASES[name] = builder
        return builder
    return register


# ----------------------------------------------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------------------------------------------

TINY_TRAIN = {
    "model": {"filters": 4, "frame_dim": 16, "state_dim": 4, "noise_dim": 3, "inference_hidden": 16,
              "forward_hidden": 16, "content_frames": 2},
    "data": {"digits": "embedded", "seq_len": 4, "cond_frames": 2, "test_seq_len": 4, "num_digits": 1},
    "train": {"steps": 1, "decay_steps": 0, "batch_size": 2, "val_interval": 0, "sample_interval": 0,
              "checkpoint_interval": 1, "device": "cpu"},
}


def train_config(tmp: Path, **sections) -> Path:
    """The tiny training config (which trains fine) with ``sections`` merged in; returns its path."""
    data = json.loads(json.dumps(TINY_TRAIN))
    for section, values in sections.items():
        data[section].update(values)
    path = tmp / "config.json"
    path.write_text(json.dumps(data))
    return path


def train_case(tmp: Path, config: Path, fragments: list[str], *extra: str, subprocess: bool = False) -> Case:
    out = tmp / "run"
    return Case(["train", "--config", str(config), "--out-dir", str(out), "--no-progress", *extra],
                [str(config), *fragments], out, subprocess=subprocess)


def raw_config_case(tmp: Path, content: bytes, *fragments: str) -> Case:
    path = tmp / "config.json"
    path.write_bytes(content)
    return train_case(tmp, path, list(fragments))


def digits_case(tmp: Path, content: bytes | np.ndarray, *fragments: str, name: str = "train-images-idx3-ubyte",
                names_directory: bool = False) -> Case:
    folder = tmp / "mnist"
    folder.mkdir()
    if isinstance(content, np.ndarray):
        write_idx(folder / name, content)
    else:
        (folder / name).write_bytes(content)
    case_ = train_case(tmp, train_config(tmp), list(fragments), "--digits", str(folder))
    case_.fragments[0] = str(folder if names_directory else folder / name)
    return case_


def idx_header(dtype_code: int, shape: tuple[int, ...]) -> bytes:
    return struct.pack(">HBB", 0, dtype_code, len(shape)) + struct.pack(f">{len(shape)}I", *shape)


def npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    """A version 1.0 .npy header (the documented format) declaring ``shape``."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    text += " " * (118 - len(text)) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def checkpoint(tmp: Path) -> Path:
    return save_tiny_checkpoint(tmp / "model.pt")


def evaluate_case(tmp: Path, content: bytes, *fragments: str) -> Case:
    path = tmp / "test_set.npz"
    path.write_bytes(content)
    out = tmp / "eval"
    return Case(["evaluate", "--checkpoint", str(checkpoint(tmp)), "--test-set", str(path), "--out", str(out),
                 "--samples", "1"], [str(path), *fragments], out)


def good_clip(tmp: Path) -> Path:
    path = tmp / "clip.npy"
    np.save(path, (np.random.default_rng(0).random((8, 64, 64)) * 255).astype(np.uint8))
    return path


def predict_case(tmp: Path, clip: Path, *fragments: str, named: Path | None = None) -> Case:
    out = tmp / "predictions"
    return Case(["predict", "--checkpoint", str(checkpoint(tmp)), "--input", str(clip), "--out", str(out),
                 "--samples", "2"], [str(named or clip), *fragments], out)


def npy_case(tmp: Path, content: bytes | np.ndarray, *fragments: str, suffix: str = ".npy") -> Case:
    path = tmp / f"clip{suffix}"
    if isinstance(content, np.ndarray):
        np.save(path, content, allow_pickle=True)
    else:
        path.write_bytes(content)
    return predict_case(tmp, path, *fragments)


def checkpoint_case(tmp: Path, path: Path, *fragments: str, subprocess: bool = False) -> Case:
    out = tmp / "predictions"
    return Case(["predict", "--checkpoint", str(path), "--input", str(good_clip(tmp)), "--out", str(out)],
                [str(path), *fragments], out, subprocess=subprocess)


def edited_checkpoint(tmp: Path, edit: Callable[[dict], None]) -> Path:
    state = torch.load(checkpoint(tmp), weights_only=True)
    state.pop("digest", None)  # as another tool would write it: the checks below the checksum are the subject
    edit(state)
    path = tmp / "edited.pt"
    torch.save(state, path)
    return path


def tfrecord_frame(record: bytes) -> bytes:
    length = struct.pack("<Q", len(record))
    return length + struct.pack("<I", masked_crc32c(length)) + record + struct.pack("<I", masked_crc32c(record))


def bair_case(tmp: Path, train_file: bytes, *fragments: str) -> Case:
    root = tmp / "bair" / "softmotion30_44k"
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
    good = make_example({IMAGE_KEY.format(t=t): [bytes(64 * 64 * 3)] for t in range(3)})
    write_records(root / "test" / "traj_0_to_255.tfrecords", [good])
    bad = root / "train" / "traj_0_to_255.tfrecords"
    bad.write_bytes(train_file)
    out = tmp / "bair_store"
    return Case(["data", "bair", "convert", str(tmp / "bair"), "--out", str(out), "--no-progress"],
                [str(bad), *fragments], out)


def videos_case(tmp: Path, make: Callable[[Path], Path], *fragments: str) -> Case:
    source = tmp / "videos"
    source.mkdir()
    bad = make(source)
    out = tmp / "store"
    return Case(["data", "videos", "convert", str(source), "--out", str(out), "--size", "16", "--no-progress"],
                [str(bad), *fragments], out)


def png_bytes(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 30, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose header declares ``width x height`` pixels (a decompression bomb's header)."""
    data = bytearray(png_bytes(4, 4))
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    import zlib

    data[ihdr + 13:ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4:ihdr + 13])))
    return bytes(data)


def store(tmp: Path) -> Path:
    """A converted store of three tiny frame-folder videos (split train/val/test)."""
    source = tmp / "videos_ok"
    for v in range(3):
        folder = source / f"v{v}"
        folder.mkdir(parents=True)
        for t in range(6):
            (folder / f"{t:03d}.png").write_bytes(png_bytes(16, 16))
    out = tmp / "store"
    assert main(["data", "videos", "convert", str(source), "--out", str(out), "--size", "16", "--min-frames", "6",
                 "--no-progress"]) == 0
    return out


# ----------------------------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------------------------

case("config-zero-byte")(lambda t: raw_config_case(t, b"", "not valid JSON"))
case("config-truncated-json")(lambda t: raw_config_case(t, b'{"model": {"state_dim": 4', "not valid JSON"))
case("config-not-utf8")(lambda t: raw_config_case(t, b'{"model": "\xff\xfe"}', "not valid JSON"))
case("config-not-an-object")(lambda t: raw_config_case(t, b"[1, 2]", "expected a JSON object"))
case("config-unknown-section")(lambda t: train_case(t, raw_json(t, {"modle": {}}), ["unknown section", "modle"]))
case("config-unknown-key")(lambda t: train_case(t, train_config(t, model={"stat_dim": 3}), ["unknown key",
                                                                                            "stat_dim"]))
case("config-section-not-object")(lambda t: train_case(t, raw_json(t, {"train": 5}), ["train", "expected an object"]))
case("config-string-for-number")(lambda t: train_case(t, train_config(t, train={"lr": "fast"}),
                                                      ["lr", "expected a number"]))
case("config-float-for-integer")(lambda t: train_case(t, train_config(t, train={"steps": 1.5}),
                                                      ["steps", "expected an integer"]))
case("config-bad-bool")(lambda t: train_case(t, train_config(t, model={"content": "maybe"}),
                                             ["content", "true or false"]))
case("config-negative-batch")(lambda t: train_case(t, train_config(t, train={"batch_size": -1}),
                                                   ["batch_size=-1 must be positive"]))
case("config-nan-value")(lambda t: train_case(t, train_config(t, model={"residual_gain": float("nan")}),
                                              ["residual_gain=nan must be a finite number"]))
case("config-infinite-lr")(lambda t: train_case(t, train_config(t, train={"lr": float("inf")}), ["lr=inf"]))
case("config-duplicated-key")(lambda t: raw_config_case(t, b'{"train": {"steps": 3, "steps": 4}}',
                                                         "'steps' appears twice"))


def predict_option_case(tmp: Path, *options: str, fragments: tuple[str, ...]) -> Case:
    out = tmp / "predictions"
    return Case(["predict", "--checkpoint", str(checkpoint(tmp)), "--input", str(good_clip(tmp)), "--out", str(out),
                 "--samples", "1", *options], list(fragments), out)


case("predict-fps-nan")(lambda t: predict_option_case(t, "--fps", "nan", fragments=("--fps nan", "finite")))
case("predict-fps-inf")(lambda t: predict_option_case(t, "--fps", "inf", fragments=("--fps inf", "finite")))
case("predict-scale-huge")(lambda t: predict_option_case(t, "--scale", "100000", fragments=("--scale 100000",)))
case("config-bad-choice")(lambda t: train_case(t, train_config(t, model={"architecture": "resnet"}),
                                               ["architecture='resnet' is not one of"]))
case("config-dt-not-1-over-n")(lambda t: train_case(t, train_config(t, model={"dt": 0.3}), ["dt=0.3", "1/n"]))
case("config-impossible-combination")(lambda t: train_case(t, train_config(t, data={"cond_frames": 4}),
                                                           ["cond_frames=4", "nothing to predict"]))


def raw_json(tmp: Path, data) -> Path:
    path = tmp / "config.json"
    path.write_text(json.dumps(data))
    return path


@case("config-is-a-directory")
def _(tmp: Path) -> Case:
    folder = tmp / "config.json"
    folder.mkdir()
    return train_case(tmp, folder, ["cannot read the config file"], subprocess=True)


# ----------------------------------------------------------------------------------------------------------------
# MNIST IDX files (srvp train --digits DIR)
# ----------------------------------------------------------------------------------------------------------------

case("idx-zero-byte")(lambda t: digits_case(t, b"", "too short to be an IDX file"))
case("idx-wrong-magic")(lambda t: digits_case(t, png_bytes(4, 4), "bad IDX magic number"))
case("idx-truncated")(lambda t: digits_case(t, idx_header(0x08, (10, 28, 28)) + bytes(100), "truncated or corrupt"))
case("idx-huge-declared-size")(lambda t: digits_case(t, idx_header(0x08, (60000, 60000, 60000)),
                                                     "implausibly large"))
case("idx-float-dtype")(lambda t: digits_case(t, idx_header(0x0D, (2, 28, 28)) + bytes(2 * 28 * 28 * 4),
                                              "expected uint8 images"))
case("idx-labels-instead-of-images")(lambda t: digits_case(t, np.arange(10, dtype=np.uint8),
                                                           "expected uint8 images (N, H, W)"))
case("idx-corrupt-gzip")(lambda t: digits_case(t, b"\x1f\x8b\x08\x00" + b"garbage" * 10, "not a readable (gzip)",
                                               name="train-images-idx3-ubyte.gz"))
case("idx-digits-larger-than-frame")(lambda t: digits_case(t, np.zeros((3, 70, 70), np.uint8), "do not fit",
                                                           names_directory=True))
case("idx-no-images")(lambda t: digits_case(t, np.zeros((0, 28, 28), np.uint8), "holds no digit images",
                                            names_directory=True))

# ----------------------------------------------------------------------------------------------------------------
# Test sets (.npz, srvp evaluate --test-set)
# ----------------------------------------------------------------------------------------------------------------

case("npz-zero-byte")(lambda t: evaluate_case(t, b"", "not a .npz archive"))
case("npz-not-a-zip")(lambda t: evaluate_case(t, b"hello, not an archive" * 4, "not a .npz archive"))
case("npz-is-a-npy")(lambda t: evaluate_case(t, npy_header((7, 2, 64, 64)) + bytes(7 * 2 * 64 * 64),
                                             "not a .npz archive"))
case("npz-truncated")(lambda t: evaluate_case(t, npz_bytes(sequences=np.zeros((7, 2, 64, 64), np.uint8))[:300],
                                              "not a readable .npz"))
case("npz-no-sequences")(lambda t: evaluate_case(t, npz_bytes(frames=np.zeros((7, 2, 64, 64), np.uint8)),
                                                 "no 'sequences' array"))
case("npz-float-dtype")(lambda t: evaluate_case(t, npz_bytes(sequences=np.zeros((7, 2, 64, 64), np.float32)),
                                                "must be uint8"))
case("npz-wrong-shape")(lambda t: evaluate_case(t, npz_bytes(sequences=np.zeros((7, 2), np.uint8)),
                                                "must be (T, N, H, W)"))
case("npz-no-sequences-inside")(lambda t: evaluate_case(t, npz_bytes(sequences=np.zeros((7, 0, 64, 64), np.uint8)),
                                                        "must be (T, N, H, W)"))
case("npz-wrong-frame-size")(lambda t: evaluate_case(t, npz_bytes(sequences=np.zeros((7, 2, 32, 32), np.uint8),
                                                               layout=np.array("TNHW")),
                                                     "frames are 1x32x32", "expects 1x64x64"))
case("npz-too-few-frames")(lambda t: evaluate_case(t, npz_bytes(sequences=np.zeros((2, 2, 64, 64), np.uint8),
                                                             layout=np.array("TNHW")),
                                                   "sequences have 2 frames",
                                                   "fewer than 3 conditioning + 1 predicted"))


# A shape does not say which axis is time: a sequence-first file without the KTH keys was read time-first
# (issue 21, item 4c); the layout is declared by the file or the command line, never guessed
case("npz-layout-not-declared")(lambda t: evaluate_case(t, npz_bytes(sequences=np.zeros((3, 25, 64, 64), np.uint8)),
                                                        "cannot tell which axis", "--test-set-layout"))
case("npz-layout-unknown")(lambda t: evaluate_case(t, npz_bytes(sequences=np.zeros((3, 25, 64, 64), np.uint8),
                                                                layout=np.array("XYHW")), "'layout' must be"))


@case("evaluate-dt-given-twice")
def _(tmp: Path) -> Case:
    c = evaluate_case(tmp, npz_bytes(sequences=np.zeros((7, 2, 64, 64), np.uint8), layout=np.array("TNHW")))
    c.argv += ["--dt", "1", "1/1"]
    c.fragments = ["--dt", "the step size 1 is given twice"]
    return c


@case("npz-huge-declared-size")
def _(tmp: Path) -> Case:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("sequences.npy", npy_header((25, 10**9, 64, 64)) + bytes(64))
    return evaluate_case(tmp, buffer.getvalue(), "declares an array", "truncated or corrupt")


@case("npz-pickle-payload")
def _(tmp: Path) -> Case:
    marker = tmp / "pwned"
    buffer = io.BytesIO()
    np.savez(buffer, sequences=np.array([Payload(marker)], dtype=object))
    c = evaluate_case(tmp, buffer.getvalue(), "object arrays are not loaded")
    c.marker = marker
    return c


@case("npz-is-a-pickle")
def _(tmp: Path) -> Case:
    marker = tmp / "pwned"
    c = evaluate_case(tmp, pickle.dumps({"sequences": Payload(marker)}), "not a .npz archive")
    c.marker = marker
    return c


# ----------------------------------------------------------------------------------------------------------------
# Clips (srvp predict --input)
# ----------------------------------------------------------------------------------------------------------------

case("npy-nan-values")(lambda t: npy_case(t, np.full((8, 64, 64), np.nan, np.float32), "NaN or infinite"))
case("npy-floats-out-of-range")(lambda t: npy_case(t, np.full((8, 64, 64), 2.0, np.float32), "must be in [0, 1]"))
case("npy-int64-pixels")(lambda t: npy_case(t, np.zeros((8, 64, 64), np.int64), "unsupported pixel type int64"))
case("npy-zero-byte")(lambda t: npy_case(t, b"", "not a readable .npy array"))
case("npy-truncated")(lambda t: npy_case(t, npy_header((8, 64, 64)) + bytes(1000), "declares an array",
                                         "truncated or corrupt"))
case("npy-wrong-magic")(lambda t: npy_case(t, png_bytes(8, 8), "not a readable .npy array"))
case("npy-five-dimensions")(lambda t: npy_case(t, np.zeros((2, 8, 1, 64, 64), np.uint8), "expected frames"))
case("npy-no-frames")(lambda t: npy_case(t, np.zeros((0, 64, 64), np.uint8), "the clip is empty"))
case("clip-single-image")(lambda t: npy_case(t, png_bytes(64, 64), "a single image is not a clip", suffix=".png"))
case("clip-unknown-format")(lambda t: npy_case(t, b"frames", "unknown clip format", suffix=".txt"))
case("video-garbage-mp4")(lambda t: npy_case(t, b"\x00\x00\x00\x18ftypmp42" + os.urandom(500),
                                             "cannot decode video", suffix=".mp4"))
case("video-half-faststart-mp4")(lambda t: npy_case(t, (lambda b: b[:len(b) // 2])(faststart_mp4_bytes()),
                                                    "cannot decode video", suffix=".mp4"))
case("predict-samples-huge")(lambda t: predict_option_case(t, "--samples", "100000", fragments=("--samples 100000",)))
case("predict-horizon-huge")(lambda t: predict_option_case(t, "--horizon", "99999999",
                                                           fragments=("--horizon 99999999",)))


def faststart_mp4_bytes() -> bytes:
    """A 60-frame H.264 MP4 with its index first (+faststart): a truncated copy still starts like a whole file."""
    import tempfile

    import imageio.v2 as imageio

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.mp4"
        writer = imageio.get_writer(path, format="FFMPEG", fps=10, codec="libx264", pixelformat="yuv420p",
                                    macro_block_size=1, ffmpeg_params=["-movflags", "+faststart"])
        rng = np.random.default_rng(0)
        for _ in range(60):
            writer.append_data((rng.random((64, 64)) * 255).astype(np.uint8))
        writer.close()
        return path.read_bytes()
case("gif-zero-byte")(lambda t: npy_case(t, b"", "not a readable video", suffix=".gif"))
case("gif-truncated")(lambda t: npy_case(t, gif_bytes()[:40], "not a readable video", suffix=".gif"))


def gif_bytes() -> bytes:
    import imageio.v2 as imageio

    buffer = io.BytesIO()
    imageio.mimwrite(buffer, [np.full((16, 16), v, np.uint8) for v in (0, 128, 255)], format="GIF")
    return buffer.getvalue()


@case("npy-huge-declared-size")
def _(tmp: Path) -> Case:
    c = npy_case(tmp, npy_header((10**12, 64, 64)) + bytes(64), "declares an array", "truncated or corrupt")
    c.subprocess = True
    return c


@case("npy-pickle-payload")
def _(tmp: Path) -> Case:
    marker = tmp / "pwned"
    c = npy_case(tmp, np.array([Payload(marker)], dtype=object), "object arrays are not loaded")
    c.marker = marker
    return c


@case("frames-mixed-sizes")
def _(tmp: Path) -> Case:
    folder = tmp / "frames"
    folder.mkdir()
    for t in range(4):
        (folder / f"{t}.png").write_bytes(png_bytes(64, 64 if t != 2 else 48))
    return predict_case(tmp, folder, "differ in size")


@case("frames-fake-png")
def _(tmp: Path) -> Case:
    folder = tmp / "frames"
    folder.mkdir()
    for t in range(4):
        (folder / f"{t}.png").write_bytes(png_bytes(64, 64))
    (folder / "3.png").write_bytes(b"not an image at all")
    return predict_case(tmp, folder, "not a readable image", named=folder / "3.png")


@case("frames-empty-folder")
def _(tmp: Path) -> Case:
    folder = tmp / "frames"
    folder.mkdir()
    (folder / "notes.txt").write_text("no frames here")
    return predict_case(tmp, folder, "no image files")


# Pixel bombs: a few kilobytes that decode to gigabytes, refused from their headers (reliability issue 21, item 3)


def one_bit_png(width: int, height: int) -> bytes:
    """A valid black one-bit PNG of ``width x height`` pixels: 17 KB for 12,000 x 12,000 (144 megapixels)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor, row = zlib.compressobj(9), bytes(1 + (width + 7) // 8)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


def png_bomb_folder(folder: Path, frames: int = 6, side: int = 12_000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    png = one_bit_png(side, side)
    for t in range(frames):
        (folder / f"{t}.png").write_bytes(png)
    return folder


def huge_frame_video(path: Path, frames: int = 6, side: int = 12_000) -> Path:
    """A valid AVI of ``frames`` black one-bit PNG frames of ``side x side`` pixels (110 KB for 6 of 12,000)."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    f"color=black:s={side}x{side}:r=5", "-frames:v", str(frames), "-c:v", "png", "-pix_fmt", "monob",
                    "-y", str(path)], check=True)
    return path


def gif_with_huge_frame() -> bytes:
    """A 10 x 10 GIF whose one frame declares an extent of 20,000 x 20,000 pixels (Pillow enlarges the image)."""
    descriptor = b"," + struct.pack("<HHHH", 0, 0, 20_000, 20_000) + b"\x00"
    return b"GIF89a" + struct.pack("<HH", 10, 10) + b"\x00\x00\x00" + descriptor + b"\x02\x02\x4c\x01\x00;"


case("frames-one-bit-png-bomb")(lambda t: predict_case(t, png_bomb_folder(t / "frames"), "12000x12000",
                                                       "read per frame", named=t / "frames" / "0.png"))
case("frames-over-the-clip-pixel-budget")(lambda t: predict_case(
    t, png_bomb_folder(t / "frames", frames=30, side=6_000), "30 frames of 6000x6000", "read per clip"))
case("video-huge-frames-header")(lambda t: predict_case(t, huge_frame_video(t / "clip.avi"), "12000x12000",
                                                        "read per frame"))
case("gif-huge-frame-extent")(lambda t: npy_case(t, gif_with_huge_frame(), "20000x20000", "read per frame",
                                                 suffix=".gif"))


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints (srvp predict --checkpoint)
# ----------------------------------------------------------------------------------------------------------------

case("checkpoint-zero-byte")(lambda t: checkpoint_case(t, write(t / "c.pt", b""), "not a readable checkpoint"))
case("checkpoint-truncated")(lambda t: checkpoint_case(
    t, write(t / "c.pt", checkpoint(t).read_bytes()[:5000]), "not a readable checkpoint (truncated or corrupt"))
# fixed bytes: some random byte strings happen to be pickles that ask for an object ("refused to load" instead)
case("checkpoint-garbage")(lambda t: checkpoint_case(t, write(t / "c.pt", random.Random(3).randbytes(3000)),
                                                     "not a readable checkpoint"))
case("checkpoint-config-does-not-match")(lambda t: checkpoint_case(
    t, edited_checkpoint(t, lambda s: s["config"]["model"].update(state_dim=6)), "do not match", "other shapes"))
case("checkpoint-nan-weights")(lambda t: checkpoint_case(t, edited_checkpoint(t, nan_first), "holds NaN"))
case("checkpoint-foreign-state-dict")(lambda t: checkpoint_case(
    t, torch_save(t / "c.pt", {"encoder.weight": torch.zeros(3)}), "not an srvp checkpoint"))
case("checkpoint-future-version")(lambda t: checkpoint_case(
    t, edited_checkpoint(t, lambda s: s.update(version=99)), "format version 99"))
case("checkpoint-bad-config-type")(lambda t: checkpoint_case(
    t, edited_checkpoint(t, lambda s: s["config"]["train"].update(batch_size="many")), "batch_size",
    "expected an integer"))


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def torch_save(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


def nan_first(state: dict) -> None:
    key = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][key].fill_(float("nan"))


@case("checkpoint-pickle-payload")
def _(tmp: Path) -> Case:
    marker = tmp / "pwned"
    path = edited_checkpoint(tmp, lambda s: s.update(extra={"note": Payload(marker)}))
    c = checkpoint_case(tmp, path, "refused to load", "possible code payload", "GLOBAL", subprocess=True)
    c.marker = marker
    return c


# ----------------------------------------------------------------------------------------------------------------
# Datasets (srvp data ... convert / verify, srvp train on a store)
# ----------------------------------------------------------------------------------------------------------------

case("tfrecord-broken-length-checksum")(lambda t: bair_case(t, struct.pack("<QI", 100, 12345) + bytes(104),
                                                            "broken length checksum"))
case("tfrecord-truncated-record")(lambda t: bair_case(t, tfrecord_frame(bytes(500))[:200], "truncated TFRecord data"))
case("tfrecord-huge-declared-length")(lambda t: bair_case(
    t, huge_length_header(2**40) + bytes(64), "truncated TFRecord data", "declares"))
case("tfrecord-not-a-bair-example")(lambda t: bair_case(
    t, tfrecord_frame(make_example({"label": [3]})), "missing key"))
case("tfrecord-bad-frame-bytes")(lambda t: bair_case(
    t, tfrecord_frame(make_example({IMAGE_KEY.format(t=0): [b"12345"]})), "neither raw 64x64 RGB bytes"))
case("tfrecord-broken-data-checksum")(lambda t: bair_case(
    t, tfrecord_frame(make_example({"a": [b"x"]}))[:-1] + b"\x00", "broken data checksum"))


def huge_length_header(length: int) -> bytes:
    header = struct.pack("<Q", length)
    return header + struct.pack("<I", masked_crc32c(header))


case("videos-garbage-video-file")(lambda t: videos_case(
    t, lambda src: write(src / "clip.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(300)), "cannot decode video"))
case("videos-frames-mixed-sizes")(lambda t: videos_case(t, lambda src: frame_folder(src, [16, 16, 12]), "mixed sizes"))
case("videos-frame-not-an-image")(lambda t: videos_case(t, lambda src: frame_folder(src, [16, 16, 0]),
                                                        "not a readable image"))
case("videos-png-bomb-header")(lambda t: videos_case(t, lambda src: frame_folder(src, [16, 16, -1]),
                                                     "declares 10,000 megapixels", "read per frame"))
case("videos-huge-video-frames")(lambda t: videos_case(t, lambda src: huge_frame_video(src / "v.avi"),
                                                       "frames of 12000x12000 pixels", "read per frame"))
# a one-frame video became the validation split, and the printed training command failed (issue 21, item 6)
case("videos-one-frame-video")(lambda t: videos_case(t, lambda src: frame_folder(src, [16]).parent, "1 frame(s)",
                                                     "needs at least 15"))


def frame_folder(source: Path, sizes: list[int]) -> Path:
    """A video folder whose frames have ``sizes`` (0: a file that is not an image, -1: a PNG declaring 10^5 x 10^5
    pixels); returns the odd frame."""
    folder = source / "v0"
    folder.mkdir()
    odd = folder / "000.png"
    for t, size in enumerate(sizes):
        path = folder / f"{t:03d}.png"
        data = b"garbage" if size == 0 else png_declaring(100_000, 100_000) if size == -1 else png_bytes(size, size)
        path.write_bytes(data)
        if t and size != sizes[0]:
            odd = path
    return odd


@case("store-meta-not-json")
def _(tmp: Path) -> Case:
    root = store(tmp)
    meta = root / "train" / "meta.json"
    meta.write_text("{broken")
    return Case(["data", "videos", "verify", str(root)], [str(meta), "not valid JSON"], root)


@case("store-frames-do-not-match-meta")
def _(tmp: Path) -> Case:
    root = store(tmp)
    frames = root / "train" / "frames.npy"
    np.save(frames, np.zeros((3, 3, 16, 16), np.uint8))
    return Case(["data", "videos", "verify", str(root)], [str(frames), "does not match"], root)


@case("store-truncated-frames-in-training")
def _(tmp: Path) -> Case:
    root = store(tmp)
    frames = root / "train" / "frames.npy"
    frames.write_bytes(frames.read_bytes()[:1000])
    config = train_config(tmp, data={"dataset": "videos", "data_dir": str(root), "video_size": 16})
    c = train_case(tmp, config, ["unreadable store files"])
    c.fragments[0] = str(root / "train")
    return c


# ----------------------------------------------------------------------------------------------------------------
# Options that raised tracebacks or named the wrong problem (issue 21, items 5 and 7): each family, one line
# ----------------------------------------------------------------------------------------------------------------

case("usage-unknown-option")(lambda t: predict_option_case(t, "--bogus", fragments=("unrecognized arguments: --bogus",
                                                                                   "srvp predict --help")))
case("usage-negative-step-size")(lambda t: predict_option_case(t, "--dt", "-1/2", fragments=(
    "argument --dt: dt=-0.5 must be 1/n",)))
case("usage-missing-argument")(lambda t: Case(["predict", "--input", "clip.npy"], ["required", "--checkpoint"],
                                              t / "predictions"))
case("seed-beyond-32-bits-predict")(lambda t: predict_option_case(t, "--seed", str(2**70), fragments=(
    "argument --seed", "outside 0 ... 4294967295")))
case("seed-negative-data")(lambda t: Case(["data", "pendulum", "generate", "--out", str(t / "p.npz"), "--seed", "-5"],
                                          ["argument --seed", "-5 is outside"], t))
case("seed-beyond-32-bits-train")(lambda t: train_case(t, train_config(t, train={"seed": 2**64}), [
    "seed=18446744073709551616 must be an integer from 0 to 4294967295"]))
case("predict-device-not-on-this-machine")(lambda t: predict_option_case(t, "--device", "mps", fragments=(
    "device 'mps' is not available",)))
case("predict-start-negative")(lambda t: predict_option_case(t, "--start", "-1", fragments=(
    "--start -1 must be 0 or more",)))
case("predict-scale-zero")(lambda t: predict_option_case(t, "--scale", "0", fragments=(
    "--scale 0 must be an integer from 1 to 64",)))
case("predict-more-conditioning-frames-than-the-clip")(lambda t: predict_option_case(t, "--cond-frames", "20",
                                                                                     fragments=("fewer than the 20",)))
case("predict-interpolate-steps-1000")(lambda t: predict_option_case(
    t, "--interpolate", str(good_clip(t)), "--steps", "1000", fragments=("--steps 1000 must be between 2 and 100",)))
case("predict-video-wider-than-a-gif")(lambda t: predict_option_case(
    t, "--side-by-side", "--samples", "1000", "--scale", "2", fragments=("the gif video would be", "GIF side")))


case("data-test-set-beyond-memory")(lambda t: Case(["data", "mnist", "test-set", "--out", str(t / "m.npz"),
                                                    "--sequences", str(10**12), "--digits", "embedded"],
                                                   ["1000000000000 Moving MNIST sequences", "GiB"], t))
case("data-test-set-zero-frames")(lambda t: Case(["data", "mnist", "test-set", "--out", str(t / "m.npz"), "--frames",
                                                  "0", "--digits", "embedded"], ["--frames must be positive"], t))


@case("videos-frame-size-beyond-the-budget")
def _(tmp: Path) -> Case:
    c = videos_case(tmp, lambda src: frame_folder(src, [16] * 6).parent, "frames of 100000x100000 pixels")
    c.argv[c.argv.index("--size") + 1] = "100000"
    c.fragments = c.fragments[1:]  # a frame size, not a file
    return c


case("compare-set-a-model-field")(lambda t: Case(
    ["compare", "--preset", "cpu", "--set", "filters=8", "--out-dir", str(t / "cmp")],
    ["--set filters", "model section"], t / "cmp"))
case("compare-set-without-value")(lambda t: Case(
    ["compare", "--preset", "cpu", "--set", "grad_clip", "--out-dir", str(t / "cmp")],
    ["--set 'grad_clip'", "NAME=VALUE"], t / "cmp"))
case("compare-set-bad-value")(lambda t: Case(
    ["compare", "--preset", "cpu", "--set", "adam_beta2=2", "--out-dir", str(t / "cmp")],
    ["--set on preset cpu", "adam_beta2"], t / "cmp"))
case("compare-device-not-on-this-machine")(lambda t: Case(
    ["compare", "--preset", "cpu", "--models", "srvp", "--device", "mps", "--out-dir", str(t / "cmp")],
    ["device 'mps' is not available"], t / "cmp"))


@case("import-official-zero-euler-steps")
def _(tmp: Path) -> Case:
    options = {"nx": 64, "nc": 1, "nf": 4, "nhx": 16, "ny": 4, "nz": 3, "skipco": False, "nt_inf": 2, "nh_inf": 16,
               "nlayers_inf": 1, "nh_res": 16, "nlayers_res": 1, "archi": "dcgan", "n_euler_steps": 0}
    config = raw_json(tmp, options)
    return Case(["import-official", "--state-dict", str(tmp / "model.pt"), "--config", str(config), "--out",
                 str(tmp / "out" / "ours.pt")], [str(config), "n_euler_steps=0"], tmp / "out")


# ----------------------------------------------------------------------------------------------------------------
# Resuming a run (srvp train --resume)
# ----------------------------------------------------------------------------------------------------------------


def finished_run(tmp: Path) -> tuple[Path, Path]:
    config = train_config(tmp, train={"steps": 2})
    out = tmp / "run"
    assert main(["train", "--config", str(config), "--out-dir", str(out), "--no-progress"]) == 0
    return config, out


@case("resume-with-another-model-config")
def _(tmp: Path) -> Case:
    config, out = finished_run(tmp)
    c = train_case(tmp, config, ["model config differs"], "--resume", "--state-dim", "6")
    c.fragments[0] = str(out / "checkpoints" / "step_00000002.pt")
    return c


@case("resume-with-only-damaged-checkpoints")
def _(tmp: Path) -> Case:
    config, out = finished_run(tmp)
    for path in (out / "checkpoints").glob("step_*.pt"):
        path.write_bytes(path.read_bytes()[:100])
    c = train_case(tmp, config, ["no usable checkpoint"], "--resume")
    c.fragments[0] = str(out)
    return c


# ----------------------------------------------------------------------------------------------------------------
# Output locations that cannot be written
# ----------------------------------------------------------------------------------------------------------------


def blocked_output(tmp: Path, argv_for: Callable[[Path], list[str]]) -> Case:
    """A command whose output directory is (or is under) an existing file."""
    outputs = tmp / "outputs"
    outputs.mkdir()
    blocker = outputs / "results"
    blocker.write_text("a file where a directory should go")
    return Case(argv_for(blocker), [str(blocker), "exists and is not a directory"], outputs)


case("output-train-out-dir-is-a-file")(lambda t: blocked_output(
    t, lambda b: ["train", "--config", str(train_config(t)), "--out-dir", str(b), "--no-progress"]))
case("output-evaluate-out-is-a-file")(lambda t: blocked_output(
    t, lambda b: ["evaluate", "--checkpoint", str(checkpoint(t)), "--out", str(b), "--samples", "1",
                  "--max-sequences", "2"]))
case("output-test-set-under-a-file")(lambda t: blocked_output(
    t, lambda b: ["data", "pendulum", "generate", "--out", str(b / "pendulum.npz"), "--sequences", "2",
                  "--seq-len", "3"]))


# ----------------------------------------------------------------------------------------------------------------
# Overwriting a folder that srvp did not write (pretrained convert --overwrite, predict --out)
# ----------------------------------------------------------------------------------------------------------------


def overwrite_case(tmp: Path, fill: Callable[[Path], None], *fragments: str, name: str = "mine") -> Case:
    """``srvp pretrained convert CHECKPOINT OUT --overwrite`` onto ``OUT`` as ``fill`` left it: refused, unchanged."""
    outputs = tmp / "outputs"
    outputs.mkdir()
    out = outputs / name
    source = checkpoint(tmp)
    fill(out)
    return Case(["pretrained", "convert", str(source), str(out), "--overwrite"], [str(out), *fragments], outputs)


def users_folder(out: Path) -> None:
    (out / "photos").mkdir(parents=True)
    (out / "notes.txt").write_text("keep me")
    (out / "photos" / "a.jpg").write_bytes(b"\xff\xd8 a photo")


def model_folder_and_a_users_file(out: Path) -> None:
    assert main(["pretrained", "convert", str(out.parent.parent / "model.pt"), str(out)]) == 0
    (out / "notes.txt").write_text("keep me")


case("overwrite-folder-of-users-files")(lambda t: overwrite_case(t, users_folder, "holds other files",
                                                                  "no config.json of an earlier run"))
case("overwrite-model-folder-holding-a-users-file")(lambda t: overwrite_case(
    t, model_folder_and_a_users_file, "holds other files", "'notes.txt' is not an output"))
case("overwrite-a-pt-file-that-is-no-checkpoint")(lambda t: overwrite_case(
    t, lambda out: out.write_bytes(b"the user's file"), "not an srvp checkpoint", name="mine.pt"))


@case("predict-out-holding-a-users-file-beside-a-summary")
def _(tmp: Path) -> Case:
    c = predict_option_case(tmp, fragments=())
    assert main(c.argv) == 0
    (c.out / "notes.txt").write_text("keep me")
    c.fragments = [str(c.out), "'notes.txt' is not an output of an earlier run"]
    return c


# ----------------------------------------------------------------------------------------------------------------
# The test
# ----------------------------------------------------------------------------------------------------------------


def run_srvp(c: Case, capsys) -> tuple[int, str]:
    if c.subprocess:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        result = subprocess.run([sys.executable, "-m", "srvp.cli.main", *c.argv], capture_output=True, text=True,
                                cwd=REPO, env=env, timeout=300)
        return result.returncode, result.stderr
    capsys.readouterr()
    rc = main(c.argv)
    return rc, capsys.readouterr().err


def snapshot(out: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} if out.exists() else {}


def half_written(out: Path, before: dict[Path, bytes]) -> list[Path]:
    """Files in ``out`` that a failed command must not leave: temporaries, partial splits, new results and
    checkpoints, and any change to the files that were there before."""
    if not out.exists():
        return []
    bad = [p for p in out.rglob("*") if p.name.endswith(".tmp") or ".partial-" in p.name]
    new = [p for p in out.rglob("*") if p.is_file() and p not in before]
    bad += [p for p in new if p.name in ("best.pt", "last.pt", "results.json", "summary.json")
            or p.parent.name == "checkpoints"]
    bad += [p for p, data in before.items() if not p.is_file() or p.read_bytes() != data]
    return bad


def test_corpus_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_input_gives_a_one_line_error(name, tmp_path, capsys):
    c = CASES[name](tmp_path)
    before = snapshot(c.out)
    rc, err = run_srvp(c, capsys)
    command = c.argv[0]
    lines = err.strip().splitlines()
    assert rc == 2, f"exit status {rc}: {err[-3000:]}"
    assert "Traceback" not in err and "\x1b" not in err, err[-3000:]
    assert len(lines) == 1, err
    assert re.match(rf"srvp {command}( [a-z-]+)*: error: ", lines[0]), lines[0]  # the (sub-)command, e.g. data videos
    for fragment in c.fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert half_written(c.out, before) == []
    if command in ("predict", "evaluate") and c.out.exists():  # no output file at all
        assert {p for p in c.out.rglob("*") if p.is_file()} == set(before), sorted(c.out.rglob("*"))
    if c.marker is not None:
        assert not c.marker.exists(), "code from the file ran"


def test_payloads_are_live(tmp_path):
    """The pickle payloads of the corpus do run code when loaded without restrictions (so their checks can fail)."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


def test_a_declared_or_stated_layout_is_read(tmp_path, capsys):
    """The layout of a test set comes from the file (``layout``, written by every srvp writer; the authors' KTH
    ``persons``; Moving MNIST's ``latents``) or from --test-set-layout, and is then read as said."""
    from srvp.data.npz import load_sequences_npz, save_sequences_npz

    rng = np.random.default_rng(0)
    sequence_first = rng.integers(0, 256, (3, 6, 64, 64), dtype=np.uint8)  # (N, T, H, W)
    expected = sequence_first[:, :, None]
    undeclared = write(tmp_path / "undeclared.npz", npz_bytes(sequences=sequence_first))
    np.testing.assert_array_equal(load_sequences_npz(undeclared, "sequence-first"), expected)
    declared = write(tmp_path / "declared.npz", npz_bytes(sequences=sequence_first, layout=np.array("NTHW")))
    np.testing.assert_array_equal(load_sequences_npz(declared), expected)
    save_sequences_npz(tmp_path / "ours.npz", {"sequences": sequence_first.transpose(1, 0, 2, 3)})
    np.testing.assert_array_equal(load_sequences_npz(tmp_path / "ours.npz"), expected)
    mnist = write(tmp_path / "mnist.npz", npz_bytes(sequences=sequence_first.transpose(1, 0, 2, 3),
                                                    latents=np.zeros((6, 3, 1, 4), np.float32)))
    np.testing.assert_array_equal(load_sequences_npz(mnist), expected)
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(checkpoint(tmp_path)), "--test-set", str(undeclared),
                 "--test-set-layout", "sequence-first", "--samples", "1", "--no-elbo", "--no-progress",
                 "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["n_sequences"] == 3
    capsys.readouterr()


def test_gzip_idx_round_trip_is_read(tmp_path):
    """The IDX cases start from files that the reader accepts when they are well formed."""
    from srvp.data.idx import read_idx

    digits = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "d.gz", digits)
    assert gzip.decompress((tmp_path / "d.gz").read_bytes())[:4] == idx_header(0x08, (2, 28, 28))[:4]
    assert np.array_equal(read_idx(tmp_path / "d.gz"), digits)


def test_pixel_bombs_are_refused_from_their_headers_before_any_decoding(tmp_path, monkeypatch):
    """A folder of six 12,000 x 12,000 one-bit PNGs (100 KB; a 1.6 KB zip), a video of such frames and a GIF with
    one huge frame are refused fast, in little memory, without a pixel decoded (Pillow's ``load`` and ffmpeg's
    decoding to raw frames are never called)."""
    import time
    import tracemalloc

    from PIL import ImageFile

    from srvp.errors import DataError
    from srvp.io import read_clip

    bombs = [png_bomb_folder(tmp_path / "frames"), huge_frame_video(tmp_path / "clip.avi"),
             write(tmp_path / "clip.gif", gif_with_huge_frame())]
    decoded: list = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(image))
    run = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda cmd, *a, **k: (decoded.append(cmd) if "rawvideo" in cmd else None,
                                                                 run(cmd, *a, **k))[1])
    tracemalloc.start()
    try:
        for bomb in bombs:
            start = time.monotonic()
            with pytest.raises(DataError, match="read per frame"):
                read_clip(bomb)
            assert time.monotonic() - start < 10, bomb
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert decoded == [] and peak < 20 * 2**20, (decoded, peak)


# ----------------------------------------------------------------------------------------------------------------
# Run directories: one run at a time, a resume keeps the history, a failed start leaves nothing (issue 21, 4 and 6)
# ----------------------------------------------------------------------------------------------------------------


def test_a_run_directory_serves_one_training_at_a_time(tmp_path, capsys):
    """A second `srvp train` on a run directory in use is refused with one line naming the holder, and touches
    nothing; once the holder is killed (SIGKILL: no clean-up), its stale lock file does not block the next run."""
    import signal

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from srvp.files import folder_lock; "
                               "lock = folder_lock(sys.argv[1], 'x'); lock.__enter__(); print('locked', flush=True); "
                               "time.sleep(300)", str(run)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(run)
        config = train_config(tmp_path)
        argv = ["train", "--config", str(config), "--out-dir", str(run), "--no-progress"]
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"srvp train: error: {run}: another srvp train is already "
                                                   f"running in this folder (process {holder.pid} on "), err
        assert snapshot(run) == before and sorted(p.name for p in run.iterdir()) == [".srvp.lock"]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (run / ".srvp.lock").exists()  # left by the killed holder; the kernel released its lock
    assert main(argv) == 0
    assert (run / "best.pt").is_file() and not (run / ".srvp.lock").exists()


def test_a_resume_keeps_the_run_history(tmp_path):
    """config.json stays the run's first configuration; resumes.jsonl logs each resume's time, step and changed
    fields; --resume without options continues with the configuration the run last trained with."""
    config, run = finished_run(tmp_path)
    first = (run / "config.json").read_text()
    assert main(["train", "--config", str(config), "--out-dir", str(run), "--no-progress", "--resume",
                 "--steps", "3", "--lr", "0.001"]) == 0
    assert main(["train", "--out-dir", str(run), "--no-progress", "--resume", "--steps", "4"]) == 0
    assert (run / "config.json").read_text() == first
    log = [json.loads(line) for line in (run / "resumes.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [2, 3] and all(entry["time"].endswith("Z") for entry in log)
    assert log[0]["changed"] == {"train.steps": [2, 3], "train.lr": [0.0003, 0.001]}
    assert log[1]["changed"] == {"train.steps": [3, 4]}  # the learning rate of the last resume carried on
    final = torch.load(run / "checkpoints" / "step_00000004.pt", weights_only=True)
    assert final["config"]["train"]["lr"] == 0.001 and final["config"]["train"]["steps"] == 4


def _no_space_for(pattern: str):
    """An ``os.fsync`` that fails as a full disk does (ENOSPC, no file name) for files whose path matches."""
    import errno

    def fsync(fd: int) -> None:
        if re.search(pattern, os.readlink(f"/proc/self/fd/{fd}")):
            raise OSError(errno.ENOSPC, "No space left on device")
        _REAL_FSYNC(fd)

    return fsync


_REAL_FSYNC = os.fsync


def test_a_full_disk_is_named_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    """When a write fails (a full disk, simulated: fsync raises ENOSPC without naming a file), `train`,
    `data videos convert` and `pretrained convert` say which file, exit 2 with one line, and leave nothing."""
    from safetensors import SafetensorError

    def one_line(argv: list[str], *fragments: str) -> None:
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in err[0], err
        for fragment in fragments:
            assert fragment in err[0], (fragment, err[0])

    run = tmp_path / "run"
    monkeypatch.setattr(os, "fsync", _no_space_for(r"/\.config\.json\."))
    one_line(["train", "--config", str(train_config(tmp_path)), "--out-dir", str(run), "--no-progress"],
             f"{run / 'config.json'}: No space left on device")
    assert not run.exists()
    monkeypatch.setattr(os, "fsync", _no_space_for(r"/\.step_"))  # config.json and TensorBoard written, then not
    one_line(["train", "--config", str(train_config(tmp_path)), "--out-dir", str(run), "--no-progress"],
             f"{run / 'checkpoints' / 'step_00000001.pt'}: No space left on device")
    assert not run.exists()

    source = tmp_path / "videos"
    source.mkdir()
    frame_folder(source, [16] * 6)
    monkeypatch.setattr(os, "fsync", _no_space_for(r"/frames\.npy$"))
    one_line(["data", "videos", "convert", str(source), "--out", str(tmp_path / "store"), "--size", "16",
              "--min-frames", "6", "--no-progress"], f"{tmp_path / 'store' / 'train'}: No space left on device")
    assert not (tmp_path / "store").exists()

    monkeypatch.setattr(os, "fsync", _no_space_for(r"/\.ours\.pt\."))
    one_line(["pretrained", "convert", str(checkpoint(tmp_path)), str(tmp_path / "ours.pt")],
             f"{tmp_path / 'ours.pt'}: No space left on device")
    monkeypatch.undo()

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr("srvp.pretrained.save_file", full)
    one_line(["pretrained", "convert", str(checkpoint(tmp_path)), str(tmp_path / "hub")],
             f"{tmp_path / 'hub'}: cannot write the model (No space left on device", "nothing was written")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".", "ours", "hub"))) == []


def test_an_interrupted_comparison_evaluation_leaves_no_partial_folder(tmp_path, monkeypatch):
    """`srvp compare` writes each model's evaluation aside and renames it into place: interrupted after its first
    file (SIGKILL, Ctrl-C), no eval/<model>/ exists, and the next run writes the whole evaluation."""
    from srvp.tasks.compare import runs as compare
    from srvp.tasks.compare.runs import TrainedModel, evaluate_once
    from tests.test_protocol import COND, tiny_model, tiny_sequences

    settings = {"cond_frames": COND, "n_samples": 2, "dts": [1.0], "precision": "fp32", "seed": 0, "device": "cpu"}
    tm = TrainedModel("srvp", "SRVP", tmp_path / "best.pt")
    out = tmp_path / "compare" / "eval" / "srvp"
    real = compare.write_report

    def killed_after_one_file(result, stage, **kwargs):
        real(result, stage, **kwargs)
        assert (stage / "results.json").is_file()
        raise KeyboardInterrupt  # where a SIGKILL would stop the process

    monkeypatch.setattr(compare, "write_report", killed_after_one_file)
    with pytest.raises(KeyboardInterrupt):
        evaluate_once(tiny_model(), tm, tiny_sequences(n=2), settings, out, 5, progress=False)
    assert not out.exists() and list(out.parent.iterdir()) == []
    monkeypatch.setattr(compare, "write_report", real)
    evaluate_once(tiny_model(), tm, tiny_sequences(n=2), settings, out, 5, progress=False)
    assert {"results.json", "compare_eval.json", "scores.npz"} <= {p.name for p in out.iterdir()}
    assert [p.name for p in out.parent.iterdir()] == ["srvp"]


# ----------------------------------------------------------------------------------------------------------------
# The Python API: one-line errors too (issue 21, item 5), and messages that state the real numbers (item 7)
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    from srvp.api import Predictor

    return Predictor.from_checkpoint(checkpoint(tmp_path_factory.mktemp("api")), device="cpu")


API_CLIP = torch.rand(1, 4, 1, 64, 64)
API_CASES = {
    "float frames in 0..255": (lambda p: p.predict(API_CLIP * 255, 2), "float frames must be in [0, 1]"),
    "NaN frames": (lambda p: p.predict(torch.full_like(API_CLIP, float("nan")), 2), "NaN or infinite"),
    "int64 frames": (lambda p: p.predict((API_CLIP * 255).long(), 2), "unsupported dtype torch.int64"),
    "horizon=0": (lambda p: p.predict(API_CLIP, 0), "horizon=0 must be an integer of at least 1"),
    "horizon=2.5": (lambda p: p.predict(API_CLIP, 2.5), "horizon=2.5 must be an integer"),
    "n_samples=0": (lambda p: p.predict(API_CLIP, 2, n_samples=0), "n_samples=0 must be an integer of at least 1"),
    "no conditioning frame": (lambda p: p.predict(API_CLIP[:, :0], 2), "no frames to read"),
    "an empty batch": (lambda p: p.predict(API_CLIP[:0], 2), "no frames to read"),
    "an empty batch to interpolate": (lambda p: p.interpolate(API_CLIP[:0], API_CLIP[:0], 2, 2), "no frames"),
    "negative reconstruction horizon": (lambda p: p.reconstruct(API_CLIP, -1), "horizon=-1"),
    "device mps": (lambda p: type(p)(p.model, p.config, device="mps"), "device 'mps' is not available"),
    "model filters=0": (lambda p: SRVP(ModelConfig(filters=0)), "filters=0 must be positive"),
    "model state_dim=-1": (lambda p: SRVP(ModelConfig(state_dim=-1)), "state_dim=-1 must be positive"),
    "model frame_size=48 with DCGAN": (lambda p: SRVP(ModelConfig(frame_size=48)), "needs frame_size=64, got 48"),
}


@pytest.mark.parametrize("name", sorted(API_CASES))
def test_the_python_api_refuses_bad_input_in_one_line(name, predictor):
    from srvp.errors import SrvpError

    call, fragment = API_CASES[name]
    with pytest.raises(SrvpError) as error:
        call(predictor)
    assert fragment in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_the_python_api_takes_float64_and_uint8_frames(predictor):
    reference = predictor.predict(API_CLIP, 2, use_mean=True)
    assert torch.allclose(predictor.predict(API_CLIP.double(), 2, use_mean=True), reference, atol=1e-5)
    assert predictor.predict((API_CLIP * 255).round().to(torch.uint8), 2).shape == reference.shape


def test_the_memory_guard_states_the_numbers_it_compares(monkeypatch):
    """'needs about 19.5 GiB, more than the 20.5 GiB available' hid a margin: the message states the need, what is
    available and the share srvp may use."""
    from srvp import runtime
    from srvp.errors import ConfigError

    monkeypatch.setattr(runtime, "available_memory", lambda device: int(20.5 * runtime.GIB))
    with pytest.raises(ConfigError) as error:
        runtime.require_memory(int(19.5 * runtime.GIB), torch.device("cpu"), "a request", "the horizon")
    assert str(error.value) == ("a request needs about 19.5 GiB of memory; 20.5 GiB are available, of which srvp uses "
                                "at most 80% (16.4 GiB, the rest left to the system); lower the horizon")
