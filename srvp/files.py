"""Files written whole or not at all, checksums, and safe reading of ``torch.save`` files: the file utilities every
layer shares (this module imports nothing of the package but :mod:`srvp.errors`).

- :func:`atomic_write_bytes` / :func:`atomic_write_text` / :func:`atomic_output`: a reader sees the old file or the
  complete new one, never a part; :func:`remove_stale_temporaries` removes what a kill left.
- :func:`sha256_file`, :func:`content_digest`: checksums of files and of the values read back from them.
- :func:`safe_torch_load`: ``torch.load(weights_only=True)`` (no code from the file runs) with its errors turned
  into one-line :class:`~srvp.errors.CheckpointError` messages; :func:`read_state_dict` and
  :func:`load_state_checked` for weight files.
- :func:`staged_output_dir`: output folders written whole or not at all.
- :func:`folder_lock`: a folder (a training run) used by one process at a time.

:func:`staged_output_dir` gives a command a hidden staging folder next to its ``--out`` folder; when the command
finishes, the staging folder replaces the output folder, so an interruption (Ctrl-C, a full disk, a crash, SIGKILL)
leaves either the previous outputs or the new ones, never a mix (on Linux the two folders swap in one step,
:func:`exchange_paths`; elsewhere by two renames, and a kill between them hides the previous folder beside the
missing one), and no stale file of an earlier run stays beside the new summary. An existing output folder is only
replaced if it is empty or holds nothing but the files an earlier run of the same command wrote (its ``marker`` file
and the files that lists): a folder with anything else in it is refused and left as it was
(:func:`replaceable_names`). When ``--out`` is the current directory, its files are replaced one by one instead (a
rename would leave the process in a deleted folder).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from srvp.errors import CheckpointError, ConfigError, SrvpError

STAGING_PREFIX = ".partial-"
#: staging folders inside an output folder that is replaced in place (see :func:`staged_output_dir`)
INNER_STAGING_PREFIX = ".srvp-staging-"


def _umask_mode(directory: bool) -> int:
    mask = os.umask(0)  # the only portable way to read the umask is to set it
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


#: permissions of written files: those of a file opened normally (mkstemp's 0600 would hide shared checkpoints)
FILE_MODE = _umask_mode(False)


# --------------------------------------------------------------------------------------------------------------------
# Atomic files
# --------------------------------------------------------------------------------------------------------------------


def named_os_error(error: OSError, path: str | Path, temporary: str | Path | None = None) -> OSError:
    """``error`` with ``path`` as its file name when the system gave none (a write that fails on a full disk names no
    file) or named the ``temporary`` file written instead: the command line prints ``path: No space left on
    device`` instead of the bare reason."""
    if error.filename is not None and (temporary is None or str(error.filename) != str(temporary)):
        return error
    named = type(error)(error.errno, error.strerror or str(error), str(path)) if error.errno else \
        OSError(errno.EIO, str(error) or type(error).__name__, str(path))
    named.__traceback__ = error.__traceback__
    return named


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the complete new one, never a part.
    A kill leaves at most a hidden ``.<name>.<random>.tmp`` file (see :func:`remove_stale_temporaries`); a failed
    write (a full disk) leaves nothing and raises an :class:`OSError` that names ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), FILE_MODE)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise named_os_error(e, path, tmp) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_output(path: str | Path, write: Callable[[str], Any]) -> Path:
    """For writers that need a file name (imageio, matplotlib): call ``write(tmp)`` on a temporary file with the
    same suffix next to ``path``, then rename it over ``path``; on any error the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise named_os_error(e, path, tmp) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete the temporary files that killed :func:`atomic_write_bytes` calls left in ``directory`` (not
    recursive); returns them. Only for a directory that no other process is writing to."""
    removed = []
    directory = Path(directory)
    if directory.is_dir():
        for p in directory.glob(".*.tmp"):
            if p.is_file():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


# --------------------------------------------------------------------------------------------------------------------
# A folder used by one process at a time
# --------------------------------------------------------------------------------------------------------------------

LOCK_FILE = ".srvp.lock"


@contextlib.contextmanager
def folder_lock(directory: str | Path, what: str, option: str = "--out-dir") -> Iterator[Path]:
    """Hold an exclusive lock on ``directory`` (created if needed) for the block, so that two processes never write
    the same run: a second one is refused at once with a one-line :class:`ConfigError` naming the holder (``what``
    names the other work, e.g. "another srvp train"; ``option`` the argument to change).

    The lock is ``flock`` on ``directory/.srvp.lock``: the kernel releases it when its holder ends, however it ends
    (SIGKILL, a power cut that ends the machine), so a stale file never blocks the next run. The file is removed
    when the block ends, before the lock is released; a process that opened the removed file finds it is no longer
    the folder's and tries again. Nothing is locked where ``fcntl`` does not exist (Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux or macOS
        yield Path(directory) / LOCK_FILE
        return
    import socket
    import time

    directory = Path(directory)
    path = directory / LOCK_FILE
    for _ in range(100):  # another holder may remove the file between our open and our lock: open it again
        directory.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except FileNotFoundError:  # the folder went away between mkdir and open
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "a process"
            os.close(fd)
            raise ConfigError(f"{directory}: {what} is already running in this folder ({holder}); wait for it to "
                              f"end or choose another {option}") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    else:  # pragma: no cover - a hundred holders in a row
        raise ConfigError(f"{directory}: cannot lock the folder ({path} keeps changing)")
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} on {socket.gethostname()}, since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


# --------------------------------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------------------------------


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def content_digest(obj: Any) -> str:
    """SHA-256 of nested values (tensors by dtype, shape and bytes; other values by type and value; dict keys in
    sorted order), so that the values read back from a file can be compared with the values written: a byte flipped
    inside a tensor or a number changes it (``torch.load`` checks no checksum of the zip entries)."""
    h = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(value, dict):
            h.update(f"D{len(value)}".encode())
            for key in sorted(value, key=repr):
                feed(key)
                feed(value[key])
        elif isinstance(value, (list, tuple)):
            h.update(f"L{type(value).__name__}{len(value)}".encode())
            for item in value:
                feed(item)
        else:
            h.update(f"V{type(value).__name__}:{value!r};".encode())

    feed(obj)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------------------------
# Safe reading of torch.save files
# --------------------------------------------------------------------------------------------------------------------

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_REFUSED_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)")
# torch's restricted unpickler says these when a pickle asks for an object it does not allow (as opposed to bytes
# it cannot parse at all)
_REFUSED_OBJECT_MARKS = ("Trying to call reduce", "Can only create new object", "Can only build", "must be imported",
                         "persistent_load")


def describe_unpickling_error(error: BaseException) -> tuple[str, bool]:
    """The useful part of a ``weights_only`` refusal: ``(reason, refused_object)``.

    torch's message opens with generic advice (with ANSI colour codes); the reason is the line that names the
    refused global (``Unsupported global: GLOBAL io.open``) or the unpickler's own error. ``refused_object`` is True
    when the file asked for an object that only an unrestricted load would create (possibly code), False when the
    bytes merely are not a valid pickle (corrupt or foreign data).
    """
    text = _ANSI_ESCAPE.sub("", str(error))
    match = _REFUSED_GLOBAL.search(text)
    if match:
        return f"Unsupported global: GLOBAL {match.group(1)}", True
    detail = text.split("WeightsUnpickler error:", 1)[-1] if "WeightsUnpickler error:" in text else text
    lines = [line.strip() for line in detail.splitlines()
             if line.strip() and not line.strip().startswith("Check the documentation")]
    reason = lines[0] if lines else type(error).__name__
    return reason, any(mark in reason for mark in _REFUSED_OBJECT_MARKS)


def safe_torch_load(path: str | Path, what: str = "checkpoint", map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: plain tensors, numbers, strings and containers only, never code.
    A missing, truncated, corrupt or foreign file, or one that asks for other objects, raises a one-line
    :class:`CheckpointError` naming the file and saying which (``what`` names the kind of file)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        reason, refused_object = describe_unpickling_error(e)
        if refused_object:
            raise CheckpointError(f"{path}: refused to load: the file holds more than plain tensors and numbers "
                                  f"(possible code payload; {reason[:160]})") from None
        raise CheckpointError(f"{path}: not a readable {what} (truncated or corrupt: {reason[:160]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, AttributeError, IndexError,
            TypeError) as e:  # the unpickler of torch raises IndexError on some foreign bytes
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable {what} (truncated or corrupt: {msg[:160]})") from None


def read_state_dict(path: str | Path, what: str = "state_dict") -> dict[str, torch.Tensor]:
    """A ``state_dict`` of tensors saved with ``torch.save`` (also wrapped as ``{"state_dict": ...}``), read with
    :func:`safe_torch_load`; anything else raises a one-line :class:`CheckpointError`."""
    state = safe_torch_load(path, what)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a {what} (a dict of tensors), got {type(state).__name__}")
    return state


def load_state_checked(module: torch.nn.Module, weights: dict[str, torch.Tensor], path: str | Path,
                       optional: tuple[str, ...] = (), problem: str = "weights do not match the model of its config"
                       ) -> None:
    """``module.load_state_dict`` requiring every parameter and buffer (except names ending in ``optional``) with
    the same shape and finite values; anything else is a one-line error saying which entries do not match."""
    own = module.state_dict()
    missing = [k for k in own if k not in weights and not k.endswith(optional)]
    unexpected = [k for k in weights if k not in own]
    shapes = [f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in weights and tuple(weights[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            parts.append(f"{len(shapes)} with other shapes (e.g. {shapes[0]})")
        raise CheckpointError(f"{path}: {problem}: {'; '.join(parts)}")
    for k, v in weights.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"{path}: tensor {k} holds NaN or infinite values")
    module.load_state_dict(weights, strict=not optional)


# --------------------------------------------------------------------------------------------------------------------
# Output folders
# --------------------------------------------------------------------------------------------------------------------


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two existing entries of one file system in one step (Linux ``renameat2`` with ``RENAME_EXCHANGE``), so
    that a kill at any moment leaves each path holding one of the two; False where the system cannot (not Linux, an
    old C library, kernel or file system), and the caller renames twice. Written here because Python's :mod:`os`
    has no ``renameat2`` and no kept library wraps it (tests/test_output_folders.py checks the swap)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(b))


def remove_stale_staging(parent: Path, name: str) -> None:
    """Staging folders of ``name`` left by a killed run (SIGKILL leaves no chance to clean up)."""
    for stale in parent.glob(f".{name}{STAGING_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)


def _remove_inner_staging(folder: Path) -> None:
    """Staging folders that an in-place replacement (see :func:`staged_output_dir`) killed inside ``folder`` left,
    and the empty ``..partial-*`` folders that earlier versions left inside an ``--out .``."""
    for stale in folder.glob(f"{INNER_STAGING_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    for legacy in folder.glob(f"..{STAGING_PREFIX[1:]}*"):
        with contextlib.suppress(OSError):
            legacy.rmdir()  # only when empty: such a folder never held anything but a failed rename


def _regular_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def replaceable_names(out: str | Path, marker: str, option: str = "--out",
                      earlier: Callable[[Path], Iterable[str] | None] | None = None) -> set[str]:
    """The names in the folder ``out`` that a new output of a command may replace: none if ``out`` is absent or
    empty; else every entry must be a plain file that an earlier run of the same command wrote there, recognised
    by its ``marker`` file and ``earlier(out)``, the names of the other files that run wrote (read from the marker;
    None, or a :class:`SrvpError`, when the marker is not one of this project). Anything else (a user's file, a
    folder, a link) is refused with a one-line :class:`ConfigError`, and nothing is changed."""
    out = Path(out)
    if not out.exists():
        if out.is_symlink():
            raise ConfigError(f"{out}: a broken symbolic link ({option})")
        return set()
    if not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a directory ({option})")
    names = {entry.name for entry in os.scandir(out) if not entry.name.startswith(INNER_STAGING_PREFIX)}
    names -= {p.name for p in out.glob(f"..{STAGING_PREFIX[1:]}*") if p.is_dir() and not any(p.iterdir())}
    if not names:
        return set()
    advice = f"choose a new or empty folder for {option}; nothing was changed"
    if not _regular_file(out / marker):
        raise ConfigError(f"{out}: the folder holds other files (no {marker} of an earlier run); {advice}")
    try:
        listed = earlier(out) if earlier is not None else ()
    except SrvpError:
        listed = None
    if listed is None:
        raise ConfigError(f"{out}: the folder holds other files (its {marker} was not written by srvp); {advice}")
    owned = {marker, *listed}
    foreign = sorted(n for n in names if n not in owned or not _regular_file(out / n))
    if foreign:
        raise ConfigError(f"{out}: the folder holds other files ({foreign[0]!r} is not an output of an earlier run); "
                          f"{advice}")
    return names


def read_json_marker(path: str | Path, limit: int = 1 << 24) -> dict[str, Any] | None:
    """The JSON object in the marker file ``path`` of an earlier output (see :func:`replaceable_names`), or None if
    the file is not one (unreadable, not JSON, not an object, larger than ``limit`` bytes)."""
    path = Path(path)
    try:
        if path.stat().st_size > limit:
            return None
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _in_place(target: Path) -> bool:
    """Whether a new output replaces the files inside ``target`` rather than the folder itself: when ``target`` is
    (or holds) the current directory, which a rename would leave this process, and the user's shell, in a deleted
    folder; when it is a file system's root; or when its parent cannot be written."""
    try:
        cwd = Path.cwd().resolve()
    except OSError:  # the current directory was deleted
        cwd = None
    return (target.parent == target or (cwd is not None and (cwd == target or target in cwd.parents))
            or (target.is_dir() and not os.access(target.parent, os.W_OK | os.X_OK)))


@contextlib.contextmanager
def staged_output_dir(out: str | Path, marker: str, option: str = "--out",
                      earlier: Callable[[Path], Iterable[str] | None] | None = None) -> Iterator[Path]:
    """Yield a staging folder to write every output into; on success it becomes ``out`` (see the module doc).

    ``out`` may already hold an earlier output of the same command (``marker`` and the names ``earlier`` gives,
    see :func:`replaceable_names`), which is replaced, or nothing; any other folder is refused before anything is
    written. The staging folder lies beside ``out``'s resolved path, so ``.``, ``..`` and links work; when ``out``
    is the current directory (see :func:`_in_place`) it lies inside, and the files are renamed into ``out`` one by
    one, the earlier run's files that the new run did not write are removed, and ``marker`` comes last."""
    shown, target = Path(out), Path(out).resolve()
    replaceable_names(shown, marker, option, earlier)
    inside = _in_place(target)
    if inside:
        _remove_inner_staging(target)
        staging = Path(tempfile.mkdtemp(dir=target, prefix=INNER_STAGING_PREFIX))
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(target.parent, target.name)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}{STAGING_PREFIX}"))
    try:
        yield staging
        for f in staging.rglob("*"):
            f.chmod(_umask_mode(f.is_dir()))
        old = replaceable_names(shown, marker, option, earlier)  # again: files may have appeared meanwhile
        if inside:
            # the marker last, then the earlier files it no longer lists: a rerun that writes the same names
            # leaves a folder that is recognised at every moment
            new = sorted((p.name for p in staging.iterdir()), key=lambda name: name == marker)
            for name in new:
                os.replace(staging / name, target / name)
            for name in old - set(new):
                os.unlink(target / name)
            staging.rmdir()
        else:
            staging.chmod(_umask_mode(True))
            if target.exists() and exchange_paths(staging, target):
                shutil.rmtree(staging, ignore_errors=True)  # it now holds the previous output
            elif target.exists():  # two renames: a kill between them leaves the previous output hidden in trash
                trash = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}{STAGING_PREFIX}old-"))
                os.replace(target, trash / "previous")
                os.replace(staging, target)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
