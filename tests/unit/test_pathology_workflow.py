"""workflows/pathology.cwl under cwltool: the CPU path gives the patient table slide-pool computes
from the per-slide features, the GPU path is refused on a machine without a GPU, and slide_model
abmil adds a MIL model, risks, attention per slide and heatmaps (null on the mean path)."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gcmlm.pathology.core.clam_h5 import read_coords, read_features

MIL_OUTPUTS = ("mil_model", "mil_risk", "mil_slide_risk", "attention", "heatmaps", "heatmap_regions")

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


def test_mean_path_has_no_mil_outputs(cpu_run):
    outputs, _ = cpu_run
    assert all(outputs[name] is None for name in MIL_OUTPUTS)


@pytest.fixture(scope="module")
def abmil_run(repo, shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("pathology-abmil")
    result = _cwltool(repo, repo / "workflows" / "tests" / "pathology-abmil.job.yml", out)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_abmil_attention_is_per_patch_and_sums_to_one_per_patient(abmil_run):
    import h5py

    features = {f["basename"]: f["path"] for f in abmil_run["features_h5"]}
    attention = {Path(f["basename"]).stem: f["path"] for f in abmil_run["attention"]}
    assert sorted(attention) == ["CMU-1-Small-Region", "no-mpp"]  # small.svs has no patches, no attention
    for slide, path in attention.items():  # one slide with patches per patient here
        with h5py.File(path, "r") as h5:
            weights, coords = h5["attention"][:], h5["coords"][:]
        feats = read_features(features[f"{slide}.h5"])
        np.testing.assert_array_equal(coords, feats.coords)
        assert weights.shape == (len(feats.features),) and (weights > 0).all()
        assert weights.sum() == pytest.approx(1.0, abs=1e-5)
    risk = pd.read_csv(abmil_run["mil_risk"]["path"], dtype={"patient_id": str})
    assert risk["patient_id"].tolist() == ["P1", "P2"]
    assert risk["mil_risk"].between(0, 1).all()
    assert risk["n_patches"].tolist() == [len(read_features(features[f"{s}.h5"]).features)
                                          for s in ("CMU-1-Small-Region", "no-mpp")]
    model = Path(abmil_run["mil_model"]["path"])
    config = json.loads((model / "config.json").read_text())
    assert config  # the model folder mil-predict read
    assert {p.name for p in model.iterdir()} >= {"model.safetensors", "config.json", "training.json"}


def test_abmil_heatmap_is_drawn_for_the_highest_risk_slide(abmil_run):
    slides = pd.read_csv(abmil_run["mil_slide_risk"]["path"])
    top = slides.sort_values(["mil_risk", "slide_id"], ascending=[False, True])["slide_id"].iloc[0]
    assert [f["basename"] for f in abmil_run["heatmaps"]] == [f"{top}_heatmap.png"]  # heatmap_slides: 1
    png = Path(abmil_run["heatmaps"][0]["path"]).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    regions = json.loads(Path(abmil_run["heatmap_regions"][0]["path"]).read_text())
    assert abmil_run["heatmap_regions"][0]["basename"] == f"{top}_attention.geojson"
    assert regions["type"] == "FeatureCollection" and regions["features"]


def test_abmil_without_labels_stops_with_a_message(repo, tmp_path):
    result = _cwltool(repo, repo / "workflows" / "tests" / "pathology-abmil-no-labels.job.yml", tmp_path)
    assert result.returncode != 0
    assert "slide_model abmil needs `labels`" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on machines without a GPU")
def test_gpu_path_is_refused_without_a_gpu(repo, shared_data, tmp_path):
    result = _cwltool(repo, repo / "workflows" / "tests" / "pathology-gpu.job.yml", tmp_path)
    assert result.returncode != 0
    assert "Could not satisfy CUDARequirement" in result.stderr
    assert not list(tmp_path.rglob("*.h5"))  # nothing embedded on the CPU behind the user's back
