"""Values behind the fusion CWL tests: run the CWL descriptions with cwltool and read the outputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _cwltool(repo: Path, tool: str, job: str, out: Path) -> dict:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    proc = subprocess.run([str(Path(sys.executable).parent / "cwltool"), "--no-container", "--quiet", "--outdir",
                           str(out), str(repo / tool), str(repo / job)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_fusion_evaluate_tool_values(repo, tmp_path):
    out = _cwltool(repo, "tools/fusion-evaluate/fusion-evaluate.cwl", "tools/fusion-evaluate/tests/fusion-evaluate.job.yml",
                   tmp_path)
    m = json.loads(Path(out["metrics"]["path"]).read_text())
    assert m["cohort"]["patients"] == 40 and m["cohort"]["events"] == 16
    fused = m["models"]["fused"]
    assert fused["auc"] == pytest.approx(0.9323, abs=1e-4)
    assert (fused["tp"], fused["fn"], fused["tn"], fused["fp"]) == (13, 3, 22, 2)
    assert fused["threshold"] == pytest.approx(0.6007, abs=1e-4)  # the training threshold, not re-chosen
    assert fused["auc_ci95"][0] < fused["auc"] < fused["auc_ci95"][1]
    html = Path(out["report"]["path"]).read_text()
    assert html.count("data:image/png;base64,") == 3 and "src=\"http" not in html
    assert "<td>40</td>" in html and "external validation" in html


@pytest.mark.slow  # the whole fusion workflow: ~20 s of CPU
def test_fusion_workflow_values(repo, tmp_path):
    out = _cwltool(repo, "workflows/fusion.cwl", "workflows/tests/fusion.job.yml", tmp_path)
    cv = json.loads(Path(out["cv_metrics"]["path"]).read_text())
    assert set(cv["models"]) == {"rad", "path", "clin", "fused"}
    assert cv["design"]["patients"] == 48 and cv["design"]["events"] == 19
    assert {(c["model"], c["versus"]) for c in cv["comparisons"]} == {("fused", "rad"), ("fused", "path"), ("fused", "clin")}
    ext = json.loads(Path(out["external_metrics"]["path"]).read_text())
    aucs = {k: v["auc"] for k, v in ext["models"].items()}
    assert aucs["fused"] > max(aucs["rad"], aucs["path"], aucs["clin"])
    assert len(out["external_plots"]) == 6 and len(out["cv_plots"]) == 4
    assert Path(out["predictions"]["path"]).read_text().count("\n") == 11
