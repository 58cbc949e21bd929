"""Videos and picture grids of frame sequences: GIF / MP4 files and PNG figures in the style of the paper.

Frames are ``(T, C, H, W)`` float tensors (or arrays) in [0, 1], ``C`` = 1 (grey) or 3 (colour).

- :func:`make_grid` tiles several videos into one video ``(T, C, H', W')`` (e.g. several samples side by side);
- :func:`write_video` writes one video (or a list of videos, tiled with :func:`make_grid`) as ``.gif`` or
  ``.mp4`` through imageio;
- :func:`make_image_grid` / :func:`save_grid_png` lay each sequence out as a row of frames, time from left to right,
  rows one under the other, as in the paper's figures; frames can be marked (a coloured bar at the bottom, like
  the intermediate frames of figure 7) and rows labelled.

Every file is written to a temporary name in the target directory and renamed, so an interrupted write never
leaves half a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from srvp.errors import ConfigError, SrvpError
from srvp.files import atomic_output

VIDEO_FORMATS = (".gif", ".mp4")
#: Output sizes: GIF stores its sides in 16 bits, and no picture or video frame written here may exceed
#: MAX_OUTPUT_PIXELS (a 64 x 64 frame enlarged 4 times is 0.07 megapixels; held as float32 colour while it is drawn,
#: 40 megapixels take 0.5 GB per frame)
MAX_GIF_SIDE = 65535
MAX_OUTPUT_PIXELS = 40_000_000
MARK_COLOUR = (1.0, 0.0, 0.0)  # red, as the intermediate-frame bars of the paper's figure 7

FrameArray = torch.Tensor | np.ndarray


def _as_tensor(frames: FrameArray, what: str = "frames") -> torch.Tensor:
    """``(T, C, H, W)`` float tensor on the CPU; uint8 input is scaled to [0, 1]."""
    t = torch.from_numpy(np.asarray(frames)) if isinstance(frames, np.ndarray) else frames
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{what}: expected a tensor or array, got {type(frames).__name__}")
    t = t.detach().cpu()
    t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    if t.ndim != 4 or t.shape[1] not in (1, 3):
        raise ValueError(f"{what}: expected shape (T, C, H, W) with C = 1 or 3, got {tuple(t.shape)}")
    return t.clamp(0.0, 1.0)


def grid_size(cells: int, ncols: int, height: int, width: int, pad: int = 2, scale: int = 1) -> tuple[int, int]:
    """``(width, height)`` of :func:`make_grid` of ``cells`` videos of ``height x width`` frames in ``ncols``
    columns, enlarged ``scale`` times as :func:`write_video` enlarges it (also the size of :func:`make_image_grid`
    of rows of ``ncols`` frames, ``cells`` frames in all, before its labels)."""
    ncols = max(1, min(ncols, cells))
    nrows = -(-cells // ncols)
    return scale * (pad + ncols * (width + pad)), scale * (pad + nrows * (height + pad))


def check_canvas(width: int, height: int, what: str, lower: str, gif: bool = False) -> None:
    """Refuse, before anything is drawn, a picture or video frame of ``width x height`` pixels beyond
    :data:`MAX_OUTPUT_PIXELS` (or, for a GIF, a side beyond :data:`MAX_GIF_SIDE`), with a one-line
    :class:`~srvp.errors.ConfigError` naming ``what`` and the options to ``lower``."""
    if gif and max(width, height) > MAX_GIF_SIDE:
        raise ConfigError(f"{what} would be {width}x{height} pixels; a GIF side holds at most {MAX_GIF_SIDE}; "
                          f"lower {lower}")
    if width * height > MAX_OUTPUT_PIXELS:
        raise ConfigError(f"{what} would be {width}x{height} pixels ({width * height / 1e6:,.0f} megapixels), more "
                          f"than the {MAX_OUTPUT_PIXELS // 10**6} megapixels written per picture; lower {lower}")


def _to_rgb(frames: torch.Tensor) -> torch.Tensor:
    return frames.expand(-1, 3, -1, -1) if frames.shape[1] == 1 else frames


def to_uint8(frames: FrameArray) -> np.ndarray:
    """``(T, C, H, W)`` in [0, 1] -> ``(T, H, W)`` (grey) or ``(T, H, W, 3)`` uint8, as image writers expect."""
    t = _as_tensor(frames)
    out = (t * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out[..., 0] if out.shape[-1] == 1 else out


def make_grid(videos: Sequence[FrameArray], ncols: int = 1, pad: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Tile videos into one video: cell ``i`` at row ``i // ncols``, column ``i % ncols`` (default: one video
    per row, stacked vertically; ``ncols=len(videos)`` puts them side by side).

    ``videos``: list of ``(T_i, C_i, H, W)`` (same ``H, W``); shorter videos hold their last frame, grey videos are
    turned to RGB when mixed with colour ones. Returns ``(max T_i, C, H', W')`` in [0, 1] with ``pad`` pixels of
    ``pad_value`` between and around cells.
    """
    if len(videos) == 0:
        raise ValueError("make_grid needs at least one video")
    vids = [_as_tensor(v, f"videos[{i}]") for i, v in enumerate(videos)]
    H, W = vids[0].shape[-2:]
    if any(v.shape[-2:] != (H, W) for v in vids):
        raise ValueError(f"make_grid: frames differ in size: {sorted({tuple(v.shape[-2:]) for v in vids})}")
    C = max(v.shape[1] for v in vids)
    T = max(v.shape[0] for v in vids)
    ncols = max(1, min(ncols, len(vids)))
    nrows = -(-len(vids) // ncols)
    grid = torch.full((T, C, pad + nrows * (H + pad), pad + ncols * (W + pad)), float(pad_value))
    for i, v in enumerate(vids):
        if C == 3:
            v = _to_rgb(v)
        if v.shape[0] < T:  # hold the last frame
            v = torch.cat([v, v[-1:].expand(T - v.shape[0], -1, -1, -1)])
        r, c = divmod(i, ncols)
        top, left = pad + r * (H + pad), pad + c * (W + pad)
        grid[:, :, top:top + H, left:left + W] = v
    return grid


def annotate_video(video: FrameArray, row_labels: Sequence[str] | None = None, row_height: int = 0, pad: int = 2,
                   captions: Sequence[tuple[str, tuple[int, int, int]]] | None = None) -> np.ndarray:
    """Text around a video ``(T, C, H, W)`` in [0, 1]: a left margin with one label per row of cells
    (``row_height`` pixels high, ``pad`` between rows, as laid out by :func:`make_grid`) and a top band with
    ``captions[t]`` = (text, RGB colour) for frame ``t`` (e.g. which frames are conditioning, which predicted).
    Returns ``(T, H', W', 3)`` uint8 (Pillow draws the text)."""
    from PIL import Image, ImageDraw, ImageFont

    t = _to_rgb(_as_tensor(video))
    frames = to_uint8(t)
    font = ImageFont.load_default(size=12)
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left = 0
    if row_labels:
        left = max(probe.textbbox((0, 0), text, font=font)[2] for text in row_labels) + 2 * pad + 6
    top = 18 if captions else 0
    if captions is not None and len(captions) != len(frames):
        raise ValueError(f"annotate_video: {len(captions)} captions for {len(frames)} frames")
    out = []
    for i, frame in enumerate(frames):
        canvas = Image.new("RGB", (left + frame.shape[1], top + frame.shape[0]), (255, 255, 255))
        canvas.paste(Image.fromarray(frame), (left, top))
        draw = ImageDraw.Draw(canvas)
        for r, text in enumerate(row_labels or []):
            box = draw.textbbox((0, 0), text, font=font)
            y = top + pad + r * (row_height + pad) + (row_height - (box[3] - box[1])) // 2
            draw.text((pad + 2, y), text, fill=(0, 0, 0), font=font)
        if captions:
            text, colour = captions[i]
            draw.text((left + pad, 2), text, fill=tuple(colour), font=font)
        out.append(np.asarray(canvas))
    return np.stack(out)


def write_video(path: str | Path, frames: FrameArray | Sequence[FrameArray], fps: float = 4.0, scale: int = 1,
                ncols: int = 1, pad: int = 2, row_labels: Sequence[str] | None = None,
                captions: Sequence[tuple[str, tuple[int, int, int]]] | None = None) -> Path:
    """Write a video as ``.gif`` (looping) or ``.mp4`` (H.264).

    ``frames``: ``(T, C, H, W)`` in [0, 1], or a list of such videos tiled with :func:`make_grid` (``ncols``,
    ``pad``). ``scale`` enlarges every frame by an integer factor (nearest neighbour) for viewing small frames.
    ``row_labels`` (one per row of the grid) and ``captions`` (one (text, RGB colour) per frame) add text with
    :func:`annotate_video`. GIF viewers show identical consecutive frames as one longer frame (Pillow merges
    them); the timing is kept.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_FORMATS:
        raise SrvpError(f"{path}: unsupported video format {path.suffix!r}; use one of {', '.join(VIDEO_FORMATS)}")
    tiled = isinstance(frames, (list, tuple))
    first = _as_tensor(frames[0]) if tiled else _as_tensor(frames)
    check_canvas(*grid_size(len(frames) if tiled else 1, ncols if tiled else 1, *first.shape[-2:], pad if tiled
                            else 0, scale), f"{path.name}", "the number of panels or the scale", suffix == ".gif")
    video = make_grid(frames, ncols=ncols, pad=pad) if tiled else first
    cell_height = (_as_tensor(frames[0]) if tiled else video).shape[-2] * scale
    if scale > 1:
        video = video.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    if row_labels or captions:
        video = torch.from_numpy(annotate_video(video, row_labels, cell_height, pad * scale, captions)).permute(
            0, 3, 1, 2).float().div_(255.0)
    import imageio.v2 as imageio

    if suffix == ".gif":
        data = to_uint8(video)
        # GIF delays are stored in hundredths of a second.
        atomic_output(path, lambda tmp: imageio.mimsave(tmp, list(data), format="GIF", duration=1000.0 / fps,
                                                         loop=0))
    else:
        # yuv420p (what players expect) needs even sizes: pad with white instead of letting ffmpeg rescale.
        video = _to_rgb(video)
        H, W = video.shape[-2:]
        video = torch.nn.functional.pad(video, (0, W % 2, 0, H % 2), value=1.0)
        data = to_uint8(video)

        def write_mp4(tmp: str) -> None:
            writer = imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                        pixelformat="yuv420p", macro_block_size=1, quality=8)
            try:
                for frame in data:
                    writer.append_data(frame)
            finally:
                writer.close()

        atomic_output(path, write_mp4)
    return path


def write_gif(path: str | Path, frames: FrameArray | Sequence[FrameArray], fps: float = 4.0, scale: int = 1,
              ncols: int = 1, pad: int = 2, row_labels: Sequence[str] | None = None,
              captions: Sequence[tuple[str, tuple[int, int, int]]] | None = None) -> Path:
    """:func:`write_video` to a ``.gif`` file."""
    if Path(path).suffix.lower() != ".gif":
        raise SrvpError(f"{path}: write_gif needs a .gif file name")
    return write_video(path, frames, fps=fps, scale=scale, ncols=ncols, pad=pad, row_labels=row_labels,
                       captions=captions)


def make_image_grid(rows: Sequence[FrameArray], offsets: Sequence[int | Sequence[int]] | None = None,
                    marks: Sequence[Sequence[bool] | None] | None = None, pad: int = 2, pad_value: float = 1.0,
                    mark_height: int | None = None) -> torch.Tensor:
    """Lay sequences out as an image: row ``i`` shows the frames of ``rows[i]`` ``(T_i, C, H, W)`` from left to
    right, starting at column ``offsets[i]`` (default 0; e.g. samples start after the conditioning frames), or at
    the explicit columns ``offsets[i] = [c_0, c_1, ...]``, one per frame (e.g. ground truth aligned with the integer
    times of a sample that has intermediate frames).

    ``marks[i][t]`` true draws a red bar at the bottom of frame ``t`` of row ``i`` (intermediate frames).
    Returns ``(C, H', W')`` in [0, 1] (RGB when frames are marked or rows mix grey and colour).
    """
    if len(rows) == 0:
        raise ValueError("make_image_grid needs at least one row")
    seqs = [_as_tensor(r, f"rows[{i}]") for i, r in enumerate(rows)]
    offsets = list(offsets) if offsets is not None else [0] * len(seqs)
    marks = list(marks) if marks is not None else [None] * len(seqs)
    if len(offsets) != len(seqs) or len(marks) != len(seqs):
        raise ValueError("make_image_grid: offsets and marks need one entry per row")
    H, W = seqs[0].shape[-2:]
    if any(s.shape[-2:] != (H, W) for s in seqs):
        raise ValueError(f"make_image_grid: frames differ in size: {sorted({tuple(s.shape[-2:]) for s in seqs})}")
    any_mark = any(m is not None and any(m) for m in marks)
    C = 3 if any_mark else max(s.shape[1] for s in seqs)
    columns = []
    for i, (o, s) in enumerate(zip(offsets, seqs)):
        cols = list(range(o, o + s.shape[0])) if isinstance(o, (int, np.integer)) else [int(c) for c in o]
        if len(cols) != s.shape[0] or (cols and min(cols) < 0):
            raise ValueError(f"make_image_grid: row {i} has {s.shape[0]} frames but columns {cols}")
        columns.append(cols)
    ncols = max(max(cols, default=-1) + 1 for cols in columns)
    image = torch.full((C, pad + len(seqs) * (H + pad), pad + ncols * (W + pad)), float(pad_value))
    bar = mark_height if mark_height is not None else max(1, H // 16)
    colour = torch.tensor(MARK_COLOUR).view(3, 1, 1)
    for i, (seq, cols, mark) in enumerate(zip(seqs, columns, marks)):
        if C == 3:
            seq = _to_rgb(seq)
        if mark is not None and len(mark) != seq.shape[0]:
            raise ValueError(f"make_image_grid: row {i} has {seq.shape[0]} frames but {len(mark)} marks")
        top = pad + i * (H + pad)
        for t, frame in enumerate(seq):
            left = pad + cols[t] * (W + pad)
            image[:, top:top + H, left:left + W] = frame
            if mark is not None and mark[t]:
                image[:, top + H - bar:top + H, left:left + W] = colour
    return image


def _label_image(image: np.ndarray, labels: Sequence[str], row_height: int, pad: int) -> np.ndarray:
    """Prepend a white margin with one text label per row (Pillow's built-in font)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    width = max((probe.textbbox((0, 0), text, font=font)[2] for text in labels), default=0) + 2 * pad + 4
    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=-1)
    canvas = Image.new("RGB", (width + rgb.shape[1], rgb.shape[0]), (255, 255, 255))
    canvas.paste(Image.fromarray(rgb), (width, 0))
    draw = ImageDraw.Draw(canvas)
    for i, text in enumerate(labels):
        box = draw.textbbox((0, 0), text, font=font)
        y = pad + i * (row_height + pad) + (row_height - (box[3] - box[1])) // 2
        draw.text((pad + 2, y), text, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def save_grid_png(path: str | Path, rows: Sequence[FrameArray], labels: Sequence[str] | None = None,
                  offsets: Sequence[int | Sequence[int]] | None = None,
                  marks: Sequence[Sequence[bool] | None] | None = None, pad: int = 2, scale: int = 1) -> Path:
    """Save :func:`make_image_grid` of ``rows`` as a PNG, optionally with a text label left of each row and every
    frame enlarged ``scale`` times (nearest neighbour)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise SrvpError(f"{path}: save_grid_png needs a .png file name")
    rows = [_as_tensor(r, f"rows[{i}]") for i, r in enumerate(rows)]
    if rows:  # its size before anything is enlarged or drawn
        columns = max((o + len(r)) if isinstance(o, (int, np.integer)) else max(o, default=-1) + 1
                      for r, o in zip(rows, offsets if offsets is not None else [0] * len(rows)))
        width, height = grid_size(len(rows) * max(columns, 1), max(columns, 1), *(rows[0].shape[-2] * scale,
                                                                                    rows[0].shape[-1] * scale), pad)
        check_canvas(width, height, path.name, "the number of rows or frames, or the scale")
    if scale > 1:
        rows = [r.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1) for r in rows]
    image = make_image_grid(rows, offsets=offsets, marks=marks, pad=pad)
    data = to_uint8(image.unsqueeze(0))[0]
    if labels is not None:
        if len(labels) != len(rows):
            raise ValueError(f"save_grid_png: {len(labels)} labels for {len(rows)} rows")
        data = _label_image(data, labels, row_height=_as_tensor(rows[0]).shape[-2], pad=pad)
    import imageio.v2 as imageio

    atomic_output(path, lambda tmp: imageio.imwrite(tmp, data, format="PNG"))
    return path
