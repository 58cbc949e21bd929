"""``srvp data <dataset> <action> ...``: convert, verify and generate datasets.

Each dataset module listed in :data:`DATASET_MODULES` defines ``DATA_COMMANDS``, a dict
``action name -> (help, add_arguments(parser), run(args) -> int)``; listing the module here is the only
registration. Modules are imported when the parser is built, so they must stay cheap to import.
"""

from __future__ import annotations

import argparse
import importlib

NAME = "data"
HELP = "prepare datasets: convert KTH, BAIR or your own videos to the fast on-disk format, verify, generate"
DESCRIPTION = ("Prepare datasets. Conversions are idempotent (finished parts are skipped; --force redoes them) and "
               "never leave a partial result that looks complete.")

#: dataset name on the command line -> module defining DATA_COMMANDS
DATASET_MODULES: dict[str, str] = {
    "kth": "srvp.data.kth",
    "bair": "srvp.data.bair",
    "pendulum": "srvp.data.pendulum",
    "videos": "srvp.data.videos",
    "mnist": "srvp.data.moving_mnist",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    datasets = parser.add_subparsers(dest="data_dataset", metavar="DATASET")
    for dataset, module_name in DATASET_MODULES.items():
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or dataset).strip().splitlines()[0]
        p = datasets.add_parser(dataset, help=doc, description=doc)
        actions = p.add_subparsers(dest="data_action", metavar="ACTION")
        for action, (help_text, add_action_arguments, run_action) in module.DATA_COMMANDS.items():
            a = actions.add_parser(action, help=help_text, description=help_text)
            add_action_arguments(a)
            a.set_defaults(_data_run=run_action)
        p.set_defaults(_data_help=p.print_help)
    parser.set_defaults(_data_help=parser.print_help)


def run(args: argparse.Namespace) -> int:
    if not hasattr(args, "_data_run"):
        args._data_help()
        return 2
    return int(args._data_run(args) or 0)
