"""The README's Python examples run as written (from the repository root, on the test fixtures)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def python_examples() -> list[tuple[str, str]]:
    """(heading, code) of every ```python block in the README's "Python API" section."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Python API", 1)[1].split("\n## ", 1)[0]
    examples, heading = [], "Python API"
    for block in re.finditer(r"^### ([^\n]+)$|^```python\n(.*?)^```", section, flags=re.M | re.S):
        if block.group(1):
            heading = block.group(1).strip()
        else:
            examples.append((heading, block.group(2)))
    return examples


def test_the_readme_has_one_example_per_branch():
    headings = " ".join(h.lower() for h, _ in python_examples())
    assert all(branch in headings for branch in ("radiology", "pathology", "fusion"))


@pytest.fixture
def example_folder(request, tmp_path, shared_data) -> Path:
    """A scratch folder holding what the examples name: the repository's fixtures, the public test
    slide, and (for the radiology example only: they cost minutes) a demo cohort and a model zip."""
    for name in ("tools", "inputs"):
        (tmp_path / name).symlink_to(REPO / name)
    (tmp_path / "CMU-1-Small-Region.svs").symlink_to(shared_data / "wsi" / "CMU-1-Small-Region.svs")
    if "model.zip" in request.node.callspec.params["code"]:
        (tmp_path / "cohort").symlink_to(request.getfixturevalue("demo_cohort"))
        (tmp_path / "model.zip").symlink_to(request.getfixturevalue("tiny_model")["zip"])
    return tmp_path


def example_params() -> list:
    # the radiology example needs the tiny nnU-Net: on the worker that trains it (see conftest.py)
    return [pytest.param(heading, code, id=heading.split(":")[0],
                         marks=[pytest.mark.xdist_group("tiny_nnunet")] if "model.zip" in code else [])
            for heading, code in python_examples()]


@pytest.mark.parametrize("heading, code", example_params())
def test_readme_example_runs(heading, code, example_folder):
    tmp_path = example_folder
    (tmp_path / "example.py").write_text(code)
    result = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert any((tmp_path / "out").rglob("*")), "the example wrote nothing under out/"
