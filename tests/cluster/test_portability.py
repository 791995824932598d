"""Portability: packed workflows stand alone and run the same; .dockstore.yml registers every
tool and workflow with existing test jobs; cwltool --provenance writes a complete CWLProv bag."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from engine_runs import (
    DATA,
    REPO,
    check_provenance_bag,
    content_of,
    cwltool_cmd,
    engine_env,
    run_engine,
    sha1,
)

pytestmark = pytest.mark.cluster

PACK = REPO / "scripts" / "pack-workflows.sh"
TEST_WORKFLOWS = [DATA / "slide-pool-scatter.cwl", DATA / "gpu-pattern.cwl"]


def pack(out: Path, *workflows: Path) -> subprocess.CompletedProcess:
    env = {**engine_env(), "PACKED_DIR": str(out)}
    return subprocess.run(["bash", str(PACK), *map(str, workflows)], capture_output=True, text=True, env=env)


def test_every_workflow_packs_and_validates(tmp_path):
    workflows = sorted(REPO.glob("workflows/*.cwl")) + TEST_WORKFLOWS
    result = pack(tmp_path, *workflows)
    assert result.returncode == 0, result.stdout + result.stderr
    for wf in workflows:
        assert f"ok   {wf.name}" in result.stdout
        packed = json.loads((tmp_path / wf.name).read_text())
        assert "$graph" in packed and packed["cwlVersion"] == "v1.2"
        # Nothing in the packed file points back into this checkout.
        assert str(REPO) not in (tmp_path / wf.name).read_text()


def test_packed_workflow_runs_like_the_original(cwltool_reference, tmp_path):
    assert pack(tmp_path / "packed", DATA / "slide-pool-scatter.cwl").returncode == 0
    job = DATA / "slide-pool-scatter.job.yml"
    packed = run_engine(cwltool_cmd(tmp_path / "out", str(tmp_path / "packed" / "slide-pool-scatter.cwl"), str(job)))
    assert content_of(packed) == cwltool_reference


def test_pack_reports_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.cwl"
    broken.write_text(
        "cwlVersion: v1.2\nclass: Workflow\ninputs: []\noutputs: []\n"
        "steps:\n  s:\n    run: ../no-such-tool.cwl\n    in: {}\n    out: []\n"
    )
    result = pack(tmp_path / "out", broken)
    assert result.returncode == 1
    assert "FAIL broken.cwl: cwltool --pack" in result.stdout
    assert not (tmp_path / "out" / "broken.cwl").exists()


def test_dockstore_yml_registers_everything():
    check = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), str(REPO / "scripts" / "make-dockstore-yml.py"), "--check"],
        capture_output=True, text=True,
    )
    assert check.returncode == 0, check.stderr
    config = yaml.safe_load((REPO / ".dockstore.yml").read_text())
    assert config["version"] == 1.2
    registered = {e["primaryDescriptorPath"] for e in config["tools"] + config["workflows"]}
    expected = {"/" + p.relative_to(REPO).as_posix() for p in [*REPO.glob("tools/*/*.cwl"), *REPO.glob("workflows/*.cwl")]}
    assert registered == expected
    for item in config["tools"] + config["workflows"]:
        assert item["subclass"] == "CWL"
        for job in item["testParameterFiles"]:
            assert (REPO / job.lstrip("/")).is_file(), job
    # slide-pool's passing cwltest job is registered, its should_fail job is not.
    (slide_pool,) = [t for t in config["tools"] if t["name"] == "slide-pool"]
    assert slide_pool["testParameterFiles"] == ["/tools/slide-pool/tests/slide-pool.job.yml"]


def test_provenance_bag_is_complete(tmp_path):
    bag, outdir = tmp_path / "ro", tmp_path / "out"
    job = DATA / "slide-pool-scatter.job.yml"
    outputs = run_engine(["cwltool", "--enable-ext", "--no-container", "--provenance", str(bag), "--outdir", str(outdir),
                          str(DATA / "slide-pool-scatter.cwl"), str(job)])
    stored = check_provenance_bag(bag, steps=("per_slide", "cohort"))
    files = [v for v in outputs["slide_tables"]] + [outputs["cohort_table"], outputs["cohort_report"]]
    assert {sha1(f["path"]) for f in files} <= stored
    assert {sha1(p) for p in (REPO / "tools/slide-pool/tests/data").glob("P[12]-[ABD].h5")} <= stored
