"""GPU steps on a cluster: Toil turns a step's cwltool:CUDARequirement into a Slurm GPU request
(`--gres=gpu:N`), and the CPU variant of the docs/gpu.md pattern (use_gpu: false) asks for none.

The local cluster (tests/cluster/slurm/slurm-up.sh) declares one GPU placeholder (gres bound to /dev/null), so
Slurm really schedules the request and sets CUDA_VISIBLE_DEVICES; cwltool's own check of the driver
(`nvidia-smi -q -x`) is answered by tests/cluster/data/fake-gpu-driver. No GPU code runs."""

from __future__ import annotations

import shlex
import shutil
import uuid
from pathlib import Path

import pytest
from engine_runs import DATA, cwltool_cmd, engine_env, run_engine, slurm_jobs, toil_cmd

pytestmark = pytest.mark.cluster

PATTERN = DATA / "gpu-pattern.cwl"
FAKE_DRIVER = DATA / "fake-gpu-driver"
SBATCH_RECORDER = """#!/usr/bin/env bash
{{ printf '%q ' "$@"; echo; }} >> {log}
exec {real} "$@"
"""


def run_pattern_on_slurm(tmp_path: Path, job: str, with_driver: bool) -> tuple[dict[str, str], list[list[str]], list[dict]]:
    """Run gpu-pattern.cwl with Toil on Slurm; return the probe's view of its environment, the
    sbatch argument lists Toil used, and the Slurm jobs of the run."""
    bindir, sbatch_log = tmp_path / "bin", tmp_path / "sbatch-calls.txt"
    bindir.mkdir()
    recorder = bindir / "sbatch"
    recorder.write_text(SBATCH_RECORDER.format(log=sbatch_log, real=shutil.which("sbatch")))
    recorder.chmod(0o755)
    env = engine_env(extra_path=[bindir] + ([FAKE_DRIVER] if with_driver else []))
    tag = f"gcmlm-gpu-{uuid.uuid4().hex[:12]}"
    cmd = toil_cmd(
        tmp_path / "jobstore", tmp_path / "out", "slurm",
        f"--slurmArgs=--comment={tag}",
        # Toil 9 replaces cwltool's --preserve-environment list with the step's EnvVarRequirement,
        # so only this passes Slurm's CUDA_VISIBLE_DEVICES into a tool run without a container.
        "--preserve-entire-environment",
        str(PATTERN), str(DATA / job),
    )
    outputs = run_engine(cmd, env=env)
    probe = dict(line.split("=", 1) for line in Path(outputs["gpu_env"]["path"]).read_text().splitlines())
    calls = [shlex.split(line) for line in sbatch_log.read_text().splitlines()]
    return probe, calls, slurm_jobs(tag)


def probe_job(calls: list[list[str]], step: str) -> list[str]:
    """The sbatch arguments of the pattern's probe step STEP (Toil names jobs after the step)."""
    matches = [args for args in calls if any(a.endswith(f"gpu-pattern.{step}.gpu-probe") for a in args)]
    assert len(matches) == 1, calls
    return matches[0]


def test_cuda_step_gets_a_slurm_gpu(slurm_cluster, tmp_path):
    probe, calls, jobs = run_pattern_on_slurm(tmp_path, "gpu-pattern-gpu.job.yml", with_driver=True)
    args = probe_job(calls, "probe_gpu")
    assert "--gres=gpu:1" in args  # cudaDeviceCountMin: 1
    assert "--cpus-per-task=1" in args and "--mem=256" in args  # the tool's ResourceRequirement
    (job,) = [j for j in jobs if j["JobName"].endswith("probe_gpu.gpu-probe")]
    assert job["TresPerNode"] == "gres:gpu:1" and job["JobState"] == "COMPLETED"
    # Slurm bound the (placeholder) GPU to the job, and the tool saw the binding.
    assert probe == {"CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_GPUS": "0", "SLURM_JOB_ID": job["JobId"]}


def test_cpu_variant_asks_slurm_for_no_gpu(slurm_cluster, tmp_path):
    probe, calls, jobs = run_pattern_on_slurm(tmp_path, "gpu-pattern-cpu.job.yml", with_driver=False)
    args = probe_job(calls, "probe_cpu")
    assert not [a for a in args if a.startswith("--gres")]
    assert not any("probe_gpu" in a for call in calls for a in call)  # the skipped step is never submitted
    (job,) = [j for j in jobs if j["JobName"].endswith("probe_cpu.gpu-probe")]
    assert job.get("TresPerNode", "(null)") == "(null)" and job["JobState"] == "COMPLETED"
    assert probe == {"SLURM_JOB_ID": job["JobId"]}


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has an NVIDIA driver")
def test_cuda_step_has_no_cpu_fallback(tmp_path):
    """Why docs/gpu.md declares GPU stages twice: without a GPU, a CUDARequirement step fails."""
    with pytest.raises(AssertionError, match="Could not satisfy CUDARequirement"):
        run_engine(cwltool_cmd(tmp_path, str(PATTERN), str(DATA / "gpu-pattern-gpu.job.yml")))
    outputs = run_engine(cwltool_cmd(tmp_path, str(PATTERN), str(DATA / "gpu-pattern-cpu.job.yml")))
    assert Path(outputs["gpu_env"]["path"]).read_text() == ""

