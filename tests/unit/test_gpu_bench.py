"""The GPU benchmark's CPU dry run: the same code paths as the GPU run, so the script cannot rot
between the rare calls on a GPU machine (benchmarks/gpu/README.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SECTIONS = ("patch_embed", "model_alone", "nnunet_predict", "agreement", "mil_train")


@pytest.fixture(scope="module")
def dry_run(repo, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("gpu-bench")
    out = work / "results.json"
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(["bash", str(repo / "benchmarks" / "gpu" / "run.sh"), "--dry-run", "--out", str(out),
                           "--workdir", str(work / "cache"), "--workers", "1"],
                          env={**env, "GCMLM_PYTHON": sys.executable}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def positive(item: dict) -> float:
    assert set(item) == {"value", "unit"} and item["unit"], item
    assert item["value"] > 0, item
    return item["value"]


def test_dry_run_writes_every_section_on_cpu(dry_run):
    assert dry_run["dry_run"] is True and dry_run["device"] == "cpu"
    env = dry_run["environment"]
    assert env["device"] == "cpu" and env["cpu_count"] >= 1 and env["torch"] and env["gpu_name"] is None
    for section in SECTIONS:
        assert "error" not in dry_run[section], (section, dry_run[section])
        positive(dry_run[section]["section_seconds"])
    mil = dry_run["mil_train"]
    assert mil["epochs"] == 2 and mil["patients"] == 16
    positive(mil["fit"])
    positive(mil["predict_bags_per_second"])
    positive(dry_run["total_seconds"])


def test_dry_run_figures_are_positive(dry_run):
    embed, alone = dry_run["patch_embed"], dry_run["model_alone"]
    assert embed["n_patches"] == dry_run["sizes"]["max_patches"] == dry_run["slide"]["patches"]
    positive(embed["patches_per_second"])
    positive(alone["patches_per_second"])
    positive(dry_run["io_vs_ceiling"])
    assert embed["gpu"]["sampled"] is False  # no nvidia-smi samples on a CPU run
    nnunet = dry_run["nnunet_predict"]
    assert nnunet["model"]["trained_here"] is True
    assert nnunet["cpu"]["cases"] == dry_run["sizes"]["ct_predict_cases"]
    positive(nnunet["cpu"]["seconds_per_case"])


def test_dry_run_agreement_check_passes(dry_run):
    check = dry_run["agreement"]
    assert check["passed"] is True and check["n_patches"] == dry_run["sizes"]["agreement_patches"]
    assert check["cosine_min"]["value"] > check["threshold"]
    assert check["max_abs_diff"]["value"] >= 0
