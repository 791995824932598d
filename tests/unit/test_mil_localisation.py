"""Attention MIL finds the demo cohort's planted regions.

Every patient with MLM has one small region of distinct morphology on its first slide (<= 10 % of
that slide's tissue; gcmlm.demo.core.wsi.SyntheticSlide.plant_region), so mean pooling dilutes it.
The demo's pathology branch runs on the session's demo cohort (tests/conftest.py: 12 patients, full
size slides): wsi-tile with the bwh_biopsy preset, patch-embed with a random-weight ResNet-18 (as
scripts/demo.sh does), then gated attention MIL trained on every patient, as the demo's MIL
heatmaps are. Over all slides with MLM and a region, at least half of the top-decile attention
mass (the 10 % of each slide's patches with the highest attention, their attention summed) must lie
inside the regions, a patch counting by the share of its area inside the region's outline; chance
is the region's share of the patches, ~6 %.

fit_mil standardises the patch features with the training patches' moments (a random-weight
ResNet-18's features share a large common part, norm ~4.7, with little spread around it, ~0.34;
without standardisation the network learnt nothing on the 40-patient demo cohort and this measure
was ~0.40). MIL trains for all its epochs (val_fraction 0, as pathology.cwl advises for tiny
cohorts): 3 validation patients out of 12 make early stopping a coin toss.
"""

import json
import math

import numpy as np
import pytest

from gcmlm.common.manifest import slide_patient_map
from gcmlm.demo.core.wsi import polygon_coverage
from gcmlm.pathology.core.clam_h5 import read_features
from gcmlm.pathology.core.encoders import build_encoder
from gcmlm.pathology.core.mil import Bag, MILConfig, fit_mil, predict_mil, roc_auc
from gcmlm.pathology.core.slide import open_slide
from gcmlm.pathology.patch_embed import embed_slide
from gcmlm.pathology.wsi_tile import GridSpec, resolve_settings, tile_slide, write_outputs

PATCH = 256  # wsi-tile's default patch size at level 0, as in the demo
TOP = 0.1  # the top decile of attention within each slide
MIN_INSIDE = 0.5  # of the top-decile attention mass


def _embed_cohort(cohort, out) -> dict:
    """Slide ID -> (features, coords) from the demo's pathology settings, in memory."""
    settings = resolve_settings("bwh_biopsy")
    encoder = build_encoder("resnet18", allow_random_weights=True)
    features = {}
    for path in sorted((cohort / "slides").glob("*.tiff")):
        with open_slide(path) as slide:
            coords_h5 = write_outputs(out / "tiles", tile_slide(slide, GridSpec(patch_size=PATCH), settings))
        result = embed_slide(path, coords_h5, encoder, out / "features", batch_size=32, device="cpu", num_workers=0)
        read = read_features(result.h5_path)
        features[path.stem] = (read.features, read.coords)
    return features


def top_decile_inside(attention: np.ndarray, coverage: np.ndarray) -> tuple[float, float]:
    """(attention mass inside the region, attention mass) of a slide's top-decile patches."""
    k = max(1, math.ceil(TOP * len(attention)))
    top = np.argsort(-attention, kind="stable")[:k]
    return float((attention[top] * coverage[top]).sum()), float(attention[top].sum())


def test_top_decile_measure():
    attention = np.array([0.5, 0.3, 0.1, 0.05, 0.05] + [0.0] * 15)  # 20 patches: the top decile is 2
    coverage = np.array([1.0, 0.0, 1.0] + [0.0] * 17)
    assert top_decile_inside(attention, coverage) == pytest.approx((0.5, 0.8))
    coords = np.array([[0, 0], [256, 0], [128, 0]])
    square = [[0, 0], [256, 0], [256, 256], [0, 256]]
    assert polygon_coverage(square, coords, 256) == pytest.approx([1.0, 0.0, 0.5], abs=0.02)


@pytest.mark.slow
def test_attention_lands_on_the_planted_regions(demo_cohort, tmp_path):
    truth = json.loads((demo_cohort / "truth.json").read_text())
    outcome = {p["patient_id"]: p["mlm"] for p in truth["per_patient"]}
    regions = {s["slide_id"]: s["planted_region"] for p in truth["per_patient"] for s in p["slides"]}
    features = _embed_cohort(demo_cohort, tmp_path)
    coverage = {sid: polygon_coverage(regions[sid]["polygon_px"], coords, PATCH) if regions[sid]
                else np.zeros(len(coords)) for sid, (_, coords) in features.items()}
    # The regions are small: <= 10 % of the tissue, in truth and among the tiler's patches.
    for sid, region in regions.items():
        if region:
            assert region["tissue_fraction"] <= 0.10
            assert 0.01 < coverage[sid].mean() <= 0.10, sid

    inputs = {sid: f for sid, (f, _) in features.items()}
    patient_of = slide_patient_map(demo_cohort / "manifest.csv")
    bags = [Bag.from_arrays(pid, {sid: inputs[sid] for sid in sorted(inputs) if patient_of[sid] == pid})
            for pid in outcome]
    labels = [outcome[bag.patient_id] for bag in bags]
    model = fit_mil(bags, labels, MILConfig(val_fraction=0), seed=0, progress=False)
    predictions = predict_mil(model, bags)

    inside = total = 0.0
    per_slide = {}
    for prediction in predictions:
        for sid, attention in prediction.attention.items():
            if outcome[prediction.patient_id] and regions[sid]:
                mass_inside, mass = top_decile_inside(attention, coverage[sid])
                inside, total = inside + mass_inside, total + mass
                per_slide[sid] = round(mass_inside / mass, 3)
    assert len(per_slide) == sum(outcome.values()) >= 3  # every patient with MLM has a region
    print(f"top-decile attention inside the regions: {inside / total:.3f} overall, per slide {per_slide}; "
          f"AUC {roc_auc(np.array(labels), np.array([p.risk for p in predictions])):.3f}")
    assert inside / total >= MIN_INSIDE, per_slide
    # and no slide is missed outright: chance is the region's share of the patches (< 10 %)
    assert min(per_slide.values()) > 2 * 0.10, per_slide
