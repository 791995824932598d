"""Every tool pulls an image that containers/build.sh builds, tagged with the package version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import gcmlm
from gcmlm.stages import BY_NAME, STAGES

REPO = Path(__file__).resolve().parents[2]
TOOLS = sorted((REPO / "tools").glob("*/*.cwl"))


@pytest.mark.parametrize("cwl", TOOLS, ids=lambda p: p.stem)
def test_tool_pulls_its_stage_image(cwl, image_of):
    doc = yaml.safe_load(cwl.read_text())
    docker = {**doc.get("requirements", {}), **doc.get("hints", {})}.get("DockerRequirement")
    assert docker, f"{cwl}: no DockerRequirement"
    assert cwl.stem in BY_NAME, f"{cwl}: '{cwl.stem}' is not a stage in gcmlm.stages"
    assert docker["dockerPull"] == image_of(cwl.stem)


def test_every_stage_has_its_tool():
    missing = [s.name for s in STAGES if not (REPO / "tools" / s.name / f"{s.name}.cwl").is_file()]
    assert not missing, f"stages without a CWL tool: {missing}"


def test_image_tag_is_the_cli_version(image_of):
    out = subprocess.run([sys.executable, "-m", "gcmlm", "--version"], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["gcmlm", gcmlm.__version__]
    assert image_of("slide-pool") == f"ghcr.io/gcmlm/slide-pool:{out.split()[1]}"


def test_dockerfiles_pass_hadolint():
    hadolint = REPO / ".venv" / "bin" / "hadolint"
    files = sorted(str(p) for p in (REPO / "containers").glob("*/Dockerfile"))
    assert len(files) >= 3  # torch stand-in, runtime, stage
    result = subprocess.run([str(hadolint), *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
