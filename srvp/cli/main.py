"""Entry point of the ``srvp`` command.

Each subcommand lives in its own module of :mod:`srvp.cli` that defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; listing the module in ``SUBCOMMANDS`` is the only registration.
A user mistake (:class:`~srvp.errors.SrvpError`) is printed on one line with exit status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from srvp.errors import SrvpError

SUBCOMMANDS = [
    "srvp.cli.train",
    "srvp.cli.quickstart",
    "srvp.cli.data",
    "srvp.cli.import_official",
    "srvp.cli.predict",
    "srvp.cli.evaluate",
    "srvp.cli.compare",
    "srvp.cli.pretrained",
    "srvp.cli.demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srvp", description="Stochastic Latent Residual Video Prediction: train, evaluate, predict.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMANDS:
        module = importlib.import_module(module_name)
        p = sub.add_parser(module.NAME, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter
                           if getattr(module, "SHOW_DEFAULTS", False) else argparse.HelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "_run"):
        parser.print_help()
        return 2
    # warnings (e.g. a corrupt checkpoint skipped on resume) as one line, like errors, without the source line
    previous_format = warnings.formatwarning
    warnings.formatwarning = lambda message, *_, **__: f"srvp {args.command}: warning: {message}\n"
    try:
        return int(args._run(args) or 0)
    except SrvpError as e:
        print(f"srvp {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the system refused a file: unwritable output directory, disk full, no permission...
        where = f"{e.filename}: " if e.filename else ""
        problem = "exists and is not a directory" if isinstance(e, FileExistsError) else e.strerror or e
        print(f"srvp {args.command}: error: {where}{problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"srvp {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = previous_format


if __name__ == "__main__":
    sys.exit(main())
