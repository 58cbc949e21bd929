"""User-facing errors.

A :class:`SrvpError` is a mistake of the user (a missing file, a corrupt dataset, an impossible configuration).
The command line prints its message on one line and exits with a non-zero status, without a traceback.
"""

from __future__ import annotations


class SrvpError(Exception):
    """An error caused by user input; its message is one line that names the file or option and the problem."""


class ConfigError(SrvpError):
    """An invalid configuration value, key or combination."""


class DataError(SrvpError):
    """A missing, truncated or malformed data file."""


class CheckpointError(SrvpError):
    """A missing, corrupt or mismatched checkpoint."""
