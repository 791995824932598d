"""demo-cohort: files open in the tools users run (OpenSlide, SimpleITK, our readers), the cohort is
deterministic, and the planted signal is there in both imaging modalities and in the outcome."""

import hashlib
import json
from pathlib import Path

import cv2
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
from gcmlm.demo.demo_cohort import DEFAULT_SLIDE_SIZE, cohort_patients, make_cohort, n_slides, patient_slides

SMALL_SLIDES = (1024, 768)
# SHA-1 of the raw level-0 tiles (before JPEG) of the slides without a planted region in
# make_cohort(patients=3, seed=0, slide_size=SMALL_SLIDES), rendered by generator version 1, i.e.
# before planted regions existed: those slides must stay the same pixels.
VERSION_1_TILES = {
    "GC002-A": "77ff0a0e9cc77a421e96423205e3e7d1ffe8ac6e",
    "GC002-B": "026ce6f6e71faafcefb8bdec9c0702e0b5e9ce2c",
    "GC003-A": "4913cc1c502923501cef84de688349f10ebbcc63",
}


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


def _tiles_sha(slide) -> str:
    digest = hashlib.sha1()
    for tile in slide.tiles():
        digest.update(tile.tobytes())
    return digest.hexdigest()


def _region_mask(region: dict, shape: tuple[int, int], downsample: float) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(np.array(region["polygon_px"]) / downsample * 16).astype(np.int32)], 1,
                 cv2.LINE_8, 4)
    return mask.astype(bool)


def test_slides_without_a_planted_region_are_the_version_1_pixels():
    """Planted regions draw from a stream of their own: a slide without one renders exactly as before
    they existed, and a slide with one differs only in the tiles around its region."""
    people = cohort_patients(3, 0)
    slides = {sid: slide for i, person in enumerate(people)
              for sid, slide in patient_slides(0, i, person, SMALL_SLIDES, n_slides(i, 3))}
    assert [sid for sid, slide in slides.items() if slide.planted] == ["GC001-A"]  # the one patient with MLM
    for sid, expected in VERSION_1_TILES.items():
        assert slides[sid].planted is None and _tiles_sha(slides[sid]) == expected, sid
    # The same slide rendered without its region: identical tiles away from it (more than 64 px,
    # the reach of its edge and its nuclei), changed tiles on it.
    with_region = slides["GC001-A"]
    (_, plain), = patient_slides(0, 0, people[0], SMALL_SLIDES)
    plain.region = plain.planted = None
    changed = untouched = 0
    for ty in range(0, with_region.height, 256):
        for tx in range(0, with_region.width, 256):
            same = np.array_equal(with_region.render_tile(tx, ty), plain.render_tile(tx, ty))
            near = wsi.polygon_coverage(with_region.planted.polygon, [(tx - 64, ty - 64)], 256 + 128)[0] > 0
            if not near:
                assert same, (tx, ty)
                untouched += 1
            elif wsi.polygon_coverage(with_region.planted.polygon, [(tx, ty)], 256)[0] > 0:
                assert not same, (tx, ty)
                changed += 1
    assert changed >= 1 and untouched >= 1


def test_planted_regions_follow_the_outcome_and_stay_small(demo_cohort):
    """Every patient with MLM has one planted region, on its first slide; a few without MLM have one
    too. Each covers 3-10 % of its slide's tissue, lies inside the tissue (measured on the slide's
    low-resolution fields and on the written slide) and is where truth.json says it is: the only
    crowded, dark spot of the slide."""
    truth = json.loads((demo_cohort / "truth.json").read_text())
    assert truth["version"] == "2" and truth["planted_region"]["probability_by_mlm"] == [0.1, 1.0]
    per_patient = truth["per_patient"]
    people = cohort_patients(len(per_patient), truth["seed"])
    with_region = 0
    for i, (p, person) in enumerate(zip(per_patient, people, strict=True)):
        regions = [s["planted_region"] for s in p["slides"]]
        assert regions[1:] == [None] * (len(regions) - 1)  # only ever on the first slide
        if p["mlm"]:
            assert regions[0] is not None, p["patient_id"]
        with_region += regions[0] is not None
        rendered = dict(patient_slides(truth["seed"], i, person, DEFAULT_SLIDE_SIZE, len(p["slides"])))
        for s in p["slides"]:
            slide, region = rendered[s["slide_id"]], s["planted_region"]
            assert (slide.planted is None) == (region is None)
            with openslide.OpenSlide(demo_cohort / "slides" / f"{s['slide_id']}.tiff") as wsi_file:
                image = np.asarray(wsi_file.read_region((0, 0), 1, wsi_file.level_dimensions[1]).convert("RGB"),
                                   dtype=np.float32)
            grey = image.mean(axis=-1)
            tissue = grey < 225
            crowded = cv2.blur((grey < 150).astype(np.float32), (41, 41)) > 0.4  # ~160 um windows, mostly nuclei
            if region is None:
                assert not crowded.any(), s["slide_id"]
                continue
            assert region["tissue_fraction"] == slide.planted.tissue_fraction
            # the fields: the region (coverage > 0.5) lies inside the tissue and covers 3-10 % of it
            inside = slide.region > 0.5
            assert not (inside & (slide.mask <= 0.5)).any()
            assert 0.03 <= inside.sum() / (slide.mask > 0.5).sum() <= 0.10
            assert 0.03 <= region["tissue_fraction"] <= 0.10
            # the written slide: the polygon covers 3-10 % of the tissue seen in the image, holds the
            # crowded dark spot and is far darker than the rest of the tissue
            polygon = _region_mask(region, grey.shape, 4.0)
            assert 0.03 <= (polygon & tissue).sum() / tissue.sum() <= 0.10
            assert (polygon & ~tissue).sum() < 0.02 * polygon.sum()
            assert crowded.any() and (crowded & polygon).sum() >= 0.9 * crowded.sum()
            dark = grey < 150
            assert dark[polygon].mean() > 0.4 > 0.25 > dark[tissue & ~polygon].mean()
    assert sum(p["mlm"] for p in per_patient) <= with_region <= len(per_patient) // 2


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
