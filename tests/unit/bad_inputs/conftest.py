"""The work folder every bad-input case runs in: a fresh copy of its module's ``kit`` fixture (the
inputs built once per session), so a case can never change another's inputs or the repository's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture()
def work(kit: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "w"
    shutil.copytree(kit, folder)
    return folder
