"""A user's own videos: a folder of video files and/or frame-image folders, read as srvp predict reads a clip.

Frames are centre-cropped to a square, resized to ``video_size`` (``DataConfig.video_size``) and kept in colour or
grey (``video_channels``) by :func:`srvp.io.read_frames`, which reads a clip exactly as ``srvp predict`` does
(:func:`srvp.io.read_clip` then :func:`srvp.io.fit_frames`: the same files in the same order, the same decoders,
resizing and grey conversion), so that a model sees the same frames in training and in prediction. ``data_dir`` is
either

- the raw folder: read once into memory when the dataset is built (fine for small collections), or
- a store converted by ``srvp data videos convert SOURCE --out DIR`` (memory-mapped, for large collections).

Splits: ``train/``, ``val/`` and ``test/`` sub-folders of the source are used when present; otherwise the videos,
sorted by name, are split by a fixed permutation (seed 42) into about 90% training, 5% validation and 5% test
(at least one video each once there are three; with fewer, every split uses every video and there is no held-out
data, which the converter reports). Training clips are random ``seq_len``-frame windows of random training videos;
the validation and test sets are ``val_sequences`` / ``test_sequences`` random ``test_seq_len``-frame clips of the
held-out videos, drawn from fixed seeds.

Files are decoded by :mod:`srvp.io`, the one reader of user media: video files by :func:`~srvp.io.iter_video` (the
ffmpeg binary that ``imageio-ffmpeg`` ships, called directly because we need its exit status and error output to
reject truncated or corrupt files, ``-xerror``), GIFs by Pillow, frame images by :func:`~srvp.io.read_image`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from srvp.config import DataConfig
from srvp.data.base import DatasetSpec
from srvp.data.storage import (
    FrameTable,
    MemoryStore,
    StoreClipDataset,
    StoreWriter,
    VideoStore,
    fixed_clips,
    is_complete,
    source_fingerprint,
)
from srvp.errors import ConfigError, DataError
from srvp.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, decode_video, read_frames, suffix_list  # noqa: F401 (re-exported)

#: the files read as videos and as frames: srvp.io's lists, which predict reads too
VIDEO_EXTENSIONS, IMAGE_EXTENSIONS = VIDEO_SUFFIXES, IMAGE_SUFFIXES
SPLITS = ("train", "val", "test")
#: version of the frame reader, in each store's settings: a store made by another reader is converted again
READER = "srvp.io.read_frames/1"
#: seeds of the fixed validation and test clips (independent of the training seed)
VAL_SEED, TEST_SEED = 1234, 4321


# ----------------------------------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------------------------------


def read_frame_folder(folder: str | Path, size: int, channels: int = 3, crop: bool = True) -> np.ndarray:
    """A folder of frame images as uint8 ``(T, channels, size, size)``: :func:`srvp.io.read_frames` (frames in
    natural order, all of one size, else a :class:`DataError` naming the first odd file)."""
    return read_frames(folder, size, channels, crop)


def find_videos(root: str | Path) -> list[tuple[str, Path]]:
    """The videos under ``root``: video files and folders that directly contain frame images, as
    ``(name, path)`` sorted by name (the path relative to ``root``)."""
    root = Path(root)
    found = []
    for path in sorted(root.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
            found.append((path.relative_to(root).as_posix(), path))
        elif path.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
                                   for p in path.iterdir() if p.is_file()):
            found.append((path.relative_to(root).as_posix() or ".", path))
    return found


def load_video(path: Path, size: int, channels: int, min_frames: int = 1) -> np.ndarray:
    """A video file or frame folder as uint8 ``(T, channels, size, size)`` (:func:`srvp.io.read_frames`); one of
    fewer than ``min_frames`` frames is a :class:`DataError` naming it."""
    frames = read_frames(path, size, channels)
    if len(frames) < min_frames:
        raise DataError(f"{path}: {len(frames)} frame(s); every video needs at least {min_frames} (--min-frames: "
                        f"the longest clip trained or tested on); remove it or cut longer clips")
    return frames


def split_sources(root: str | Path) -> dict[str, list[tuple[str, Path]]]:
    """Videos of each split (see the module docstring). Raises :class:`DataError` if there is no video."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such directory of videos")
    if (root / "train").is_dir():
        splits = {s: find_videos(root / s) if (root / s).is_dir() else [] for s in SPLITS}
        if not splits["train"]:
            raise DataError(f"{root / 'train'}: no videos ({suffix_list(VIDEO_EXTENSIONS)} or frame-image folders)")
        for s in ("val", "test"):
            if not splits[s]:
                splits[s] = splits["test"] or splits["val"] or splits["train"]
        return splits
    videos = find_videos(root)
    if not videos:
        raise DataError(f"{root}: no videos ({suffix_list(VIDEO_EXTENSIONS)} or folders of frame images)")
    n = len(videos)
    if n < 3:
        return {"train": videos, "val": videos[-1:], "test": videos[-1:]}
    permutation = np.random.RandomState(42).permutation(n)
    n_held = max(1, round(0.05 * n))
    test = sorted(permutation[:n_held])
    val = sorted(permutation[n_held:2 * n_held])
    train = sorted(permutation[2 * n_held:])
    return {"train": [videos[i] for i in train], "val": [videos[i] for i in val], "test": [videos[i] for i in test]}


# ----------------------------------------------------------------------------------------------------------------
# Conversion
# ----------------------------------------------------------------------------------------------------------------


def convert(source: str | Path, out: str | Path, size: int = 64, channels: int = 3, force: bool = False,
            progress: bool = True, min_frames: int = 1) -> list[dict[str, Any]]:
    """Convert a folder of videos into a store at ``out`` with splits train/val/test; skips finished splits made
    from the same files and settings. A video of fewer than ``min_frames`` frames is refused (a clip is cut from
    one video). Returns the verification report of each split."""
    from tqdm import tqdm

    source, out = Path(source), Path(out)
    splits = split_sources(source)
    reports = []
    for split in SPLITS:
        videos = splits[split]
        settings = {"kind": "videos", "root": str(source.resolve()), "size": size, "channels": channels,
                    "reader": READER, "min_frames": min_frames,
                    "files": source_fingerprint([p for _, p in videos]),
                    "videos": [name for name, _ in videos]}
        if not force and is_complete(out, split) and VideoStore(out, split).meta.get("source") == settings:
            print(f"{split}: already converted, skipping")
        else:
            with StoreWriter(out, split, (channels, size, size), source=settings) as writer:
                for name, path in tqdm(videos, desc=f"videos {split}", unit="video", disable=not progress):
                    writer.add_video(name, load_video(path, size, channels, min_frames))
                writer.commit()
        reports.append(VideoStore(out, split).verify())
    return reports


# ----------------------------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------------------------


def _check_size(store: FrameTable, cfg: DataConfig) -> None:
    expected = (cfg.video_channels, cfg.video_size, cfg.video_size)
    if tuple(store.frame_shape) != expected:
        raise ConfigError(f"{store.dir}: frames are {'x'.join(map(str, store.frame_shape))} (C x H x W) but "
                          f"video_channels={cfg.video_channels}, video_size={cfg.video_size}; pass "
                          f"--video-channels {store.frame_shape[0]} --video-size {store.frame_shape[1]}")


def open_split(cfg: DataConfig, split: str) -> FrameTable:
    """The ``split`` of ``cfg.data_dir``: a converted store if it is one, else the raw folder read into memory."""
    root = Path(cfg.data_dir)
    if cfg.video_channels not in (1, 3) or cfg.video_size < 1:
        raise ConfigError(f"video_channels must be 1 or 3 and video_size positive, got {cfg.video_channels}, "
                          f"{cfg.video_size}")
    if is_complete(root, "train"):
        store: FrameTable = VideoStore(root, split)
    else:
        videos = split_sources(root)[split]
        store = MemoryStore([n for n, _ in videos], [load_video(p, cfg.video_size, cfg.video_channels)
                                                     for _, p in videos], split, root)
    _check_size(store, cfg)
    return store


def build_train(cfg: DataConfig, seed: int) -> StoreClipDataset:
    return StoreClipDataset(open_split(cfg, "train"), cfg.seq_len, seed)


def load_val(cfg: DataConfig, seed: int) -> np.ndarray:
    store = open_split(cfg, "val")
    return fixed_clips(store, range(len(store)), cfg.val_sequences, cfg.test_seq_len, VAL_SEED, "validation")


def load_test(cfg: DataConfig) -> np.ndarray:
    store = open_split(cfg, "test")
    return fixed_clips(store, range(len(store)), cfg.test_sequences, cfg.test_seq_len, TEST_SEED, "test")


SPEC = DatasetSpec(train=build_train, val=load_val, test=load_test)
