"""Output folders written whole or not at all.

:func:`staged_output_dir` gives a command a hidden staging folder next to its ``--out`` folder; when the command
finishes, the staging folder replaces the output folder in one rename, so an interruption (Ctrl-C, a full disk, a
crash, SIGKILL) leaves either the previous outputs or the new ones, never a mix, and no stale file of an earlier run
stays beside the new summary. An existing output folder is only replaced if it holds the ``marker`` file of an
earlier run of the same command (or is empty): a folder of the user's own files is never deleted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from srvp.errors import ConfigError

STAGING_PREFIX = ".partial-"


def _umask_mode(directory: bool) -> int:
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def remove_stale_staging(parent: Path, name: str) -> None:
    """Staging folders of ``name`` left by a killed run (SIGKILL leaves no chance to clean up)."""
    for stale in parent.glob(f".{name}{STAGING_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def staged_output_dir(out: str | Path, marker: str, option: str = "--out") -> Iterator[Path]:
    """Yield a staging folder to write every output into; on success it becomes ``out`` (see the module doc)."""
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise ConfigError(f"{out}: exists and is not a directory ({option})")
        if any(out.iterdir()) and not (out / marker).exists():
            raise ConfigError(f"{out}: the folder holds other files (no {marker} of an earlier run); choose a new "
                              f"or empty folder for {option}")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out.parent, out.name)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}{STAGING_PREFIX}"))
    try:
        yield staging
        staging.chmod(_umask_mode(True))
        for f in staging.rglob("*"):
            f.chmod(_umask_mode(f.is_dir()))
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}{STAGING_PREFIX}old-"))
            os.replace(out, old / "previous")
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
