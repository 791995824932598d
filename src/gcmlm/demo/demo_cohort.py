"""demo-cohort: a small, deterministic, synthetic gastric-cancer cohort for demos and tests.

Writes, under one folder:
  ct/<pid>.nii.gz        int16 HU CT, 0.8 x 0.8 x 2.5 mm (gcmlm.demo.core.ct)
  labels/<pid>.nii.gz    uint8 0 background, 1 stomach wall, 2 tumour, same grid as the CT
  slides/<slide>.tiff    pyramidal JPEG-tiled H&E-like WSIs, 0.5 um/px (gcmlm.demo.core.wsi)
  manifest.csv           patient_id,kind,path,label (relative paths)
  clinical.csv           patient_id, clin_* features, mlm (the outcome), mlm_time_months and
                         mlm_event (follow-up: time to MLM or to the last visit, event 0/1)
  truth.json             planted latent risks and generator settings; per slide, its planted region
                         (``planted_region``: null, or its outline ``polygon_px`` in level-0 pixels,
                         ``tissue_fraction``, ``area_px``, ...)

The latent risks and outcomes are drawn for the whole cohort at once (stratified, see
gcmlm.demo.core.patients); everything else comes from per-patient streams (seed, patient index,
purpose), so the CT, slides and clinical noise of a patient do not shift when, say, the slide
size changes. Follow-up comes from a stream of its own, so adding it left every other column, CT
and slide as it was. The second patient has two slides.

Planted regions (version 2): every patient with MLM, and about one in ten without, has one small
region of a poorly differentiated focus on its first slide, covering 4-8 % of that slide's tissue
(gcmlm.demo.core.patients.planted_region, gcmlm.demo.core.wsi.SyntheticSlide.plant_region). It
draws from a stream of its own: the CTs, the clinical table and every slide without a region are
the same bytes as in version 1; only the slides with a region changed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from gcmlm.common.atomic import atomic_dir, atomic_file, check_outputs, write_json
from gcmlm.common.errors import GcmlmError
from gcmlm.common.progress import track
from gcmlm.common.tables import PATIENT_ID, write_patient_table
from gcmlm.demo.core import ct, wsi
from gcmlm.demo.core import patients as patient_model

log = logging.getLogger("gcmlm")

# The name truth.json carries (the module's path before the stage modules were renamed): kept so that
# cohorts written by earlier versions are recognised and outputs stay byte-identical.
GENERATOR = "gcmlm.demo.cohort"

GENERATOR_VERSION = "2"  # 2: planted slide regions
# Defaults of make_cohort/write_cohort, which the command line shows and uses too.
DEFAULT_PATIENTS = 40
DEFAULT_SEED = 0
SLIDE_MPP = 0.5  # 20x
DEFAULT_SLIDE_SIZE = (4096, 3072)  # width, height in level-0 pixels: 2 x 1.5 mm of tissue section
TWO_SLIDE_PATIENT = 1  # index of the patient with two slides (the first one if there is only one)
# Purposes of the per-patient random streams.
_CLINICAL, _CT, _SLIDES, _FOLLOW_UP, _REGION = 0, 1, 2, 3, 4


def _stream(seed: int, index: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, purpose)))


def _slide_sizes(rng: np.random.Generator, base: tuple[int, int]) -> tuple[int, int]:
    """Slides differ a little in size, as scans do."""
    return tuple(int(round(v * rng.uniform(0.85, 1.0) / 16)) * 16 for v in base)


def cohort_patients(patients: int, seed: int) -> list[patient_model.Patient]:
    """The cohort's patients: latent risks, outcomes and clinical covariates (no images)."""
    ids = [patient_model.patient_id(i, patients) for i in range(patients)]
    return patient_model.make_patients(np.random.default_rng(np.random.SeedSequence(seed)),
                                       [_stream(seed, i, _CLINICAL) for i in range(patients)], ids)


def n_slides(index: int, patients: int) -> int:
    """Slides of patient ``index`` in a cohort of ``patients``: two for one of them, else one."""
    return 2 if index == min(TWO_SLIDE_PATIENT, patients - 1) else 1


def patient_slides(seed: int, index: int, person: patient_model.Patient, slide_size: tuple[int, int],
                   count: int = 1) -> list[tuple[str, wsi.SyntheticSlide]]:
    """The ``count`` slides (ID, renderer) of patient ``index``, its planted region, if any, on the first.

    Nothing is rendered yet; make_cohort writes them (tests render tiles or look at the fields)."""
    rng, region_rng = _stream(seed, index, _SLIDES), _stream(seed, index, _REGION)
    region = patient_model.planted_region(region_rng, person)
    slides = []
    for k in range(count):
        params = wsi.slide_params(rng, person.r_path, pieces=int(rng.integers(1, 4)))
        width, height = _slide_sizes(rng, slide_size)
        slide = wsi.SyntheticSlide(width, height, SLIDE_MPP, params, seed=(seed, index, _SLIDES, k))
        if k == 0 and region is not None:
            slide.plant_region(region_rng, region)
        slides.append((f"{person.patient_id}-{'AB'[k]}", slide))
    return slides


def make_cohort(out_dir: str | os.PathLike, patients: int = DEFAULT_PATIENTS, seed: int = DEFAULT_SEED,
                slide_size: tuple[int, int] = DEFAULT_SLIDE_SIZE) -> dict:
    """Write the cohort into ``out_dir`` (created if needed); returns the key paths.

    ``slide_size``: the largest slide's (width, height) in level-0 pixels at 0.5 um/px; each slide
    is 85-100 % of it. See :func:`write_cohort` for a cohort that replaces a folder atomically.
    """
    if patients < 1:
        raise GcmlmError(f"need at least one patient, got {patients}")
    if seed < 0:
        raise GcmlmError(f"the seed must be a non-negative integer, got {seed}")
    out = Path(out_dir)
    dirs = {name: out / name for name in ("ct", "labels", "slides")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    people = cohort_patients(patients, seed)
    manifest, clinical, truth = [], [], []
    for i, person in enumerate(track(people, "demo-cohort patients", unit="patients")):
        pid = person.patient_id

        image, label, ct_truth = ct.make_ct(_stream(seed, i, _CT), person.r_ct)
        ct_path, label_path = dirs["ct"] / f"{pid}.nii.gz", dirs["labels"] / f"{pid}.nii.gz"
        ct.write_nifti(image, ct_path)
        ct.write_nifti(label, label_path)
        manifest.append({PATIENT_ID: pid, "kind": "ct", "path": f"ct/{pid}.nii.gz", "label": f"labels/{pid}.nii.gz"})

        slide_truth = []
        for sid, slide in patient_slides(seed, i, person, slide_size, n_slides(i, patients)):
            levels = wsi.write_slide(dirs["slides"] / f"{sid}.tiff", slide)
            manifest.append({PATIENT_ID: pid, "kind": "slide", "path": f"slides/{sid}.tiff", "label": ""})
            region = slide.planted.truth(SLIDE_MPP) if slide.planted else None
            slide_truth.append({"slide_id": sid, "mpp": SLIDE_MPP, "levels": levels, **slide.params.__dict__,
                                "planted_region": region})

        clinical.append({PATIENT_ID: pid, **person.clinical, "mlm": person.mlm,
                         **patient_model.follow_up(_stream(seed, i, _FOLLOW_UP), person)})
        truth.append({**person.truth(), "ct": ct.truth_dict(ct_truth), "slides": slide_truth})

    paths = {
        "manifest": out / "manifest.csv",
        "clinical": out / "clinical.csv",
        "ct_dir": dirs["ct"],
        "labels_dir": dirs["labels"],
        "slides_dir": dirs["slides"],
        "truth": out / "truth.json",
    }
    with atomic_file(paths["manifest"]) as tmp:
        pd.DataFrame(manifest).to_csv(tmp, index=False)
    write_patient_table(pd.DataFrame(clinical), paths["clinical"])
    write_json(paths["truth"], {
        "generator": GENERATOR,
        "version": GENERATOR_VERSION,
        "seed": seed,
        "patients": len(truth),
        "synthetic": True,
        "outcome_model": {
            "formula": "mlm ~ Bernoulli(sigmoid(slope * (r_ct + r_path + clinical_weight * r_clin) + intercept))",
            "slope": patient_model.OUTCOME_SLOPE,
            "intercept": patient_model.OUTCOME_INTERCEPT,
            "clinical_weight": patient_model.CLINICAL_WEIGHT,
        },
        "planted_region": {
            "rule": "one region on the first slide of every patient with mlm = 1 and of about one in ten "
                    "with mlm = 0; per slide under slides[].planted_region (polygon_px: level-0 pixels)",
            "probability_by_mlm": list(patient_model.REGION_PROBABILITY),
            "tissue_fraction_range": list(patient_model.REGION_TISSUE_FRACTION),
            "morphology": "poorly differentiated focus: crowded, large, pleomorphic, dark nuclei; little eosin",
        },
        "ct": {"spacing_mm": ct.SPACING, "size_voxels": ct.SIZE, "labels": {"1": "stomach wall", "2": "tumour"}},
        "per_patient": truth,
    })
    return paths


def write_cohort(out_dir: str | os.PathLike, patients: int = DEFAULT_PATIENTS, seed: int = DEFAULT_SEED,
                 slide_size: tuple[int, int] = DEFAULT_SLIDE_SIZE) -> dict:
    """Replace ``out_dir`` atomically with a new cohort (see :func:`make_cohort`); returns its counts
    ``{"patients", "slides", "mlm"}``. Refuses a folder that holds other data than a demo cohort."""
    check_outputs(dirs=[out_dir])
    _refuse_to_replace_other_data(Path(out_dir))
    with atomic_dir(out_dir) as tmp:
        paths = make_cohort(tmp, patients, seed, tuple(slide_size))
        table = pd.read_csv(paths["clinical"])
        n_slides = sum(1 for _ in paths["slides_dir"].glob("*.tiff"))
    return {"patients": len(table), "slides": n_slides, "mlm": int(table["mlm"].sum())}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="cohort folder to write (replaced atomically)")
    parser.add_argument("--patients", type=int, default=DEFAULT_PATIENTS,
                        help=f"number of patients (default {DEFAULT_PATIENTS})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    parser.add_argument("--slide-size", type=int, nargs=2, default=list(DEFAULT_SLIDE_SIZE), metavar=("W", "H"),
                        help="largest slide size in level-0 pixels at 0.5 um/px (default %(default)s)")


def _refuse_to_replace_other_data(out: Path) -> None:
    """--out is replaced as a whole: only allow that for an empty folder or an earlier demo cohort."""
    if not out.exists():
        return
    if not out.is_dir():
        raise GcmlmError("exists and is not a folder", out)
    if any(out.iterdir()) and not (out / "truth.json").is_file():
        raise GcmlmError("folder is not empty and holds no demo cohort (truth.json); refusing to replace it", out)
    if (out / "truth.json").is_file():
        try:
            generator = json.loads((out / "truth.json").read_text()).get("generator")
        except (ValueError, AttributeError):
            generator = None
        if generator != GENERATOR:
            raise GcmlmError("folder holds a truth.json not written by demo-cohort; refusing to replace it", out)


def run(args: argparse.Namespace) -> int:
    if args.patients < 1:
        raise GcmlmError(f"--patients must be at least 1, got {args.patients}")
    if args.seed < 0:
        raise GcmlmError(f"--seed must be a non-negative integer, got {args.seed}")
    if min(args.slide_size) < 256:
        raise GcmlmError(f"--slide-size must be at least 256 px per side, got {args.slide_size}")
    counts = write_cohort(args.out, args.patients, args.seed, tuple(args.slide_size))
    print(f"demo cohort -> {args.out}: {args.patients} patients, {args.patients} CTs with labels, "
          f"{counts['slides']} slides, MLM in {counts['mlm']}/{counts['patients']} patients (seed {args.seed})")
    return 0
