"""Fixtures for the engine tests: a local Slurm cluster when there is one, and a cohort of slides."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from engine_runs import DATA, REPO, content_of, cwltool_cmd, engine_env, have_slurm, run_engine

CLUSTER_REQUIRED = os.environ.get("GCMLM_CLUSTER_TESTS") == "1"


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster: engine tests (cwltool/Toil/Slurm); see docs/cluster.md")


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """A Slurm cluster that sbatch reaches. With GCMLM_CLUSTER_TESTS=1 (CI, after
    .ci/cluster.sh started one) its absence is a failure; otherwise the test is skipped."""
    if have_slurm():
        return
    message = "no Slurm cluster answers (start one with: sudo tests/cluster/slurm/slurm-up.sh)"
    if CLUSTER_REQUIRED:
        pytest.fail(message + " although GCMLM_CLUSTER_TESTS=1")
    pytest.skip(message)


@pytest.fixture(scope="session")
def slide_cohort(tmp_path_factory) -> Path:
    """Six CLAM feature files of three patients and their slide map, with a job file for
    tests/cluster/data/slide-pool-scatter.cwl: seven slide-pool jobs in all."""
    from gcmlm.pathology.core.clam_h5 import PatchFeatures, write_features

    root = tmp_path_factory.mktemp("slide-cohort")
    rng = np.random.default_rng(7)
    rows, features = ["patient_id,slide_id"], []
    for patient in ("P1", "P2", "P3"):
        for letter in ("A", "B"):
            slide = f"{patient}-{letter}"
            n = int(rng.integers(5, 40))
            feats = PatchFeatures(
                features=rng.normal(size=(n, 16)).astype(np.float32),
                coords=rng.integers(0, 20_000, size=(n, 2)) // 256 * 256,
            )
            path = write_features(root / f"{slide}.h5", feats, {"patch_size": 256, "patch_level": 0})
            features.append(f"  - {{class: File, path: {path}}}")
            rows.append(f"{patient},{slide}")
    (root / "slide_map.csv").write_text("\n".join(rows) + "\n")
    job = root / "job.yml"
    job.write_text("features:\n" + "\n".join(features) + f"\nslide_map: {{class: File, path: {root / 'slide_map.csv'}}}\n")
    return job


@pytest.fixture(scope="session")
def cwltool_reference(tmp_path_factory) -> dict:
    """Outputs (by content) of cwltool on data/slide-pool-scatter.cwl: what every engine must match."""
    out = tmp_path_factory.mktemp("cwltool-reference")
    job = DATA / "slide-pool-scatter.job.yml"
    return content_of(run_engine(cwltool_cmd(out, str(DATA / "slide-pool-scatter.cwl"), str(job))))


def _run(cmd: list, cwd: Path) -> str:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=engine_env(), cwd=cwd)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed:\n{result.stderr[-3000:]}")
    return result.stdout


@pytest.fixture(scope="session")
def gc_mlm_demo_job(tmp_path_factory) -> Path:
    """A job for workflows/gc-mlm.cwl on a small demo cohort, made the way scripts/demo.sh makes
    its own (demo-cohort, radiology-train.cwl for a tiny nnU-Net, gcmlm jobs), only
    smaller: 16 patients (6 with MLM, enough for 3 outer x 2 inner folds with the stacked model),
    3 training CTs, 3 epochs (radiomics on the stomach label, which such a
    model finds), a tiny random-weight encoder, CPU, the bwh_biopsy tiling preset as in the demo."""
    work = tmp_path_factory.mktemp("gc-mlm-demo")
    # Default slide size, as scripts/demo.sh: at 1024 x 768 px no slide yields a tissue patch.
    _run(["gcmlm", "demo-cohort", "--out", work / "cohort", "--patients", 16, "--seed", 0], work)
    manifest = work / "cohort" / "manifest.csv"
    _run(["gcmlm", "jobs", "radiology-train", "--manifest", manifest, "--first", 3,
          "--out", work / "train.job.yml", "--set", "use_gpu=false", "--set", "dataset_id=501",
          "--set", "dataset_name=EngineDemo", "--set", "tiny=true", "--set", "epochs=3",
          "--set", "iterations_per_epoch=5", "--set", "val_iterations=1", "--set", "num_processes=1",
          "--set", "fold=all"], work)
    trained = json.loads(_run(["cwltool", "--enable-ext", "--no-container", "--quiet", "--outdir", work / "model",
                               REPO / "workflows" / "radiology-train.cwl", work / "train.job.yml"], work))
    light_params = REPO / "tools" / "radiomics-extract" / "tests" / "data" / "light_params.yaml"
    job = work / "gc-mlm.job.yml"
    _run(["gcmlm", "jobs", "gc-mlm", "--manifest", manifest, "--clinical", work / "cohort" / "clinical.csv",
          "--model", trained["model"]["path"], "--out", job,
          "--set", "use_gpu=false", "--set", "tiling_preset=bwh_biopsy", "--set", "encoder=test_resnet", "--set", "allow_random_weights=true",
          "--set", "embed_batch_size=16", "--set", "disable_tta=true", "--set", "radiomics_label=1", "--set", "spacing=[1.6, 1.6, 2.5]",
          "--set", f"radiomics_params={{class: File, path: {light_params}}}",
          "--set", "outer_folds=3", "--set", "inner_folds=2", "--set", "outer_repeats=1", "--set", "seed=0"], work)
    return job

