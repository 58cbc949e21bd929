"""A user's own videos: mp4, avi, gif, webm files and a frame-image folder written here, decoded, centre-cropped,
resized, split, converted to the store and read back through the dataset registry, raw and converted."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest

from srvp.cli.main import main
from srvp.config import DataConfig
from srvp.data import build_train_dataset, load_test_set, load_val_set
from srvp.data.storage import VideoStore
from srvp.data.videos import decode_video, read_frame_folder, split_sources
from srvp.errors import ConfigError, DataError

SIZE = 32
# name -> (writer, frames); all 48x36 (landscape) so the centre crop drops 6 columns on each side
VIDEOS = {"a.mp4": ("libx264", 12), "b.avi": ("mpeg4", 10), "c.gif": ("gif", 9), "d.webm": ("libvpx", 11),
          "sub/e.mp4": ("libx264", 14), "frames_f": ("png", 8)}


def make_frames(video_id: int, n: int, width: int = 48, height: int = 36) -> np.ndarray:
    """uint8 (n, height, width, 3): a red border outside the central square, inside it green = 20 + 12 t (frame
    index) and blue = 40 + 30 * video_id."""
    frames = np.zeros((n, height, width, 3), np.uint8)
    margin = (width - height) // 2
    frames[:, :, :margin] = (255, 0, 0)
    frames[:, :, width - margin:] = (255, 0, 0)
    for t in range(n):
        frames[t, :, margin:width - margin] = (0, 20 + 12 * t, 40 + 30 * video_id)
    return frames


def write_video(path: Path, frames: np.ndarray, codec: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if codec == "png":
        path.mkdir()
        for t, frame in enumerate(frames):
            iio.imwrite(path / f"{t:04d}.png", frame)
    elif codec == "gif":
        iio.imwrite(path, frames, extension=".gif", duration=40, loop=0)
    else:
        h, w = frames.shape[1:3]
        writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=25, codec=codec, macro_block_size=2,
                                             ffmpeg_log_level="error", quality=None,
                                             output_params=["-crf", "4", "-b:v", "0"] if codec == "libvpx"
                                             else ["-q:v", "1"] if codec == "mpeg4" else ["-crf", "1"])
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for k, (name, (codec, n)) in enumerate(VIDEOS.items()):
        write_video(root / name, make_frames(k, n), codec)
    (root / "notes.txt").write_text("ignored")
    return root


def check_video(frames: np.ndarray, video_id: int, n: int, channels: int = 3) -> None:
    assert frames.shape == (n, channels, SIZE, SIZE) and frames.dtype == np.uint8
    centre = frames[:, :, 4:-4, 4:-4].astype(float).mean(axis=(2, 3))
    if channels == 3:
        assert centre[:, 0].max() < 12  # the red border was cropped away
        np.testing.assert_allclose(centre[:, 1], 20 + 12 * np.arange(n), atol=8)  # frames in order
        np.testing.assert_allclose(centre[:, 2], 40 + 30 * video_id, atol=8)


def test_every_format_decodes_cropped_resized_in_order(folder):
    for k, (name, (_, n)) in enumerate(VIDEOS.items()):
        path = folder / name
        frames = read_frame_folder(path, SIZE) if path.is_dir() else decode_video(path, SIZE)
        check_video(frames, k, n)


def test_grey_frames_follow_the_luma(folder):
    grey = decode_video(folder / "b.avi", SIZE, channels=1)
    colour = decode_video(folder / "b.avi", SIZE, channels=3).astype(float)
    assert grey.shape == (10, 1, SIZE, SIZE)
    luma = 0.299 * colour[:, 0] + 0.587 * colour[:, 1] + 0.114 * colour[:, 2]  # ITU-R BT.601
    assert np.abs(grey[:, 0, 4:-4, 4:-4] - luma[:, 4:-4, 4:-4]).mean() < 3
    folder_grey = read_frame_folder(folder / "frames_f", SIZE, channels=1)
    np.testing.assert_allclose(folder_grey[:, 0, 8, 8], 0.587 * (20 + 12 * np.arange(8)) + 0.114 * 190, atol=1.5)


def test_splits_hold_out_whole_videos(folder):
    splits = split_sources(folder)
    names = {s: [n for n, _ in v] for s, v in splits.items()}
    assert sorted(names["train"] + names["val"] + names["test"]) == sorted(VIDEOS)
    assert len(names["val"]) == len(names["test"]) == 1 and not set(names["val"]) & set(names["test"])


def test_convert_then_train_val_test_clips_match_the_raw_folder(folder, tmp_path, capsys):
    out = tmp_path / "store"
    args = ["data", "videos", "convert", str(folder), "--out", str(out), "--size", str(SIZE), "--min-frames", "8",
            "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "train: 4 videos" in printed and "--video-size 32" in printed
    ids = {name: k for k, name in enumerate(VIDEOS)}
    for split in ("train", "val", "test"):
        store = VideoStore(out, split)
        for i, name in enumerate(store.names):
            check_video(store.video(i), ids[name], VIDEOS[name][1])
    converted = DataConfig(dataset="videos", data_dir=str(out), video_size=SIZE, seq_len=6, test_seq_len=8,
                           val_sequences=3, test_sequences=4)
    raw = DataConfig(**{**converted.__dict__, "data_dir": str(folder)})
    for cfg in (converted, raw):
        clip = build_train_dataset(cfg, seed=1)[5].numpy()
        assert clip.shape == (6, 3, SIZE, SIZE)
        assert np.all(np.diff(clip[:, 1, 8:-8, 8:-8].astype(float).mean(axis=(1, 2))) > 4)  # consecutive frames
    np.testing.assert_array_equal(build_train_dataset(converted, 1)[5].numpy(), build_train_dataset(raw, 1)[5].numpy())
    np.testing.assert_array_equal(load_val_set(converted, 0), load_val_set(raw, 0))
    test = load_test_set(converted)
    assert test.shape == (4, 8, 3, SIZE, SIZE)
    np.testing.assert_array_equal(test, load_test_set(raw))
    test_video = VideoStore(out, "test").names[0]
    blue = test[:, :, 2, 8:-8, 8:-8].astype(float).mean()
    assert abs(blue - (40 + 30 * ids[test_video])) < 8  # the test clips come from the held-out video
    # re-running skips every finished split
    assert main(args) == 0
    assert capsys.readouterr().out.count("already converted, skipping") == 3
    assert main(["data", "videos", "verify", str(out)]) == 0
    with pytest.raises(ConfigError, match="--video-size 32"):
        build_train_dataset(DataConfig(dataset="videos", data_dir=str(out), video_size=64), 0)


def test_train_and_test_subfolders(tmp_path):
    write_video(tmp_path / "train" / "x.avi", make_frames(0, 10), "mpeg4")
    write_video(tmp_path / "train" / "y.avi", make_frames(1, 10), "mpeg4")
    write_video(tmp_path / "test" / "z.avi", make_frames(2, 10), "mpeg4")
    splits = split_sources(tmp_path)
    assert [n for n, _ in splits["train"]] == ["x.avi", "y.avi"]
    assert [n for n, _ in splits["test"]] == [n for n, _ in splits["val"]] == ["z.avi"]
    cfg = DataConfig(dataset="videos", data_dir=str(tmp_path), video_size=SIZE, video_channels=1, seq_len=4,
                     test_seq_len=10, test_sequences=2)
    # one 10-frame test video holds one distinct 10-frame window: one clip, not the same clip twice, and warnings
    with pytest.warns(UserWarning) as warned:
        assert load_test_set(cfg).shape == (1, 10, 1, SIZE, SIZE)
    text = " ".join(str(w.message) for w in warned)
    assert "only 1 distinct 10-frame windows; using 1 clips, not 2" in text and "from 1 video(s)" in text


def test_test_clips_are_distinct_windows(tmp_path):
    write_video(tmp_path / "test" / "z.avi", make_frames(2, 12), "mpeg4")
    write_video(tmp_path / "train" / "x.avi", make_frames(0, 12), "mpeg4")
    cfg = DataConfig(dataset="videos", data_dir=str(tmp_path), video_size=SIZE, video_channels=1, seq_len=4,
                     test_seq_len=4, test_sequences=100)
    with pytest.warns(UserWarning, match="only 9 distinct"):
        clips = load_test_set(cfg)
    assert len(clips) == 9 and len({c.tobytes() for c in clips}) == 9


def test_bad_inputs_are_one_line_errors_naming_the_file(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no videos here")
    assert main(["data", "videos", "convert", str(empty), "--out", str(tmp_path / "o1")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "empty: no videos" in err

    mixed = tmp_path / "mixed" / "clip"
    mixed.mkdir(parents=True)
    iio.imwrite(mixed / "000.png", np.zeros((20, 20, 3), np.uint8))
    iio.imwrite(mixed / "001.png", np.zeros((20, 24, 3), np.uint8))
    with pytest.raises(DataError, match=r"001\.png: frame of 24x20 pixels in a folder of 20x20 frames"):
        build_train_dataset(DataConfig(dataset="videos", data_dir=str(tmp_path / "mixed"), seq_len=2), 0)

    for name, codec in (("cut.avi", "mpeg4"), ("cut.mp4", "libx264")):
        broken = tmp_path / "broken" / name
        write_video(broken, np.random.default_rng(0).integers(0, 256, (30, 36, 48, 3), np.uint8), codec)
        data = broken.read_bytes()
        broken.write_bytes(data[: len(data) // 2])
        with pytest.raises(DataError, match=rf"{name}: cannot decode video"):
            decode_video(broken, SIZE)
        broken.unlink()


@pytest.mark.parametrize("converted", [True, False])
def test_short_training_run_on_user_videos(folder, tmp_path, converted):
    data_dir = folder
    if converted:
        data_dir = tmp_path / "store"
        assert main(["data", "videos", "convert", str(folder), "--out", str(data_dir), "--size", str(SIZE),
                     "--min-frames", "8",
                     "--no-progress"]) == 0
    run_dir = tmp_path / "run"
    assert main(["train", "--preset", "cpu", "--dataset", "videos", "--data-dir", str(data_dir), "--video-size",
                 str(SIZE), "--architecture", "mlp", "--frame-size", str(SIZE), "--channels", "3", "--filters", "16",
                 "--batch-size", "2", "--steps", "2", "--decay-steps", "0", "--seq-len", "6", "--test-seq-len", "8",
                 "--val-interval", "2", "--val-sequences", "2", "--val-samples", "1", "--precision", "fp32",
                 "--out-dir", str(run_dir), "--no-progress"]) == 0
    assert (run_dir / "best.pt").is_file()
    if converted:  # the report says how many videos the test clips come from
        assert main(["evaluate", "--checkpoint", str(run_dir / "best.pt"), "--samples", "1", "--no-elbo",
                     "--out", str(tmp_path / "eval"), "--no-progress"]) == 0
        header = (tmp_path / "eval" / "results.md").read_text().splitlines()[0]
        assert "(distinct windows of 1 video)" in header, header


def test_the_printed_training_command_is_quoted_valid_and_short(folder, tmp_path, capsys):
    import argparse
    import shlex

    from srvp.cli.train import add_arguments, build_config

    out = tmp_path / "my store"  # a path with a space must survive the copy-paste
    assert main(["data", "videos", "convert", str(folder), "--out", str(out), "--size", str(SIZE), "--min-frames", "8",
                 "--no-progress"]) == 0
    line = [s for s in capsys.readouterr().out.splitlines() if s.strip().startswith("srvp train")][0]
    argv = shlex.split(line)
    assert argv[:2] == ["srvp", "train"] and argv[argv.index("--data-dir") + 1] == str(out)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = build_config(parser.parse_args(argv[2:]))
    assert cfg.data.dataset == "videos" and cfg.train.steps * cfg.train.batch_size <= 10_000 * 16


# ----------------------------------------------------------------------------------------------------------------
# One decoder for every reader of user media
# ----------------------------------------------------------------------------------------------------------------


def _modes(tmp_path: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """The same 8-bit grey picture saved in many image modes, with the grey values each should decode to."""
    from PIL import Image

    rng = np.random.default_rng(0)
    grey = (rng.random((20, 24)) * 255).astype(np.uint8)
    out = {}
    for name, image in {
        "L": Image.fromarray(grey),
        "LA": Image.fromarray(np.stack([grey, np.full_like(grey, 128)], -1), "LA"),
        "RGBA": Image.fromarray(np.stack([grey] * 3 + [np.full_like(grey, 7)], -1), "RGBA"),
        "P": Image.fromarray(grey).convert("P", palette=Image.Palette.ADAPTIVE, colors=256),
        "I;16": Image.fromarray(grey.astype(np.uint16) * 257),  # 16-bit: 255 * 257 = 65535
    }.items():
        path = tmp_path / f"{name.replace(';', '_')}.png"
        image.save(path)
        with Image.open(path) as reread:
            expected = np.asarray(reread.convert("RGB"))[..., 0] if name == "P" else grey
        out[name] = (path, expected.astype(np.float32) / 255.0)
    return out


def test_every_image_mode_decodes_to_the_same_pixels(tmp_path):
    from srvp.io import read_clip, read_image

    for name, (path, expected) in _modes(tmp_path).items():
        decoded = read_image(path)
        grey = decoded[..., 0] if decoded.shape[-1] == 1 else decoded @ np.array([0.299, 0.587, 0.114], np.float32)
        np.testing.assert_allclose(grey, expected, atol=1 / 255 + 1e-6, err_msg=name)
    # a folder of 16-bit frames: the store and predict's reader agree (it used to convert to white)
    folder = tmp_path / "videos" / "deep"
    folder.mkdir(parents=True)
    from PIL import Image

    frames = make_frames(0, 6)[..., 0]
    for t, frame in enumerate(frames):
        Image.fromarray(frame.astype(np.uint16) * 257).save(folder / f"{t:02d}.png")
    stored = read_frame_folder(folder, SIZE, channels=1, crop=False).astype(np.float32) / 255
    direct = read_clip(folder).numpy()
    assert stored.mean() < 0.9 and abs(stored.mean() - direct.mean()) < 0.02


def test_a_rewritten_or_grown_frame_folder_is_converted_again(tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "videos" / "clip"
    folder.mkdir(parents=True)
    frames = make_frames(0, 6)[..., 0]
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{t:02d}.bmp")
    out = tmp_path / "store"
    args = ["data", "videos", "convert", str(tmp_path / "videos"), "--out", str(out), "--size", str(SIZE),
            "--min-frames", "6",
            "--channels", "1", "--no-progress"]
    assert main(args) == 0 and main(args) == 0
    assert "already converted, skipping" in capsys.readouterr().out
    Image.fromarray(255 - frames[2]).save(folder / "02.bmp")  # same size on disk, new pixels
    assert main(args) == 0
    assert "skipping" not in capsys.readouterr().out
    np.testing.assert_array_equal(VideoStore(out, "train").clip(0, 2, 1)[0, 0],
                                  read_frame_folder(folder, SIZE, 1)[2, 0])
    Image.fromarray(frames[0]).save(folder / "06.bmp")  # one more frame
    assert main(args) == 0 and "skipping" not in capsys.readouterr().out
    assert VideoStore(out, "train").lengths[0] == 7


def test_a_truncated_video_is_refused_by_predict_as_by_convert(tmp_path, capsys):
    from srvp.io import read_clip

    clip = tmp_path / "clip.mp4"
    frames = np.concatenate([make_frames(3, 15)] * 4)  # 60 frames
    import imageio.v2 as imageio

    writer = imageio.get_writer(clip, format="FFMPEG", fps=10, codec="libx264", pixelformat="yuv420p",
                                macro_block_size=1, ffmpeg_params=["-movflags", "+faststart"])
    for frame in frames:
        writer.append_data(frame)
    writer.close()
    assert read_clip(clip).shape[0] == 60
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated or corrupt") as error:
        read_clip(clip)
    assert str(clip) in str(error.value) and "\n" not in str(error.value)


# ----------------------------------------------------------------------------------------------------------------
# Training and prediction read a clip the same way (reliability issue 21, item 4)
# ----------------------------------------------------------------------------------------------------------------


def _same_clip_three_ways(tmp_path: Path) -> dict[str, Path]:
    """One 12-frame clip, 40x30 pixels, grey frames among colour ones, as a frame folder whose names sort
    differently as strings and naturally (frame_2 before frame_10), as a video and as a GIF."""
    rng = np.random.default_rng(4)
    frames = (rng.random((12, 30, 40, 3)) * 80 + 12 * np.arange(12)[:, None, None, None]).astype(np.uint8)
    frames[3] = frames[3, ..., :1]  # grey frames: equal channels (stored grey in the folder)
    frames[7] = frames[7, ..., 1:2]
    folder = tmp_path / "clip" / "frames"
    folder.mkdir(parents=True)
    from PIL import Image

    for t, frame in enumerate(frames):
        image = Image.fromarray(frame[..., 0]) if t in (3, 7) else Image.fromarray(frame)
        image.save(folder / f"frame_{t}.png")
    write_video(tmp_path / "clip" / "v.avi", frames, "mpeg4")
    write_video(tmp_path / "clip" / "g.gif", frames, "gif")
    return {"folder": folder, "video": tmp_path / "clip" / "v.avi", "gif": tmp_path / "clip" / "g.gif"}


@pytest.mark.parametrize("channels", [1, 3])
def test_the_videos_dataset_and_predict_read_a_clip_alike(tmp_path, channels):
    """The `videos` dataset (raw folder and converted store) holds exactly the frames `srvp predict` gives the
    model, rounded to 8 bits: read_clip then fit_frames (Predictor.prepare); frame folders in natural order."""
    import torch

    from srvp.api import Predictor
    from srvp.data.videos import open_split
    from srvp.io import fit_frames, read_clip, read_frames, to_uint8
    from srvp.models import build_model
    from tests.conftest import tiny_model_config

    clips = _same_clip_three_ways(tmp_path)
    names = [p.name for p in sorted(clips["folder"].iterdir(), key=lambda p: p.name)]
    assert names.index("frame_10.png") < names.index("frame_2.png")  # string order differs from the frames' order
    predictor = Predictor(build_model(tiny_model_config(channels=channels)), device="cpu")
    for kind, path in clips.items():
        predicted = predictor.prepare(read_clip(path), str(path))[0]  # what predict gives the model
        expected = to_uint8(fit_frames(read_clip(path), 64, channels))
        np.testing.assert_array_equal(to_uint8(predicted), expected, err_msg=kind)
        np.testing.assert_array_equal(read_frames(path, 64, channels), expected, err_msg=kind)
    # natural order: frame t of the folder is frame t of the video (frames brighten by 12 levels a frame)
    folder_means = read_clip(clips["folder"]).mean(dim=(1, 2, 3)) * 255
    video_means = read_clip(clips["video"]).mean(dim=(1, 2, 3)) * 255
    assert torch.all(torch.abs(folder_means - video_means) < 4), (folder_means, video_means)
    cfg = DataConfig(dataset="videos", data_dir=str(tmp_path / "clip"), video_size=64, video_channels=channels)

    def videos_of(data_dir: Path) -> dict[str, np.ndarray]:
        """Every video of the dataset's three splits, by name."""
        config = DataConfig(**{**cfg.__dict__, "data_dir": str(data_dir)})
        return {name: split.video(i) for s in ("train", "val", "test")
                for split in [open_split(config, s)] for i, name in enumerate(split.names)}

    raw = videos_of(tmp_path / "clip")
    assert sorted(raw) == ["frames", "g.gif", "v.avi"]
    for name, kind in (("frames", "folder"), ("v.avi", "video"), ("g.gif", "gif")):
        np.testing.assert_array_equal(raw[name], to_uint8(fit_frames(read_clip(clips[kind]), 64, channels)))
    out = tmp_path / "store"
    assert main(["data", "videos", "convert", str(tmp_path / "clip"), "--out", str(out), "--size", "64",
                 "--channels", str(channels), "--min-frames", "12", "--no-progress"]) == 0
    stored = videos_of(out)
    for name, frames in raw.items():
        np.testing.assert_array_equal(stored[name], frames, err_msg=name)


def test_a_gif_with_transparency_is_read(tmp_path):
    """A GIF whose frames have different modes (a palette frame with a transparent colour, then RGBA frames, as
    Pillow writes transparent frames) is an ordinary clip: read whole, alpha dropped, by predict and the dataset."""
    from PIL import Image

    from srvp.io import read_clip, read_frames

    frames = []
    for t in range(5):
        rgba = np.zeros((20, 24, 4), np.uint8)
        rgba[5:15, 3 + 2 * t:9 + 2 * t] = (200, 60, 30, 255)  # an opaque square moving right on transparency
        frames.append(Image.fromarray(rgba, "RGBA"))
    path = tmp_path / "sprite.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0, disposal=2)
    with Image.open(path) as image:
        modes = set()
        for t in range(image.n_frames):
            image.seek(t)
            modes.add(image.mode)
    assert len(modes) > 1, modes  # the case that used to be refused
    clip = read_clip(path)
    assert clip.shape == (5, 3, 20, 24)
    for t in range(5):
        square = clip[t, :, 5:15, 3 + 2 * t:9 + 2 * t]
        assert torch_allclose(square.mean(dim=(1, 2)), np.array([200, 60, 30]) / 255, atol=2 / 255), t
    assert read_frames(path, 16, 3).shape == (5, 3, 16, 16)


def torch_allclose(values, expected, atol: float) -> bool:
    return bool(np.allclose(values.numpy(), expected, atol=atol))


def test_a_video_too_short_for_the_clips_is_refused_and_the_printed_command_trains(tmp_path, capsys):
    """`data videos convert` refuses a video shorter than --min-frames (a one-frame video used to become the
    validation split); with videos that long, the command it prints trains and validates (run here for 2 steps)."""
    import shlex

    source = tmp_path / "videos"
    for k, n in enumerate((7, 7, 7)):
        write_video(source / f"v{k}.avi", make_frames(k, n), "mpeg4")
    write_video(source / "short.avi", make_frames(3, 1), "mpeg4")
    out = tmp_path / "store"
    assert main(["data", "videos", "convert", str(source), "--out", str(out), "--size", "64", "--min-frames", "7",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "short.avi: 1 frame(s); every video needs at least 7" in err, err
    assert not out.exists()  # nothing half-written: the new folder is gone
    (source / "short.avi").unlink()
    assert main(["data", "videos", "convert", str(source), "--out", str(out), "--size", "64", "--min-frames", "7",
                 "--no-progress"]) == 0
    line = [s for s in capsys.readouterr().out.splitlines() if s.strip().startswith("srvp train")][0]
    argv = shlex.split(line)[1:] + ["--steps", "2", "--warmup-steps", "0", "--val-interval", "2",
                                    "--val-sequences", "2", "--val-samples", "1", "--checkpoint-interval", "2",
                                    "--sample-interval", "0", "--batch-size", "2", "--precision", "fp32",
                                    "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    assert (out / "run" / "best.pt").is_file()
