"""The Galaxy wrappers (tools/<stage>/<stage>.xml): generated, lint-clean, and working without a Galaxy server.

- drift: every checked-in wrapper is exactly what gcmlm.galaxy writes from the contract;
- lint: `planemo lint --fail_level warn` passes on every wrapper (planemo lives in .venv-planemo,
  made by `make lint-galaxy`; skipped when it is absent);
- execution: each wrapper test's <command> (a Cheetah template) is rendered the way Galaxy renders
  it, with the test's inputs, run against the installed `gcmlm`, and its outputs checked against the
  test's assertions (checksum, has_size, has_text; expect_failure).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
from Cheetah.Template import Template

from gcmlm import galaxy
from gcmlm.stages import STAGES

REPO = Path(__file__).resolve().parents[2]
PLANEMO = REPO / ".venv-planemo" / "bin" / "planemo"
STAGE_NAMES = [s.name for s in STAGES]
SLOW = {"nnunet-plan", "fusion-train"}  # over ~10 s per test on 2 cores


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_wrapper_is_what_the_generator_writes(stage):
    expected = galaxy.wrapper(stage)  # raises for a stage without a contract or an EXTRAS entry
    path = galaxy.wrapper_path(stage)
    assert path.exists(), f"{path.relative_to(REPO)} is missing: run `make galaxy`"
    assert path.read_text() == expected, f"{path.relative_to(REPO)} differs from the contract: run `make galaxy`"


def test_every_stage_has_extras_and_test_data():
    assert set(galaxy.EXTRAS) == set(STAGE_NAMES)
    for stage in STAGE_NAMES:
        link = REPO / "tools" / stage / "test-data"
        assert link.is_symlink() and link.resolve() == (REPO / "tools" / stage / "tests").resolve()


@pytest.mark.skipif(not PLANEMO.exists(), reason="no .venv-planemo (make lint-galaxy)")
def test_planemo_lint_has_no_warnings():
    wrappers = sorted(str(p) for p in (REPO / "tools").glob("*/*.xml"))
    run = subprocess.run([str(PLANEMO), "lint", "--fail_level", "warn", *wrappers],
                         capture_output=True, text=True, timeout=300)
    problems = [line for line in run.stdout.splitlines() + run.stderr.splitlines()
                if line.startswith((".. WARNING", ".. ERROR"))]
    assert run.returncode == 0 and not problems, "\n".join(problems) or run.stdout[-3000:]


# ---------------------------------------------------------------- a Galaxy-free test runner


class Dataset:
    """A data parameter as the command sees it: its path, and its datatype as `.ext`."""

    def __init__(self, path: Path | None, ext: str = "data"):
        self.path, self.ext = path, ext
        self.element_identifier = path.name if path is not None else "None"  # Galaxy: the name at upload

    def __str__(self) -> str:
        return str(self.path) if self.path is not None else "None"

    def __bool__(self) -> bool:
        return self.path is not None


def _stage_file(value: str, ftype: str, test_data: Path, work: Path) -> Dataset:
    source = test_data / value
    if source.is_dir():  # a folder goes to Galaxy as a zip of it
        target = work / "inputs" / (source.name + ".zip")
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target, "w") as archive:
            for file in sorted(source.rglob("*")):
                archive.write(file, Path(source.name) / file.relative_to(source))
        return Dataset(target, "zip")
    return Dataset(source.resolve(), ftype)


def namespace(tool: ET.Element, test: ET.Element, test_data: Path, work: Path) -> dict:
    """The values Galaxy would give the command's variables for this test."""
    given = {p.get("name"): p for p in test.findall("param")}
    values = {}
    for param in tool.find("inputs").iter("param"):
        name, kind, set_ = param.get("name"), param.get("type"), given.get(param.get("name"))
        value = set_.get("value") if set_ is not None else None
        if kind == "data":
            files = [_stage_file(v, set_.get("ftype", "data"), test_data, work) for v in value.split(",")] if value else []
            values[name] = files if param.get("multiple") == "true" else (files[0] if files else Dataset(None))
        elif kind == "boolean":
            values[name] = param.get("truevalue") if value == "true" else param.get("falsevalue")
        else:
            values[name] = value if value is not None else ("None" if kind == "select" else "")
    return values


def render(tool: ET.Element, values: dict) -> str:
    text = tool.find("command").text
    # Galaxy (tools/evaluation.py) turns the rendered command into one line: newlines become spaces.
    return str(Template(text, searchList=[values])).replace("\n", " ").replace("\r", "").strip()


def _check_output(name: str, expected: ET.Element, path: Path) -> list[str]:
    if not path.is_file():
        return [f"{name}: no file {path.name}"]
    data = path.read_bytes()
    problems = []
    checksum = expected.get("checksum")
    if checksum:
        algorithm, digest = checksum.split("$")
        if hashlib.new(algorithm, data).hexdigest() != digest:
            problems.append(f"{name}: {algorithm} differs from the test's {digest}")
    for check in expected.iter():
        if check.tag == "has_size":
            if check.get("value") is not None and len(data) != int(check.get("value")):
                problems.append(f"{name}: size {len(data)}, the test wants {check.get('value')}")
            if check.get("min") is not None and len(data) < int(check.get("min")):
                problems.append(f"{name}: size {len(data)} < {check.get('min')}")
        elif check.tag == "has_text" and check.get("text").encode() not in data:
            problems.append(f"{name}: no text {check.get('text')!r}")
    return problems


def _output_path(tool: ET.Element, name: str, work: Path) -> Path:
    data = next(d for d in tool.find("outputs").iter("data") if d.get("name") == name)
    return work / data.get("from_work_dir")


def wrapper_tests():
    for stage in STAGE_NAMES:
        path = galaxy.wrapper_path(stage)
        if not path.exists():
            continue
        for index, _ in enumerate(ET.parse(path).getroot().find("tests").findall("test")):
            marks = [pytest.mark.slow] if stage in SLOW else []
            yield pytest.param(stage, index, id=f"{stage}-{index + 1}", marks=marks)


@pytest.mark.skipif(shutil.which("gcmlm") is None, reason="gcmlm is not on PATH")
@pytest.mark.parametrize(("stage", "index"), list(wrapper_tests()))
def test_wrapper_test_runs_without_galaxy(stage, index, tmp_path):
    tool = ET.parse(galaxy.wrapper_path(stage)).getroot()
    test = tool.find("tests").findall("test")[index]
    test_data = REPO / "tools" / stage / "test-data"
    script = render(tool, namespace(tool, test, test_data, tmp_path))
    run = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    if test.get("expect_failure") == "true":
        assert run.returncode != 0, f"the command succeeded; the test expects a failure:\n{script}"
        return
    assert run.returncode == 0, f"command failed ({run.returncode}):\n{script}\n{run.stderr[-3000:]}"
    problems = []
    for expected in test.findall("output"):
        problems += _check_output(expected.get("name"), expected, _output_path(tool, expected.get("name"), tmp_path))
    assert not problems, "\n".join(problems) + f"\n{script}"
