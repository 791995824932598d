"""One error type for bad input: the CLI prints it as one line and exits non-zero."""

from __future__ import annotations

import os
import re
from pathlib import Path


class GcmlmError(Exception):
    """A problem with the user's input or environment, worth one clear line, not a traceback."""

    exit_code = 2

    def __init__(self, problem: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


def one_line(exc: BaseException, line: str = "first", limit: int = 300) -> str:
    """An exception as one short line for a GcmlmError message.

    Takes the first non-empty line of its text (``line="last"`` for libraries such as ITK that put
    the reason last, after lines naming their C++ sources), collapses whitespace, replaces object
    reprs such as ``<_io.BytesIO object at 0x7f...>`` (they change from run to run) and cuts it at
    ``limit`` characters; the exception's type name when it has no text.
    """
    lines = [text.strip() for text in str(exc).splitlines() if text.strip()]
    if not lines:
        return type(exc).__name__
    text = " ".join((lines[-1] if line == "last" else lines[0]).split())
    text = re.sub(r"<[^<>]* at 0x[0-9a-f]+>", "the data", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` as a Path if it is a readable file; else GcmlmError "no such <what>" (or why not)."""
    path = Path(path)
    if path.is_file():
        if not os.access(path, os.R_OK):
            raise GcmlmError(f"{what} is not readable (permission denied)", path)
        return path
    if path.is_dir():
        raise GcmlmError(f"is a folder; expected a {what}", path)
    raise GcmlmError(f"no such {what}", path)


def require_dir(path: str | os.PathLike, what: str = "folder") -> Path:
    """``path`` as a Path if it is a folder; else GcmlmError "no such <what>" (or why not)."""
    path = Path(path)
    if path.is_dir():
        return path
    if path.exists():
        raise GcmlmError(f"is a file; expected a {what}", path)
    raise GcmlmError(f"no such {what}", path)
