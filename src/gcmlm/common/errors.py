"""One error type for bad input: the CLI prints it as one line and exits non-zero."""

from __future__ import annotations

import os


class GcmlmError(Exception):
    """A problem with the user's input or environment, worth one clear line, not a traceback."""

    exit_code = 2

    def __init__(self, problem: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
