"""BAIR robot pushing (Ebert et al., 2017): 64x64 colour videos of 30 frames of a Sawyer arm pushing objects.

Input: the published ``softmotion30_44k`` folder (``train/`` and ``test/`` of ``*.tfrecords`` files), read without
TensorFlow (:mod:`srvp.data.tfrecord`). Each ``tf.train.Example`` holds frame ``t`` under ``<t>/image_aux1/encoded``.
Despite the key's name, the published files store *raw* RGB bytes there (64 * 64 * 3 = 12,288 bytes, which the
authors' and SVG's converters read with ``Image.frombytes('RGB', (64, 64), ...)``); PNG or JPEG bytes are decoded
too. The ``train`` and ``test`` folders become the store's splits; as the authors do, 5% of the training videos are
held out for model selection. The test set is the 256 test videos from their first frame (30 frames, 2 of them
conditioning); training uses random 12-frame windows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from srvp.config import DataConfig
from srvp.data.base import DatasetSpec
from srvp.data.storage import (
    StoreClipDataset,
    StoreWriter,
    VideoStore,
    fixed_clips,
    is_complete,
    source_fingerprint,
    split_train_val,
)
from srvp.data.tfrecord import parse_example, read_records
from srvp.errors import DataError

FRAME_SIZE = 64
IMAGE_KEY = "{t}/image_aux1/encoded"
SPLITS = ("train", "test")


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def find_files(source: str | Path) -> dict[str, list[Path]]:
    """The TFRecord files of each split under ``source`` (``softmotion30_44k/{train,test}`` or ``{train,test}``),
    in natural order (``traj_256_to_511`` after ``traj_0_to_255``)."""
    source = Path(source)
    root = source / "softmotion30_44k" if (source / "softmotion30_44k").is_dir() else source
    files = {}
    for split in SPLITS:
        folder = root / split
        found = sorted((p for p in folder.glob("*") if p.is_file() and ".tfrecord" in p.name), key=_natural_key) \
            if folder.is_dir() else []
        if not found:
            raise DataError(f"{folder}: no TFRecord files (expected softmotion30_44k/{split}/*.tfrecords)")
        files[split] = found
    return files


def decode_frame(data: bytes, where: str) -> np.ndarray:
    """One frame, uint8 ``(3, 64, 64)``: raw RGB bytes (the published files) or an encoded PNG/JPEG image."""
    if len(data) == FRAME_SIZE * FRAME_SIZE * 3:
        return np.frombuffer(data, np.uint8).reshape(FRAME_SIZE, FRAME_SIZE, 3).transpose(2, 0, 1)
    import imageio.v3 as iio

    try:
        image = iio.imread(data)
    except Exception as e:  # imageio raises various types for undecodable bytes
        raise DataError(f"{where}: neither raw 64x64 RGB bytes nor a decodable image ({type(e).__name__})") from None
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    if image.dtype != np.uint8 or image.shape != (FRAME_SIZE, FRAME_SIZE, 3):
        raise DataError(f"{where}: frame of shape {image.shape} {image.dtype}, expected 64x64 RGB uint8")
    return image.transpose(2, 0, 1)


def read_video(data: bytes, where: str) -> np.ndarray:
    """The frames of one serialized example, uint8 ``(T, 3, 64, 64)`` for keys ``0 .. T-1``."""
    features = parse_example(data, where)
    if IMAGE_KEY.format(t=0) not in features:
        raise DataError(f"{where}: missing key {IMAGE_KEY.format(t=0)!r} (not a BAIR softmotion example)")
    frames = []
    t = 0
    while IMAGE_KEY.format(t=t) in features:
        values = features[IMAGE_KEY.format(t=t)]
        if len(values) != 1 or not isinstance(values[0], bytes):
            raise DataError(f"{where}: key {IMAGE_KEY.format(t=t)!r} should hold one bytes value")
        frames.append(decode_frame(values[0], f"{where} frame {t}"))
        t += 1
    return np.stack(frames)


def convert_split(files: list[Path], out: Path, split: str, force: bool, progress: bool) -> None:
    from tqdm import tqdm

    settings = {"kind": "bair", "files": source_fingerprint(files)}
    if not force and is_complete(out, split) and VideoStore(out, split).meta.get("source") == settings:
        print(f"{split}: already converted, skipping")
        return
    with StoreWriter(out, split, (3, FRAME_SIZE, FRAME_SIZE), source=settings) as writer:
        for file in tqdm(files, desc=f"BAIR {split}", unit="file", disable=not progress):
            for k, record in enumerate(read_records(file)):
                writer.add_video(f"{file.name}/{k:03d}", read_video(record, f"{file} record {k}"))
        writer.commit()


def convert(source: str | Path, out: str | Path, force: bool = False, progress: bool = True) -> list[dict[str, Any]]:
    """Convert the BAIR TFRecord files under ``source`` into a store at ``out`` (splits ``train``, ``test``);
    finished splits are skipped. Returns the verification report of each split."""
    out = Path(out)
    files = find_files(source)
    for split in SPLITS:
        convert_split(files[split], out, split, force, progress)
    return [VideoStore(out, split).verify() for split in SPLITS]


# ----------------------------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------------------------


def build_train(cfg: DataConfig, seed: int) -> StoreClipDataset:
    store = VideoStore(cfg.data_dir, "train")
    return StoreClipDataset(store, cfg.seq_len, seed, videos=split_train_val(store.names, 0.05, 42)[0])


def load_val(cfg: DataConfig, seed: int) -> np.ndarray:
    store = VideoStore(cfg.data_dir, "train")
    return fixed_clips(store, split_train_val(store.names, 0.05, 42)[1], cfg.val_sequences, cfg.test_seq_len, seed)


def load_test(cfg: DataConfig) -> np.ndarray:
    """Every test video from its first frame, uint8 ``(N, test_seq_len, 3, 64, 64)``."""
    store = VideoStore(cfg.data_dir, "test")
    if store.lengths.min() < cfg.test_seq_len:
        raise DataError(f"{store.dir}: test videos have {store.lengths.min()} frames, fewer than "
                        f"test_seq_len={cfg.test_seq_len}")
    return np.stack([store.clip(i, 0, cfg.test_seq_len) for i in range(len(store))])


SPEC = DatasetSpec(train=build_train, val=load_val, test=load_test)
