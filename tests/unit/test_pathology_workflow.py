"""workflows/pathology.cwl under cwltool: the CPU path gives the patient table slide-pool computes
from the per-slide features, and the GPU path is refused on a machine without a GPU."""

import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from gcmlm.pathology.core.clam_h5 import read_coords, read_features

pytestmark = pytest.mark.slow  # each cwltool run tiles and embeds real slides (~1 min on 2 cores)


def _cwltool(repo, job, outdir):
    if shutil.which("cwltool") is None:
        pytest.fail("cwltool is not on PATH (put .venv/bin first)")
    return subprocess.run(["cwltool", "--enable-ext", "--no-container", "--outdir", str(outdir),
                           str(repo / "workflows" / "pathology.cwl"), str(job)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def cpu_run(repo, shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("pathology-wf")
    result = _cwltool(repo, repo / "workflows" / "tests" / "pathology.job.yml", out)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout), out


def test_cpu_path_patient_table_is_the_mean_of_the_slide_features(cpu_run):
    outputs, out = cpu_run
    table = pd.read_csv(outputs["patient_table"]["path"], dtype={"patient_id": str})
    assert list(table.columns[:3]) == ["patient_id", "path_n_slides", "path_n_patches"]
    assert list(table.columns[3:]) == [f"path_{i:04d}" for i in range(96)]  # test_resnet: 96-d
    assert table["patient_id"].tolist() == ["P1"]
    h5 = {f["basename"]: f["path"] for f in outputs["features_h5"]}
    cmu = read_features(h5["CMU-1-Small-Region.h5"])
    empty = read_features(h5["small.h5"])
    assert empty.features.shape == (0, 96)
    coords = {f["basename"]: f["path"] for f in outputs["coords"]}
    np.testing.assert_array_equal(cmu.coords, read_coords(coords["CMU-1-Small-Region.h5"])[0])
    row = table.iloc[0]
    assert row["path_n_slides"] == 1 and row["path_n_patches"] == len(cmu.features) > 0
    np.testing.assert_allclose(row.iloc[3:].to_numpy(float), cmu.features.mean(axis=0), rtol=1e-6, atol=1e-7)
    pt = {f["basename"]: f["path"] for f in outputs["features_pt"]}
    np.testing.assert_array_equal(torch.load(pt["CMU-1-Small-Region.pt"], weights_only=True).numpy(), cmu.features)
    assert cmu.attrs["weights"] == "random" and cmu.attrs["precision"] == "fp32"
    assert [f["basename"] for f in outputs["masks"]] == ["CMU-1-Small-Region_tissue.png", "small_tissue.png"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on machines without a GPU")
def test_gpu_path_is_refused_without_a_gpu(repo, shared_data, tmp_path):
    result = _cwltool(repo, repo / "workflows" / "tests" / "pathology-gpu.job.yml", tmp_path)
    assert result.returncode != 0
    assert "Could not satisfy CUDARequirement" in result.stderr
    assert not list(tmp_path.rglob("*.h5"))  # nothing embedded on the CPU behind the user's back
