"""Using a trained model: reading a user's clip, the Predictor API (prediction, higher frame rate, content swap,
latent interpolation) and `srvp predict` on a tiny random model, down to the frames of the files it writes."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from srvp.api import Predictor
from srvp.cli.main import build_parser, main
from srvp.config import DataConfig, ModelConfig, RunConfig
from srvp.errors import DataError
from srvp.io import fit_frames, read_clip
from srvp.models import build_model
from srvp.training.checkpoint import atomic_torch_save, make_checkpoint
from srvp.visualization import to_uint8, write_video

TINY = dict(filters=4, inference_hidden=16, forward_hidden=16, frame_dim=16, state_dim=4, noise_dim=4,
            content_frames=2)
COND, HORIZON = 3, 4  # the tiny run's cond_frames and test_seq_len - cond_frames
S = 64  # frame size
CELL = S + 2  # a frame and its padding in grids


def tiny_run_config(**model_overrides) -> RunConfig:
    cfg = RunConfig(model=ModelConfig(**{**TINY, **model_overrides}),
                    data=DataConfig(seq_len=6, cond_frames=COND, test_seq_len=COND + HORIZON))
    cfg.validate()
    return cfg


def save_tiny_checkpoint(path: Path, seed: int = 0, **model_overrides) -> Path:
    """A random tiny SRVP saved as ``srvp train`` would (weights scaled up so that frames vary visibly)."""
    torch.manual_seed(seed)
    cfg = tiny_run_config(**model_overrides)
    model = build_model(cfg.model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(("frame_decoder", "frame_encoder")) and p.ndim > 1:
                p.mul_(10)
    atomic_torch_save(make_checkpoint(model, cfg, step=0), path)
    return path


def gif_durations(path: Path) -> list[int]:
    with Image.open(path) as im:
        return [frame.info["duration"] for frame in ImageSequence.Iterator(im)]


def mp4_frames(path: Path) -> np.ndarray:
    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        return np.stack([frame for frame in reader])  # list(reader) trips on its infinite length hint
    finally:
        reader.close()


def psnr_numpy(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per frame of (T, C, H, W): 10 log10(1 / MSE) with the MSE per channel, averaged over channels."""
    mse = ((pred.astype(np.float64) - target.astype(np.float64)) ** 2).mean(axis=(-2, -1))
    return (10 * np.log10(1 / np.maximum(mse, 1e-10))).mean(axis=-1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="module")
def skip_checkpoint(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "skip.pt", seed=1, skip_connections=True)


@pytest.fixture(scope="module")
def predictor(checkpoint) -> Predictor:
    return Predictor.from_checkpoint(checkpoint, device="cpu")


def moving_square(length: int, height: int = 80, width: int = 80, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8: a coloured square moving right over a noisy background."""
    rng = np.random.default_rng(seed)
    clip = (rng.random((length, height, width, 3)) * 60).astype(np.uint8)
    for t in range(length):
        clip[t, 20:40, 4 + 3 * t:24 + 3 * t] = (220, 120, 40)
    return clip


# ----------------------------------------------------------------------------------------------------------------
# Reading clips
# ----------------------------------------------------------------------------------------------------------------


def test_read_clip_lossless_formats(tmp_path):
    rng = np.random.default_rng(1)
    rgb = (rng.random((6, 20, 24, 3)) * 255).astype(np.uint8)
    expected_rgb = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255
    np.save(tmp_path / "hwc.npy", rgb)
    torch.testing.assert_close(read_clip(tmp_path / "hwc.npy"), expected_rgb)
    np.save(tmp_path / "chw.npy", expected_rgb.numpy())
    torch.testing.assert_close(read_clip(tmp_path / "chw.npy"), expected_rgb)
    rgba = np.concatenate([rgb, np.full((6, 20, 24, 1), 7, np.uint8)], axis=-1)
    np.save(tmp_path / "rgba.npy", rgba)
    torch.testing.assert_close(read_clip(tmp_path / "rgba.npy"), expected_rgb)

    grey = (rng.random((11, 16, 16)) * 255).astype(np.uint8)
    expected_grey = torch.from_numpy(grey).float().unsqueeze(1) / 255
    np.save(tmp_path / "thw.npy", grey)
    torch.testing.assert_close(read_clip(tmp_path / "thw.npy"), expected_grey)
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in range(11):  # 0.png ... 10.png: natural order, not 0, 1, 10, 2, ...
        Image.fromarray(grey[t]).save(folder / f"{t}.png")
    (folder / "notes.txt").write_text("ignored")
    torch.testing.assert_close(read_clip(folder), expected_grey)
    write_video(tmp_path / "grey.gif", expected_grey, fps=5)
    torch.testing.assert_close(read_clip(tmp_path / "grey.gif"), expected_grey)


def test_read_clip_video_file(tmp_path):
    # smooth frames, so that the lossy H.264 round trip stays close
    y, x = np.mgrid[0:32, 0:48] / 48.0
    frames = np.stack([np.stack([(x + 0.05 * t) % 1, y, 0.5 * np.ones_like(x)]) for t in range(9)]).astype(np.float32)
    write_video(tmp_path / "clip.mp4", frames, fps=5)
    clip = read_clip(tmp_path / "clip.mp4")
    assert clip.shape == (9, 3, 32, 48)
    assert (clip - torch.from_numpy(frames)).abs().mean() < 0.05


@pytest.mark.parametrize("case", ["missing", "empty-folder", "single-image", "unknown-suffix", "float-range",
                                  "ambiguous", "sizes-differ", "corrupt-video", "corrupt-npy"])
def test_read_clip_errors_are_one_line(case, tmp_path):
    path = tmp_path / "x"
    if case == "missing":
        path = tmp_path / "nope.npy"
    elif case == "empty-folder":
        path.mkdir()
    elif case == "single-image":
        path = tmp_path / "one.png"
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    elif case == "unknown-suffix":
        path = tmp_path / "clip.xyz"
        path.write_text("?")
    elif case == "float-range":
        path = tmp_path / "f.npy"
        np.save(path, np.full((4, 8, 8), 200.0, np.float32))
    elif case == "ambiguous":
        path = tmp_path / "a.npy"
        np.save(path, np.zeros((4, 3, 8, 1), np.uint8))
    elif case == "sizes-differ":
        path.mkdir()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(path / "a.png")
        Image.fromarray(np.zeros((9, 8), np.uint8)).save(path / "b.png")
    elif case == "corrupt-video":
        path = tmp_path / "bad.mp4"
        path.write_bytes(b"\x00" * 300)
    elif case == "corrupt-npy":
        path = tmp_path / "bad.npy"
        path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError) as info:
        read_clip(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_fit_frames_against_independent_references():
    rng = np.random.default_rng(2)
    big = rng.random((2, 3, 128, 128)).astype(np.float32)
    block_mean = big.reshape(2, 3, 64, 2, 64, 2).mean(axis=(3, 5))  # area downsampling by 2
    torch.testing.assert_close(fit_frames(torch.from_numpy(big), 64, 3), torch.from_numpy(block_mean))
    # RGB -> grey: Pillow's ITU-R 601 conversion, up to its rounding to uint8
    rgb8 = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    pil_grey = np.asarray(Image.fromarray(rgb8).convert("L")).astype(np.float32) / 255
    ours = fit_frames(torch.from_numpy(rgb8).permute(2, 0, 1).float().unsqueeze(0) / 255, 64, 1)[0, 0].numpy()
    assert np.abs(ours - pil_grey).max() <= 1.0 / 255 + 1e-6
    # grey -> RGB repeats the channel; non-square frames are centre-cropped
    wide = torch.rand(1, 1, 64, 96)
    out = fit_frames(wide, 64, 3)
    assert out.shape == (1, 3, 64, 64)
    for c in range(3):
        torch.testing.assert_close(out[0, c], wide[0, 0, :, 16:80])


# ----------------------------------------------------------------------------------------------------------------
# Python API
# ----------------------------------------------------------------------------------------------------------------


def test_prepare_converts_dtype_size_and_channels(predictor):
    clip = moving_square(5, 128, 128)  # (T, H, W, 3) uint8, colour, twice the model's size
    chw = np.ascontiguousarray(clip.transpose(0, 3, 1, 2))
    from_uint8 = predictor.prepare(chw)
    from_float = predictor.prepare(torch.from_numpy(chw).float() / 255)
    assert from_uint8.shape == (1, 5, 1, S, S)
    torch.testing.assert_close(from_uint8, from_float)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        predictor.prepare(torch.full((1, 3, 1, S, S), 2.0))
    with pytest.raises(DataError, match="expected clips"):
        predictor.prepare(torch.zeros(S, S))  # one frame is not a clip ((T, H, W) grey frames are)


def test_predict_shapes_and_intermediate_states(predictor):
    x = torch.rand(2, COND, 1, S, S, generator=torch.Generator().manual_seed(0))
    out = predictor.predict(x, HORIZON, n_samples=3)
    assert out.shape == (2, 3, HORIZON, 1, S, S) and out.min() >= 0 and out.max() <= 1
    coarse = predictor.predict(x, HORIZON, dt=1 / 2, use_mean=True)
    fine = predictor.predict(x, HORIZON, dt=1 / 2, use_mean=True, keep_intermediate=True)
    assert fine.shape == (2, 1, 2 * HORIZON, 1, S, S)
    torch.testing.assert_close(fine[:, :, 1::2], coarse)  # integer times are the last of every 1/dt states
    np.testing.assert_allclose(predictor.frame_times(HORIZON, 1 / 2, True), np.arange(1, 2 * HORIZON + 1) / 2)
    quarter = predictor.predict(x, HORIZON, dt=1 / 4, use_mean=True, keep_intermediate=True)
    assert quarter.shape[2] == 4 * HORIZON
    with pytest.raises(DataError, match="k=2"):
        predictor.predict(x[:, :1], HORIZON)


def test_swap_content(skip_checkpoint):
    predictor = Predictor.from_checkpoint(skip_checkpoint, device="cpu")
    model = predictor.model
    gen = torch.Generator().manual_seed(3)
    a, b, c = (torch.rand(2, COND, 1, S, S, generator=gen) for _ in range(3))
    # the clip's own content gives back the model's reconstruction followed by its (mean) prediction
    own = predictor.swap_content(a, a, HORIZON, use_mean=True)
    with torch.no_grad():
        expected = model.sample_futures(model.condition(a), HORIZON, use_mean=True, include_conditioning=True)
    assert own.shape == (2, 1, COND + HORIZON, 1, S, S)
    torch.testing.assert_close(own, expected.clamp(0, 1))
    swapped = predictor.swap_content(a, c, HORIZON, use_mean=True)
    assert not torch.allclose(swapped, own, atol=1e-3)
    # content comes from the last k frames (w) and the last frame (skips) of the content clip only ...
    c_first_changed = c.clone()
    c_first_changed[:, 0] = torch.rand(2, 1, S, S, generator=gen)
    torch.testing.assert_close(predictor.swap_content(a, c_first_changed, HORIZON, use_mean=True), swapped)
    # ... while the dynamics come from the other clip
    assert not torch.allclose(predictor.swap_content(b, c, HORIZON, use_mean=True), swapped, atol=1e-3)
    # one content clip for a batch of dynamics clips
    single = predictor.swap_content(a, c[:1], HORIZON, use_mean=True)
    torch.testing.assert_close(single[1], predictor.swap_content(a[1:], c[:1], HORIZON, use_mean=True)[0])
    # higher frame rate: the conditioning frames once, every intermediate state of the future
    fine = predictor.swap_content(a, c, HORIZON, n_samples=2, dt=1 / 2, keep_intermediate=True)
    assert fine.shape == (2, 2, COND + 2 * HORIZON, 1, S, S)


def test_interpolation_endpoints(tmp_path):
    # Without z (deterministic transition) the trajectory from the mean of q(y_1) is the model's reconstruction.
    path = save_tiny_checkpoint(tmp_path / "det.pt", seed=2, transition="deterministic", skip_connections=True)
    predictor = Predictor.from_checkpoint(path, device="cpu")
    gen = torch.Generator().manual_seed(4)
    a, b = torch.rand(1, COND, 1, S, S, generator=gen), torch.rand(1, COND, 1, S, S, generator=gen)
    length = COND + HORIZON
    paths = predictor.interpolate(a, b, 4, length, content="a")
    assert paths.shape == (1, 4, length, 1, S, S)
    torch.testing.assert_close(paths[:, 0], predictor.reconstruct(a, HORIZON))
    paths_b = predictor.interpolate(a, b, 4, length, content="b")
    torch.testing.assert_close(paths_b[:, -1], predictor.reconstruct(b, HORIZON))
    mixed = predictor.interpolate(a, b, 4, length, content="interpolate")
    torch.testing.assert_close(mixed[:, 0], paths[:, 0])
    torch.testing.assert_close(mixed[:, -1], paths_b[:, -1])
    assert not torch.allclose(mixed[:, 1], mixed[:, 2], atol=1e-4)
    same = predictor.interpolate(a, a, 3, length)
    torch.testing.assert_close(same[:, 1], same[:, 0])


# ----------------------------------------------------------------------------------------------------------------
# srvp predict
# ----------------------------------------------------------------------------------------------------------------


def run_cli(argv: list[str], capsys) -> str:
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return captured.out


def test_subcommands_registered():
    text = build_parser().format_help()
    assert "predict" in text and "import-official" in text


def test_predict_gif_per_sample_grid_and_scores(checkpoint, predictor, tmp_path, capsys):
    clip = moving_square(12)
    np.save(tmp_path / "clip.npy", clip)
    out = tmp_path / "out"
    run_cli(["predict", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "clip.npy"), "--samples", "3",
             "--fps", "5", "--out", str(out), "--seed", "7"], capsys)
    summary = json.loads((out / "summary.json").read_text())
    start = 12 - COND - HORIZON  # the clip is long enough: its last COND + HORIZON frames, the last are truth
    assert summary["conditioning"] == [start, start + COND] and summary["ground_truth_frames"] == HORIZON
    assert summary["files"] == ["sample_00.gif", "sample_01.gif", "sample_02.gif", "grid.png", "per_step.png"]
    assert (out / "per_step.png").read_bytes()[:4] == b"\x89PNG"
    for name in summary["files"][:3]:
        durations = gif_durations(out / name)  # Pillow merges identical frames; the timing stays
        assert sum(durations) == (COND + HORIZON) * 200
        frames = imageio.mimread(out / name)
        assert 1 <= len(frames) <= COND + HORIZON and frames[0].shape[:2] == (S, S)

    # Scores recomputed independently from the same random draws.
    prepared = predictor.prepare(np.ascontiguousarray(clip.transpose(0, 3, 1, 2)))[0]
    x_cond, truth = prepared[start:start + COND], prepared[start + COND:]
    torch.manual_seed(7)
    samples = predictor.predict(x_cond.unsqueeze(0), HORIZON, n_samples=3)[0].numpy()
    expected = np.array([psnr_numpy(s, truth.numpy()).mean() for s in samples])
    scores = summary["scores"]
    np.testing.assert_allclose(scores["values"], expected, rtol=1e-4)
    assert scores["best"] == int(expected.argmax()) and scores["worst"] == int(expected.argmin())
    assert scores["random"] not in (scores["best"], scores["worst"])

    grid = np.asarray(Image.open(out / "grid.png"))
    rows = 1 + 3  # conditioning | truth, best, worst, random
    assert grid.shape[0] == 2 + rows * CELL
    margin = grid.shape[1] - (2 + (COND + HORIZON) * CELL)
    assert margin > 0  # the labels
    first = to_uint8(x_cond[:1])[0]
    cell = grid[2:2 + S, margin + 2:margin + 2 + S]
    assert np.abs(cell[..., 0].astype(int) - first.astype(int)).max() <= 1
    best = to_uint8(torch.from_numpy(samples[scores["best"]][-1:]))[0]
    cell = grid[2 + CELL:2 + CELL + S, margin + 2 + (COND + HORIZON - 1) * CELL:][:, :S]
    assert np.abs(cell[..., 0].astype(int) - best.astype(int)).max() <= 1


def test_predict_half_dt_side_by_side_mp4(checkpoint, tmp_path, capsys):
    np.save(tmp_path / "clip.npy", moving_square(10))
    out = tmp_path / "out"
    run_cli(["predict", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "clip.npy"), "--samples", "2",
             "--dt", "1/2", "--side-by-side", "--format", "mp4", "--out", str(out)], capsys)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_per_sample"] == 2 * HORIZON and summary["files"] == ["samples.mp4", "grid.png",
                                                                                     "per_step.png"]
    video = mp4_frames(out / "samples.mp4")
    # truth panel + 2 samples; conditioning and truth frames held for 2 frames of the doubled rate
    assert video.shape == (2 * (COND + HORIZON), S + 4, 2 + 3 * CELL, 3)

    grid = np.asarray(Image.open(out / "grid.png")).astype(int)
    margin = grid.shape[1] - (2 + (COND + 2 * HORIZON) * CELL)
    assert grid.shape[0] == 2 + 3 * CELL and margin > 0  # truth, best, worst

    def cell(row: int, col: int) -> np.ndarray:
        top, left = 2 + row * CELL, margin + 2 + col * CELL
        return grid[top:top + S, left:left + S]

    for col in range(COND, COND + 2 * HORIZON):
        intermediate = (col - COND) % 2 == 0  # times 0.5, 1.5, ...
        bottom = cell(1, col)[-1]  # last pixel row of the best sample's frame
        is_red = (bottom[:, 0] == 255) & (bottom[:, 1] == 0) & (bottom[:, 2] == 0)
        assert is_red.all() == intermediate, col
        # the ground truth sits above the integer-time frames only
        assert (cell(0, col) == 255).all() == intermediate, col


def test_predict_short_clip_folder_and_errors(checkpoint, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(moving_square(5, 64, 64)):
        Image.fromarray(frame).save(folder / f"frame_{t:03d}.png")
    out = tmp_path / "out"
    run_cli(["predict", "--checkpoint", str(checkpoint), "--input", str(folder), "--samples", "5", "--horizon", "6",
             "--out", str(out), "--scale", "2"], capsys)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["conditioning"] == [5 - COND, 5] and summary["ground_truth_frames"] == 0
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape[0] == 2 + 4 * (2 * S + 2)  # conditioning, then 3 samples, frames enlarged twice
    assert sum(gif_durations(out / "sample_04.gif")) == (COND + 6) * 250
    assert imageio.mimread(out / "sample_04.gif")[0].shape[:2] == (2 * S, 2 * S)

    for argv, fragment in [(["--cond-frames", "1"], "k=2"), (["--start", "4"], "do not fit"),
                           (["--samples", "0"], "--samples 0")]:
        rc = main(["predict", "--checkpoint", str(checkpoint), "--input", str(folder), "--out",
                   str(tmp_path / "o2")] + argv)
        err = capsys.readouterr().err
        assert rc == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err
    for bad_dt in ("1/3.5", "abc", "2", "-1/2"):  # a usage error: one line naming the option, exit status 2
        rc = main(["predict", "--checkpoint", str(checkpoint), "--input", str(folder), "--dt", bad_dt])
        err = capsys.readouterr().err
        assert rc == 2 and len(err.strip().splitlines()) == 1 and "argument --dt: dt=" in err, err
    np.save(tmp_path / "one.npy", moving_square(1))
    rc = main(["predict", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "one.npy")])
    err = capsys.readouterr().err
    assert rc == 2 and "one.npy" in err and "1 frame" in err


def test_swap_content_command(skip_checkpoint, tmp_path, capsys):
    np.save(tmp_path / "dyn.npy", moving_square(COND + HORIZON))
    np.save(tmp_path / "content.npy", (np.random.default_rng(5).random((6, 1, 64, 64))).astype(np.float32))
    out = tmp_path / "swap"
    run_cli(["predict", "--checkpoint", str(skip_checkpoint), "--input", str(tmp_path / "dyn.npy"),
             "--swap-content", str(tmp_path / "content.npy"), "--samples", "2", "--fps", "5", "--out", str(out)],
            capsys)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_per_sample"] == COND + HORIZON and summary["files"] == ["swap.gif", "grid.png"]
    assert sum(gif_durations(out / "swap.gif")) == (COND + HORIZON) * 200
    assert imageio.mimread(out / "swap.gif")[0].shape[:2] == (S + 4, 2 + 4 * CELL)  # dynamics, content, 2 swaps
    assert np.asarray(Image.open(out / "grid.png")).shape[0] == 2 + 4 * CELL


def test_interpolate_command(checkpoint, tmp_path, capsys):
    np.save(tmp_path / "a.npy", moving_square(COND + HORIZON, seed=1))
    np.save(tmp_path / "b.npy", moving_square(COND + HORIZON, seed=2)[:, :, ::-1])
    out = tmp_path / "interp"
    run_cli(["predict", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "a.npy"), "--interpolate",
             str(tmp_path / "b.npy"), "--steps", "3", "--format", "mp4", "--out", str(out)], capsys)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["weights"] == [0.0, 0.5, 1.0] and summary["frames_per_trajectory"] == COND + HORIZON
    video = mp4_frames(out / "interpolation.mp4")
    assert video.shape == (COND + HORIZON, S + 4, 2 + 5 * CELL, 3)  # A, 3 trajectories, B
    assert np.asarray(Image.open(out / "grid.png")).shape[0] == 2 + (3 + 4) * CELL


def test_predictor_takes_frames_as_image_readers_return_them(tmp_path):
    """imageio gives (T, H, W, C) or (T, H, W) uint8 arrays: the same frames in any of the layouts predict the same."""
    predictor = Predictor.from_checkpoint(save_tiny_checkpoint(tmp_path / "c.pt"), device="cpu")
    rng = np.random.default_rng(0)
    grey = (rng.random((4, 64, 64)) * 255).astype(np.uint8)
    layouts = [grey, grey[..., None], grey[:, None], np.repeat(grey[..., None], 3, axis=-1)]
    outputs = []
    for frames in layouts:
        torch.manual_seed(0)
        outputs.append(predictor.predict(frames, horizon=2))
    for out in outputs[1:]:
        torch.testing.assert_close(out, outputs[0])


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_outputs_are_whole_or_absent_and_never_stale(checkpoint, tmp_path, monkeypatch, capsys):
    clip = tmp_path / "clip.npy"
    np.save(clip, moving_square(8)[..., 0])
    out = tmp_path / "pred"
    base = ["predict", "--checkpoint", str(checkpoint), "--input", str(clip), "--out", str(out), "--horizon", "2",
            "--cond-frames", "2"]
    assert main([*base, "--samples", "3"]) == 0
    assert {"sample_00.gif", "sample_02.gif", "summary.json"} <= set(_listing(out))
    assert main([*base, "--samples", "1"]) == 0  # again into the same folder: only the new run's files
    assert sorted(_listing(out)) == ["grid.png", "per_step.png", "sample_00.gif", "summary.json"]
    before = _listing(out)

    import srvp.tasks.predict as video  # the command calls write_video through its own import

    calls = []
    original = video.write_video

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(video, "write_video", interrupted)
    assert main([*base, "--samples", "3"]) == 130  # Ctrl-C after the first video
    assert _listing(out) == before  # the previous outputs, untouched
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]  # no staging folder left
    monkeypatch.setattr(video, "write_video", original)

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main([*base[:-4], "--out", str(mine)]) == 2
    assert "holds other files" in capsys.readouterr().err and (mine / "notes.txt").read_text() == "keep me"
