"""Errors that reach the user as one clear line (the CLI prints them without a traceback)."""

from __future__ import annotations

from os import PathLike


class CloudfreeError(Exception):
    """Base class of every error cloudfree raises on purpose."""


class InputFileError(CloudfreeError, ValueError):
    """A file given by the user is missing, unreadable or has the wrong content.

    The message always starts with the path so that the user knows which file to fix.
    """

    def __init__(self, path: str | PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DatasetError(CloudfreeError, ValueError):
    """A dataset root, layout or split cannot be used (for example an empty split)."""


class ConfigError(CloudfreeError, ValueError):
    """An option or configuration value is invalid."""
