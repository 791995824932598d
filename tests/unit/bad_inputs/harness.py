"""The README's promise for bad input, checked the way a user meets it: a real `gcmlm` process.

Every case runs `python -m gcmlm <stage> -q ...` in a folder that holds all its inputs and outputs
(a copy: the fixtures in the repository are never handed to a refused run) and asserts:
- exit status 2;
- exactly one line on stderr, `gcmlm <stage>: error: <file>: <problem>` (so no library warning, no
  traceback, no log line; `-q` keeps INFO progress lines out, warnings would still show);
- the folder is byte-for-byte what it was before: nothing left in the output location, nothing
  of the user's changed or deleted.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Case:
    """One bad input: the command (after `gcmlm <stage>`), and what the error line must say."""

    id: str
    args: list[str]
    names: str  # the file the message names: a path relative to the work folder, or an absolute one
    problem: str  # a regular expression the problem text must match (re.search)
    env: dict[str, str] = field(default_factory=dict)


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (hidden ones included) with its content digest or kind."""
    state = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            path = Path(root, name)
            state[str(path.relative_to(folder))] = "link" if path.is_symlink() else "dir"
        for name in files:
            path = Path(root, name)
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                state[rel] = "link->" + os.readlink(path)
            else:
                state[rel] = hashlib.sha1(path.read_bytes()).hexdigest()
    return state


def run_gcmlm(stage: str, args: list[str], cwd: Path, env: dict[str, str] | None = None,
              timeout: float = 300) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONWARNINGS": "default", **(env or {})}
    return subprocess.run([sys.executable, "-m", "gcmlm", stage, "-q", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def assert_refused(stage: str, case: Case, work: Path) -> None:
    """Run ``case`` in ``work`` and check the promise (see the module's docstring)."""
    before = snapshot(work)
    result = run_gcmlm(stage, case.args, work, case.env)
    lines = result.stderr.splitlines()
    assert result.returncode == 2, f"exit {result.returncode}, stderr:\n{result.stderr}"
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{result.stderr}"
    prefix = f"gcmlm {stage}: error: "
    assert lines[0].startswith(prefix), lines[0]
    message = lines[0][len(prefix):]
    # the file as the user wrote it, or made absolute by the stage
    named = [f"{name}: " for name in (case.names, str(work / case.names), os.path.realpath(work / case.names))]
    start = next((n for n in named if message.startswith(n)), None)
    assert start, f"the line does not start with the file {case.names!r}: {lines[0]}"
    problem = message[len(start):]
    assert re.search(case.problem, problem), f"problem {problem!r} does not match {case.problem!r}"
    after = snapshot(work)
    assert after == before, "the work folder changed: " + ", ".join(
        sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)))
