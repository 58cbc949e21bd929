"""Reading a user's clip and fitting frames to a model: video files, GIFs, folders of images and ``.npy`` arrays.

:func:`read_clip` returns frames ``(T, C, H, W)`` float32 in [0, 1] with ``C`` = 1 (grey) or 3 (colour), whatever
the source; :func:`fit_frames` converts grey/colour and resizes them to a model's frame size.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from srvp.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
CHANNEL_COUNTS = (1, 3, 4)  # grey, RGB, RGBA (alpha is dropped)
# ITU-R BT.601 luma weights, the ones Pillow uses for RGB -> L.
LUMA = (0.299, 0.587, 0.114)


def _natural_key(path: Path) -> list:
    """Sort ``frame2.png`` before ``frame10.png``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _scale_to_unit(array: np.ndarray, path: Path) -> np.ndarray:
    """uint8 / uint16 / bool / float array -> float32 in [0, 1]; floats must already be in [0, 1]."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise DataError(f"{path}: the frames hold NaN or infinite values")
        lo, hi = float(array.min()), float(array.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise DataError(f"{path}: float frames must be in [0, 1], found values in [{lo:.4g}, {hi:.4g}] "
                            f"(save uint8 for 0..255)")
        return np.clip(array, 0.0, 1.0)
    raise DataError(f"{path}: unsupported pixel type {array.dtype} (expected uint8, uint16, bool or float)")


def _to_tchw(frames: np.ndarray, path: Path) -> np.ndarray:
    """``(T, H, W)``, ``(T, H, W, C)`` or ``(T, C, H, W)`` -> ``(T, C, H, W)`` with C in {1, 3} (alpha dropped)."""
    if frames.ndim == 3:
        frames = frames[:, None]
    elif frames.ndim == 4:
        last, second = frames.shape[-1] in CHANNEL_COUNTS, frames.shape[1] in CHANNEL_COUNTS
        if last and second:  # e.g. (T, 3, H, 3): frames H x 3 or 3 x H, which differ even when both ends agree
            raise DataError(f"{path}: ambiguous frame layout {frames.shape}: cannot tell (T, H, W, C) from "
                            f"(T, C, H, W)")
        if last:
            frames = frames.transpose(0, 3, 1, 2)
        elif not second:
            raise DataError(f"{path}: expected frames (T, H, W), (T, H, W, C) or (T, C, H, W) with C in "
                            f"{CHANNEL_COUNTS}, got shape {frames.shape}")
    else:
        raise DataError(f"{path}: expected frames (T, H, W), (T, H, W, C) or (T, C, H, W), got shape {frames.shape}")
    if frames.shape[0] == 0 or frames.shape[2] == 0 or frames.shape[3] == 0:
        raise DataError(f"{path}: the clip is empty (shape {frames.shape})")
    return frames[:, :3] if frames.shape[1] == 4 else frames


def _read_images(files: list[Path], where: Path) -> np.ndarray:
    import imageio.v3 as iio

    frames = []
    for f in files:
        try:
            image = iio.imread(f)
        except Exception as e:  # imageio raises many types for unreadable files
            raise DataError(f"{f}: not a readable image ({str(e).strip().splitlines()[0][:120] if str(e) else e!r})"
                            ) from None
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3:
            raise DataError(f"{f}: expected a single image, got an array of shape {image.shape}")
        frames.append(image)
    shapes = {im.shape for im in frames}
    if len(shapes) > 1:
        sizes = sorted(shapes)
        raise DataError(f"{where}: the frames differ in size or channels ({sizes[0]} vs {sizes[-1]})")
    return np.stack(frames)


def _read_video(path: Path) -> np.ndarray:
    import imageio.v2 as imageio

    try:
        if path.suffix.lower() == ".gif":
            frames = np.stack(imageio.mimread(path, format="GIF", memtest=False))
        else:
            reader = imageio.get_reader(path, format="FFMPEG")
            try:
                frames = np.stack([frame for frame in reader])
            finally:
                reader.close()
    except DataError:
        raise
    except Exception as e:  # imageio / ffmpeg raise many types for unreadable files
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: not a readable video ({msg})") from None
    return frames


def read_clip(path: str | Path) -> torch.Tensor:
    """Frames ``(T, C, H, W)`` float32 in [0, 1] (C = 1 or 3) of a video file (.mp4, .avi, ...), a GIF, a folder of
    images (sorted by name, numbers in natural order) or a ``.npy`` array ``(T, H, W)``, ``(T, H, W, C)`` or
    ``(T, C, H, W)`` (uint8 0..255 or float 0..1). Images and videos whose three channels are equal are returned
    grey."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: clip not found")
    if path.is_dir():
        files = sorted((f for f in path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES),
                       key=_natural_key)
        if not files:
            raise DataError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        frames = _read_images(files, path)
    elif path.suffix.lower() == ".npy":
        from srvp.data.npz import check_npy_size

        try:
            with open(path, "rb") as stream:
                check_npy_size(stream, path.stat().st_size, str(path))
            frames = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise DataError(f"{path}: not a readable .npy array ({msg})") from None
    elif path.suffix.lower() == ".gif" or path.suffix.lower() in VIDEO_SUFFIXES:
        frames = _read_video(path)
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        raise DataError(f"{path}: a single image is not a clip; give a folder of frames, a video or a .npy array")
    else:
        raise DataError(f"{path}: unknown clip format {path.suffix!r}; use a video ({', '.join(VIDEO_SUFFIXES)}), "
                        f".gif, .npy or a folder of images")
    frames = _to_tchw(np.asarray(frames), path)
    if path.suffix.lower() != ".npy" and frames.shape[1] == 3 and (frames == frames[:, :1]).all():
        frames = frames[:, :1]  # grey stored as RGB (GIF palettes, most video codecs)
    return torch.from_numpy(np.ascontiguousarray(_scale_to_unit(frames, path)))


def convert_channels(frames: torch.Tensor, channels: int) -> torch.Tensor:
    """Frames ``(..., C, H, W)`` with C in {1, 3, 4} -> ``channels`` (1 or 3): grey is repeated to RGB, RGB turned
    to grey with the BT.601 luma weights, alpha dropped."""
    if frames.shape[-3] == 4:
        frames = frames[..., :3, :, :]
    have = frames.shape[-3]
    if have == channels:
        return frames
    if have == 1 and channels == 3:
        return frames.expand(*frames.shape[:-3], 3, *frames.shape[-2:])
    if have == 3 and channels == 1:
        weights = torch.tensor(LUMA, dtype=frames.dtype, device=frames.device).view(3, 1, 1)
        return (frames * weights).sum(dim=-3, keepdim=True)
    raise ValueError(f"cannot convert {have}-channel frames to {channels} channels")


def fit_frames(frames: torch.Tensor, size: int, channels: int, crop: bool = True) -> torch.Tensor:
    """Frames ``(..., C, H, W)`` in [0, 1] -> ``(..., channels, size, size)``: channels converted, non-square
    frames centre-cropped to a square (``crop``, keeps the aspect ratio) or squeezed, then resized with area
    averaging (bilinear with antialiasing when enlarging)."""
    frames = convert_channels(frames, channels)
    height, width = frames.shape[-2:]
    if crop and height != width:
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        frames = frames[..., top:top + side, left:left + side]
        height = width = side
    if height == size and width == size:
        return frames.contiguous()
    lead = frames.shape[:-3]
    flat = frames.reshape(-1, channels, height, width).float()
    if min(height, width) >= size:
        out = F.interpolate(flat, size=(size, size), mode="area")
    else:
        out = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.clamp(0.0, 1.0).reshape(*lead, channels, size, size)
