"""Portability: packed workflows stand alone and run the same; cwltool --provenance writes a complete
CWLProv bag. (.dockstore.yml is checked in tests/unit/test_dockstore.py.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
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


def test_provenance_bag_is_complete(tmp_path):
    bag, outdir = tmp_path / "ro", tmp_path / "out"
    job = DATA / "slide-pool-scatter.job.yml"
    outputs = run_engine(["cwltool", "--enable-ext", "--no-container", "--provenance", str(bag), "--outdir", str(outdir),
                          str(DATA / "slide-pool-scatter.cwl"), str(job)])
    stored = check_provenance_bag(bag, steps=("per_slide", "cohort"))
    files = [v for v in outputs["slide_tables"]] + [outputs["cohort_table"], outputs["cohort_report"]]
    assert {sha1(f["path"]) for f in files} <= stored
    assert {sha1(p) for p in (REPO / "tools/slide-pool/tests/data").glob("P[12]-[ABD].h5")} <= stored
