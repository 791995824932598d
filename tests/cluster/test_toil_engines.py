"""The same workflow gives byte-identical outputs with cwltool, Toil (single machine) and Toil on
the local Slurm cluster (tests/cluster/slurm/slurm-up.sh)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from engine_runs import (
    DATA,
    REPO,
    check_provenance_bag,
    content_of,
    cwltool_cmd,
    run_engine,
    sha1,
    slurm_jobs,
    toil_cmd,
)

pytestmark = pytest.mark.cluster

SCATTER = DATA / "slide-pool-scatter.cwl"
SCATTER_JOB = DATA / "slide-pool-scatter.job.yml"
# slide-pool's own cwltest expects this patient table for P1-A, P1-B, P2-D (+ the empty P2-C).
COHORT_TABLE_SHA1 = "0f19a216f1907493c09474e4954ffc265a3cd1e6"


def test_cwltool_reference_run(cwltool_reference):
    assert [t["basename"] for t in cwltool_reference["slide_tables"]] == ["P1-A.csv", "P1-B.csv", "P2-D.csv"]
    assert cwltool_reference["cohort_table"]["sha1"] == COHORT_TABLE_SHA1


def test_toil_single_machine_matches_cwltool(cwltool_reference, tmp_path):
    outputs = run_engine(toil_cmd(tmp_path / "jobstore", tmp_path / "out", "single_machine", str(SCATTER), str(SCATTER_JOB)))
    assert content_of(outputs) == cwltool_reference


def test_toil_slurm_matches_cwltool(slurm_cluster, cwltool_reference, tmp_path):
    tag = f"gcmlm-test-{uuid.uuid4().hex[:12]}"
    cmd = toil_cmd(
        tmp_path / "jobstore", tmp_path / "out", "slurm",
        f"--slurmArgs=--comment={tag}", str(SCATTER), str(SCATTER_JOB),
    )
    outputs = run_engine(cmd)
    assert content_of(outputs) == cwltool_reference
    # Every tool step went through sbatch: three scattered slide-pool jobs and the cohort job.
    jobs = slurm_jobs(tag)
    names = sorted(job["JobName"] for job in jobs)
    assert len([n for n in names if re.search(r"slide-pool-scatter\.\d+\.slide-pool$", n)]) == 3, names
    assert len([n for n in names if n.endswith("slide-pool-scatter.cohort.slide-pool")]) == 1, names
    assert {job["JobState"] for job in jobs} == {"COMPLETED"}


# The whole workflow on a demo cohort (conftest.gc_mlm_demo_job).
WORKFLOW = REPO / "workflows" / "gc-mlm.cwl"
# patch-embed asks for 4 cores; Toil never scales a request down (see docs/cluster.md).
SMALL_NODE = ["--overrides", str(REPO / "inputs" / "small-node.overrides.yml")]


@pytest.fixture(scope="module")
def workflow_cwltool_run(gc_mlm_demo_job, tmp_path_factory) -> tuple[dict, Path]:
    """cwltool's run of the whole workflow, with a CWLProv bag (--provenance) as the demo documents."""
    out = tmp_path_factory.mktemp("workflow-cwltool")
    cmd = cwltool_cmd(out / "out", "--provenance", str(out / "ro"), str(WORKFLOW), str(gc_mlm_demo_job))
    return run_engine(cmd, timeout=3600), out / "ro"


@pytest.fixture(scope="module")
def workflow_reference(workflow_cwltool_run) -> dict:
    return content_of(workflow_cwltool_run[0])


@pytest.mark.slow
def test_workflow_provenance_bag_holds_the_run(workflow_cwltool_run):
    outputs, bag = workflow_cwltool_run
    stored = check_provenance_bag(bag, steps=("radiology", "pathology", "fusion"))
    model = Path(outputs["fusion_outputs"]["path"]) / "model"
    assert {sha1(model / "metrics.json"), sha1(model / "report.html")} <= stored


@pytest.mark.slow
def test_workflow_toil_single_machine_matches_cwltool(gc_mlm_demo_job, workflow_reference, tmp_path):
    cmd = toil_cmd(tmp_path / "jobstore", tmp_path / "out", "single_machine", *SMALL_NODE, str(WORKFLOW), str(gc_mlm_demo_job))
    assert content_of(run_engine(cmd, timeout=3600)) == workflow_reference


@pytest.mark.slow
def test_workflow_toil_slurm_matches_cwltool(slurm_cluster, gc_mlm_demo_job, workflow_reference, tmp_path):
    tag = f"gcmlm-wf-{uuid.uuid4().hex[:12]}"
    cmd = toil_cmd(
        tmp_path / "jobstore", tmp_path / "out", "slurm", f"--slurmArgs=--comment={tag}", *SMALL_NODE,
        str(WORKFLOW), str(gc_mlm_demo_job),
    )
    assert content_of(run_engine(cmd, timeout=3600)) == workflow_reference
    # Every tool step ran as a Slurm job named after its tool, and all completed.
    jobs = slurm_jobs(tag)
    tools = {p.name for p in (REPO / "tools").iterdir()}
    assert jobs and {job["JobName"].rsplit(".", 1)[-1] for job in jobs} <= tools, [j["JobName"] for j in jobs]
    assert {job["JobState"] for job in jobs} == {"COMPLETED"}
