"""workflows/radiology.cwl under cwltool on the CPU path: every output equals the stage run directly.

It uses the session's tiny nnU-Net (tests/unit/conftest.py; test_nnunet.py checks its quality) on
two of its held-out demo CTs. The wiring is the point: the workflow's
preprocessed CTs, masks, QA overlays and patient table must be exactly what ct-preprocess,
nnunet-predict and radiomics-extract give when called by hand on the same inputs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from gcmlm.cli import main
from gcmlm.common.tables import read_patient_table
from gcmlm.radiology.core.images import grid_differences

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
PATIENTS = ["GC009", "GC010"]  # held out from the tiny model's training
LIGHT_PARAMS = "tools/radiomics-extract/tests/data/light_params.yaml"
SPACING = [1.6, 1.6, 2.5]


def gcmlm(*argv) -> int:
    return main([str(a) for a in argv])


def cwltool(repo: Path, job: dict, outdir: Path) -> subprocess.CompletedProcess:
    if shutil.which("cwltool", path=str(BIN)) is None:
        pytest.fail("cwltool is not installed next to this Python")
    (outdir.parent / f"{outdir.name}.job.json").write_text(json.dumps(job))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([BIN / "cwltool", "--enable-ext", "--no-container", "--quiet", "--outdir", outdir,
                           repo / "workflows" / "radiology.cwl", outdir.parent / f"{outdir.name}.job.json"],
                          env=env, capture_output=True, text=True)


def read(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.fixture(scope="module")
def cpu_run(repo, tiny_model, demo_cohort, tmp_path_factory) -> tuple[dict, Path]:
    demo, out = demo_cohort, tmp_path_factory.mktemp("radiology-wf") / "wf-out"
    job = {"ct_images": [{"class": "File", "path": str(demo / "ct" / f"{p}.nii.gz")} for p in PATIENTS],
           "patient_ids": PATIENTS, "model": {"class": "File", "path": str(tiny_model["zip"])},
           "spacing": SPACING, "use_gpu": False, "disable_tta": True, "radiomics_label": 1,
           "radiomics_params": {"class": "File", "path": str(repo / LIGHT_PARAMS)}}
    result = cwltool(repo, job, out)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout), out


def test_outputs_per_patient(cpu_run):
    outputs, out = cpu_run
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{p}{suffix}" for p in PATIENTS for suffix in ("_0000.nii.gz", ".nii.gz", ".png", "_ct_preprocess.json",
                                                           "_radiomics_diagnostics.json")] + ["radiomics_features.csv"])
    assert [f["basename"] for f in outputs["preprocessed_cts"]] == [f"{p}_0000.nii.gz" for p in PATIENTS]
    assert [f["basename"] for f in outputs["masks"]] == [f"{p}.nii.gz" for p in PATIENTS]
    assert [f["basename"] for f in outputs["qa_overlays"]] == [f"{p}.png" for p in PATIENTS]
    assert [f["basename"] for f in outputs["preprocess_reports"]] == [f"{p}_ct_preprocess.json" for p in PATIENTS]
    assert [f["basename"] for f in outputs["radiomics_diagnostics"]] == [f"{p}_radiomics_diagnostics.json" for p in PATIENTS]
    for qa in outputs["qa_overlays"]:
        assert Path(qa["path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_preprocessing_and_masks_equal_the_stages_run_directly(cpu_run, tiny_model, demo_cohort, tmp_path):
    outputs, _ = cpu_run
    for patient, ct, mask in zip(PATIENTS, outputs["preprocessed_cts"], outputs["masks"], strict=True):
        direct = tmp_path / f"{patient}_0000.nii.gz"
        assert gcmlm("ct-preprocess", "--image", demo_cohort / "ct" / f"{patient}.nii.gz", "--out", direct,
                     "--spacing", *SPACING) == 0
        np.testing.assert_array_equal(read(ct["path"]), read(direct))
        assert sitk.ReadImage(ct["path"]).GetSpacing() == pytest.approx(SPACING)
        assert grid_differences(sitk.ReadImage(ct["path"]), sitk.ReadImage(mask["path"])) == []
    direct_masks = tmp_path / "masks"
    assert gcmlm("nnunet-predict", "--model", tiny_model["zip"], "--images", *[c["path"] for c in outputs["preprocessed_cts"]],
                 "--out", direct_masks, "--device", "cpu", "--disable-tta", "-npp", 1, "-nps", 1) == 0
    for patient, mask in zip(PATIENTS, outputs["masks"], strict=True):
        np.testing.assert_array_equal(read(mask["path"]), read(direct_masks / f"{patient}.nii.gz"))


def test_patient_table_equals_radiomics_extract_on_the_workflow_masks(cpu_run, repo, tmp_path):
    outputs, _ = cpu_run
    table = read_patient_table(outputs["radiomics_table"]["path"])
    assert table["patient_id"].tolist() == PATIENTS
    direct = tmp_path / "direct.csv"
    assert gcmlm("radiomics-extract", "--image", *[c["path"] for c in outputs["preprocessed_cts"]],
                 "--mask", *[m["path"] for m in outputs["masks"]], "--patient-id", *PATIENTS,
                 "--label", 1, "--params", repo / LIGHT_PARAMS, "--out", direct) == 0
    assert Path(outputs["radiomics_table"]["path"]).read_bytes() == direct.read_bytes()
    assert table.shape == (2, 1 + 130) and table.filter(like="rad_original_shape_VoxelVolume").gt(0).all().all()


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="checks the refusal on machines without a GPU")
def test_gpu_path_is_refused_without_a_gpu(repo, tiny_model, demo_cohort, tmp_path):
    job = {"ct_images": [{"class": "File", "path": str(demo_cohort / "ct" / "GC009.nii.gz")}],
           "patient_ids": ["GC009"], "model": {"class": "File", "path": str(tiny_model["zip"])}, "use_gpu": True}
    result = cwltool(repo, job, tmp_path / "out")
    assert result.returncode != 0
    assert "CUDARequirement" in result.stderr
    assert not list(tmp_path.rglob("*_radiomics.csv"))  # nothing ran on the CPU behind the user's back
