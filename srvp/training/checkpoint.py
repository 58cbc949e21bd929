"""Checkpoints of a run: the file format, a manifest with checksums, safe loading (file utilities: :mod:`srvp.files`).

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
import io
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from srvp.config import RunConfig
from srvp.errors import CheckpointError, ConfigError
from srvp.files import (
    atomic_write_bytes,
    atomic_write_text,
    content_digest,
    load_state_checked,
    safe_torch_load,
    sha256_file,
)
from srvp.models import LoadedModel, build_model

FORMAT = "srvp-checkpoint"
VERSION = 1
MANIFEST = "manifest.json"


def atomic_torch_save(obj: Any, path: str | Path) -> str:
    """``torch.save`` atomically; returns the SHA-256 of the written bytes. An srvp checkpoint (a dict with
    ``format``) is saved with the :func:`content_digest` of everything else under ``digest``, which
    :func:`read_checkpoint` verifies."""
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        obj = {**{k: v for k, v in obj.items() if k != "digest"}}
        obj["digest"] = content_digest({k: v for k, v in obj.items() if k != "digest"})
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


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


@dataclass
class InitialWeights:
    """What a run started from trained weights (``TrainConfig.init_from``) takes from its source: the model's
    ``state_dict`` and its training history (:attr:`srvp.models.LoadedModel.history`), which the run's checkpoints
    carry on as their ``lineage``."""

    state_dict: dict[str, torch.Tensor]
    history: list[dict[str, Any]] = field(default_factory=list)


def stage_record(config: RunConfig, step: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One training stage of a model's history: the run's steps and clocks, where its weights started, and its
    recipe (the training options and the objective's weights that a stage may change)."""
    extra = extra or {}
    t, m, d = config.train, config.model, config.data
    recipe = {"lr": t.lr, "lr_schedule": t.lr_schedule, "warmup_steps": t.warmup_steps, "decay_steps": t.decay_steps,
              "planned_steps": t.steps, "batch_size": t.batch_size, "precision": t.precision,
              "ema_decay": t.ema_decay, "autoencoder_steps": t.autoencoder_steps,
              "short_clip_steps": t.short_clip_steps, "short_clip_len": t.short_clip_len,
              "kl_warmup_steps": t.kl_warmup_steps, "obs_scale": m.obs_scale, "beta_z": m.beta_z, "dt": m.dt,
              "dataset": d.dataset, "num_digits": d.num_digits, "seq_len": d.seq_len}
    return {"steps": int(step), "train_seconds": extra.get("train_seconds"),
            "train_cpu_seconds": extra.get("train_cpu_seconds"), "init_from": t.init_from, "recipe": recipe}


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file safely (``weights_only``); a missing, corrupt or foreign file raises a one-line
    :class:`CheckpointError`."""
    state = safe_torch_load(path, "checkpoint", map_location)
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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> LoadedModel:
    """The model of a checkpoint file rebuilt from the configuration it carries, in evaluation mode, with that
    :class:`RunConfig` and its step (weights only: the optimizer state is not read into anything)."""
    state = read_checkpoint(path, map_location)
    cfg = config_of(state, path)
    model = build_model(cfg.model)
    load_state_checked(model, state["model"], path)
    step, extra = int(state.get("step", 0)), state.get("extra", {})
    history = [*extra.get("lineage", []), stage_record(cfg, step, extra)]
    return LoadedModel(model.eval(), cfg, step, str(path), history)


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
