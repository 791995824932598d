"""workflows/radiology-train.cwl run by cwltool on CPU (use_gpu: false), with the zip's contents checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_radiology_train_workflow_cpu(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [Path(sys.executable).parent / "cwltool", "--no-container", "--quiet", "--outdir", tmp_path,
         REPO / "workflows" / "radiology-train.cwl", REPO / "workflows" / "tests" / "radiology-train.job.yml"],
        env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout)
    prefix = "Dataset999_Tiny/nnUNetTrainerNoDA_gcmlmShort__nnUNetPlans_tiny__3d_fullres/"
    with zipfile.ZipFile(outputs["model"]["path"]) as z:
        names = set(z.namelist())
    assert {prefix + n for n in ("plans.json", "dataset.json", "dataset_fingerprint.json",
                                 "fold_0/checkpoint_final.pth", "fold_0/validation/summary.json")} <= names
    summary = json.loads(Path(outputs["validation_summary"]["path"]).read_text())
    assert set(summary["mean"]) == {"1", "2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nnunet_model.zip", "validation_summary.json"]
