"""demo-cohort: files open in the tools users run (OpenSlide, SimpleITK, our readers), the cohort is
deterministic, and the planted signal is there in both imaging modalities and in the outcome."""

import hashlib
import json
from pathlib import Path

import numpy as np
import openslide
import pandas as pd
import pytest
import SimpleITK as sitk
import tifffile
from sklearn.metrics import roc_auc_score

from gcmlm.cli import main
from gcmlm.common.manifest import read_manifest, slide_id, slide_patient_map
from gcmlm.common.tables import feature_columns, read_patient_table
from gcmlm.demo.core import ct, patients, wsi
from gcmlm.demo.demo_cohort import make_cohort

SMALL_SLIDES = (1024, 768)


def _sha(path):
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _dark_fraction(path) -> float:
    """Share of tissue pixels darker than stroma: nuclei, i.e. hematoxylin-rich."""
    with openslide.OpenSlide(path) as slide:
        image = np.asarray(slide.read_region((0, 0), 1, slide.level_dimensions[1]).convert("RGB"), dtype=np.float32)
    grey = image.mean(axis=-1)
    tissue = grey < 225
    return float((grey[tissue] < 150).mean())


def test_slides_open_in_openslide_with_mpp_and_pyramid(demo_cohort):
    slides = sorted((demo_cohort / "slides").glob("*.tiff"))
    assert len(slides) == 13  # 12 patients, one with two slides
    for path in slides:
        with openslide.OpenSlide(path) as slide:
            assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(0.5)
            assert float(slide.properties["openslide.mpp-y"]) == pytest.approx(0.5)
            assert slide.level_count >= 3
            assert slide.level_downsamples[:3] == pytest.approx((1, 4, 16), rel=0.01)
            width, height = slide.dimensions
            assert 3000 <= width <= 4096 and 2500 <= height <= 3072
            thumb = np.asarray(slide.get_thumbnail((256, 256)).convert("RGB"), dtype=np.float32)
        # White glass around pink/purple tissue: bright background, tissue with green absorbed (eosin).
        grey = thumb.mean(axis=-1)
        assert 0.1 < (grey < 225).mean() < 0.9
        tissue = thumb[grey < 225]
        assert tissue[:, 1].mean() < tissue[:, 0].mean() - 20 and tissue[:, 1].mean() < tissue[:, 2].mean() - 20
        with tifffile.TiffFile(path) as tif:
            assert len(tif.pages) >= 3
            for page in tif.pages:
                assert page.is_tiled and page.tilewidth == 256 and page.compression == tifffile.COMPRESSION.JPEG


def test_ct_and_labels_share_the_grid_with_clinical_spacing(demo_cohort):
    cts = sorted((demo_cohort / "ct").glob("*.nii.gz"))
    assert len(cts) == 12
    for path in cts:
        image = sitk.ReadImage(str(path))
        label = sitk.ReadImage(str(demo_cohort / "labels" / path.name))
        assert image.GetPixelID() == sitk.sitkInt16 and label.GetPixelID() == sitk.sitkUInt8
        assert image.GetSpacing() == pytest.approx(ct.SPACING)
        assert image.GetSize() == ct.SIZE
        for getter in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
            assert getattr(image, getter)() == getattr(label, getter)()
        hu, lab = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(label)
        assert set(np.unique(lab)) == {0, 1, 2}
        assert (lab == 2).sum() > 100 and (lab == 1).sum() > 1000
        assert np.median(hu[:, :4, :4]) < -900 and np.median(hu[:, -4:, -4:]) < -900  # air around the body
        assert 20 < np.median(hu[lab == 1]) < 100  # enhancing wall
        assert ((hu > -150) & (hu < 150)).mean() > 0.2  # fat and soft tissue fill the body


def test_manifest_and_clinical_follow_the_conventions(demo_cohort):
    manifest = read_manifest(demo_cohort / "manifest.csv")
    assert {row["kind"] for row in manifest} == {"ct", "slide"}
    for row in manifest:
        assert Path(row["path"]).is_file() and (row["kind"] == "slide" or Path(row["label"]).is_file())
    cts = [row for row in manifest if row["kind"] == "ct"]
    assert all(row["label"].endswith(".nii.gz") for row in cts)
    assert len({row["patient_id"] for row in cts}) == len(cts)
    raw = pd.read_csv(demo_cohort / "manifest.csv", dtype=str, keep_default_na=False)
    assert not any(p.startswith("/") for p in raw["path"])  # relative paths: the folder can move

    mapping = slide_patient_map(demo_cohort / "manifest.csv")
    assert set(mapping) == {slide_id(p) for p in (demo_cohort / "slides").glob("*.tiff")}
    per_patient = pd.Series(mapping).value_counts()
    assert (per_patient == 2).sum() == 1 and (per_patient == 1).sum() == 11

    clinical = read_patient_table(demo_cohort / "clinical.csv")
    assert list(clinical["patient_id"]) == [row["patient_id"] for row in cts]
    assert feature_columns(clinical) == [c for c in clinical.columns if c.startswith("clin_")]
    assert {"clin_age", "clin_sex_male", "clin_t_stage", "clin_n_stage", "clin_cea"} <= set(clinical.columns)
    assert set(clinical["mlm"]) == {0, 1}
    assert clinical["clin_t_stage"].between(1, 4).all() and clinical["clin_n_stage"].between(0, 3).all()
    # follow-up: the event is the MLM outcome, seen within follow-up; the others are censored later
    assert (clinical["mlm_event"] == clinical["mlm"]).all()
    assert clinical["mlm_time_months"].between(0.5, 60).all()
    assert "mlm_time_months" not in feature_columns(clinical)


def test_same_seed_same_bytes_slide_size_changes_only_slides(tmp_path):
    runs = [make_cohort(tmp_path / name, patients=3, seed=0, slide_size=SMALL_SLIDES) for name in "ab"]
    first, second = (r["manifest"].parent for r in runs)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == 3 + 3 + 3 + 4  # manifest, clinical, truth; CTs; labels; 4 slides
    for rel in files:
        assert _sha(first / rel) == _sha(second / rel), rel
    # The slide size draws from its own streams: CTs, labels and the clinical table stay put.
    bigger = make_cohort(tmp_path / "c", patients=3, seed=0, slide_size=(1280, 1024))["manifest"].parent
    for rel in files:
        if rel.parts[0] in ("ct", "labels") or rel.name in ("clinical.csv", "manifest.csv"):
            assert _sha(first / rel) == _sha(bigger / rel), rel
    assert _sha(first / "slides" / "GC001-A.tiff") != _sha(bigger / "slides" / "GC001-A.tiff")
    other = make_cohort(tmp_path / "d", patients=3, seed=1, slide_size=SMALL_SLIDES)
    assert _sha(other["clinical"]) != _sha(first / "clinical.csv")


def test_truth_file_records_the_planted_risks(demo_cohort):
    truth = json.loads((demo_cohort / "truth.json").read_text())
    assert truth["seed"] == 0 and truth["version"] and truth["synthetic"] is True
    clinical = pd.read_csv(demo_cohort / "clinical.csv", dtype={"patient_id": str})
    assert [p["patient_id"] for p in truth["per_patient"]] == list(clinical["patient_id"])
    assert [p["mlm"] for p in truth["per_patient"]] == list(clinical["mlm"])


def test_planted_signal_visible_in_ct_and_slides(demo_cohort):
    """Tumour HU (label 2) follows r_ct; the slides' dark (nuclear) fraction follows r_path."""
    truth = json.loads((demo_cohort / "truth.json").read_text())["per_patient"]
    mean_hu, dark = [], []
    for p in truth:
        hu = sitk.GetArrayFromImage(sitk.ReadImage(str(demo_cohort / "ct" / f"{p['patient_id']}.nii.gz")))
        lab = sitk.GetArrayFromImage(sitk.ReadImage(str(demo_cohort / "labels" / f"{p['patient_id']}.nii.gz")))
        mean_hu.append(hu[lab == 2].mean())
        dark.append(np.mean([_dark_fraction(demo_cohort / "slides" / f"{s['slide_id']}.tiff") for s in p["slides"]]))
    r_ct = [p["r_ct"] for p in truth]
    r_path = [p["r_path"] for p in truth]
    assert pd.Series(mean_hu).corr(pd.Series(r_ct), method="spearman") > 0.7
    assert pd.Series(dark).corr(pd.Series(r_path), method="spearman") > 0.7
    # And the other modality carries no such signal (the risks are independent by design).
    assert abs(pd.Series(dark).corr(pd.Series(r_ct), method="spearman")) < 0.7


def test_ct_generator_monotone_in_risk():
    """Tumour size, mean HU and heterogeneity grow with r_ct on the same anatomy."""
    stats = []
    for r in (-2.0, 0.0, 2.0):
        image, label, truth = ct.make_ct(np.random.default_rng(5), r)
        hu, lab = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(label)
        stats.append(((lab == 2).sum(), np.median(hu[lab == 2]), truth.tumour_heterogeneity_hu))
    for low, high in zip(stats, stats[1:], strict=False):
        assert high[0] > low[0] and high[1] > low[1] + 10 and high[2] > low[2]


def test_outcome_model_rewards_fusion():
    """Over many synthetic patients: prevalence 25-45 %, each latent risk predicts, their sum predicts better."""
    n = 600
    people = patients.make_patients(np.random.default_rng(9), [np.random.default_rng([9, i]) for i in range(n)],
                                    [f"P{i}" for i in range(n)])
    y = np.array([p.mlm for p in people])
    r_ct, r_path = np.array([p.r_ct for p in people]), np.array([p.r_path for p in people])
    assert 0.25 < y.mean() < 0.45
    assert abs(np.mean(r_ct)) < 0.05 and abs(np.std(r_ct) - 1) < 0.05  # stratified draws: N(0, 1) margins
    assert abs(np.corrcoef(r_ct, r_path)[0, 1]) < 0.15
    auc_ct, auc_path, auc_both = (roc_auc_score(y, s) for s in (r_ct, r_path, r_ct + r_path))
    assert auc_ct > 0.7 and auc_path > 0.7 and auc_both > max(auc_ct, auc_path) + 0.08


def test_large_slide_writer_streams_tiles(tmp_path):
    """write_synthetic_slide: any size, pyramid, mpp tags; level 1 equals the box-downsampled level 0."""
    path = tmp_path / "big.tiff"
    info = wsi.write_synthetic_slide(path, 2000, 1300, mpp=0.25, seed=3, r_path=1.0)
    with openslide.OpenSlide(path) as slide:
        assert slide.dimensions == (2000, 1300)
        assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(0.25)
        assert slide.level_count == len(info["levels"]) >= 3
        level0 = np.asarray(slide.read_region((0, 0), 0, (1024, 1024)).convert("RGB"), dtype=np.float32)
        level1 = np.asarray(slide.read_region((0, 0), 1, (256, 256)).convert("RGB"), dtype=np.float32)
    box = level0.reshape(256, 4, 256, 4, 3).mean(axis=(1, 3))
    assert np.abs(box - level1).mean() < 6  # JPEG error only


def test_cli_writes_atomically_and_reports(tmp_path, capsys):
    out = tmp_path / "cohort"
    assert main(["demo-cohort", "--out", str(out), "--patients", "2", "--seed", "4",
                 "--slide-size", "512", "512"]) == 0
    assert "2 patients" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["clinical.csv", "ct", "labels", "manifest.csv", "slides", "truth.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort"]  # no temporary folder left behind
    assert main(["demo-cohort", "--out", str(tmp_path / "bad"), "--patients", "0"]) == 2
    assert "--patients" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_cli_never_replaces_a_folder_that_is_not_a_cohort(tmp_path, capsys):
    precious = tmp_path / "results"
    precious.mkdir()
    (precious / "model.zip").write_bytes(b"weights")
    assert main(["demo-cohort", "--out", str(precious), "--patients", "1", "--slide-size", "256", "256"]) == 2
    assert "refusing" in capsys.readouterr().err
    assert (precious / "model.zip").read_bytes() == b"weights"
    cohort = tmp_path / "cohort"
    for seed in ("1", "2"):  # an earlier cohort may be replaced
        assert main(["demo-cohort", "--out", str(cohort), "--patients", "1", "--seed", seed,
                     "--slide-size", "256", "256"]) == 0
    assert json.loads((cohort / "truth.json").read_text())["seed"] == 2
