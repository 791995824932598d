"""run-report: what the page shows (from a synthetic results tree), its errors, and the page in a
real browser (headless Chromium), with fusion-train's model report checked the same way."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gcmlm.cli import main
from gcmlm.report.core.nifti import read_label_map
from gcmlm.report.run_report import build_report

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks" / "report"))
from synthetic_results import DROPPED, EMPTY_MASK, FEW_PATCHES, write_mask, write_results_tree  # noqa: E402

WIDTH, HEIGHT = 1280, 900


@pytest.fixture
def tree(tmp_path) -> Path:
    return write_results_tree(tmp_path / "results", 8)


def test_nifti_reader_matches_simpleitk(tmp_path):
    import SimpleITK as sitk

    path = tmp_path / "m.nii.gz"
    array = write_mask(path, 30, shape=(12, 10, 6), spacing=(0.8, 0.7, 2.5))
    mask = read_label_map(path)
    assert np.array_equal(mask.array.transpose(2, 1, 0), sitk.GetArrayFromImage(sitk.ReadImage(str(path))))
    assert np.array_equal(mask.array.transpose(2, 1, 0), array)
    assert mask.voxel_mm3 == pytest.approx(0.8 * 0.7 * 2.5)


def test_report_shows_volumes_agreement_and_outliers(tree, tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    write_mask(labels / "P0001.nii.gz", 21)  # the mask of P0001 has 21 tumour voxels: Dice 1
    facts = build_report(tree, tree / "index.html", labels=[labels / "P0001.nii.gz"])
    patients = facts.patients
    assert len(patients) == 8 and len(facts.images) == 8 + 2 * 12  # CT overlays + 2 maps per slide
    assert patients["P0001"].dice == 1.0 and patients["P0001"].tumour_ml == pytest.approx(21 * 2.0 / 1000)
    assert patients[f"P{EMPTY_MASK:04d}"].flags == ["empty mask"]
    assert patients[f"P{FEW_PATCHES:04d}"].flags == [f"P{FEW_PATCHES:04d}-A: 2 patches", f"P{FEW_PATCHES:04d}-B: 2 patches"]
    assert patients[f"P{DROPPED:04d}"].flags == ["dropped at the join"]
    assert patients[f"P{DROPPED:04d}"].drop_reasons == ["absent from clinical.csv"]
    assert patients["P0002"].warnings == ["CT direction is not orthogonal"]  # from its ct-preprocess JSON
    assert patients["P0001"].n_patches == 2 * (40 + 1) and len(patients["P0001"].slides) == 2
    assert facts.model_aucs == {"rad": 0.71, "fused": 0.8}
    page = (tree / "index.html").read_text()
    assert 'href="fusion/model/report.html"' in page and 'src="radiology/qa/P0001.png"' in page
    assert page.count('loading="lazy"') == len(facts.images)
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing from the network


def add_mil_outputs(tree: Path) -> None:
    """What gc-mlm.cwl adds with slide_model abmil: pathology/mil/ (risk tables, model) and heatmaps/."""
    from synthetic_results import png_bytes

    mil, heatmaps = tree / "pathology" / "mil", tree / "pathology" / "heatmaps"
    (mil / "mil_model").mkdir(parents=True)
    heatmaps.mkdir()
    (mil / "mil_risk.csv").write_text("patient_id,mil_risk,mil_logit,n_slides,n_patches,n_empty_slides\n"
                                      "P0001,0.25,-1.1,2,82,0\nP0002,0.75,1.1,1,41,0\n")
    (mil / "mil_slide_risk.csv").write_text("slide_id,patient_id,mil_risk,n_patches\n"
                                            "P0001-A,P0001,0.2,41\nP0001-B,P0001,0.3,41\nP0002-A,P0002,0.75,41\n")
    (mil / "mil_model" / "training.json").write_text(json.dumps({"best_epoch": 3, "history": []}))
    for sid in ("P0001-B", "P0002-A"):
        (heatmaps / f"{sid}_heatmap.png").write_bytes(png_bytes())
        (heatmaps / f"{sid}_attention.geojson").write_text('{"type": "FeatureCollection", "features": []}')


def test_mil_heatmaps_get_their_own_gallery_highest_risk_first(tree):
    add_mil_outputs(tree)
    facts = build_report(tree, tree / "index.html")
    heatmaps = [i for i in facts.images if i.kind == "heatmap"]
    assert len(facts.images) == 8 + 2 * 12 + 2 and len(heatmaps) == 2
    assert facts.produced["pathology"]["MIL heatmaps"] == 2 and facts.produced["pathology"]["slide images"] == 2 * 12
    assert facts.patients["P0002"].mil_risk == 0.75 and facts.patients["P0003"].mil_risk is None
    assert {s.slide_id: s.mil_risk for s in facts.patients["P0001"].slides}["P0001-B"] == 0.3
    page = (tree / "index.html").read_text()
    gallery = page[page.index('id=heatmap-gallery'):]
    gallery = gallery[:gallery.index("</div>")]
    assert re.findall(r'src="([^"]+)"', gallery) == ["pathology/heatmaps/P0002-A_heatmap.png",
                                                     "pathology/heatmaps/P0001-B_heatmap.png"]
    assert "P0002-A attention, MIL risk 0.750" in gallery
    assert "_heatmap.png" not in page[page.index("id=slide-gallery"):page.index("MIL attention heatmaps")]
    assert "<th>MIL risk (in-sample)</th>" in page and ">0.750</td>" in page


def test_without_mil_outputs_there_is_no_heatmap_section(tree):
    facts = build_report(tree, tree / "index.html")
    page = (tree / "index.html").read_text()
    assert "MIL attention heatmaps" not in page and "MIL risk" not in page
    assert "MIL heatmaps" not in facts.produced["pathology"]


def test_partial_tree_gives_a_partial_page(tmp_path):
    write_results_tree(tmp_path / "full", 2)
    shutil.copytree(tmp_path / "full" / "pathology", tmp_path / "only" / "pathology")
    facts = build_report(tmp_path / "only", tmp_path / "only" / "index.html")
    assert sorted(facts.patients) == ["P0001", "P0002"] and facts.join is None
    assert "No model was trained" in (tmp_path / "only" / "index.html").read_text()


def test_bad_inputs_are_one_line_errors(tree, tmp_path, capsys):
    bad = tmp_path / "P0001.nii"
    bad.write_text("x")
    for args, problem in (
        (["--results", str(tmp_path / "absent")], "no such results folder"),
        (["--results", str(tree), "--labels", str(bad)], "a label map must be named <patient_id>.nii.gz"),
    ):
        assert main(["run-report", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("gcmlm run-report: error: ") and err[0].endswith(problem), err
    assert not (tree / "index.html").exists()


# --- in a real browser -------------------------------------------------------------------------------

# Injected first into a copy of the page: records script errors and console.error calls, then after
# load sorts the patient table by tumour volume (the page's own click handler) and writes what it saw
# into the DOM, which --dump-dom prints.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) { __errors.push(String(e.message || e)); }, true);
(function () { var err = console.error; console.error = function () {
  __errors.push(Array.prototype.join.call(arguments, ' ')); err.apply(console, arguments); }; })();
window.addEventListener('load', function () {
  var result = {scrollWidth: document.documentElement.scrollWidth, errors: __errors};
  var table = document.getElementById('patients');
  if (table) {
    table.tHead.rows[0].cells[1].click();
    result.firstByVolume = table.tBodies[0].rows[0].cells[0].textContent;
    result.rows = table.tBodies[0].rows.length;
    result.thumbnails = document.querySelectorAll('.gallery img[loading=lazy]').length;
  }
  var out = document.createElement('pre'); out.id = '__probe'; out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("CI"):
        pytest.fail("chromium is missing; CI must test the pages in a browser (apt-get install chromium)")
    if found is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium); CI requires it")
    return found


def browse(page: Path, tmp_path: Path, screenshot: Path) -> tuple[dict, str]:
    """Load ``page`` in headless Chromium at 1280 x 900: the probe's findings and the browser's log;
    a screenshot of the page as it is is kept at ``screenshot``."""
    browser = chromium()
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--window-size={WIDTH},{HEIGHT}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]
    probed = page.with_name(f"probe-{page.name}")
    probed.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    dom = subprocess.run([*flags, f"--user-data-dir={tmp_path / 'chromium-dom'}", "--dump-dom", probed.as_uri()],
                         capture_output=True, text=True, timeout=120)
    shot = subprocess.run([*flags, f"--user-data-dir={tmp_path / 'chromium-shot'}", f"--screenshot={screenshot}",
                           page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0 and shot.returncode == 0, dom.stderr[-2000:] + shot.stderr[-2000:]
    assert screenshot.is_file() and screenshot.stat().st_size > 1000
    print(f"screenshot: {screenshot}")
    found = re.search(r'<pre id="__probe">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stdout[-2000:]
    import html

    return json.loads(html.unescape(found.group(1))), dom.stderr + shot.stderr


def console_errors(log: str) -> list[str]:
    """Console errors and uncaught exceptions in Chromium's log (--enable-logging=stderr)."""
    return [line for line in log.splitlines()
            if ("CONSOLE" in line and ("ERROR" in line or "Uncaught" in line)) or "Uncaught" in line]


def test_run_report_in_chromium(tree, tmp_path):
    build_report(tree, tree / "index.html")
    seen, log = browse(tree / "index.html", tmp_path, tmp_path / "run-report.png")
    assert seen["errors"] == [] and console_errors(log) == []
    assert seen["rows"] == 8 and seen["thumbnails"] == 8 + 2 * 12
    assert seen["firstByVolume"] == f"P{EMPTY_MASK:04d}"  # sorted by tumour volume: the empty mask first
    assert seen["scrollWidth"] <= WIDTH


def test_model_report_fits_1280_px_in_chromium(tmp_path):
    """fusion-train's report with its 14-column metrics table (as fusion_train.render builds it)."""
    from gcmlm.fusion.core import report

    cols = ["model", "features", "auc", "auc_ci95", "auc_fold_mean", "auc_fold_sd", "sensitivity", "specificity",
            "ppv", "npv", "brier", "calibration_intercept", "calibration_slope", "threshold_median"]
    rows = [{"model": m, "features": 12, "auc": 0.7312, "auc_ci95": [0.6123, 0.8421], "auc_fold_mean": 0.7211,
             "auc_fold_sd": 0.0712, "sensitivity": 0.6667, "specificity": 0.7143, "ppv": 0.5, "npv": 0.8333,
             "brier": 0.2012, "calibration_intercept": -0.1234, "calibration_slope": 0.8765, "threshold_median": 0.4123}
            for m in ("rad", "path", "clin", "fused", "stacked")]
    page = tmp_path / "report.html"
    page.write_text(report.page("Fusion model: nested cross-validation", [("Nested cross-validation",
                                                                         report.table(rows, cols))], []))
    seen, log = browse(page, tmp_path, tmp_path / "model-report.png")
    assert seen["errors"] == [] and console_errors(log) == []
    assert seen["scrollWidth"] <= WIDTH, f"the page is {seen['scrollWidth']} px wide at a {WIDTH} px window"
