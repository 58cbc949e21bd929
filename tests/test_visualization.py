"""Video grids, GIF/MP4 files and PNG figures: layout pixel by pixel, frame counts and timing read back from the
files, and no partial files left behind."""

from __future__ import annotations

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from srvp.errors import SrvpError
from srvp.visualization import make_grid, make_image_grid, save_grid_png, to_uint8, write_gif, write_video


def frames(length: int, channels: int = 1, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(length, channels, size, size, generator=torch.Generator().manual_seed(seed))


def test_to_uint8_rounds_and_drops_grey_channel():
    x = torch.tensor([0.0, 0.5, 1.0, 1 / 255 * 0.49]).view(1, 1, 2, 2)
    assert to_uint8(x).tolist() == [[[0, 128], [255, 0]]]
    assert to_uint8(frames(2, 3)).shape == (2, 8, 8, 3)


def test_make_grid_places_cells_and_holds_last_frame():
    a, b, c = frames(3, seed=1), frames(2, 3, seed=2), frames(3, seed=3)
    grid = make_grid([a, b, c], ncols=2, pad=1, pad_value=0.25)
    assert grid.shape == (3, 3, 1 + 2 * 9, 1 + 2 * 9)
    torch.testing.assert_close(grid[:, :, 1:9, 1:9], a.expand(-1, 3, -1, -1))  # grey shown as RGB
    torch.testing.assert_close(grid[:2, :, 1:9, 10:18], b)
    torch.testing.assert_close(grid[2, :, 1:9, 10:18], b[-1])  # shorter video holds its last frame
    torch.testing.assert_close(grid[:, :, 10:18, 1:9], c.expand(-1, 3, -1, -1))
    assert (grid[:, :, 10:18, 10:18] == 0.25).all()  # empty cell
    assert (grid[:, :, 0] == 0.25).all() and (grid[:, :, :, 9] == 0.25).all()
    with pytest.raises(ValueError, match="differ in size"):
        make_grid([frames(2, size=8), frames(2, size=6)])


def test_make_image_grid_columns_and_marks():
    cond, sample = frames(2, seed=4), frames(4, seed=5)
    image = make_image_grid([cond, sample], offsets=[[0, 3], 2], marks=[None, [True, False, True, False]], pad=1,
                            mark_height=2)
    assert image.shape == (3, 1 + 2 * 9, 1 + 6 * 9)
    torch.testing.assert_close(image[:, 1:9, 1:9], cond[0].expand(3, -1, -1))
    torch.testing.assert_close(image[:, 1:9, 28:36], cond[1].expand(3, -1, -1))  # explicit column 3
    assert (image[:, 1:9, 10:18] == 1).all()  # column 1 of the first row is empty
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    for t in range(4):
        left = 1 + (2 + t) * 9
        cell = image[:, 10:18, left:left + 8]
        torch.testing.assert_close(cell[:, :6], sample[t, :, :6].expand(3, -1, -1))
        if t % 2 == 0:
            assert torch.equal(cell[:, 6:], red.expand(3, 2, 8))
        else:
            torch.testing.assert_close(cell[:, 6:], sample[t, :, 6:].expand(3, -1, -1))


def test_save_grid_png_with_labels_and_scale(tmp_path):
    rows = [frames(3, seed=6), frames(2, seed=7)]
    path = save_grid_png(tmp_path / "grid.png", rows, labels=["first", "second"], offsets=[0, 1], scale=2)
    image = np.asarray(Image.open(path))
    assert image.shape[0] == 2 + 2 * (16 + 2)
    margin = image.shape[1] - (2 + 3 * 18)
    assert margin > 0 and (image[:, :margin] < 128).any()  # some dark text in the label margin
    expected = to_uint8(rows[0][:1].repeat_interleave(2, -2).repeat_interleave(2, -1))[0]
    assert np.array_equal(image[2:18, margin + 2:margin + 18, 0], expected)
    with pytest.raises(SrvpError, match=".png"):
        save_grid_png(tmp_path / "grid.jpg", rows)


def test_gif_round_trip_frames_and_timing(tmp_path):
    video = frames(5, 3, size=16, seed=8)
    path = write_gif(tmp_path / "v.gif", video, fps=5)
    read = np.stack(imageio.mimread(path))
    assert read.shape[:3] == (5, 16, 16)
    # GIF stores a 256-colour palette: random colour frames come back close, not exact
    assert np.abs(read[..., :3].astype(int) - to_uint8(video).astype(int)).mean() < 20
    with Image.open(path) as im:
        assert [f.info["duration"] for f in ImageSequence.Iterator(im)] == [200] * 5
        assert im.info.get("loop") == 0
    # identical consecutive frames are merged by Pillow, keeping the total time
    held = write_video(tmp_path / "held.gif", video.repeat_interleave(2, dim=0), fps=10)
    with Image.open(held) as im:
        durations = [f.info["duration"] for f in ImageSequence.Iterator(im)]
    assert sum(durations) == 10 * 100
    assert list((tmp_path).glob(".*")) == []  # no temporary files left


def test_mp4_pads_odd_sizes_and_keeps_frame_count(tmp_path):
    # smooth grey frames of 9 x 25 pixels, so that the lossy codec keeps them close
    ramp = torch.linspace(0.2, 0.8, 25).view(1, 1, 1, 25).expand(7, 1, 9, 25)
    video = (ramp + 0.02 * torch.arange(7).view(7, 1, 1, 1)).clamp(0, 1)

    def read(path):
        reader = imageio.get_reader(path, format="FFMPEG")
        try:
            assert reader.get_meta_data()["fps"] == pytest.approx(8)
            return np.stack([f for f in reader])  # list(reader) trips on its infinite length hint
        finally:
            reader.close()

    odd = read(write_video(tmp_path / "odd.mp4", video, fps=8))
    assert odd.shape == (7, 10, 26, 3)  # padded to even sizes (yuv420p), not rescaled
    assert np.abs(odd[:, :9, :25].astype(float) / 255 - to_uint8(video)[..., None] / 255).mean() < 0.03
    assert odd[:, 9:, :].mean() > 230 and odd[:, :, 25:].mean() > 230  # the white padding
    assert read(write_video(tmp_path / "big.mp4", video, fps=8, scale=2)).shape == (7, 18, 50, 3)


@pytest.mark.parametrize("suffix", [".avi", ".png", ""])
def test_unsupported_video_suffix(tmp_path, suffix):
    with pytest.raises(SrvpError, match="unsupported video format"):
        write_video(tmp_path / f"v{suffix}", frames(2))
    assert list(tmp_path.iterdir()) == []
