"""``srvp demo``: a web page to see futures (Gradio), offline, on this machine.

Needs the optional extra: ``pip install 'srvp[demo]'``. The page binds to localhost unless ``--host`` says
otherwise; it offers the shipped models and the checkpoints given with ``--checkpoint``.
"""

from __future__ import annotations

import argparse

from srvp.demo import DemoState, launch, model_choices
from srvp.errors import ConfigError
from srvp.pretrained import load_pretrained

NAME = "demo"
HELP = "a web page to predict futures of a clip, swap content and interpolate (Gradio; pip install 'srvp[demo]')"
DESCRIPTION = __doc__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME|PATH",
                        help="also offer this model (repeatable; anything srvp predict --checkpoint takes)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 exposes it on the network)")
    parser.add_argument("--port", type=int, default=7860, help="port of the page")


def run(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ConfigError("the demo needs Gradio: pip install 'srvp[demo]'") from None
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} must be between 1 and 65535")
    choices = model_choices(args.checkpoint)
    for label in list(choices)[len(choices) - len(args.checkpoint):]:
        load_pretrained(choices[label])  # a bad --checkpoint is a one-line error now, not on the page later
    state = DemoState(choices)
    print(f"srvp demo: http://{args.host}:{args.port} (models: {', '.join(choices)}; Ctrl-C stops it)", flush=True)
    launch(state, args.host, args.port)
    return 0
