"""The on-disk format of converted video datasets: one memory-mapped uint8 array per split plus an index.

A *store* is a directory with one sub-directory per split (``train``, ``test``, ...). A split directory holds

- ``frames.npy``: every frame of every video, uint8 ``(total_frames, C, H, W)``, read with ``mmap_mode="r"``, so a
  random clip costs one contiguous slice of the file (no image decoding while training);
- ``videos.npy``: int64 ``(num_videos, 2)``, the first frame and the length of each video in ``frames.npy``;
- ``meta.json``: format, version, counts, frame shape, video names and where the data came from. It is written
  last, and the split is built under a temporary name that is renamed at the end, so a split directory that exists
  is complete: an interrupted conversion leaves only a hidden ``.<split>.partial-*`` directory, removed on the next
  run.

:class:`VideoStore` reads a split; :class:`StoreWriter` writes one, streaming videos of unknown length;
:class:`StoreClipDataset` draws training clips (a random video, a random start) as a pure function of the generator.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from srvp.data.base import ClipDataset
from srvp.errors import DataError
from srvp.files import named_os_error

FORMAT = "srvp-video-store"
VERSION = 1
META = "meta.json"
FRAMES = "frames.npy"
VIDEOS = "videos.npy"
#: fixed size of the hand-written .npy header (see :func:`_npy_header`)
_HEADER_BYTES = 128


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """A version-1.0 ``.npy`` header for a C-ordered uint8 array of ``shape``, padded to a fixed 128 bytes.

    Written by hand (the layout is the documented NumPy format: magic, version, little-endian header length, a
    Python dict literal padded with spaces and ended by a newline) because the number of frames is only known at the
    end of a streaming conversion: reserving a fixed-size header lets us rewrite it in place instead of copying
    gigabytes of frames behind a header of a different length, as ``np.lib.format.open_memmap`` would need.
    """
    text = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {tuple(int(s) for s in shape)}, }}"
    prefix = b"\x93NUMPY\x01\x00"
    body_len = _HEADER_BYTES - len(prefix) - 2
    if len(text) + 1 > body_len:
        raise ValueError(f"shape {shape} does not fit in a {_HEADER_BYTES}-byte .npy header")
    return prefix + struct.pack("<H", body_len) + (text + " " * (body_len - len(text) - 1) + "\n").encode("latin1")


def split_dir(root: str | Path, split: str) -> Path:
    return Path(root) / split


def is_complete(root: str | Path, split: str) -> bool:
    """Whether ``root/split`` is a finished split (its ``meta.json`` exists; it is written last)."""
    return (split_dir(root, split) / META).is_file()


def remove_partial(root: str | Path, split: str) -> None:
    """Delete leftovers of interrupted conversions of ``split``."""
    root = Path(root)
    if root.is_dir():
        for p in root.glob(f".{split}.partial-*"):
            shutil.rmtree(p, ignore_errors=True)


class StoreWriter:
    """Stream videos into a new split of a store; :meth:`commit` makes it visible, atomically.

    >>> with StoreWriter(root, "train", (1, 64, 64), source={...}) as w:   # doctest: +SKIP
    ...     w.add_video("person01_boxing_d1", frames)    # uint8 (T, 1, 64, 64)
    ...     w.commit()
    """

    def __init__(self, root: str | Path, split: str, frame_shape: Sequence[int], source: dict[str, Any] | None = None):
        self.root = Path(root)
        self.split = split
        self.frame_shape = tuple(int(s) for s in frame_shape)
        if len(self.frame_shape) != 3:
            raise ValueError(f"frame_shape must be (C, H, W), got {self.frame_shape}")
        self.source = dict(source or {})
        self.root.mkdir(parents=True, exist_ok=True)
        remove_partial(self.root, split)
        self.tmp_dir = self.root / f".{split}.partial-{os.getpid()}"
        self.tmp_dir.mkdir()
        self._frames = open(self.tmp_dir / FRAMES, "wb")  # noqa: SIM115 (closed by commit or abort)
        self._frames.write(_npy_header((0, *self.frame_shape)))
        self._index: list[tuple[int, int]] = []
        self.names: list[str] = []
        self.num_frames = 0
        self._committed = False

    def add_video(self, name: str, frames: np.ndarray) -> None:
        """Append one video, uint8 ``(T, C, H, W)`` with the store's frame shape."""
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or tuple(frames.shape[1:]) != self.frame_shape:
            raise ValueError(f"{name}: expected uint8 frames (T, {', '.join(map(str, self.frame_shape))}), "
                             f"got {frames.dtype} {frames.shape}")
        if len(frames) == 0:
            raise ValueError(f"{name}: a video needs at least one frame")
        try:
            self._frames.write(np.ascontiguousarray(frames).tobytes())
        except OSError as e:  # a full disk: name the file (the system does not)
            raise named_os_error(e, self.tmp_dir.parent / self.split / FRAMES) from None
        self._index.append((self.num_frames, len(frames)))
        self.names.append(str(name))
        self.num_frames += len(frames)

    def commit(self, extra: dict[str, Any] | None = None) -> Path:
        """Finish the files, write ``meta.json`` last and rename the split into place; returns its directory."""
        try:
            return self._commit(extra)
        except OSError as e:  # a full disk: name the split (the system names no file)
            raise named_os_error(e, split_dir(self.root, self.split)) from None

    def _commit(self, extra: dict[str, Any] | None) -> Path:
        self._frames.seek(0)
        self._frames.write(_npy_header((self.num_frames, *self.frame_shape)))
        self._frames.flush()
        os.fsync(self._frames.fileno())
        self._frames.close()
        np.save(self.tmp_dir / VIDEOS, np.asarray(self._index, dtype=np.int64).reshape(-1, 2))
        meta = {"format": FORMAT, "version": VERSION, "split": self.split, "num_videos": len(self.names),
                "num_frames": self.num_frames, "frame_shape": list(self.frame_shape), "dtype": "uint8",
                "names": self.names, "source": self.source, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                       time.gmtime())}
        if extra:
            meta.update(extra)
        with open(self.tmp_dir / META, "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        final = split_dir(self.root, self.split)
        if final.exists():
            shutil.rmtree(final)
        os.replace(self.tmp_dir, final)
        self._committed = True
        return final

    def abort(self) -> None:
        if not self._frames.closed:
            self._frames.close()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._committed:
            self.abort()


class FrameTable:
    """Videos laid end to end in one uint8 array ``frames`` ``(total_frames, C, H, W)`` with an index of
    ``starts`` and ``lengths``: the interface shared by a memory-mapped store and an in-memory collection."""

    dir: Path
    frames: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    names: list[str]
    frame_shape: tuple[int, ...]
    split: str

    def __len__(self) -> int:
        return len(self.names)

    def video(self, i: int) -> np.ndarray:
        return self.frames[self.starts[i]:self.starts[i] + self.lengths[i]]

    def clip(self, i: int, start: int, length: int) -> np.ndarray:
        """Frames ``start .. start + length - 1`` of video ``i``, uint8 ``(length, C, H, W)`` (a copy)."""
        if start < 0 or start + length > self.lengths[i]:
            raise IndexError(f"clip [{start}, {start + length}) outside video {self.names[i]} "
                             f"of {self.lengths[i]} frames")
        s = self.starts[i] + start
        return np.array(self.frames[s:s + length])

    def verify(self, sample_frames: int = 20000, frame_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
        """Check the index against the frames (and the frames' ``(C, H, W)`` against ``frame_shape`` if given) and
        report counts, shapes and pixel statistics (on at most ``sample_frames`` evenly spaced frames). Raises
        :class:`DataError` on an inconsistent store."""
        if frame_shape is not None and tuple(self.frame_shape) != tuple(frame_shape):
            raise DataError(f"{self.dir}: frames are {tuple(self.frame_shape)}, not {tuple(frame_shape)}")
        ends = self.starts + self.lengths
        if len(self) and (self.starts[0] != 0 or np.any(self.starts[1:] != ends[:-1])
                          or ends[-1] != len(self.frames) or np.any(self.lengths <= 0)):
            raise DataError(f"{self.dir / VIDEOS}: video offsets do not tile the {len(self.frames)} frames")
        step = max(1, len(self.frames) // sample_frames)
        sample = np.asarray(self.frames[::step])
        frames_file = self.dir / FRAMES
        return {"split": self.split, "videos": len(self), "frames": int(len(self.frames)),
                "frame_shape": tuple(self.frame_shape),
                "min_length": int(self.lengths.min()) if len(self) else 0,
                "max_length": int(self.lengths.max()) if len(self) else 0,
                "pixel_min": int(sample.min()) if sample.size else 0,
                "pixel_max": int(sample.max()) if sample.size else 0,
                "pixel_mean": float(sample.mean()) / 255.0 if sample.size else 0.0,
                "bytes": int(frames_file.stat().st_size) if frames_file.is_file() else int(self.frames.nbytes)}


class VideoStore(FrameTable):
    """A converted split, memory-mapped: ``store.video(i)`` is uint8 ``(T_i, C, H, W)``. Pickles as its path (the
    memory map is reopened on the other side), so datasets holding one move cheaply into loader workers."""

    def __init__(self, root: str | Path, split: str):
        self.root, self.split = Path(root), split
        self.dir = split_dir(root, split)
        meta_path = self.dir / META
        if not meta_path.is_file():
            hint = " (an interrupted conversion: run `srvp data <name> convert` again)" \
                if any(Path(root).glob(f".{split}.partial-*")) else ""
            raise DataError(f"{self.dir}: no converted '{split}' split here{hint}; convert the dataset with "
                            f"`srvp data <name> convert`")
        try:
            self.meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{meta_path}: not valid JSON ({e})") from None
        if self.meta.get("format") != FORMAT:
            raise DataError(f"{meta_path}: not an srvp video store (format {self.meta.get('format')!r})")
        try:
            self.frames = np.load(self.dir / FRAMES, mmap_mode="r")
            index = np.load(self.dir / VIDEOS)
        except (OSError, ValueError) as e:
            raise DataError(f"{self.dir}: unreadable store files ({e})") from None
        self.names = list(self.meta["names"])
        self.frame_shape = tuple(self.meta["frame_shape"])
        if (self.frames.dtype != np.uint8 or self.frames.ndim != 4 or tuple(self.frames.shape[1:]) != self.frame_shape
                or len(self.frames) != self.meta["num_frames"]):
            raise DataError(f"{self.dir / FRAMES}: shape {self.frames.shape} {self.frames.dtype} does not match "
                            f"{META} ({self.meta['num_frames']} frames of {self.frame_shape})")
        if index.shape != (len(self.names), 2):
            raise DataError(f"{self.dir / VIDEOS}: {index.shape} entries for {len(self.names)} videos")
        self.starts = index[:, 0]
        self.lengths = index[:, 1]

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "split": self.split}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], state["split"])


class MemoryStore(FrameTable):
    """Videos held in memory with the interface of :class:`VideoStore` (small collections read on the fly)."""

    def __init__(self, names: Sequence[str], videos: Sequence[np.ndarray], split: str = "train",
                 origin: str | Path = "."):
        if not videos:
            raise ValueError("MemoryStore needs at least one video")
        self.names, self.split, self.dir = list(names), split, Path(origin)
        self.frames = np.concatenate(videos)
        self.lengths = np.asarray([len(v) for v in videos], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.frame_shape = tuple(self.frames.shape[1:])


def split_train_val(names: Sequence[str], val_fraction: float = 0.05, seed: int = 42) -> tuple[list[int], list[int]]:
    """Hold out a fraction of the videos for validation, as the authors do (a ``RandomState(seed)`` permutation,
    the first 95% for training), on the videos sorted by name so the split does not depend on the file system.
    Returns index lists (into ``names``) of the training and validation videos; with a single video both are it."""
    order = sorted(range(len(names)), key=lambda i: names[i])
    if len(order) < 2:
        return order, order
    permutation = np.random.RandomState(seed).permutation(len(order))
    n_train = min(len(order) - 1, int((1 - val_fraction) * len(order)))
    train = sorted(order[j] for j in permutation[:n_train])
    val = sorted(order[j] for j in permutation[n_train:])
    return train, val


class StoreClipDataset(ClipDataset):
    """Training clips of a split: a video chosen uniformly among ``videos`` (default all) that have at least
    ``seq_len`` frames, as the authors do, then a uniform start."""

    def __init__(self, store: FrameTable, seq_len: int, seed: int = 0, videos: Sequence[int] | None = None):
        super().__init__(seq_len, seed)
        self.store = store
        candidates = np.arange(len(store)) if videos is None else np.asarray(videos, dtype=np.int64)
        self.videos = candidates[store.lengths[candidates] >= seq_len] if len(candidates) else candidates
        if len(self.videos) == 0:
            raise DataError(f"{store.dir}: no video has the {seq_len} frames a training clip needs "
                            f"(longest: {int(store.lengths.max()) if len(store) else 0})")

    def make_clip(self, rng: np.random.Generator) -> np.ndarray:
        video = int(self.videos[rng.integers(len(self.videos))])
        start = int(rng.integers(self.store.lengths[video] - self.seq_len + 1))
        return self.store.clip(video, start, self.seq_len)


FEW_VIDEOS = 5  # a split with fewer videos than this gets a warning: its intervals describe those videos only


def fixed_clips(store: FrameTable, videos: Sequence[int], count: int, length: int, seed: int,
                what: str = "validation") -> np.ndarray:
    """Up to ``count`` distinct clips of ``length`` frames from ``videos`` of ``store`` (random (video, start)
    windows drawn without replacement from ``seed``): uint8 ``(N, length, C, H, W)``, ordered by video and start.

    When the videos hold fewer distinct windows than ``count``, all of them are returned (never a window twice,
    which would shrink the confidence intervals without adding information), with a warning; so is a split of
    fewer than :data:`FEW_VIDEOS` videos, whose scores describe those videos rather than videos in general."""
    candidates = [v for v in videos if store.lengths[v] >= length]
    if not candidates:
        raise DataError(f"{store.dir}: no held-out video has {length} frames for {what} clips")
    starts = np.array([store.lengths[v] - length + 1 for v in candidates], dtype=np.int64)
    total = int(starts.sum())
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(total, size=min(count, total), replace=False))
    first = np.concatenate([[0], np.cumsum(starts)[:-1]])
    which = np.searchsorted(first, chosen, side="right") - 1
    if total < count:
        warnings.warn(f"{store.dir}: the {what} videos hold only {total} distinct {length}-frame windows; using "
                      f"{total} clips, not {count}", stacklevel=2)
    if len(candidates) < FEW_VIDEOS:
        warnings.warn(f"{store.dir}: the {what} clips come from {len(candidates)} video(s): their scores describe "
                      f"these videos, not videos in general (add videos to the split for a fair estimate)",
                      stacklevel=2)
    out = np.empty((len(chosen), length, *store.frame_shape), dtype=np.uint8)
    for n, (i, c) in enumerate(zip(which, chosen)):
        out[n] = store.clip(candidates[i], int(c - first[i]), length)
    return out


def source_fingerprint(files: Sequence[Path]) -> list[list[Any]]:
    """What identifies the sources, stored in ``meta.json`` so that a re-run can tell it has nothing to do: for a
    file its name, size and modification time; for a folder of frame images a SHA-256 of every file's name and
    bytes (frames rewritten in place, or added, change it)."""
    out: list[list[Any]] = []
    for f in sorted((Path(p) for p in files), key=lambda p: p.name):
        if f.is_dir():
            h = hashlib.sha256()
            for image in sorted(p for p in f.iterdir() if p.is_file()):
                h.update(image.name.encode() + b"\0")
                h.update(image.read_bytes())
            out.append([f.name, "sha256", h.hexdigest()])
        else:
            stat = f.stat()
            out.append([f.name, stat.st_size, stat.st_mtime_ns])
    return out


def format_report(report: dict[str, Any]) -> str:
    """One line per split for the command line."""
    c, h, w = report["frame_shape"]
    return (f"{report['split']}: {report['videos']} videos, {report['frames']} frames of {c}x{h}x{w} uint8 "
            f"(lengths {report['min_length']}-{report['max_length']}), pixels {report['pixel_min']}-"
            f"{report['pixel_max']} (mean {report['pixel_mean']:.3f}), {report['bytes'] / 2**20:.1f} MiB")
