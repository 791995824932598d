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


# One EDAM term per file format, in every tool (http://edamontology.org/format_NNNN).
EDAM_FORMATS = {
    ".nii.gz": "edam:format_3549",  # "nii", exact synonym "NIfTI-1 format" (format_4001 duplicates it)
    ".nii": "edam:format_3549",
    ".h5": "edam:format_3590",  # HDF5
    ".csv": "edam:format_3752",  # CSV
    ".json": "edam:format_3464",  # JSON
    ".png": "edam:format_3603",  # PNG
    ".html": "edam:format_2331",  # HTML
    ".zip": "edam:format_3987",  # ZIP
}
TOOL_FILES = sorted(REPO.glob("tools/*/*.cwl"))


def _output_name(tool: dict, glob) -> str | None:
    """The file name an output's glob matches: a pattern, or the default of the input `$(inputs.X)` names."""
    if not isinstance(glob, str):
        return None
    if glob.startswith("$(inputs.") and glob.endswith(")"):
        return tool["inputs"].get(glob[len("$(inputs."):-1], {}).get("default")
    return None if "$" in glob else glob


@pytest.mark.parametrize("cwl", TOOL_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_edam_formats_are_consistent(cwl):
    tool = yaml.safe_load(cwl.read_text())
    for name, out in tool["outputs"].items():
        fmt = out.get("format")
        assert fmt is None or fmt in EDAM_FORMATS.values(), f"{name}: {fmt} is not one of the EDAM terms we use"
        file_name = _output_name(tool, (out.get("outputBinding") or {}).get("glob"))
        ext = next((e for e in EDAM_FORMATS if file_name and file_name.endswith(e)), None)
        if ext:
            assert fmt == EDAM_FORMATS[ext], f"output {name} ({file_name}) needs format {EDAM_FORMATS[ext]}"
