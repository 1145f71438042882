"""User-facing errors: the CLI prints them as one line and exits non-zero, with no traceback."""

from __future__ import annotations

from pathlib import Path


class SwapfaceError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class InputError(SwapfaceError):
    """A file the user gave us cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class MediaWarning(UserWarning):
    """Footage that is usable but not whole (damaged frames, a gap in a sequence): said in one line."""
