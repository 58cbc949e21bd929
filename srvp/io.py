"""Reading a user's clip and fitting frames to a model: video files, GIFs, folders of images and ``.npy`` arrays.

:func:`read_clip` returns frames ``(T, C, H, W)`` float32 in [0, 1] with ``C`` = 1 (grey) or 3 (colour), whatever
the source; :func:`fit_frames` converts grey/colour and resizes them to a model's frame size. :func:`read_frames`
gives the same frames already fitted and stored as uint8, one chunk at a time (the ``videos`` dataset, which may
read hours of video): for every clip, ``read_frames(path, size, channels)`` equals
``to_uint8(fit_frames(read_clip(path), size, channels))``, so that training and ``srvp predict`` see a folder, a
video or a GIF the same way (the same files in the same order, the same decoders, the same resizing and grey
conversion). :data:`VIDEO_SUFFIXES` and :data:`IMAGE_SUFFIXES` are the one list of the files read, which the
``--help`` texts and the documentation give.

Every image and video is measured from its header before a pixel is decoded (:func:`image_size`,
:func:`gif_size`, :func:`probe_video`) and refused, with a one-line :class:`~srvp.errors.DataError`, beyond the
pixel budgets :data:`MAX_FRAME_PIXELS` and :data:`MAX_CLIP_PIXELS`: a file of a few kilobytes can declare frames of
billions of pixels (a zip of six 12,000 x 12,000 one-bit PNGs is 1.6 KB and decodes to 10 GB).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from srvp.errors import ConfigError, DataError

#: video files (decoded by ffmpeg; GIFs by Pillow) and frame images (a folder of them is a clip), by extension
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
CHANNEL_COUNTS = (1, 3, 4)  # grey, RGB, RGBA (alpha is dropped)
# ITU-R BT.601 luma weights, the ones Pillow uses for RGB -> L.
LUMA = (0.299, 0.587, 0.114)
#: Pixel budgets, checked from headers before decoding. A model sees frames of 64 x 64 pixels (every preset; a
#: frame is centre-cropped and resized to it), so a larger source frame adds nothing but memory. A frame may have
#: 40 megapixels (8K UHD, 7680 x 4320, is 33): one such frame takes 0.5 GB as float32 colour. A clip read whole
#: (read_clip holds it as float32 at its own size: about 15 bytes per colour pixel while reading a video, 27 for a
#: folder of images) may have 100 megapixels in all, at most 1.5 to 2.7 GB (e.g. 48 frames of 1920 x 1080, 325 of
#: 640 x 480, or 24,000 of 64 x 64); a longer clip is refused with the advice to cut or downscale it, which changes
#: little of what the model sees.
MAX_FRAME_PIXELS = 40_000_000
MAX_CLIP_PIXELS = 100_000_000


def suffix_list(suffixes: tuple[str, ...]) -> str:
    """``"mp4, avi, ..."``: a list of extensions as the help texts and messages give it."""
    return ", ".join(s[1:] for s in suffixes)


def _natural_key(path: Path) -> list:
    """Sort ``frame2.png`` before ``frame10.png``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def frame_files(folder: str | Path) -> list[Path]:
    """The frames of a folder: its image files (:data:`IMAGE_SUFFIXES`, hidden files skipped) in natural order
    (``frame_2.png`` before ``frame_10.png``); the one order of every reader."""
    folder = Path(folder)
    return sorted((f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                   and not f.name.startswith(".")), key=lambda f: (_natural_key(f), f.name))


def _scale_to_unit(array: np.ndarray, path: Path) -> np.ndarray:
    """uint8 / uint16 / bool / float array -> C-contiguous float32 in [0, 1]; floats must already be in [0, 1].
    Scaled in place after one conversion (the result may share the memory of a float32 input), so that a clip is
    held at most twice while it is read."""
    if array.dtype in (np.uint8, np.uint16):
        out = array.astype(np.float32, order="C")
        out /= 255.0 if array.dtype == np.uint8 else 65535.0
        return out
    if array.dtype == np.bool_:
        return array.astype(np.float32, order="C")
    if np.issubdtype(array.dtype, np.floating):
        array = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(array).all():
            raise DataError(f"{path}: the frames hold NaN or infinite values")
        lo, hi = float(array.min()), float(array.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise DataError(f"{path}: float frames must be in [0, 1], found values in [{lo:.4g}, {hi:.4g}] "
                            f"(save uint8 for 0..255)")
        return np.clip(array, 0.0, 1.0, out=array)
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


def _megapixels(pixels: int) -> str:
    return f"{f'{pixels / 1e6:,.1f}'.rstrip('0').rstrip('.')} megapixels"


def check_frame_pixels(path: str | Path, width: int, height: int) -> None:
    """Refuse a frame of ``width x height`` pixels (read from a header) beyond :data:`MAX_FRAME_PIXELS`."""
    if width * height > MAX_FRAME_PIXELS:
        raise DataError(f"{path}: frames of {width}x{height} pixels ({_megapixels(width * height)}) exceed the "
                        f"{_megapixels(MAX_FRAME_PIXELS)} read per frame (frames are resized to the model's, e.g. "
                        f"64x64); downscale the file first")


def check_clip_pixels(path: str | Path, frames: int, width: int, height: int, total: int | None = None) -> None:
    """Refuse a clip of ``frames`` frames of ``width x height`` pixels (``total``: their sum when sizes differ)
    beyond :data:`MAX_CLIP_PIXELS`, before any is decoded."""
    total = frames * width * height if total is None else total
    if total > MAX_CLIP_PIXELS:
        raise DataError(f"{path}: {frames} frames of {width}x{height} pixels ({_megapixels(total)}) exceed the "
                        f"{_megapixels(MAX_CLIP_PIXELS)} read per clip; keep fewer frames or downscale them first "
                        f"(the model sees 64x64 frames)")


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header, nothing decoded (Pillow reads only the header when
    it opens a file); an unreadable file is a :class:`DataError` naming it."""
    import warnings

    from PIL import Image

    path = Path(path)
    try:
        with warnings.catch_warnings():  # Pillow warns above 89 megapixels; the budget below says it in one line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.size
    except Image.DecompressionBombError as e:  # above 179 megapixels Pillow refuses to open the file
        match = re.search(r"\((\d+) pixels\)", str(e))
        pixels = int(match.group(1)) if match else 2 * (Image.MAX_IMAGE_PIXELS or MAX_FRAME_PIXELS)
        raise DataError(f"{path}: the image declares {_megapixels(pixels)}, more than the "
                        f"{_megapixels(MAX_FRAME_PIXELS)} read per frame; downscale the file first") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable image ({_reason(e, path)})") from None


def _reason(error: BaseException, path: Path) -> str:
    text = str(error).strip()
    return text.splitlines()[0].replace(f" '{path}'", "").replace(str(path), "the file")[:120] if text else \
        type(error).__name__


def read_image(path: str | Path) -> np.ndarray:
    """One frame image as ``(H, W, C)`` float32 in [0, 1], C = 1 (grey) or 3 (colour): the one decoder of image
    files for every reader (``srvp predict``, ``srvp data videos``), so that all see the same pixels.

    Pillow decodes the file; every mode is scaled by its own range: 8-bit grey/colour by 255, 16-bit grey
    (``I;16*``, and ``I`` holding values up to 65535) by 65535, 1-bit as 0/1, float (``F``) kept if in [0, 1];
    alpha is dropped (``LA`` -> grey, ``RGBA`` -> colour), palettes (``P``, ``PA``) and other colour spaces
    (CMYK, YCbCr, LAB, HSV) become RGB. Anything unreadable, or larger than :data:`MAX_FRAME_PIXELS` (read from the
    header, before decoding), is a :class:`DataError` naming the file."""
    from PIL import Image

    path = Path(path)
    check_frame_pixels(path, *image_size(path))
    try:
        with Image.open(path) as image:
            check_frame_pixels(path, *image.size)
            image.load()
            mode = image.mode
            if mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa", "La"):
                image = image.convert("RGBA" if mode in ("P", "PA") else "RGB")
                mode = image.mode
            array = np.asarray(image)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: not a readable image ({_reason(e, path)})") from None
    if mode.startswith("I;16") or mode == "I":
        values = array.astype(np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise DataError(f"{path}: 32-bit integer pixels outside 0..65535 (mode {mode}); save 8- or 16-bit images")
        array = (values.astype(np.float32) / 65535.0)[..., None]
    elif mode == "F":
        array = _scale_to_unit(array.astype(np.float32), path)[..., None]
    elif mode == "1":
        array = array.astype(np.float32)[..., None]
    elif array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
        if array.ndim == 2:
            array = array[..., None]
        elif mode == "LA":
            array = array[..., :1]
        else:
            array = array[..., :3]
    else:
        raise DataError(f"{path}: unsupported image mode {mode}")
    return np.ascontiguousarray(array)


def _measure_images(files: list[Path], where: Path, clip_budget: bool = True) -> None:
    """Every frame's header before any is decoded: each within :data:`MAX_FRAME_PIXELS`, all of one size (the first
    odd file named), and the clip within :data:`MAX_CLIP_PIXELS` when it is held whole (``clip_budget``)."""
    sizes = [image_size(f) for f in files]
    for f, (width, height) in zip(files, sizes):
        check_frame_pixels(f, width, height)
    for f, size in zip(files, sizes):
        if size != sizes[0]:
            raise DataError(f"{f}: frame of {size[0]}x{size[1]} pixels in a folder of {sizes[0][0]}x{sizes[0][1]} "
                            f"frames (mixed sizes: the frames of a clip differ in size)")
    if clip_budget:
        check_clip_pixels(where, len(files), *sizes[0])


def _read_images(files: list[Path], where: Path) -> np.ndarray:
    """The frames ``(T, H, W, C)`` float32 of image files of one size; grey frames among colour ones are repeated
    to RGB (a folder may mix them, as a GIF mixes palette and RGBA frames)."""
    _measure_images(files, where)
    frames = [read_image(f) for f in files]
    if len({im.shape[-1] for im in frames}) > 1:
        frames = [np.repeat(im, 3, axis=-1) if im.shape[-1] == 1 else im for im in frames]
    return np.stack(frames)


def gif_size(path: str | Path) -> tuple[int, int, int]:
    """``(width, height, frames)`` of a GIF from its block structure, nothing decoded: the size is the logical
    screen enlarged to every frame's extent (as Pillow draws them). A file that ends early gives what was read."""
    data = Path(path).read_bytes()
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        raise DataError(f"{path}: not a readable video (not a GIF file)")
    width, height = int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    pos, frames = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0), 0

    def skip_sub_blocks(pos: int) -> int:
        while pos < len(data) and data[pos]:
            pos += data[pos] + 1
        return pos + 1

    while pos < len(data) and data[pos] != 0x3B:
        if data[pos] == 0x21:  # extension: label, then sub-blocks
            pos = skip_sub_blocks(pos + 2)
        elif data[pos] == 0x2C and pos + 10 <= len(data):  # image descriptor
            x, y, w, h = (int.from_bytes(data[pos + i:pos + i + 2], "little") for i in (1, 3, 5, 7))
            width, height, frames = max(width, x + w), max(height, y + h), frames + 1
            flags = data[pos + 9]
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            pos = skip_sub_blocks(pos + 1)  # the LZW minimum code size, then the image data
        else:
            break
    return width, height, frames


def _gif_frames(path: Path, clip_budget: bool = True):
    """The frames of a GIF, uint8 ``(H, W, 3)`` one at a time, as Pillow draws them (each frame over the previous
    as the file says; palette, grey and RGBA frames alike, alpha dropped), measured first by :func:`gif_size`."""
    from PIL import Image, ImageSequence

    width, height, frames = gif_size(path)
    check_frame_pixels(path, width, height)
    if clip_budget:
        check_clip_pixels(path, frames, width, height)
    try:
        with Image.open(path) as image:
            for frame in ImageSequence.Iterator(image):
                rgb = np.asarray(frame.convert("RGB"))
                if rgb.shape[:2] != (height, width):  # a frame beyond the logical screen: refused, not cropped
                    raise DataError(f"{path}: the frames differ in size ({rgb.shape[1]}x{rgb.shape[0]} vs "
                                    f"{width}x{height})")
                yield rgb
    except DataError:
        raise
    except Exception as e:  # Pillow raises many types for unreadable files
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: not a readable video ({msg})") from None


def _read_video(path: Path) -> np.ndarray:
    """The frames ``(T, H, W, 3)`` uint8 of a video file or GIF, within :data:`MAX_CLIP_PIXELS`: GIFs through
    :func:`_gif_frames`, every other video through :func:`iter_video`, which refuses a truncated or corrupt file
    instead of returning the frames before the damage."""
    if path.suffix.lower() == ".gif":
        frames = list(_gif_frames(path))
        if not frames:
            raise DataError(f"{path}: not a readable video (no frame)")
        return np.stack(frames)
    return np.concatenate(list(iter_video(path, max_pixels=MAX_CLIP_PIXELS)))


_VIDEO_STREAM = re.compile(r"Stream #\d+:\d+.*?: Video: (.*)")
_DIMENSIONS = re.compile(r"[ ,]([1-9]\d*)x([1-9]\d*)[ ,\[]")
_ROTATION = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees")


def probe_video(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of the frames ffmpeg decodes from a video (its first video stream that is not a cover
    picture, turned as its display matrix says), read from the header by ``ffmpeg -i`` without decoding the
    stream; a file without one is a :class:`DataError` naming it."""
    import imageio_ffmpeg

    path = Path(path)
    result = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
                            capture_output=True, check=False)  # exits 1: no output file, by design
    lines = result.stderr.decode(errors="replace").splitlines()
    size, in_stream = None, False
    for line in lines:
        stream = _VIDEO_STREAM.search(line)
        if "Stream #" in line:
            in_stream = False
        if stream and size is None and "(attached pic)" not in line:
            match = _DIMENSIONS.search(stream.group(1) + " ")
            if match:
                size, in_stream = (int(match.group(2)), int(match.group(1))), True
        elif in_stream and (rotation := _ROTATION.search(line)) and round(float(rotation.group(1))) % 180:
            size = (size[1], size[0])
    if size is None:
        problems = [line.strip() for line in lines if line.strip() and "output file must be specified" not in line
                    and not line.startswith(" ")]
        if not problems or problems[-1].startswith("Input #"):
            raise DataError(f"{path}: cannot decode video: the file holds no video stream")
        raise DataError(f"{path}: cannot decode video (truncated or corrupt?): "
                        f"{problems[-1].replace(str(path), 'the file')[:160]}")
    return size


def decode_video(path: str | Path, size: int | None, channels: int = 3, crop: bool = True, fps: float | None = None,
                 first_channel: bool = False, max_pixels: int | None = None) -> np.ndarray:
    """Decode a video file with ffmpeg into uint8 ``(T, channels, size, size)`` (``size`` None: the frames as they
    are, ``(T, channels, H, W)``), resized by ffmpeg: the decoder of the KTH conversion, which reproduces the
    authors' ffmpeg command (a user's clips are read by :func:`iter_video`, through :func:`read_clip` and
    :func:`read_frames`).

    ``crop``: take the central square before resizing (else the whole frame is squashed to a square, as the
    authors' KTH preprocessing does). ``fps``: resample to this frame rate (ffmpeg ``-r``). ``first_channel``
    (grey only): decode to RGB and keep the red channel, as the authors do for KTH, instead of ffmpeg's grey
    conversion. Raises :class:`DataError` naming the file if ffmpeg reports any decoding error (truncated or
    corrupt file) or yields no frame, and before decoding if the header declares frames beyond
    :data:`MAX_FRAME_PIXELS`; ``max_pixels`` bounds the pixels of all the frames returned (ffmpeg stops one frame
    after it, and the clip is refused), so that memory is bounded whatever the file's length.
    """
    import imageio_ffmpeg

    path = Path(path)
    if channels not in (1, 3):
        raise ConfigError(f"video channels must be 1 or 3, got {channels}")
    source_height, source_width = probe_video(path)
    check_frame_pixels(path, source_width, source_height)
    if size is None:
        height, width = source_height, source_width
        filters = ["null"]
    else:
        height = width = size
        filters = ["crop=min(iw\\,ih):min(iw\\,ih)"] if crop else []
        filters.append(f"scale={size}:{size}:flags=bicubic")
    pix_fmt = "gray" if channels == 1 and not first_channel else "rgb24"
    depth = 1 if pix_fmt == "gray" else 3
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-xerror", "-i", str(path), "-map", "0:V:0",
           "-an", "-sn", "-vf", ",".join(filters)]  # the stream probe_video measured
    if fps:
        cmd += ["-r", f"{fps:g}"]
    max_frames = None if max_pixels is None else max(1, max_pixels // (height * width))
    if max_frames is not None:
        cmd += ["-frames:v", str(max_frames + 1)]
    cmd += ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-"]
    result = subprocess.run(cmd, capture_output=True, check=False)
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.decode(errors="replace").splitlines() if line.strip()]
        reason = lines[-1] if lines else f"ffmpeg exit status {result.returncode}"
        raise DataError(f"{path}: cannot decode video (truncated or corrupt?): {reason}")
    frame_bytes = height * width * depth
    if len(result.stdout) == 0 or len(result.stdout) % frame_bytes:
        raise DataError(f"{path}: no complete video frame decoded")
    frames = np.frombuffer(result.stdout, np.uint8).reshape(-1, height, width, depth)
    if max_frames is not None and len(frames) > max_frames:
        raise DataError(f"{path}: more than {max_frames} frames of {width}x{height} pixels (over "
                        f"{_megapixels(max_pixels)}, the pixels read per clip); keep fewer frames or downscale them "
                        f"first (the model sees 64x64 frames)")
    if depth == 3 and channels == 1:
        frames = frames[..., :1]
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2))


def iter_video(path: str | Path, max_pixels: int | None = None, chunk_pixels: int = 1 << 24):
    """The frames of a video file at their own size, RGB uint8 ``(t, H, W, 3)`` in chunks of about ``chunk_pixels``
    pixels, in order, as ffmpeg decodes them (the stream :func:`probe_video` measured): the video decoder of
    :func:`read_clip` and :func:`read_frames`, which never hold more of the raw video than a chunk.

    Raises :class:`DataError` naming the file if ffmpeg reports any decoding error (truncated or corrupt file) or
    yields no frame, before decoding if the header declares frames beyond :data:`MAX_FRAME_PIXELS`, and when the
    frames exceed ``max_pixels`` (ffmpeg stops one frame after it)."""
    import tempfile

    import imageio_ffmpeg

    path = Path(path)
    height, width = probe_video(path)
    check_frame_pixels(path, width, height)
    frame_bytes = height * width * 3
    max_frames = None if max_pixels is None else max(1, max_pixels // (height * width))
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-xerror", "-i", str(path), "-map", "0:V:0",
           "-an", "-sn", "-vf", "null"]
    if max_frames is not None:
        cmd += ["-frames:v", str(max_frames + 1)]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    chunk_bytes = max(1, chunk_pixels // (height * width)) * frame_bytes
    count, partial = 0, False
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: ffmpeg never blocks on what it says
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors)
        try:
            while data := process.stdout.read(chunk_bytes):
                whole = len(data) - len(data) % frame_bytes
                if whole:
                    count += whole // frame_bytes
                    if max_frames is not None and count > max_frames:
                        raise DataError(f"{path}: more than {max_frames} frames of {width}x{height} pixels (over "
                                        f"{_megapixels(max_pixels)}, the pixels read per clip); keep fewer frames or "
                                        f"downscale them first (the model sees 64x64 frames)")
                    yield np.frombuffer(data[:whole], np.uint8).reshape(-1, height, width, 3)
                if whole < len(data):  # the stream ended inside a frame
                    partial = True
                    break
            returncode = process.wait()
        finally:
            process.stdout.close()
            if process.poll() is None:
                process.kill()
                process.wait()
        if returncode != 0:
            errors.seek(0)
            lines = [line.strip() for line in errors.read().decode(errors="replace").splitlines() if line.strip()]
            reason = lines[-1] if lines else f"ffmpeg exit status {returncode}"
            raise DataError(f"{path}: cannot decode video (truncated or corrupt?): {reason}")
    if count == 0 or partial:
        raise DataError(f"{path}: no complete video frame decoded")


def check_npy_size(stream, available: int, where: str) -> None:
    """Read the ``.npy`` header at the start of ``stream`` and refuse, with a one-line :class:`DataError`, an array
    that declares more bytes than the ``available`` bytes of the file: NumPy would first try to allocate the
    declared size (a 16-byte header can ask for petabytes)."""
    try:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(stream)
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise DataError(f"{where}: not a readable .npy array ({str(e).strip().splitlines()[0][:120]})") from None
    if dtype.hasobject:
        raise DataError(f"{where}: refused: the array holds Python objects (object arrays are not loaded)")
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    left = available - stream.tell()
    if declared > left:
        raise DataError(f"{where}: declares an array of shape {tuple(shape)} {dtype} ({declared:,} bytes) but holds "
                        f"{max(left, 0):,} bytes (truncated or corrupt)")


def _clip_kind(path: Path) -> str:
    """``"folder"``, ``"npy"``, ``"gif"`` or ``"video"``; a missing path, a single image or an unknown extension is
    a one-line :class:`DataError`."""
    if not path.exists():
        raise DataError(f"{path}: clip not found")
    suffix = path.suffix.lower()
    if path.is_dir():
        if not frame_files(path):
            raise DataError(f"{path}: no image files ({suffix_list(IMAGE_SUFFIXES)}) in this folder")
        return "folder"
    if suffix == ".npy":
        return "npy"
    if suffix in VIDEO_SUFFIXES:
        return "gif" if suffix == ".gif" else "video"
    if suffix in IMAGE_SUFFIXES:
        raise DataError(f"{path}: a single image is not a clip; give a folder of frames, a video or a .npy array")
    raise DataError(f"{path}: unknown clip format {path.suffix!r}; use a video ({suffix_list(VIDEO_SUFFIXES)}), "
                    f".npy or a folder of images ({suffix_list(IMAGE_SUFFIXES)})")


def _channels_first(frames: np.ndarray, path: Path) -> np.ndarray:
    """Decoded frames ``(T, H, W, C)`` -> ``(T, C, H, W)`` (a view)."""
    if frames.shape[0] == 0:
        raise DataError(f"{path}: the clip is empty (no frame)")
    return frames.transpose(0, 3, 1, 2)


def read_clip(path: str | Path) -> torch.Tensor:
    """Frames ``(T, C, H, W)`` float32 in [0, 1] (C = 1 or 3) of a video file (:data:`VIDEO_SUFFIXES`, GIFs
    included), a folder of images (:func:`frame_files`: numbers in natural order) or a ``.npy`` array
    ``(T, H, W)``, ``(T, H, W, C)`` or ``(T, C, H, W)`` (uint8 0..255 or float 0..1). Images and videos whose three
    channels are equal are returned grey. The whole clip is held, within :data:`MAX_CLIP_PIXELS`."""
    path = Path(path)
    kind = _clip_kind(path)
    if kind == "npy":
        try:
            with open(path, "rb") as stream:
                check_npy_size(stream, path.stat().st_size, str(path))
            frames = _to_tchw(np.asarray(np.load(path, allow_pickle=False)), path)
        except (ValueError, OSError, EOFError) as e:
            msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise DataError(f"{path}: not a readable .npy array ({msg})") from None
    else:
        frames = _channels_first(_read_images(frame_files(path), path) if kind == "folder" else _read_video(path),
                                 path)
        if frames.shape[1] == 3 and all(np.array_equal(frames[:, c], frames[:, 0]) for c in (1, 2)):
            frames = frames[:, :1]  # grey stored as RGB (GIF palettes, most video codecs)
    return torch.from_numpy(np.ascontiguousarray(_scale_to_unit(frames, path)))


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """Frames in [0, 1] -> uint8 0..255, rounded to the nearest (how the ``videos`` dataset stores them)."""
    return (frames * 255.0).round_().clamp_(0.0, 255.0).to(torch.uint8).numpy()


def read_frames(path: str | Path, size: int, channels: int, crop: bool = True,
                max_pixels: int | None = None) -> np.ndarray:
    """The frames of a clip fitted to ``channels x size x size`` (:func:`fit_frames`) as uint8
    ``(T, channels, size, size)``: exactly ``to_uint8(fit_frames(read_clip(path), size, channels, crop))`` (the
    same files, order, decoders, grey conversion and resizing), read one frame (images, GIF) or chunk (video) at a
    time, so that a clip of any length needs memory for its fitted frames only. ``max_pixels`` bounds those
    (``size * size`` per frame); the source frames are always within :data:`MAX_FRAME_PIXELS`."""
    path = Path(path)
    kind = _clip_kind(path)
    if kind == "npy":
        return to_uint8(fit_frames(read_clip(path), size, channels, crop))
    if kind == "folder":
        files = frame_files(path)
        _measure_images(files, path, clip_budget=False)
        chunks = (read_image(f)[None] for f in files)
    else:
        chunks = (frame[None] for frame in _gif_frames(path, clip_budget=False)) if kind == "gif" else iter_video(path)
    out, count = [], 0
    for chunk in chunks:
        frames = torch.from_numpy(np.ascontiguousarray(_scale_to_unit(_channels_first(chunk, path), path)))
        out.append(to_uint8(fit_frames(frames, size, channels, crop)))
        count += len(chunk)
        if max_pixels is not None and count * size * size > max_pixels:
            raise DataError(f"{path}: more than {max_pixels // (size * size)} frames of {size}x{size} pixels (over "
                            f"{_megapixels(max_pixels)}); keep fewer frames")
    if not out:
        raise DataError(f"{path}: not a readable video (no frame)")
    return np.concatenate(out)


def convert_channels(frames: torch.Tensor, channels: int) -> torch.Tensor:
    """Frames ``(..., C, H, W)`` with C in {1, 3, 4} -> ``channels`` (1 or 3): grey is repeated to RGB, RGB turned
    to grey with the BT.601 luma weights (a pixel whose channels are equal keeps its value, so that a grey frame
    stored as RGB is read as if stored grey), alpha dropped."""
    if frames.shape[-3] == 4:
        frames = frames[..., :3, :, :]
    have = frames.shape[-3]
    if have == channels:
        return frames
    if have == 1 and channels == 3:
        return frames.expand(*frames.shape[:-3], 3, *frames.shape[-2:])
    if have == 3 and channels == 1:  # luma; a pixel whose three channels are equal keeps its value exactly
        weights = torch.tensor(LUMA, dtype=frames.dtype, device=frames.device).view(3, 1, 1)
        red = frames[..., :1, :, :]
        grey = (frames[..., 1:2, :, :] == red) & (frames[..., 2:3, :, :] == red)
        return torch.where(grey, red, (frames * weights).sum(dim=-3, keepdim=True))
    raise ValueError(f"cannot convert {have}-channel frames to {channels} channels")


def fit_frames(frames: torch.Tensor, size: int, channels: int, crop: bool = True) -> torch.Tensor:
    """Frames ``(..., C, H, W)`` in [0, 1] -> ``(..., channels, size, size)``: channels converted, non-square
    frames centre-cropped to a square (``crop``, keeps the aspect ratio) or squeezed, then resized with area
    averaging (bilinear with antialiasing when enlarging)."""
    if size * size > MAX_FRAME_PIXELS:  # a typo of a zero would ask for gigabytes per frame
        raise ConfigError(f"frames of {size}x{size} pixels ({_megapixels(size * size)}) exceed the "
                          f"{_megapixels(MAX_FRAME_PIXELS)} per frame; choose a smaller frame size (the models see "
                          f"64x64 frames)")
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
