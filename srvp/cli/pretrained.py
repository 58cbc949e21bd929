"""``srvp pretrained``: the shipped models, and conversion between a training checkpoint and the Hub layout.

- ``srvp pretrained list``: every known name, shipped and the authors' (their models' Hub mirror), with where it
  comes from, its size, whether it is installed or in the local Hugging Face cache, and what it is;
- ``srvp pretrained convert SOURCE OUT``: SOURCE is anything ``--checkpoint`` accepts (name, Hub-layout folder, the
  authors' folder, ``.pt`` checkpoint, Hub repository id); OUT ending in ``.pt`` is written as an ``srvp train``
  checkpoint (weights and configuration, no optimizer state), anything else as a Hub-layout folder
  (``config.json`` + ``model.safetensors`` [+ ``README.md`` from ``--card``]).
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from srvp.errors import CheckpointError, ConfigError
from srvp.files import replaceable_names, safe_torch_load
from srvp.pretrained import (
    AUTHORS,
    AUTHORS_FILES,
    CONFIG_FILE,
    SHIPPED,
    cached_authors_folder,
    earlier_model_files,
    has_weights,
    load_pretrained,
    save_pretrained,
)
from srvp.training.checkpoint import FORMAT, atomic_torch_save, make_checkpoint

NAME = "pretrained"
HELP = "list the models known by name; convert between training checkpoints and the Hub layout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="the shipped models and the authors' side by side: where each comes from, its size, "
                               "whether it is here, what it is")
    convert = sub.add_parser("convert", help="SOURCE (name, folder, .pt, Hub id) -> OUT (.pt checkpoint or Hub "
                                             "folder)")
    convert.add_argument("source", metavar="SOURCE")
    convert.add_argument("out", metavar="OUT", type=Path)
    convert.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"),
                         help="storage type of the weights in a Hub folder (loaded back as float32)")
    convert.add_argument("--card", type=Path, default=None, metavar="FILE.md", help="model card for a Hub folder")
    convert.add_argument("--overwrite", action="store_true",
                         help="replace OUT if it is a model folder or checkpoint of srvp (any other file or folder "
                              "is refused and left as it is)")


def _check_replaceable_checkpoint(out: Path) -> None:
    """``--overwrite`` replaces an ``srvp train`` checkpoint, never another file (one-line error, file untouched)."""
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_file() or out.is_symlink():
        raise ConfigError(f"{out}: exists and is not a regular file (OUT); nothing was changed")
    try:
        state = safe_torch_load(out)
    except CheckpointError:
        state = None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ConfigError(f"{out}: not an srvp checkpoint; --overwrite replaces only a checkpoint of srvp (choose "
                          f"another OUT); nothing was changed")


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB"


def model_table() -> str:
    """``srvp pretrained list``: every known name, shipped and the authors', side by side (where it comes from, its
    size, whether it is here), then what each is and where its files are. Reads the local cache, never the
    network."""
    rows = [("NAME", "FROM", "SIZE", "HERE")]
    what: list[tuple[str, str]] = []  # (description, where the files are)
    for m in SHIPPED.values():
        files = [p for p in m.path.iterdir() if p.is_file()] if m.path.is_dir() else []
        here = "installed" if has_weights(m.path) else "missing from this installation"
        size = _mib(sum(p.stat().st_size for p in files)) if files else "-"
        rows.append((m.name, f"shipped with srvp (srvp/weights/{m.name})", size, here))
        what.append((f"{m.name}: {m.description}", f"installed in {m.path}" if files else ""))
    for a in AUTHORS.values():
        folder = cached_authors_folder(a)
        size = _mib(sum((folder / n).stat().st_size for n in AUTHORS_FILES)) if folder else "unknown"
        rows.append((a.name, f"{a.repo}, folder {a.folder}", size, "cached" if folder else "not cached"))
        what.append((f"{a.name}: {a.description}; the paper's test: {a.protocol}; trained: {a.training}",
                     f"cached in {folder}" if folder else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)), row[3]]).rstrip()
             for row in rows]
    lines.append("")
    for text, where in what:  # paths on lines of their own, never wrapped
        lines.append(textwrap.fill(text, width=118, subsequent_indent="    ", break_on_hyphens=False))
        lines += [f"    {where}"] if where else []
    lines += ["", "The authors' models download on first use into the Hugging Face cache (HF_HUB_CACHE), and their "
                  "model.pt is", "read as tensors only, never code; HF_HUB_OFFLINE=1 reads only the cache:",
              f"    {hub_constants().HF_HUB_CACHE}"]
    return "\n".join(lines)


def hub_constants():
    """``huggingface_hub.constants`` (imported when needed)."""
    from huggingface_hub import constants

    return constants


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        print(model_table())
        return 0

    if args.out.exists() and not args.overwrite:
        raise ConfigError(f"{args.out}: already exists (pass --overwrite to replace it)")
    if args.out.suffix == ".pt":
        _check_replaceable_checkpoint(args.out)
    else:
        replaceable_names(args.out, CONFIG_FILE, "OUT", earlier_model_files)
    card = None
    if args.card is not None:
        if not args.card.is_file():
            raise ConfigError(f"--card {args.card}: file not found")
        card = args.card.read_text()
    loaded = load_pretrained(args.source)
    if args.out.suffix == ".pt":
        last = loaded.history[-1] if loaded.history else {}
        extra = {"converted_from": loaded.source, "lineage": loaded.history[:-1],  # read back as the same history
                 **{k: last[k] for k in ("train_seconds", "train_cpu_seconds") if last.get(k) is not None}}
        atomic_torch_save(make_checkpoint(loaded.model, loaded.config, loaded.step, extra=extra), args.out)
    else:
        save_pretrained(loaded.model, loaded.config, args.out, step=loaded.step, card=card, dtype=args.dtype,
                        overwrite=args.overwrite, option="OUT", history=loaded.history)
    print(f"wrote {args.out} from {loaded.source}")
    return 0
