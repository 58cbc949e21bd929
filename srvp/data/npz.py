"""Test sets as compressed ``.npz`` files in the official SRVP layout.

``sequences`` is time-first, ``(T, N, H, W)`` for grey or ``(T, N, H, W, C)`` for colour, uint8; Moving MNIST
files also hold ``latents`` (T, N, digits, 4), ``labels`` (N, digits) and ``digits`` (N, digits, 28, 28). The
authors' KTH test set is the exception: sequence-first ``(N, T, H, W)``, recognised by its ``persons`` array. Files are
read with ``allow_pickle=False``, so loading never executes code.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from srvp.errors import DataError
from srvp.files import atomic_write_bytes
from srvp.io import check_npy_size


def load_sequences_npz(path: str | Path) -> np.ndarray:
    """Sequences ``(N, T, C, H, W)`` uint8 from an official-layout ``.npz``; malformed files raise a one-line
    :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: test set file not found")
    with open(path, "rb") as f:
        signature = f.read(4)
    if signature not in (b"PK\x03\x04", b"PK\x05\x06"):  # np.load would take anything else for a .npy or a pickle
        raise DataError(f"{path}: not a .npz archive (starts with {signature!r}, not a zip signature)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "sequences" not in data.files:
                raise DataError(f"{path}: no 'sequences' array (found {', '.join(data.files) or 'nothing'})")
            info = data.zip.getinfo("sequences.npy")
            with data.zip.open(info) as member:
                check_npy_size(member, info.file_size, f"{path}: 'sequences'")
            seq = data["sequences"]
            # The authors' KTH test set (svg_test_set_40.npz, with 'persons' and 'actions') is sequence-first.
            sequence_first = "persons" in data.files
    except DataError:
        raise
    except ValueError as e:
        raise DataError(f"{path}: refused: {str(e).splitlines()[0][:160]} (object arrays are not loaded)") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"{path}: not a readable .npz file (truncated or corrupt: {str(e)[:120]})") from None
    if seq.dtype != np.uint8:
        raise DataError(f"{path}: 'sequences' must be uint8, found {seq.dtype}")
    if seq.ndim == 4:
        seq = seq[..., None]
    if seq.ndim != 5 or seq.shape[-1] not in (1, 3) or min(seq.shape) == 0:
        raise DataError(f"{path}: 'sequences' must be (T, N, H, W) or (T, N, H, W, C) with C in 1 or 3, "
                        f"found {seq.shape}")
    order = (0, 1, 4, 2, 3) if sequence_first else (1, 0, 4, 2, 3)
    return np.ascontiguousarray(seq.transpose(*order))


def save_sequences_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays (``sequences`` time-first as in the official layout) to a compressed ``.npz``, atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
