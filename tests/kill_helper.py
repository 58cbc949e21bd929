"""Run the ``srvp`` command line in this process, stopping inside its N-th atomic file write so that a test can
SIGKILL it exactly there (used by ``tests/test_kill_resume.py``; not a test module itself).

    python -m tests.kill_helper PATTERN N PHASE MARKER -- train --config ... --out-dir ...

On the N-th call of :func:`srvp.files.atomic_write_bytes` (counted from 1 in this process) that writes
a file whose name matches the glob PATTERN (``step_*.pt``, ``manifest.json``, ``best.pt``, ...) the process creates
MARKER (holding the target path) and sleeps until it is killed, at the point given by PHASE:

- ``write``: half of the bytes are in the temporary file (the write itself is interrupted);
- ``fsync``: every byte is written and flushed, the file is not yet synced nor renamed;
- ``after``: the file has been renamed into place, the next file (manifest, ``last.pt``) is not written yet.

The real ``atomic_write_bytes`` runs in every case; only the module's ``os`` is wrapped during the chosen call.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import time
from pathlib import Path

import srvp.files as files
import srvp.training.checkpoint as checkpoint
from srvp.cli.main import main


def _stop_here(marker: Path, target: Path) -> None:
    marker.write_text(str(target))
    while True:  # until SIGKILL
        time.sleep(1)


class _HalfWriter:
    """A binary file whose ``write`` puts half of the bytes on disk, then stops the process."""

    def __init__(self, file, marker: Path, target: Path):
        self.file, self.marker, self.target = file, marker, target

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    def write(self, data: bytes) -> int:
        self.file.write(data[: len(data) // 2])
        self.file.flush()
        _stop_here(self.marker, self.target)
        return 0  # pragma: no cover - never reached


class _OsProxy:
    """The ``os`` module with ``fdopen`` or ``fsync`` replaced."""

    def __init__(self, **replaced):
        self.replaced = replaced

    def __getattr__(self, name):
        return self.replaced.get(name, getattr(os, name))


def install(pattern: str, call: int, phase: str, marker: Path) -> None:
    real_write = files.atomic_write_bytes
    count = {"n": 0}

    def atomic_write_bytes(path, data: bytes) -> None:
        target = Path(path)
        if not fnmatch.fnmatch(target.name, pattern):
            return real_write(path, data)
        count["n"] += 1
        if count["n"] != call:
            return real_write(path, data)
        if phase == "after":
            real_write(path, data)
            _stop_here(marker, target)
        if phase == "write":
            proxy = _OsProxy(fdopen=lambda fd, mode: _HalfWriter(os.fdopen(fd, mode), marker, target))
        elif phase == "fsync":
            proxy = _OsProxy(fsync=lambda fd: _stop_here(marker, target))
        else:
            raise ValueError(f"unknown phase {phase!r}")
        files.os = proxy
        try:
            real_write(path, data)
        finally:
            files.os = os

    # srvp.files' own callers (atomic_write_text) and the modules that imported the function by name
    files.atomic_write_bytes = checkpoint.atomic_write_bytes = atomic_write_bytes


if __name__ == "__main__":
    pattern, call, phase, marker, separator, *argv = sys.argv[1:]
    assert separator == "--", "usage: python -m tests.kill_helper PATTERN N PHASE MARKER -- SRVP-ARGS..."
    install(pattern, int(call), phase, Path(marker))
    sys.exit(main(argv))
