"""KTH end to end: small AVI files written with ffmpeg (some inside zip archives), converted by `srvp data kth
convert`, checked against the authors' preprocessing run independently (ffmpeg to PNG files, their test-set draw)."""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from srvp.cli.main import main
from srvp.config import DataConfig
from srvp.data import build_train_dataset, load_test_set, load_val_set
from srvp.data.kth import ACTIONS, VIDEO_NAME, convert, make_test_set
from srvp.data.storage import VideoStore, split_train_val
from srvp.errors import DataError

TEST_LEN = 45  # frames of every test-person video (so the authors' draw can be replayed before writing them)
TEST_SIZE = 6
SEQ_LEN = 40
# training videos: (name, frames, where) with where in {"file", "zip"}
TRAIN_VIDEOS = [("person01_boxing_d1", 30, "zip"), ("person01_boxing_d2", 50, "zip"),
                ("person02_walking_d1", 45, "file"), ("person03_running_d3", 25, "file"),
                ("person20_handwaving_d4", 42, "file")]


def write_avi(path: Path, frames: np.ndarray, fps: int = 25) -> None:
    """Write uint8 (T, H, W, 3) frames as an MPEG-4 part 2 AVI, as the KTH files are (near-lossless quality)."""
    h, w = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="mpeg4", output_params=["-q:v", "1"],
                                         macro_block_size=2, ffmpeg_log_level="error")
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def kth_frames(video_id: int, n_frames: int) -> np.ndarray:
    """160x120-like (here 80x60) frames: top half encodes the frame index, bottom half the video, plus a moving
    white bar."""
    frames = np.zeros((n_frames, 60, 80, 3), np.uint8)
    for t in range(n_frames):
        frames[t, :30] = 20 + 4 * t
        frames[t, 30:] = 30 + 12 * video_id
        frames[t, 36:44, (2 * t) % 70:(2 * t) % 70 + 8] = 255
    return frames


def authors_draw(n: int, seq_len: int, lengths: dict[str, int], seed: int = 42) -> list[tuple[str, int]]:
    """The authors' make_test_set.py draw order (np.random.seed(42); action, person, trial, start)."""
    np.random.seed(seed)
    draws = []
    for _ in range(n):
        action = ACTIONS[np.random.randint(len(ACTIONS))]
        person = np.random.randint(21, 26)
        trial = np.random.randint(1, 5)
        name = f"person{person:02d}_{action}_d{trial}"
        draws.append((name, np.random.randint(lengths.get(name, TEST_LEN) - seq_len + 1)))
    return draws


def top_intensity(clip: np.ndarray) -> np.ndarray:
    """Mean of the top band of each frame (encodes the frame index)."""
    return clip[:, 0, 4:20, 4:60].astype(float).mean(axis=(1, 2))


def bottom_id(clip: np.ndarray) -> int:
    value = clip[:, 0, 52:62, 4:20].astype(float).mean()
    return int(round((value - 30) / 12))


@pytest.fixture(scope="module")
def kth(tmp_path_factory):
    source = tmp_path_factory.mktemp("kth_source")
    ids = {}
    zips: dict[str, zipfile.ZipFile] = {}
    for k, (name, n_frames, where) in enumerate(TRAIN_VIDEOS):
        ids[name] = k
        if where == "zip":
            action = name.split("_")[1]
            avi = source / f"{name}_uncomp.avi"
            write_avi(avi, kth_frames(k, n_frames))
            if action not in zips:
                zips[action] = zipfile.ZipFile(source / f"{action}.zip", "w")
            zips[action].write(avi, f"{name}_uncomp.avi")
            avi.unlink()
        else:
            (source / "extracted").mkdir(exist_ok=True)
            write_avi(source / "extracted" / f"{name}_uncomp.avi", kth_frames(k, n_frames))
    for z in zips.values():
        z.close()
    test_names = sorted({name for name, _ in authors_draw(TEST_SIZE, SEQ_LEN, {})})
    for j, name in enumerate(test_names):
        ids[name] = len(TRAIN_VIDEOS) + j
        write_avi(source / f"{name}_uncomp.avi", kth_frames(ids[name], TEST_LEN))
    (source / "readme.txt").write_text("not a video")
    out = tmp_path_factory.mktemp("kth_out")
    assert main(["data", "kth", "convert", str(source), "--out", str(out), "--test-size", str(TEST_SIZE),
                 "--no-progress"]) == 0
    return source, out, ids, test_names


def test_conversion_keeps_every_frame_in_order(kth):
    source, out, ids, test_names = kth
    train = VideoStore(out, "train")
    assert train.names == sorted(name for name, _, _ in TRAIN_VIDEOS)
    assert train.frames.shape[1:] == (1, 64, 64) and train.frames.dtype == np.uint8
    for name, n_frames, _ in TRAIN_VIDEOS:
        video = train.video(train.names.index(name))
        assert len(video) == n_frames
        assert bottom_id(video) == ids[name]
        # frame t has top intensity 20 + 4t up to the codec's limited-range rounding
        np.testing.assert_allclose(top_intensity(video), 20 + 4 * np.arange(n_frames), atol=4)
    test = VideoStore(out, "test")
    assert test.names == test_names
    assert all(int(VIDEO_NAME.match(n + "_uncomp.avi").group(1)) >= 21 for n in test.names)
    assert all(length == TEST_LEN for length in test.lengths)


def test_frames_match_the_authors_ffmpeg_png_preprocessing(kth, tmp_path):
    """The authors run `ffmpeg -i X.avi -r 25 -f image2 -s 64x64 image-%03d.png` and keep channel 0."""
    source, out, ids, _ = kth
    name = "person02_walking_d1"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(source / "extracted" /
                    f"{name}_uncomp.avi"), "-r", "25", "-f", "image2", "-s", "64x64",
                    str(tmp_path / "image-%03d.png")], check=True)
    reference = np.stack([np.array(Image.open(tmp_path / f))[:, :, 0] for f in sorted(os.listdir(tmp_path))])
    train = VideoStore(out, "train")
    np.testing.assert_array_equal(train.video(train.names.index(name))[:, 0], reference)


def test_test_set_is_the_authors_draw_in_their_layout(kth):
    source, out, ids, _ = kth
    path = out / "svg_test_set_40.npz"
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ["actions", "persons", "sequences"]
        sequences, persons, actions = data["sequences"], data["persons"], data["actions"]
    assert sequences.shape == (TEST_SIZE, SEQ_LEN, 64, 64) and sequences.dtype == np.uint8
    test = VideoStore(out, "test")
    for n, (name, start) in enumerate(authors_draw(TEST_SIZE, SEQ_LEN, {})):
        assert persons[n] == int(name[6:8]) and actions[n] == name.split("_")[1]
        np.testing.assert_array_equal(sequences[n], test.video(test.names.index(name))[start:start + SEQ_LEN, 0])
    cfg = DataConfig(dataset="kth", data_dir=str(out), test_seq_len=SEQ_LEN)
    loaded = load_test_set(cfg)
    assert loaded.shape == (TEST_SIZE, SEQ_LEN, 1, 64, 64)
    np.testing.assert_array_equal(loaded[:, :, 0], sequences)


def test_training_and_validation_clips(kth):
    source, out, ids, _ = kth
    cfg = DataConfig(dataset="kth", data_dir=str(out), seq_len=20, test_seq_len=24, val_sequences=5)
    train = VideoStore(out, "train")
    train_ids, val_ids = split_train_val(train.names, 0.05, 42)
    assert len(val_ids) == 1 and set(train_ids) | set(val_ids) == set(range(len(TRAIN_VIDEOS)))
    train_names = {train.names[i] for i in train_ids}
    dataset = build_train_dataset(cfg, seed=3)
    seen = set()
    for index in range(40):
        clip = dataset[index].numpy()
        assert clip.shape == (20, 1, 64, 64) and clip.dtype == np.uint8
        name = next(n for n, k in ids.items() if k == bottom_id(clip))
        assert name in train_names
        seen.add(name)
        steps = np.diff(top_intensity(clip))
        np.testing.assert_allclose(steps, 4, atol=3)  # consecutive frames in order
    assert len(seen) >= 2
    np.testing.assert_array_equal(dataset[7].numpy(), build_train_dataset(cfg, seed=3)[7].numpy())
    val = load_val_set(cfg, seed=0)
    # distinct windows only: the tiny held-out videos hold fewer than 5 (a warning says so)
    assert val.shape[1:] == (24, 1, 64, 64) and 1 <= len(val) <= 5 and len({c.tobytes() for c in val}) == len(val)
    assert {bottom_id(v) for v in val} == {ids[train.names[i]] for i in val_ids}


def test_rerun_skips_finished_work(kth, capsys):
    source, out, _, _ = kth
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert main(["data", "kth", "convert", str(source), "--out", str(out), "--test-size", str(TEST_SIZE),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("skipping") == 3
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    # another draw (here a smaller one) is not mistaken for the finished one
    make_test_set(out, TEST_SIZE - 1, SEQ_LEN)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} != before
    make_test_set(out, TEST_SIZE, SEQ_LEN)
    assert main(["data", "kth", "verify", str(out)]) == 0
    assert "train: 5 videos, 192 frames of 1x64x64" in capsys.readouterr().out


def test_interrupted_conversion_never_looks_complete(kth, tmp_path, monkeypatch):
    source, _, _, _ = kth
    import srvp.data.kth as kth_module

    calls = {"n": 0}
    real_decode = kth_module.decode

    def failing_decode(video):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_decode(video)

    monkeypatch.setattr(kth_module, "decode", failing_decode)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        kth_module.convert(source, out, test_size=TEST_SIZE, progress=False)
    assert not (out / "train").exists() and not list(out.glob(".train.partial-*"))
    # a hard kill leaves the temporary directory behind: still not a split, and cleaned by the next run
    (out / ".train.partial-999").mkdir()
    (out / ".train.partial-999" / "frames.npy").write_bytes(b"partial")
    with pytest.raises(DataError, match="interrupted conversion"):
        VideoStore(out, "train")
    monkeypatch.setattr(kth_module, "decode", real_decode)
    kth_module.convert(source, out, test_size=TEST_SIZE, progress=False)
    assert VideoStore(out, "train").names == sorted(name for name, _, _ in TRAIN_VIDEOS)
    assert not list(out.glob(".*partial*"))


def test_truncated_video_is_a_one_line_error_naming_it(tmp_path, capsys):
    source = tmp_path / "src"
    source.mkdir()
    write_avi(source / "person01_boxing_d1_uncomp.avi", kth_frames(0, 40))
    write_avi(source / "person21_boxing_d1_uncomp.avi", kth_frames(1, 40))
    data = (source / "person01_boxing_d1_uncomp.avi").read_bytes()
    (source / "person01_boxing_d1_uncomp.avi").write_bytes(data[: len(data) // 2])
    assert main(["data", "kth", "convert", str(source), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "person01_boxing_d1_uncomp.avi" in err and "decode" in err
    assert not (tmp_path / "out" / "train").exists()
    # the same truncated video inside an archive: the error names the archive and the member
    with zipfile.ZipFile(source / "boxing.zip", "w") as z:
        z.write(source / "person01_boxing_d1_uncomp.avi", "boxing/person01_boxing_d1_uncomp.avi")
    (source / "person01_boxing_d1_uncomp.avi").unlink()
    assert main(["data", "kth", "convert", str(source), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "boxing.zip:boxing/person01_boxing_d1_uncomp.avi: cannot decode" in err


def test_folder_without_videos(tmp_path):
    with pytest.raises(DataError, match="no KTH videos"):
        convert(tmp_path, tmp_path / "out")


def test_short_training_run_on_converted_kth(kth, tmp_path):
    _, out, _, _ = kth
    run_dir = tmp_path / "run"
    assert main(["train", "--preset", "kth", "--data-dir", str(out), "--filters", "4", "--batch-size", "2",
                 "--steps", "2", "--decay-steps", "0", "--seq-len", "12", "--test-seq-len", "24",
                 "--val-interval", "2", "--val-sequences", "2", "--val-samples", "1", "--out-dir", str(run_dir),
                 "--no-progress"]) == 0
    assert (run_dir / "best.pt").is_file() and (run_dir / "config.json").is_file()


def test_training_dataset_pickles_without_its_frames(kth):
    """Loader workers started with spawn receive the dataset pickled: the store travels as its path."""
    import pickle

    _, out, _, _ = kth
    dataset = build_train_dataset(DataConfig(dataset="kth", data_dir=str(out), seq_len=20), seed=4)
    payload = pickle.dumps(dataset)
    assert len(payload) < 10_000 < VideoStore(out, "train").frames.nbytes
    clone = pickle.loads(payload)
    for index in (0, 9):
        np.testing.assert_array_equal(clone[index].numpy(), dataset[index].numpy())


def test_test_set_loader_refuses_huge_declared_sizes_and_colour(tmp_path):
    import io

    from srvp.data.kth import load_test_npz
    from srvp.errors import DataError

    header = {"descr": "|u1", "fortran_order": False, "shape": (1000, 10**9, 64, 64)}
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, header)
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("sequences.npy", npy.getvalue() + bytes(64))
        archive.writestr("persons.npy", b"")
    with pytest.raises(DataError, match="huge.npz"):
        load_test_npz(tmp_path / "huge.npz")
    np.savez(tmp_path / "colour.npz", sequences=np.zeros((2, 5, 64, 64, 3), np.uint8), persons=np.array([21, 22]))
    with pytest.raises(DataError, match="grey"):
        load_test_npz(tmp_path / "colour.npz")
