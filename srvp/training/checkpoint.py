"""Checkpoints: atomic writes, a manifest with checksums, safe loading.

A checkpoint is a ``torch.save`` of plain data (tensors, numbers, strings, lists, dicts): the model, optimizer and
scheduler ``state_dict``s, the step, every RNG state and the full :class:`~srvp.config.RunConfig` as a dict. It is
loaded with ``weights_only=True``, which never executes code from the file, and the configuration it carries is
enough to rebuild the model, so a checkpoint file can be used alone.

Files are written to a temporary name in the same directory, flushed to disk and renamed, so a kill at any
moment leaves either the previous file or the new one. ``manifest.json`` in the checkpoint directory lists the
periodic checkpoints with their step and SHA-256; on resume a truncated or corrupt latest checkpoint is detected
and the previous good one is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from srvp.config import RunConfig
from srvp.errors import CheckpointError, ConfigError

FORMAT = "srvp-checkpoint"
VERSION = 1
MANIFEST = "manifest.json"


def _file_mode_from_umask() -> int:
    mask = os.umask(0)  # the only portable way to read the umask is to set it; done once, at import
    os.umask(mask)
    return 0o666 & ~mask


#: permissions of written files: those of a file opened normally (mkstemp's 0600 would hide shared checkpoints)
FILE_MODE = _file_mode_from_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the complete new one, never a part.
    A kill leaves at most a hidden ``.<name>.<random>.tmp`` file (see :func:`remove_stale_temporaries`)."""
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
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def content_digest(obj: Any) -> str:
    """SHA-256 of a checkpoint's content (tensors by dtype, shape and bytes; other values by type and value; dict keys
    in sorted order), so that the values read back can be compared with the values written: a byte flipped inside
    a tensor or a number of the file changes it (``torch.load`` checks no checksum of the zip entries)."""
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


def atomic_torch_save(obj: Any, path: str | Path) -> str:
    """``torch.save`` atomically; returns the SHA-256 of the written bytes. An srvp checkpoint (a dict with
    ``format``) is saved with the :func:`content_digest` of everything else under ``digest``, which
    :func:`read_checkpoint` verifies."""
    import io

    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        obj = {**{k: v for k, v in obj.items() if k != "digest"}}
        obj["digest"] = content_digest({k: v for k, v in obj.items() if k != "digest"})
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_checkpoint(model: torch.nn.Module, config: RunConfig, step: int, optimizer=None, scheduler=None,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The plain-data dictionary saved in a checkpoint file."""
    state: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "step": int(step), "config": config.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "rng": {"torch": torch.get_rng_state()},
    }
    if torch.cuda.is_available():
        state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if extra:
        state["extra"] = extra
    return state


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


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file safely (``weights_only``); a missing, corrupt or foreign file raises a one-line
    :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        reason, refused_object = describe_unpickling_error(e)
        if refused_object:
            raise CheckpointError(f"{path}: refused to load: the file holds more than plain tensors and numbers "
                                  f"(possible code payload; {reason[:160]})") from None
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt: {reason[:160]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, AttributeError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt: {msg[:160]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "model" not in state:
        raise CheckpointError(f"{path}: not an srvp checkpoint (for the authors' checkpoints use "
                              f"`srvp import-official`)")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {state.get('version')} is not supported "
                              f"(expected {VERSION})")
    digest = state.pop("digest", None)
    if digest is not None and content_digest(state) != digest:
        raise CheckpointError(f"{path}: corrupt checkpoint: its content does not match the checksum written with it "
                              f"(damaged on disk or in transfer); use another checkpoint of the run")
    return state


def config_of(state: dict[str, Any], path: str | Path) -> RunConfig:
    try:
        return RunConfig.from_dict(state.get("config"), f"{path} (config)")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None


def load_state_into(model: torch.nn.Module, weights: dict[str, torch.Tensor], path: str | Path,
                    optional: tuple[str, ...] = (), problem: str = "weights do not match the model of its config"
                    ) -> None:
    """``model.load_state_dict`` requiring every parameter and buffer (except names ending in ``optional``) with
    the same shape and finite values; anything else is a one-line error saying which entries do not match."""
    own = model.state_dict()
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
    model.load_state_dict(weights, strict=not optional)


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the model of a checkpoint (configuration included) in evaluation mode. The full
    :class:`RunConfig` is available as ``model.run_config``."""
    from srvp.models import build_model

    state = read_checkpoint(path, map_location)
    cfg = config_of(state, path)
    model = build_model(cfg.model)
    load_state_into(model, state["model"], path)
    model.run_config = cfg
    model.checkpoint_step = int(state.get("step", 0))
    return model.eval()


# ----------------------------------------------------------------------------------------------------------------
# Periodic checkpoints of a run, with a manifest
# ----------------------------------------------------------------------------------------------------------------


class CheckpointManager:
    """Keeps the last ``keep`` periodic checkpoints of a run in ``directory`` and a manifest of them.

    ``directory/step_00001000.pt`` ... plus ``directory/manifest.json``::

        {"checkpoints": [{"file": "step_00001000.pt", "step": 1000, "sha256": "..."}, ...]}
    """

    def __init__(self, directory: str | Path, keep: int = 3):
        self.directory = Path(directory)
        self.keep = keep

    def _manifest(self) -> list[dict[str, Any]]:
        path = self.directory / MANIFEST
        if not path.exists():
            # a run killed between writing its first checkpoint and its manifest: list the files (unverified)
            return self._files_on_disk()
        try:
            entries = json.loads(path.read_text())["checkpoints"]
            # only plain step_<N>.pt names in this directory: a crafted manifest must not make save() delete or
            # load files elsewhere
            return [e for e in entries if isinstance(e, dict) and {"file", "step", "sha256"} <= set(e)
                    and isinstance(e["file"], str) and re.fullmatch(r"step_\d+\.pt", e["file"])
                    and isinstance(e["step"], int)]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
            warnings.warn(f"{path}: unreadable manifest; rebuilding it from the checkpoint files", stacklevel=2)
            return self._files_on_disk()

    def _files_on_disk(self) -> list[dict[str, Any]]:
        """Entries (without checksums) for the ``step_<N>.pt`` files in the directory, oldest first."""
        entries = []
        for p in self.directory.glob("step_*.pt"):
            match = re.fullmatch(r"step_(\d+)\.pt", p.name)
            if match:
                entries.append({"file": p.name, "step": int(match.group(1)), "sha256": None})
        return sorted(entries, key=lambda e: e["step"])

    def save(self, state: dict[str, Any]) -> Path:
        step = int(state["step"])
        name = f"step_{step:08d}.pt"
        digest = atomic_torch_save(state, self.directory / name)
        entries = [e for e in self._manifest() if e["file"] != name] + [{"file": name, "step": step,
                                                                          "sha256": digest}]
        entries.sort(key=lambda e: e["step"])
        entries = entries[-self.keep:]
        atomic_write_text(self.directory / MANIFEST, json.dumps({"checkpoints": entries}, indent=1) + "\n")
        # Every other step file goes: the stale ones, and those a kill left unlisted (between their rename and the
        # manifest's, or between the manifest's and their deletion), which would otherwise stay forever.
        kept = {e["file"] for e in entries}
        for entry in self._files_on_disk():
            if entry["file"] not in kept:
                (self.directory / entry["file"]).unlink(missing_ok=True)
        return self.directory / name

    def latest_good(self, map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], Path] | None:
        """The newest checkpoint whose checksum matches and that loads; bad ones are skipped with a warning."""
        for entry in reversed(self._manifest()):
            path = self.directory / entry["file"]
            if not path.exists():
                warnings.warn(f"{path}: listed in the manifest but missing; using an older checkpoint",
                              stacklevel=2)
                continue
            if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
                warnings.warn(f"{path}: checksum mismatch (truncated or corrupt); using an older checkpoint",
                              stacklevel=2)
                continue
            try:
                return read_checkpoint(path, map_location), path
            except CheckpointError as e:
                warnings.warn(f"{e}; using an older checkpoint", stacklevel=2)
        return None
