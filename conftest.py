"""Fixtures shared by unit, CWL and end-to-end tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent
SHARED_DATA = Path(os.environ.get("GCMLM_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public reference files in ../shared/data (see its README for provenance)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo_cohort(tmp_path_factory) -> Path:
    """A small demo cohort written once per test session (see gcmlm.demo.demo_cohort)."""
    from gcmlm.demo.demo_cohort import make_cohort

    out = tmp_path_factory.mktemp("demo-cohort")
    make_cohort(out, patients=12, seed=0)
    return out
