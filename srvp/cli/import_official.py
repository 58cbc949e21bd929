"""``srvp import-official``: turn a checkpoint of the authors' official SRVP code (a ``state_dict`` file and its
``config.json``) into an srvp checkpoint, so their pretrained models give the same predictions here.

The ``state_dict`` is read with ``torch.load(weights_only=True)`` (no code from the file runs), its parameter names
are mapped by :mod:`srvp.models.official`, checked against the model that ``config.json`` describes (one-line
error naming what does not match), and saved atomically at step 0 without optimizer state. The written file is then
loaded back with :func:`srvp.training.checkpoint.load_checkpoint` before the command reports success.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from srvp.errors import CheckpointError, ConfigError, SrvpError
from srvp.files import load_state_checked
from srvp.models import build_model
from srvp.models.official import config_from_official, convert_state_dict
from srvp.pretrained import read_official_files, read_official_options, read_official_state_dict, save_pretrained
from srvp.training.checkpoint import atomic_torch_save, load_checkpoint, make_checkpoint, read_checkpoint

NAME = "import-official"
HELP = "convert a checkpoint of the authors' official SRVP code (state_dict + config.json) to an srvp checkpoint"
DESCRIPTION = (HELP + ". The weights are loaded without executing code (weights_only) and checked against the "
               "model described by config.json.")


def import_official(state_dict_path: str | Path, config_path: str | Path, out_path: str | Path) -> Path:
    """Convert the official files to an srvp checkpoint at ``out_path`` and check that it loads back."""
    options = read_official_options(config_path)
    cfg = config_from_official(options, str(config_path))
    official = read_official_state_dict(state_dict_path)
    model = build_model(cfg.model)
    try:
        load_state_checked(model, convert_state_dict(official), state_dict_path)
    except CheckpointError as e:
        raise CheckpointError(f"{e} (model built from {config_path})") from None
    out_path = Path(out_path)
    extra = {"imported_from": {"state_dict": str(state_dict_path), "config": str(config_path),
                               "options": json.loads(json.dumps(options))}}
    atomic_torch_save(make_checkpoint(model, cfg, step=0, extra=extra), out_path)
    try:
        reloaded = load_checkpoint(out_path).model
    except SrvpError:
        out_path.unlink(missing_ok=True)
        raise
    expected = model.state_dict()
    for key, value in reloaded.state_dict().items():
        if not torch.equal(value, expected[key]):
            out_path.unlink(missing_ok=True)
            raise CheckpointError(f"{out_path}: parameter {key} differs after reloading the written checkpoint")
    return out_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", nargs="?", default=None, metavar="FOLDER",
                        help="the authors' experiment folder as it is (config.json + model.pt); or give both files")
    parser.add_argument("--state-dict", metavar="FILE", help="the official model's state_dict (e.g. model.pt)")
    parser.add_argument("--config", metavar="FILE", help="the official config.json of that model")
    parser.add_argument("--out", required=True, metavar="OUT",
                        help="srvp checkpoint to write (ours.pt), or a folder in the Hub layout (config.json + "
                             "model.safetensors) for any other name")


def run(args: argparse.Namespace) -> int:
    if args.folder is not None:
        if args.state_dict or args.config:
            raise ConfigError("give either FOLDER or --state-dict and --config, not both")
        folder = Path(args.folder)
        if not folder.is_dir():
            raise ConfigError(f"{folder}: folder not found (the authors' folder holds config.json and model.pt)")
        args.state_dict, args.config = folder / "model.pt", folder / "config.json"
    elif not (args.state_dict and args.config):
        raise ConfigError("give the authors' FOLDER, or both --state-dict and --config")
    out = Path(args.out)
    if out.suffix != ".pt":
        if out.exists():
            raise ConfigError(f"--out {out}: already exists; choose a new folder")
        loaded = read_official_files(args.state_dict, args.config)
        save_pretrained(loaded.model, loaded.config, out)
        m = loaded.config.model
        print(f"wrote {out} (Hub layout): {m.architecture} SRVP, state {m.state_dim}, noise {m.noise_dim}")
        return 0
    out = import_official(args.state_dict, args.config, args.out)

    m = read_checkpoint(out)["config"]["model"]
    print(f"wrote {out}: {m['architecture']} SRVP, {m['channels']} channel(s) {m['frame_size']}x{m['frame_size']}, "
          f"state {m['state_dim']}, noise {m['noise_dim']}, dt {m['dt']:g}, "
          f"skip connections {'on' if m['skip_connections'] else 'off'}")
    return 0

