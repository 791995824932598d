"""Every CWL file validates with cwltool without a single warning, and follows the house style."""

import subprocess
from pathlib import Path

import pytest
import yaml

from gcmlm import __version__

REPO = Path(__file__).resolve().parents[2]
CWL_FILES = sorted([*REPO.glob("tools/*/*.cwl"), *REPO.glob("workflows/*.cwl")])


@pytest.mark.parametrize("cwl", CWL_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_validates_without_warnings(cwl):
    result = subprocess.run(["cwltool", "--enable-ext", "--validate", str(cwl)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line or "Warning" in line]
    assert not warnings, "\n".join(warnings)


@pytest.mark.parametrize("cwl", CWL_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_house_style(cwl):
    text = cwl.read_text()
    doc = yaml.safe_load(text)
    assert text.startswith("#!/usr/bin/env cwl-runner\n")
    assert doc["cwlVersion"] == "v1.2"
    assert doc.get("label") and doc.get("doc")
    assert doc.get("s:license") == "https://spdx.org/licenses/Apache-2.0"
    if doc["class"] == "CommandLineTool":
        stage = cwl.stem
        assert cwl.parent.name == stage, "tools/<stage>/<stage>.cwl"
        hints = {**doc.get("hints", {}), **doc.get("requirements", {})}
        assert hints["DockerRequirement"]["dockerPull"] == f"ghcr.io/gcmlm/{stage}:{__version__}"
        assert "SoftwareRequirement" in hints and "ResourceRequirement" in hints
        assert doc["baseCommand"][:2] == ["gcmlm", stage]
        assert list(cwl.parent.glob("tests/*.cwltest.yml")), "each tool has cwltest tests"
