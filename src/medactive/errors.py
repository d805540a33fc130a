"""User-facing errors.

A :class:`MedactiveError` carries a message meant for a person: it names the file, row or
argument at fault. The CLI prints it on one line and exits with a non-zero status, without a
traceback.
"""

from __future__ import annotations


class MedactiveError(Exception):
    """An error caused by user input (bad file, bad argument), with a one-line message."""


class DataError(MedactiveError, ValueError):
    """A data file or folder cannot be read or does not match the expected layout."""


class ConfigError(MedactiveError, ValueError):
    """An argument or configuration value is invalid (unknown name, budget too large, ...)."""
