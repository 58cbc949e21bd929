"""``srvp train``: train a model from a preset, a JSON config and/or command-line options."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from srvp.config import PRESETS, RunConfig, add_config_arguments, apply_overrides, preset, read_config_json
from srvp.pretrained import init_weights, load_pretrained
from srvp.training.checkpoint import CheckpointManager, config_of
from srvp.training.trainer import train

NAME = "train"
HELP = "train a model (SRVP or SVG-LP) on a dataset"
DESCRIPTION = (
    "Train a model. The configuration is built from --preset (the paper's hyperparameters per dataset), then "
    "--config (a JSON file as written next to every checkpoint), then the options below, in that order. "
    "With --resume, the run in --out-dir continues exactly where it stopped (same batches, same random draws). "
    "With --init-from NAME|FOLDER|CHECKPOINT the model starts from trained weights (a name of srvp pretrained "
    "list, a Hub-layout or authors' folder, an srvp train checkpoint) with a fresh optimiser and schedule: without "
    "--preset or --config the source's own configuration is the base (fine-tune it on your data with --dataset videos "
    "--data-dir ...); the model options must match the weights. "
    "Multi-process training: --nproc-per-node N, or launch this command with torchrun."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), help="start from a preset (default: smmnist, or the "
                        "saved config of the run with --resume)")
    parser.add_argument("--config", type=Path, help="JSON config file (sections model, data, train)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out-dir from its latest "
                        "good checkpoint")
    parser.add_argument("--nproc-per-node", type=int, default=1, help="processes to launch on this machine "
                        "(torch.distributed; gloo on CPU, nccl on GPUs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_arguments(parser)


def build_config(args: argparse.Namespace) -> RunConfig:
    """preset -> keys present in the config file -> command-line options. With --resume and neither a preset nor a
    file, the configuration the run was last trained with is the base (its newest good checkpoint's, else its
    config.json); with --init-from and neither, the source's configuration (its run folder and starting weights
    reset)."""
    out_dir = Path(getattr(args, "cfg__train__out_dir", None) or RunConfig().train.out_dir)
    init_from = getattr(args, "cfg__train__init_from", None)
    if args.preset or args.config is None:
        latest = CheckpointManager(out_dir / "checkpoints").latest_good() if not args.preset and args.resume \
            else None
        if latest is not None:  # the run's current configuration: config.json keeps its first one (resumes.jsonl)
            base = config_of(*latest).to_dict()
        elif not args.preset and args.resume and (out_dir / "config.json").exists():
            base = RunConfig.from_json(out_dir / "config.json").to_dict()
        elif not args.preset and init_from:
            base = load_pretrained(init_from).config.to_dict()
            base["train"]["out_dir"] = RunConfig().train.out_dir
        else:
            base = preset(args.preset or "smmnist").to_dict()
    else:
        base = RunConfig().to_dict()
    if args.config is not None:
        file_data = read_config_json(args.config)
        for section, values in file_data.items():
            if isinstance(values, dict) and isinstance(base.get(section), dict):
                base[section].update(values)
            else:
                base[section] = values
    where = f"{args.config} and the command line" if args.config is not None else "command line"
    return apply_overrides(base, args, where)


def absolute_data_paths(cfg: RunConfig) -> RunConfig:
    """``cfg`` with its data paths made absolute, so that the config.json saved with the run (and every checkpoint)
    resolves from any folder (``srvp evaluate`` started elsewhere)."""
    d = cfg.data
    d.data_dir = str(Path(d.data_dir).expanduser().resolve())
    if d.test_set:
        d.test_set = str(Path(d.test_set).expanduser().resolve())
    if d.digits not in ("auto", "embedded"):
        d.digits = str(Path(d.digits).expanduser().resolve())
    return cfg


def run(args: argparse.Namespace) -> int:
    cfg = absolute_data_paths(build_config(args))
    if args.nproc_per_node > 1 and "WORLD_SIZE" not in os.environ:
        argv = []
        skip = False
        for a in sys.argv[1:]:
            if skip or a.startswith("--nproc-per-node"):
                skip = a == "--nproc-per-node" and not skip
                continue
            argv.append(a)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc_per_node}",
               "-m", "srvp.cli.main", *argv]
        return subprocess.call(cmd)
    weights = None
    restarting = bool(cfg.train.init_from) and args.resume and \
        CheckpointManager(Path(cfg.train.out_dir) / "checkpoints").latest_good() is not None
    if cfg.train.init_from and not restarting:  # a resumed run's weights come from its checkpoint
        weights = init_weights(cfg.train.init_from, cfg.model)
    out = train(cfg, resume=args.resume, progress=not args.no_progress, init_weights=weights)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run directory: {out} (best model: {out / 'best.pt'}, config: {out / 'config.json'})")
    return 0
