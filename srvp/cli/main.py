"""Entry point of the ``srvp`` command.

Each subcommand lives in its own module of :mod:`srvp.cli` that defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; listing the module in ``SUBCOMMANDS`` is the only registration.
The modules are imported plainly: importing this module already imports the package (``srvp/__init__.py`` loads
torch), and the parser needs every command's options, so loading them by name later saved nothing (``srvp --help``
takes 2.5-2.9 s either way on a 2-core machine, nearly all of it torch).
A user mistake (:class:`~srvp.errors.SrvpError`, a file the system refuses, an option argparse refuses) is printed on
one line with exit status 2, without a traceback or a usage block.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings

from srvp.cli import compare, data, demo, evaluate, import_official, predict, pretrained, quickstart, train
from srvp.errors import SrvpError

SUBCOMMANDS = [train, quickstart, data, import_official, predict, evaluate, compare, pretrained, demo]


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (``srvp predict: error: ... (see srvp predict --help)``, exit status 2)
    instead of the usage block, and negative step sizes such as ``-1/2`` read as values (argparse reads any other
    word that starts with '-' as an option, and would complain of a missing value instead of the bad one).
    Sub-commands' parsers are of this class too (argparse makes them of their parent's class)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\d+$|^-\d*\.\d+$|^-\d+/\d+$")

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """argparse's help with each option's default at the end (the commands with ``SHOW_DEFAULTS``), only where it
    tells something: not when the help already says its default (``(default: the preset's)``), nor for a default
    of None, an empty text or list, or a flag (argparse's ``ArgumentDefaultsHelpFormatter`` added
    ``(default: None)`` after those)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or not action.option_strings or default is None or default is False
                or default is argparse.SUPPRESS or (isinstance(default, (str, list)) and not default)):
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="srvp", description="Stochastic Latent Residual Video Prediction: train, evaluate, predict.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        p = sub.add_parser(module.NAME, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                           formatter_class=DefaultsHelpFormatter
                           if getattr(module, "SHOW_DEFAULTS", False) else argparse.HelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
    except SystemExit as e:  # --help (0), or a usage error already printed on one line (2)
        return e.code if isinstance(e.code, int) else 2
    if unknown:  # named by the sub-command they were given to (argparse names the top-level parser)
        prog = f"srvp {args.command}" if getattr(args, "command", None) else "srvp"
        print(f"{prog}: error: unrecognized arguments: {' '.join(unknown)} (see {prog} --help)", file=sys.stderr)
        return 2
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
