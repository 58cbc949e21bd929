"""Trained models by name, in the Hugging Face Hub layout.

A model folder in the Hub layout holds::

    config.json         the run's configuration (sections model, data, train) and an "srvp" entry
                        (format version, training step, dtype of the stored weights)
    model.safetensors   the weights (safetensors: a header and raw tensors; loading it cannot execute code),
                        whose metadata repeats the model section of config.json
    README.md           the model card (optional)

or, written with ``save_pretrained(..., max_shard_bytes=N)`` when the weights exceed N bytes, the Hub's sharded
layout instead of ``model.safetensors``::

    model-00001-of-0000M.safetensors ...   the weights in M files of at most N bytes each (a tensor larger than N
                                           alone in its file), each with the same metadata
    model.safetensors.index.json           {"metadata": {"total_size": ...}, "weight_map": {tensor: file}}

Both are checked the same way when read: the digest of all the tensors must match the one written with them.

:func:`load_pretrained` resolves, in this order: a name of a model shipped with the package
(:data:`SHIPPED`, listed by ``srvp pretrained list``), a name of one of the authors' trained models (:data:`AUTHORS`:
their public Hub mirror's folder, fetched through ``huggingface_hub``, its ``config.json`` checked against what the
paper gives for that name and the paper's test protocol set), a local path (a folder in the Hub layout, a folder of the
authors' code with ``config.json`` + ``model.pt``, an ``srvp train`` checkpoint ``.pt``), then a Hub repository id
``owner/name``, or a folder of one ``owner/name/folder`` (in either layout), fetched through ``huggingface_hub``
(cached; with ``HF_HUB_OFFLINE=1`` only the cache is used).
Every failure is a one-line :class:`~srvp.errors.CheckpointError` that says what to do.

:func:`save_pretrained` writes the layout into a staging folder renamed into place (whole or absent);
:func:`push_to_hub` uploads such a folder with ``huggingface_hub``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from srvp.config import PRESETS, ModelConfig, RunConfig, read_json_object
from srvp.errors import CheckpointError, ConfigError
from srvp.files import (
    content_digest,
    load_state_checked,
    read_json_marker,
    read_state_dict,
    replaceable_names,
    staged_output_dir,
)
from srvp.models import LoadedModel, build_model
from srvp.models.official import config_from_official, convert_state_dict
from srvp.training.checkpoint import InitialWeights, load_checkpoint, stage_record

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
#: the Hub's index of sharded weights (tensor name -> shard file), written instead of WEIGHTS_FILE when sharded
INDEX_FILE = "model.safetensors.index.json"
#: shard file names of the Hub convention: model-00001-of-00003.safetensors
SHARD_NAME = re.compile(r"^model-(\d{5})-of-(\d{5})\.safetensors$")
#: the shard size that fits the 16 MiB per file that some transfers allow (benchmarks/gpu_check.py)
SHARD_BYTES_16MIB = 16 * 2**20
HUB_FORMAT = 1
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
#: ``owner/name`` and an optional folder of the repository (``owner/name/kth``, ``owner/name/mmnist/stochastic``)
_REPO_PATH = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:/(?P<folder>[\w.-]+(?:/[\w.-]+)*))?$")


@dataclass(frozen=True)
class ShippedModel:
    """A model installed with the package (``srvp/weights/<name>/`` in the Hub layout)."""

    name: str
    description: str

    @property
    def path(self) -> Path:
        return Path(str(resources.files("srvp") / "weights" / self.name))


# The one registry of shipped models: add an entry and its folder under srvp/weights/.
SHIPPED: dict[str, ShippedModel] = {m.name: m for m in [
    ShippedModel("smmnist-cpu", "SRVP (the paper's SM-MNIST model) trained on this project's CPUs in two stages "
                                "(7,317 steps, about 3.5 one-thread hours) on two-digit Stochastic Moving MNIST; 5 "
                                "conditioning frames -> 20 predicted"),
]}


def has_weights(directory: str | Path) -> bool:
    """Whether ``directory`` holds Hub-layout weights: ``model.safetensors`` or a sharded index."""
    return (Path(directory) / WEIGHTS_FILE).is_file() or (Path(directory) / INDEX_FILE).is_file()


def available() -> list[ShippedModel]:
    """The shipped models whose files are installed."""
    return [m for m in SHIPPED.values() if has_weights(m.path)]


# --------------------------------------------------------------------------------------------------------------------
# The authors' trained models, by name
# --------------------------------------------------------------------------------------------------------------------

#: the public Hub mirror of the authors' trained models (their server, data.lip6.fr/srvp, is down since March 2025)
AUTHORS_MIRROR = "nkiyohara/srvp-pretrained-model-mirror"
#: the files of a model in the authors' layout
AUTHORS_FILES = (CONFIG_FILE, "model.pt")
#: the defaults of the authors' code (its args.py) for the options a config.json may leave out
_AUTHORS_DEFAULTS: dict[str, Any] = {"archi": "dcgan", "nx": 64, "skipco": False, "n_euler_steps": 1,
                                     "obs_scale": 1.0, "deterministic": False}
#: what each checked option of the authors' config.json is, for the messages
_OPTION_MEANING = {"dataset": "dataset", "deterministic": "deterministic bounces", "archi": "encoder/decoder",
                   "nx": "frame size", "nc": "channels", "ny": "size of y", "nz": "size of z",
                   "skipco": "skip connections", "nt_inf": "content frames k", "nt_cond": "conditioning frames",
                   "n_euler_steps": "Euler steps per frame", "obs_scale": "observation scale"}


@dataclass(frozen=True)
class PaperProtocol:
    """The paper's test protocol of a dataset: condition on ``cond_frames`` frames, predict ``predicted`` frames and
    report the best of ``samples`` futures per test sequence."""

    dataset: str
    cond_frames: int
    predicted: int
    samples: int = 100

    def __str__(self) -> str:
        return f"{self.cond_frames} -> {self.predicted} frames, best of {self.samples}"


def _preset_protocol(dataset: str, samples: int = 100) -> PaperProtocol:
    data = PRESETS[dataset]["data"]
    return PaperProtocol(dataset, data["cond_frames"], data["test_seq_len"] - data["cond_frames"], samples)


#: the paper's test protocols, by srvp dataset name (from the presets; deterministic Moving MNIST on one sample)
PAPER_PROTOCOLS: dict[str, PaperProtocol] = {
    "smmnist": _preset_protocol("smmnist"), "mmnist": _preset_protocol("mmnist", samples=1),
    "kth": _preset_protocol("kth"), "bair": _preset_protocol("bair"),
}


@dataclass(frozen=True)
class AuthorsModel:
    """A model trained by the paper's authors, in their layout (``config.json`` + ``model.pt``) in ``folder`` of the
    Hub repository ``repo``. ``options`` are the values of their ``config.json`` that define this model (from the
    paper's appendix and the authors' README); a download that says otherwise is refused."""

    name: str
    label: str
    description: str
    folder: str
    options: dict[str, Any]
    protocol: PaperProtocol
    training: str
    repo: str = AUTHORS_MIRROR

    @property
    def files(self) -> tuple[str, ...]:
        """The repository's files of this model."""
        return tuple(f"{self.folder}/{name}" for name in AUTHORS_FILES)

    def download_command(self, revision: str | None = None) -> str:
        """The shell command that puts this model in the Hugging Face cache (with network access)."""
        return f"{hub_cli()} download {self.repo} {' '.join(self.files)}" \
            + (f" --revision {revision}" if revision else "")


_MNIST = {"archi": "dcgan", "nx": 64, "nc": 1, "ny": 20, "nz": 20, "skipco": False, "nt_inf": 5, "nt_cond": 5,
          "n_euler_steps": 1, "obs_scale": 1.0}
_VGG = {"archi": "vgg", "nx": 64, "ny": 50, "nz": 50, "skipco": True, "n_euler_steps": 2}

# The one registry of the authors' models (the values: the paper's appendix C and the training options of the
# authors' README; training facts from the same two sources).
AUTHORS: dict[str, AuthorsModel] = {m.name: m for m in [
    AuthorsModel(
        "authors-smmnist", "SM-MNIST", "the paper's two-digit Stochastic Moving MNIST model, by its authors: DCGAN, "
        "64x64 grey, ny=nz=20, no skip connections", "mmnist/stochastic",
        {"dataset": "smmnist", "deterministic": False, **_MNIST}, PAPER_PROTOCOLS["smmnist"],
        "1,100,000 steps (the last 100,000 with a linearly decaying learning rate), batch 128, 15-frame clips "
        "generated on the fly"),
    AuthorsModel(
        "authors-mmnist-deterministic", "deterministic Moving MNIST", "the paper's deterministic two-digit Moving "
        "MNIST model, by its authors: DCGAN, 64x64 grey, ny=nz=20, no skip connections", "mmnist/deterministic",
        {"dataset": "smmnist", "deterministic": True, **_MNIST}, PAPER_PROTOCOLS["mmnist"],
        "900,000 steps (the last 100,000 decaying), batch 128, 15-frame clips generated on the fly"),
    AuthorsModel(
        "authors-kth", "KTH", "the paper's KTH model, by its authors: VGG with skip connections, 64x64 grey, "
        "ny=nz=50, dt=1/2", "kth",
        {"dataset": "kth", **_VGG, "nc": 1, "nt_inf": 3, "nt_cond": 10, "obs_scale": 0.2}, PAPER_PROTOCOLS["kth"],
        "200,000 steps (the last 50,000 decaying), batch 100, 20-frame clips of 20 people, the checkpoint with the "
        "best validation score"),
    AuthorsModel(
        "authors-bair", "BAIR", "the paper's BAIR robot-pushing model, by its authors: VGG with skip connections, "
        "64x64 colour, ny=nz=50, dt=1/2", "bair",
        {"dataset": "bair", **_VGG, "nc": 3, "nt_inf": 2, "nt_cond": 2, "obs_scale": 0.71}, PAPER_PROTOCOLS["bair"],
        "250,000 steps with batch 128 in the paper, 1,500,000 (the last 500,000 decaying) with batch 192 in the "
        "authors' README; 12-frame clips"),
    AuthorsModel(
        "authors-human", "Human3.6M", "the authors' Human3.6M model (ICML 2020 version of the paper): VGG with "
        "skip connections, 64x64 colour, ny=nz=50, dt=1/2", "human",
        {"dataset": "human", **_VGG, "nc": 3, "nt_inf": 3, "nt_cond": 8, "obs_scale": 0.2},
        PaperProtocol("human", 8, 45),
        "350,000 steps (the last 25,000 decaying), batch 100, 16-frame clips of every 8th frame (the authors' "
        "README), the checkpoint with the best validation score"),
]}


def hub_cli() -> str:
    """The command-line program of the installed ``huggingface_hub``: ``hf`` from 0.34 on, ``huggingface-cli``
    before."""
    import huggingface_hub

    try:
        version = tuple(int(part) for part in huggingface_hub.__version__.split(".")[:2])
    except ValueError:
        return "hf"
    return "hf" if version >= (0, 34) else "huggingface-cli"


def paper_protocol(name: str | Path, config: RunConfig) -> PaperProtocol | None:
    """The paper's test protocol of a model: the authors' model's by its name, else the one of its dataset."""
    if str(name) in AUTHORS:
        return AUTHORS[str(name)].protocol
    return PAPER_PROTOCOLS.get(config.data.dataset)


def _same(found: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(found, bool):
        return found is expected
    if isinstance(expected, float) and isinstance(found, int | float):
        return abs(found - expected) < 1e-9
    return type(found) is type(expected) and found == expected


def check_authors_options(model: AuthorsModel, options: dict[str, Any], where: str) -> None:
    """Refuse, with a one-line :class:`CheckpointError` naming the model, the option, the expected and the found
    value, an authors' ``config.json`` (``options``, read from ``where``) that describes another model than
    ``model``'s name (an option left out takes the authors' default)."""
    for key, expected in model.options.items():
        found = options.get(key, _AUTHORS_DEFAULTS.get(key))
        if not _same(found, expected):
            shown = "missing" if found is None else repr(found)
            raise CheckpointError(
                f"{model.name}: {where} says {key}={shown} ({_OPTION_MEANING[key]}), but the paper's {model.label} "
                f"model has {key}={expected!r}; refusing a different model under this name (the upstream file "
                f"changed?)")


def cached_authors_folder(model: AuthorsModel) -> Path | None:
    """The folder of ``model`` in the local Hugging Face cache when both its files are there (no network)."""
    from huggingface_hub import try_to_load_from_cache

    paths = [try_to_load_from_cache(model.repo, name) for name in model.files]
    if all(isinstance(p, str) and Path(p).is_file() for p in paths):
        return Path(paths[0]).parent
    return None


def _offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    return env or bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _not_cached(model: AuthorsModel, why: str, revision: str | None) -> CheckpointError:
    from huggingface_hub import constants

    working = ", ".join(m.name for m in available()) or "none installed"
    return CheckpointError(
        f"{model.name}: the authors' {model.label} model ({model.repo}, folder {model.folder}) is not in the local "
        f"Hugging Face cache ({constants.HF_HUB_CACHE}) and {why}; download it where the network allows with: "
        f"{model.download_command(revision)}; shipped models that work now: {working}")


def _download_authors(model: AuthorsModel, revision: str | None) -> Path:
    """The local folder of ``model`` (its two files only), from the Hugging Face cache or downloaded into it."""
    from huggingface_hub import snapshot_download

    try:
        snapshot = Path(snapshot_download(model.repo, revision=revision, allow_patterns=list(model.files)))
    except Exception as e:  # offline, no network, no such revision: one line, what to do
        if _offline():
            raise _not_cached(model, "the Hub is off (HF_HUB_OFFLINE)", revision) from None
        if type(e).__name__ in ("LocalEntryNotFoundError", "IncompleteSnapshotError"):
            raise _not_cached(model, "the Hub cannot be reached", revision) from None
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{model.name}: could not fetch {model.repo}, folder {model.folder} ({reason})"
                              ) from None
    folder = snapshot / model.folder
    missing = [name for name in AUTHORS_FILES if not (folder / name).is_file()]
    if missing and _offline():
        raise _not_cached(model, "the Hub is off (HF_HUB_OFFLINE)", revision)
    if missing:
        raise CheckpointError(f"{model.name}: {model.repo} has no {model.folder}/{missing[0]} (the mirror changed); "
                              f"give a local folder of the authors' model instead")
    return folder


def load_authors_model(name: str, revision: str | None = None) -> LoadedModel:
    """The authors' model ``name`` (:data:`AUTHORS`) from the Hub mirror (cached by ``huggingface_hub``): its
    ``config.json`` checked against the name's model before ``model.pt`` is read (tensors only, never code), and
    the paper's test protocol of the name set in the configuration (conditioning frames, test clip length)."""
    model = AUTHORS[name]
    folder = _download_authors(model, revision)
    options = read_official_options(folder / CONFIG_FILE)
    check_authors_options(model, options, f"{model.repo}/{model.folder}/{CONFIG_FILE}")
    loaded = read_official_folder(folder)
    loaded.config.data.cond_frames = model.protocol.cond_frames
    loaded.config.data.test_seq_len = model.protocol.cond_frames + model.protocol.predicted
    loaded.source = f"{name} ({model.repo}, folder {model.folder})"
    return loaded


# --------------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------------


def earlier_model_files(directory: str | Path) -> tuple[str, ...] | None:
    """The files of a model folder written by :func:`save_pretrained` in ``directory``, recognised by its
    ``config.json`` with an ``"srvp"`` entry (None for any other folder): only these are replaced by an overwrite
    (the weights file or the shards and their index, and the card)."""
    config = read_json_marker(Path(directory) / CONFIG_FILE)
    if config is None or not isinstance(config.get("srvp"), dict):
        return None
    try:
        shards = [entry.name for entry in os.scandir(directory) if SHARD_NAME.match(entry.name)]
    except OSError:
        shards = []
    return (WEIGHTS_FILE, INDEX_FILE, CARD_FILE, *shards)


def _plan_shards(tensors: dict[str, torch.Tensor], max_bytes: int, metadata: dict[str, str]) -> list[list[str]]:
    """Tensor names grouped into as few files of at most ``max_bytes`` bytes each (headers included) as first-fit
    by decreasing size finds (a tensor larger than ``max_bytes`` alone in its file); the files and the tensors in
    each in state-dict order. (Filling files in state-dict order would write the paper's SM-MNIST model, 40.7 MiB,
    as four files of 16 MiB instead of three.)"""
    fixed = 8 + len(json.dumps({"__metadata__": metadata})) + 64  # length prefix, metadata, padding
    order = {name: i for i, name in enumerate(tensors)}
    size = {name: t.numel() * t.element_size() + len(json.dumps(name)) + 96 + 21 * t.dim()  # data + header entry
            for name, t in tensors.items()}
    shards: list[list[str]] = []
    used: list[int] = []
    for name in sorted(tensors, key=lambda n: (-size[n], order[n])):
        i = next((i for i, u in enumerate(used) if u + size[name] <= max_bytes), None)
        if i is None:
            shards.append([])
            used.append(fixed)
            i = len(shards) - 1
        shards[i].append(name)
        used[i] += size[name]
    return sorted((sorted(names, key=order.get) for names in shards), key=lambda names: order[names[0]])


def save_pretrained(model: torch.nn.Module, config: RunConfig, directory: str | Path, *, step: int = 0,
                    card: str | None = None, dtype: str = "float32", overwrite: bool = False,
                    option: str = "directory", history: list[dict[str, Any]] | None = None,
                    max_shard_bytes: int | None = None) -> Path:
    """Write ``model`` and ``config`` in the Hub layout into ``directory`` (created; it must not exist unless
    ``overwrite``), with the model's training ``history`` (:attr:`LoadedModel.history`) in the ``srvp`` entry.
    ``dtype`` (``float32``, ``float16``, ``bfloat16``) is the storage type of floating-point weights; they are cast
    back to float32 when loaded. With ``max_shard_bytes`` (e.g. :data:`SHARD_BYTES_16MIB`), weights that do not fit
    one file of that size are written as the Hub's shards (``model-0000N-of-0000M.safetensors``, each at most that
    size unless one tensor is larger, and ``model.safetensors.index.json``); weights that fit stay one
    ``model.safetensors``. The folder is written aside and renamed into place
    (:func:`srvp.files.staged_output_dir`); ``overwrite`` replaces an empty folder or a model folder written by this
    function, and refuses any other folder with a one-line :class:`ConfigError`, leaving it as it was (``option``
    names the argument in that message)."""
    if dtype not in _DTYPES:
        raise ConfigError(f"dtype={dtype!r}: choose one of {', '.join(_DTYPES)}")
    if max_shard_bytes is not None and (isinstance(max_shard_bytes, bool) or not isinstance(max_shard_bytes, int)
                                        or max_shard_bytes < 1):
        raise ConfigError(f"max_shard_bytes={max_shard_bytes!r} must be a positive number of bytes (or None)")
    directory = Path(directory)
    if directory.exists() and not overwrite:
        raise CheckpointError(f"{directory}: already exists (choose another folder or allow overwriting)")
    replaceable_names(directory, CONFIG_FILE, option, earlier_model_files)  # before the work, not after
    tensors = {k: (v.detach().to(_DTYPES[dtype]) if v.is_floating_point() else v.detach()).cpu().contiguous()
               for k, v in model.state_dict().items()}
    meta = {"srvp": {"format": HUB_FORMAT, "step": int(step), "weights_dtype": dtype, "history": list(history or [])}}
    config_text = json.dumps({**config.to_dict(), **meta}, indent=2, sort_keys=True) + "\n"
    header = {"format": "pt", "srvp_model_config": json.dumps(config.to_dict()["model"], sort_keys=True),
              "srvp_content_sha256": content_digest(tensors)}
    shards = _plan_shards(tensors, max_shard_bytes, header) if max_shard_bytes is not None else [list(tensors)]
    try:
        with staged_output_dir(directory, CONFIG_FILE, option, earlier_model_files) as staging:
            if len(shards) == 1:
                save_file(tensors, str(staging / WEIGHTS_FILE), metadata=header)
            else:  # every shard carries the digest of all the tensors; the index maps each tensor to its file
                weight_map = {}
                for i, names in enumerate(shards, 1):
                    name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
                    save_file({k: tensors[k] for k in names}, str(staging / name), metadata=header)
                    weight_map.update(dict.fromkeys(names, name))
                total = sum(t.numel() * t.element_size() for t in tensors.values())
                index = {"metadata": {"total_size": total, **header}, "weight_map": weight_map}
                (staging / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
            if card is not None:
                (staging / CARD_FILE).write_text(card)
            (staging / CONFIG_FILE).write_text(config_text)
    except (OSError, SafetensorError) as e:  # a full disk, a folder that cannot be written: the staging is gone
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).split(": ")[-1]
        raise CheckpointError(f"{directory}: cannot write the model ({reason}); nothing was written") from None
    return directory


def push_to_hub(directory: str | Path, repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Upload a folder written by :func:`save_pretrained` to the Hub repository ``repo_id`` (created if needed);
    returns the commit URL. Needs network access and a token with write access."""
    from huggingface_hub import HfApi

    directory = Path(directory)
    if not has_weights(directory):
        raise CheckpointError(f"{directory}: no {WEIGHTS_FILE} nor {INDEX_FILE}; write the folder with "
                              f"save_pretrained first")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return str(api.upload_folder(folder_path=str(directory), repo_id=repo_id))


# --------------------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------------------


def _read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The metadata and the tensors of one safetensors file; an unreadable file is a one-line error."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            return header, {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable safetensors file ({msg[:160]})") from None


def _read_shards(directory: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The metadata and the tensors of sharded weights (:data:`INDEX_FILE` and the files it names): every file of
    the Hub's ``model-0000N-of-0000M`` series present, each holding exactly the tensors the index maps to it, all
    written by one save (the same metadata)."""
    index_path = directory / INDEX_FILE
    index = read_json_object(index_path, "weights index", "with a weight_map", CheckpointError)
    weight_map = index.get("weight_map")
    if not (isinstance(weight_map, dict) and weight_map and all(isinstance(v, str) for v in weight_map.values())):
        raise CheckpointError(f"{index_path}: no weight_map (tensor name -> shard file) in the index")
    files = sorted(set(weight_map.values()))
    numbers = [SHARD_NAME.match(name) for name in files]
    if not all(numbers) or {int(m.group(2)) for m in numbers} != {len(files)} \
            or sorted(int(m.group(1)) for m in numbers) != list(range(1, len(files) + 1)):
        shown = ", ".join(files[:3]) + (" ..." if len(files) > 3 else "")
        raise CheckpointError(f"{index_path}: the weight_map names {shown}, not a complete series "
                              f"model-00001-of-0000M.safetensors ... (a damaged or foreign index)")
    header: dict[str, str] | None = None
    weights: dict[str, torch.Tensor] = {}
    for name in files:
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"{path}: shard listed in {INDEX_FILE} not found (an incomplete copy or "
                                  f"download); copy or download the model again")
        shard_header, tensors = _read_safetensors(path)
        listed = {k for k, v in weight_map.items() if v == name}
        if set(tensors) != listed:
            raise CheckpointError(f"{path}: holds other tensors than {INDEX_FILE} maps to it (shards of another "
                                  f"save, or a damaged index); copy or download the model again")
        if header is None:
            header = shard_header
        elif shard_header != header:
            raise CheckpointError(f"{path}: written by another save than {files[0]} (the shards do not belong "
                                  f"together); copy or download the model again")
        weights.update(tensors)
    return header or {}, weights


def read_hub_folder(directory: str | Path) -> LoadedModel:
    """Load a folder in the Hub layout, with one weights file or sharded (weights read with safetensors only)."""
    directory = Path(directory)
    weights_path, config_path = directory / WEIGHTS_FILE, directory / CONFIG_FILE
    data = read_json_object(config_path, "model config", "with sections model, data, train", CheckpointError)
    meta = data.pop("srvp", {})
    if not isinstance(meta, dict) or meta.get("format") != HUB_FORMAT:
        raise CheckpointError(f"{config_path}: not an srvp model config (no \"srvp\": {{\"format\": {HUB_FORMAT}}} "
                              f"entry)")
    try:
        config = RunConfig.from_dict(data, str(config_path))
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    if weights_path.is_file():
        header, weights = _read_safetensors(weights_path)
    elif (directory / INDEX_FILE).is_file():
        weights_path = directory / INDEX_FILE  # the sharded weights are named by their index in the messages
        header, weights = _read_shards(directory)
    else:
        raise CheckpointError(f"{weights_path}: weights file not found")
    digest = header.get("srvp_content_sha256")
    if digest is not None and content_digest(weights) != digest:
        raise CheckpointError(f"{weights_path}: corrupt weights: their content does not match the checksum written "
                              f"with them (damaged on disk or in transfer); download or copy the model again")
    stored = header.get("srvp_model_config")
    if stored is not None and stored != json.dumps(config.to_dict()["model"], sort_keys=True):
        raise CheckpointError(f"{config_path}: the model section does not match the one the weights in "
                              f"{weights_path.name} were saved with")
    model = build_model(config.model)
    weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    load_state_checked(model, weights, weights_path)
    step = int(meta.get("step", 0))
    history = meta.get("history")
    if not (isinstance(history, list) and history and all(isinstance(h, dict) for h in history)):
        history = [stage_record(config, step)]  # a folder written before histories: one stage, clocks unknown
    return LoadedModel(model.eval(), config, step, str(directory), history)


def read_official_options(path: str | Path) -> dict[str, Any]:
    """The official ``config.json`` as a dict; a missing or malformed file raises :class:`CheckpointError`."""
    return read_json_object(path, "official config", "of the official options (nx, nc, nf, ...)",
                            CheckpointError)


def read_official_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The official ``state_dict`` (tensors only), loaded safely; anything else raises :class:`CheckpointError`."""
    return read_state_dict(path, "official model's state_dict")


def read_official_files(state_dict: str | Path, config: str | Path) -> LoadedModel:
    """Load a model of the authors' code from its ``model.pt`` (read with ``weights_only``) and ``config.json``."""
    options = read_official_options(config)
    run_config = config_from_official(options, str(config))
    model = build_model(run_config.model)
    load_state_checked(model, convert_state_dict(read_official_state_dict(state_dict)), state_dict)
    return LoadedModel(model.eval(), run_config, 0, str(Path(state_dict).parent))


def read_official_folder(directory: str | Path) -> LoadedModel:
    """Load a folder of the authors' code as they publish it (``config.json`` + ``model.pt``)."""
    return read_official_files(Path(directory) / "model.pt", Path(directory) / CONFIG_FILE)


def read_checkpoint_file(path: str | Path) -> LoadedModel:
    """Load an ``srvp train`` checkpoint (``.pt``; weights only, the optimizer state is ignored)."""
    return load_checkpoint(path)


def _known_names() -> str:
    return ", ".join([*sorted(SHIPPED), *AUTHORS])


def _read_local(path: Path) -> LoadedModel:
    if path.is_dir():
        if (path / WEIGHTS_FILE).exists() or (path / INDEX_FILE).exists():
            return read_hub_folder(path)
        if (path / "model.pt").exists() and (path / CONFIG_FILE).exists():
            return read_official_folder(path)
        raise CheckpointError(f"{path}: neither a Hub-layout folder ({WEIGHTS_FILE} or {INDEX_FILE} + "
                              f"{CONFIG_FILE}) nor an official SRVP folder (model.pt + {CONFIG_FILE})")
    if path.suffix == ".safetensors" or path.name == INDEX_FILE:
        return read_hub_folder(path.parent)
    return read_checkpoint_file(path)


def _repo_not_cached(where: str, repo_id: str, revision: str | None, subfolder: str | None) -> CheckpointError:
    command = f"{hub_cli()} download {repo_id}" + (f" --revision {revision}" if revision else "") \
        + (f" --include '{subfolder}/*'" if subfolder else "")
    return CheckpointError(f"{where}: not a known model name ({_known_names()}) nor a local path, and the Hub "
                           f"repository is not in the local cache (offline); download it once with network access "
                           f"({command}) or give a local folder")


def _download(repo_id: str, revision: str | None, subfolder: str | None = None) -> Path:
    """The local folder of ``repo_id`` (or of its ``subfolder``) from the Hub cache, downloading only the files of a
    model in either layout (the Hub's, or the authors' ``config.json`` + ``model.pt``) in that folder."""
    from huggingface_hub import snapshot_download

    prefix = f"{subfolder}/" if subfolder else ""
    names = [WEIGHTS_FILE, INDEX_FILE, "model-*-of-*.safetensors", CONFIG_FILE, CARD_FILE, "model.pt"]
    where = f"{repo_id}, folder {subfolder}" if subfolder else repo_id
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=[prefix + n for n in names]))
        folder = folder / subfolder if subfolder else folder
        if not folder.is_dir() and _offline():  # the snapshot holds other folders of the repository, not this one
            raise _repo_not_cached(where, repo_id, revision, subfolder)
        if not folder.is_dir():
            raise CheckpointError(f"{where}: the repository has no folder {subfolder!r}")
        return folder
    except CheckpointError:
        raise
    except Exception as e:  # offline, no such repository, no permission, network error: one line, what to do
        if _offline() or type(e).__name__ in ("LocalEntryNotFoundError", "OfflineModeIsEnabled",
                                              "IncompleteSnapshotError"):
            raise _repo_not_cached(where, repo_id, revision, subfolder) from None
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{where}: could not fetch the Hub repository ({reason}); known names: "
                              f"{_known_names()}") from None


def load_pretrained(name_or_path: str | Path, revision: str | None = None, subfolder: str | None = None
                    ) -> LoadedModel:
    """A model by shipped name, local path or Hub repository id (see the module docstring). A model in a folder of a
    Hub repository is ``owner/name/folder`` or ``owner/name`` with ``subfolder="folder"``; only that folder is
    downloaded, in either layout (the Hub's, or the authors' ``config.json`` + ``model.pt``, read without executing
    code)."""
    text = str(name_or_path)
    if text in SHIPPED:
        shipped = SHIPPED[text]
        if not has_weights(shipped.path):
            raise CheckpointError(f"{text}: the shipped model's files are missing from the installation "
                                  f"({shipped.path}); reinstall the package")
        loaded = read_hub_folder(shipped.path)
        loaded.source = f"{text} (shipped: {shipped.path})"
        return loaded
    if text in AUTHORS:
        if subfolder:
            raise CheckpointError(f"{text}: an authors' model by name is one folder already; subfolder= is for a "
                                  f"Hub repository id")
        return load_authors_model(text, revision)
    path = Path(text).expanduser()
    if path.exists():
        return _read_local(path)
    match = _REPO_PATH.match(text)
    if match and not text.startswith((".", "/")) and ".." not in text.split("/"):
        folder = "/".join(p for p in (match["folder"], subfolder and subfolder.strip("/")) if p) or None
        if folder and ".." in folder.split("/"):
            raise CheckpointError(f"{text}: subfolder {subfolder!r} must stay inside the repository")
        loaded = _read_local(_download(match["repo"], revision, folder))
        loaded.source = f"{match['repo']}" + (f" (folder {folder})" if folder else "")
        return loaded
    raise CheckpointError(f"{text}: not found (no such file or folder) and not a shipped model name; known "
                          f"names: {_known_names()} (or a Hub repository id owner/name, or owner/name/folder)")


def init_weights(source: str | Path, model_config: ModelConfig) -> InitialWeights:
    """The weights to start a training run of ``model_config`` from (``TrainConfig.init_from``), with the source's
    training history: ``source`` is anything :func:`load_pretrained` reads (a shipped name, a Hub-layout or authors'
    folder, an ``srvp train`` checkpoint, a Hub id). Only the model's weights are taken (float32 state dict,
    batch-norm statistics included), never an optimiser or schedule. Every field that defines the networks must
    equal the source's (the objective weights, ``dt`` and the initialisation gain may differ); otherwise a one-line
    :class:`CheckpointError` names the fields."""
    loaded = load_pretrained(source)
    differences = model_config.architecture_differences(loaded.config.model)
    if differences:
        shown = ", ".join(differences[:4]) + (f" and {len(differences) - 4} more" if len(differences) > 4 else "")
        raise CheckpointError(f"{source}: its model does not match the run's model options ({shown}: the run's vs "
                              f"the weights'); drop those options to take the source's model, or start from other "
                              f"weights")
    return InitialWeights({k: v.detach().clone() for k, v in loaded.model.state_dict().items()}, loaded.history)


__all__ = ["AUTHORS", "AUTHORS_MIRROR", "CARD_FILE", "CONFIG_FILE", "INDEX_FILE", "PAPER_PROTOCOLS",
           "SHARD_BYTES_16MIB", "SHIPPED", "WEIGHTS_FILE", "AuthorsModel", "LoadedModel", "PaperProtocol",
           "ShippedModel", "available", "cached_authors_folder", "check_authors_options", "has_weights", "hub_cli",
           "init_weights", "load_authors_model", "load_pretrained", "paper_protocol", "push_to_hub",
           "read_hub_folder", "read_official_files", "read_official_folder", "save_pretrained"]
