"""Test sets as compressed ``.npz`` files in the official SRVP layout.

``sequences`` is time-first, ``(T, N, H, W)`` for grey or ``(T, N, H, W, C)`` for colour, uint8; Moving MNIST
files also hold ``latents`` (T, N, digits, 4), ``labels`` (N, digits) and ``digits`` (N, digits, 28, 28). The
authors' KTH test set is the exception: sequence-first ``(N, T, H, W)``, recognised by its ``persons`` array. Files are
read with ``allow_pickle=False``, so loading never executes code.

A shape does not say which axis is time, so the layout is never guessed: it is read from the file (a ``layout``
entry, ``"TNHW"``/``"TNHWC"`` or ``"NTHW"``/``"NTHWC"``, which every file written here holds; the authors' KTH
``persons``; the official Moving MNIST ``latents``, time-first like ``sequences``) or given by the caller
(``srvp evaluate --test-set-layout``), and a file that says nothing is refused with the fix.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from srvp.errors import DataError
from srvp.files import atomic_write_bytes
from srvp.io import check_npy_size

LAYOUTS = {"time-first": "TN", "sequence-first": "NT"}


def _declared_layout(data, path: Path, seq_shape: tuple[int, ...]) -> str | None:
    """``"time-first"`` or ``"sequence-first"`` as the file declares it (module docstring), None if it does not."""
    if "layout" in data.files:
        shape, dtype = _header(data, "layout")
        declared = data["layout"] if shape == () and dtype.kind == "U" and dtype.itemsize <= 64 else shape
        text = str(declared.item()) if isinstance(declared, np.ndarray) else ""
        for name, axes in LAYOUTS.items():
            if text.upper() in (f"{axes}HW", f"{axes}HWC"):
                return name
        raise DataError(f"{path}: 'layout' must be 'TNHW' or 'NTHW' (with a C for colour), found {declared!r}")
    if "persons" in data.files:  # the authors' KTH test set (svg_test_set_40.npz, with 'persons' and 'actions')
        return "sequence-first"
    if "latents" in data.files:  # official Moving MNIST: latents (T, N, digits, 4), time-first as sequences
        latents_shape, _ = _header(data, "latents")
        if tuple(latents_shape[:2]) == tuple(seq_shape[:2]):
            return "time-first"
    return None


def _header(data, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the member ``name`` of an open ``.npz``, from its header (nothing else is read)."""
    with data.zip.open(f"{name}.npy") as member:
        version = np.lib.format.read_magic(member)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(member)
    return tuple(shape), dtype


def load_sequences_npz(path: str | Path, layout: str | None = None) -> np.ndarray:
    """Sequences ``(N, T, C, H, W)`` uint8 from an official-layout ``.npz``; malformed files raise a one-line
    :class:`DataError`. ``layout`` (``"time-first"`` or ``"sequence-first"``) reads ``sequences`` that way;
    by default the file must say which (module docstring), and an undeclared one is refused."""
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
            declared = _declared_layout(data, path, seq.shape)
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
    if layout is not None and layout not in LAYOUTS:
        raise DataError(f"layout={layout!r} is not one of {', '.join(LAYOUTS)}")
    layout = layout or declared
    if layout is None:
        raise DataError(f"{path}: cannot tell which axis of 'sequences' {seq.shape[:2]} is time: the file declares no "
                        f"layout; add layout='TNHW' (time-first, the official layout) or 'NTHW' (sequence-first) to "
                        f"it, or tell srvp evaluate with --test-set-layout time-first|sequence-first")
    order = (0, 1, 4, 2, 3) if layout == "sequence-first" else (1, 0, 4, 2, 3)
    return np.ascontiguousarray(seq.transpose(*order))


def save_sequences_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays (``sequences`` time-first as in the official layout) to a compressed ``.npz``, atomically, with
    the ``layout`` entry that says so."""
    layout = "TNHWC" if np.ndim(arrays["sequences"]) == 5 else "TNHW"
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{"layout": np.array(layout), **arrays})
    atomic_write_bytes(path, buffer.getvalue())
