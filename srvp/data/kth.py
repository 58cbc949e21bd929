"""KTH human actions (Schuldt et al., 2004): 64x64 grey videos of 25 persons doing 6 actions in 4 conditions.

Input: the six published archives ``boxing.zip`` ... ``walking.zip`` holding ``personXX_<action>_dY_uncomp.avi``,
extracted or not (any mix, anywhere under the source folder). Conversion follows the authors' preprocessing
(itself SVG's): ffmpeg at 25 frames/s resizing the whole 160x120 frame to 64x64 (no crop, so the frame is squashed
horizontally, bicubic), then the first channel of the RGB frames. Persons 1-20 form the ``train`` split (the
authors hold out 5% of these videos for model selection, :func:`~srvp.data.storage.split_train_val`), persons
21-25 the ``test`` split.

The fixed test set ``svg_test_set_40.npz`` is drawn exactly as the authors' ``make_test_set.py`` draws it: with
``np.random.seed(42)``, for each of the 1,000 sequences an action, a person in 21-25, a condition d1-d4 and a start
``randint(length - 40 + 1)``, in that order; it is saved in their layout (``sequences`` uint8 ``(N, T, 64, 64)``,
``persons`` ``(N,)``, ``actions`` ``(N,)`` strings), so either test set can be evaluated with either code.
"""

from __future__ import annotations

import io
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from srvp.config import DataConfig
from srvp.data.base import DatasetSpec
from srvp.data.npz import load_sequences_npz
from srvp.data.storage import (
    StoreClipDataset,
    StoreWriter,
    VideoStore,
    fixed_clips,
    is_complete,
    source_fingerprint,
    split_train_val,
)
from srvp.errors import DataError
from srvp.files import atomic_write_bytes
from srvp.io import decode_video

ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
TRAIN_PERSONS = range(1, 21)
TEST_PERSONS = range(21, 26)
FRAME_SIZE = 64
FRAME_RATE = 25
VIDEO_NAME = re.compile(r"^person(\d\d)_(" + "|".join(ACTIONS) + r")_d([1-4])_uncomp\.avi$")


@dataclass(frozen=True)
class KthVideo:
    """One source video: a file, or a member of a zip archive."""

    name: str  # personXX_<action>_dY
    person: int
    action: str
    condition: int
    path: Path  # the .avi file or the .zip archive
    member: str | None = None  # name inside the archive

    @property
    def where(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)


def find_videos(source: str | Path) -> dict[str, KthVideo]:
    """Every KTH video under ``source`` (``*_uncomp.avi`` files and members of ``*.zip`` archives), by name;
    an extracted file wins over the same video in an archive."""
    source = Path(source)
    if not source.is_dir():
        raise DataError(f"{source}: no such directory (expected the KTH archives or their extracted .avi files)")
    found: dict[str, KthVideo] = {}
    for archive in sorted(source.rglob("*.zip")):
        try:
            with zipfile.ZipFile(archive) as z:
                members = z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"{archive}: not a readable zip archive ({e})") from None
        for member in members:
            match = VIDEO_NAME.match(Path(member).name)
            if match:
                video = _video(match, archive, member)
                found[video.name] = video
    for file in sorted(source.rglob("*_uncomp.avi")):
        match = VIDEO_NAME.match(file.name)
        if match:
            video = _video(match, file, None)
            found[video.name] = video
    if not found:
        raise DataError(f"{source}: no KTH videos (personXX_<action>_dY_uncomp.avi, extracted or inside "
                        f"boxing.zip ... walking.zip)")
    return dict(sorted(found.items()))


def _video(match: re.Match, path: Path, member: str | None) -> KthVideo:
    person, action, condition = int(match.group(1)), match.group(2), int(match.group(3))
    return KthVideo(f"person{person:02d}_{action}_d{condition}", person, action, condition, path, member)


def decode(video: KthVideo) -> np.ndarray:
    """The video as uint8 ``(T, 1, 64, 64)``, preprocessed as the authors do."""
    def run(path: Path) -> np.ndarray:
        return decode_video(path, FRAME_SIZE, channels=1, crop=False, fps=FRAME_RATE, first_channel=True)

    if video.member is None:
        return run(video.path)
    tmp = Path(tempfile.mkdtemp(prefix="srvp-kth-"))
    try:
        target = tmp / Path(video.member).name
        with zipfile.ZipFile(video.path) as z, z.open(video.member) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        try:
            return run(target)
        except DataError as e:
            raise DataError(str(e).replace(str(target), video.where, 1)) from None
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{video.where}: cannot extract ({e})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def convert_split(videos: list[KthVideo], out: Path, split: str, force: bool, progress: bool) -> None:
    from tqdm import tqdm

    settings = {"kind": "kth", "videos": [v.name for v in videos],
                "files": source_fingerprint(sorted({v.path for v in videos}))}
    if not force and is_complete(out, split) and VideoStore(out, split).meta.get("source") == settings:
        print(f"{split}: already converted, skipping")
        return
    with StoreWriter(out, split, (1, FRAME_SIZE, FRAME_SIZE), source=settings) as writer:
        for video in tqdm(videos, desc=f"KTH {split}", unit="video", disable=not progress):
            writer.add_video(video.name, decode(video))
        writer.commit()


def test_set_path(root: str | Path, seq_len: int = 40) -> Path:
    return Path(root) / f"svg_test_set_{seq_len}.npz"


def draw_test_set(root: str | Path, size: int = 1000, seq_len: int = 40, seed: int = 42
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw the fixed test set from the converted ``test`` split as the authors' ``make_test_set.py`` does:
    ``sequences`` uint8 ``(N, T, 64, 64)``, ``persons`` ``(N,)``, ``actions`` ``(N,)``."""
    store = VideoStore(root, "test")
    by_name = {name: i for i, name in enumerate(store.names)}
    rng = np.random.RandomState(seed)  # the authors' np.random.seed(seed) stream, draw for draw
    sequences = np.empty((size, seq_len, FRAME_SIZE, FRAME_SIZE), dtype=np.uint8)
    persons, actions = [], []
    for n in range(size):
        action = ACTIONS[rng.randint(len(ACTIONS))]
        person = rng.randint(21, 26)
        condition = rng.randint(1, 5)
        name = f"person{person:02d}_{action}_d{condition}"
        if name not in by_name:
            raise DataError(f"{store.dir}: test video {name} is missing (needed for test sequence {n})")
        i = by_name[name]
        if store.lengths[i] < seq_len:
            raise DataError(f"{store.dir}: test video {name} has {store.lengths[i]} frames, fewer than {seq_len}")
        start = rng.randint(store.lengths[i] - seq_len + 1)
        sequences[n] = store.clip(i, start, seq_len)[:, 0]
        persons.append(person)
        actions.append(action)
    return sequences, np.asarray(persons, dtype=np.int64), np.asarray(actions)


def make_test_set(root: str | Path, size: int = 1000, seq_len: int = 40, seed: int = 42, force: bool = False
                  ) -> Path:
    """Draw the test set (:func:`draw_test_set`) and save it atomically in the authors' ``.npz`` layout, unless a
    file with exactly these sequences is already there (and not ``force``); returns its path."""
    sequences, persons, actions = draw_test_set(root, size, seq_len, seed)
    path = test_set_path(root, seq_len)
    if path.is_file() and not force:
        try:
            with np.load(path, allow_pickle=False) as old:
                if np.array_equal(old["sequences"], sequences) and np.array_equal(old["persons"], persons):
                    print(f"{path.name}: already written, skipping")
                    return path
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # unreadable: rewrite it
    buffer = io.BytesIO()
    np.savez_compressed(buffer, sequences=sequences, persons=persons, actions=actions)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_test_npz(path: str | Path) -> np.ndarray:
    """A test set in the authors' KTH layout as uint8 ``(N, T, 1, H, W)``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: KTH test set not found; create it with `srvp data kth convert SOURCE --out "
                        f"{path.parent} --test-seq-len <T>`")
    sequences = load_sequences_npz(path)  # the authors' layout, size-checked, allow_pickle=False
    if sequences.shape[2] != 1:
        raise DataError(f"{path}: KTH test sequences should be grey, got {sequences.shape[2]} channels")
    return sequences


def convert(source: str | Path, out: str | Path, test_size: int = 1000, test_seq_len: int = 40, seed: int = 42,
            force: bool = False, progress: bool = True) -> list[dict[str, Any]]:
    """Convert the KTH videos under ``source`` into a store at ``out`` (splits ``train`` and ``test``) and draw the
    test set; finished parts are skipped. Returns the verification report of each split."""
    out = Path(out)
    videos = find_videos(source)
    train = [v for v in videos.values() if v.person in TRAIN_PERSONS]
    test = [v for v in videos.values() if v.person in TEST_PERSONS]
    if not train or not test:
        raise DataError(f"{source}: KTH needs videos of persons 1-20 (train) and 21-25 (test); found "
                        f"{len(train)} and {len(test)}")
    convert_split(train, out, "train", force, progress)
    convert_split(test, out, "test", force, progress)
    make_test_set(out, test_size, test_seq_len, seed, force)
    return [VideoStore(out, split).verify() for split in ("train", "test")]


# ----------------------------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------------------------


def _train_val_videos(store: VideoStore) -> tuple[list[int], list[int]]:
    return split_train_val(store.names, 0.05, seed=42)


def build_train(cfg: DataConfig, seed: int) -> StoreClipDataset:
    store = VideoStore(cfg.data_dir, "train")
    return StoreClipDataset(store, cfg.seq_len, seed, videos=_train_val_videos(store)[0])


def load_val(cfg: DataConfig, seed: int) -> np.ndarray:
    store = VideoStore(cfg.data_dir, "train")
    return fixed_clips(store, _train_val_videos(store)[1], cfg.val_sequences, cfg.test_seq_len, seed)


def load_test(cfg: DataConfig) -> np.ndarray:
    return load_test_npz(test_set_path(cfg.data_dir, cfg.test_seq_len))


SPEC = DatasetSpec(train=build_train, val=load_val, test=load_test)
