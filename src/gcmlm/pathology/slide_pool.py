"""slide-pool: CLAM feature files -> one mean-pooled feature row per patient.

A slide's embedding is the mean of its patch features. A patient's row is the mean over its
slides weighted by patch count, which equals the mean over all of the patient's patches.
Slides with zero patches carry no information: they are reported and left out, never averaged
into NaN. A patient left with no usable slide is an error naming the patient.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from gcmlm.common.atomic import atomic_file, write_json
from gcmlm.common.errors import GcmlmError
from gcmlm.common.manifest import slide_id, slide_patient_map
from gcmlm.common.tables import PATIENT_ID, write_patient_table
from gcmlm.pathology.core.clam_h5 import read_features

log = logging.getLogger("gcmlm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", nargs="+", required=True, metavar="H5",
                        help="CLAM-layout feature files (h5_files/<slide_id>.h5); the slide ID is the file stem")
    parser.add_argument("--slide-map", metavar="CSV",
                        help="cohort manifest or CSV with patient_id,slide_id; default: each slide is its own patient")
    parser.add_argument("--out", required=True, metavar="CSV", help="patient table to write")
    parser.add_argument("--report", metavar="JSON", help="per-slide report (patch counts, skipped slides)")
    parser.add_argument("--slide-table", metavar="CSV", help="also write the per-slide mean features")


def pool_slides(feature_files: list[str | Path]) -> tuple[pd.DataFrame, dict[str, int], list[str]]:
    """Per-slide means. Returns (slide table indexed by slide_id, patch counts, empty slide IDs)."""
    means, counts, empty, dim = {}, {}, [], None
    for path in feature_files:
        sid = slide_id(path)
        if sid in counts:
            raise GcmlmError(f"slide ID '{sid}' appears twice in the inputs", path)
        feats = read_features(path).features
        if dim is None and len(feats):
            dim = feats.shape[1]
        if len(feats) and feats.shape[1] != dim:
            raise GcmlmError(f"feature dimension {feats.shape[1]} differs from the other slides' {dim}", path)
        counts[sid] = len(feats)
        if len(feats) == 0:
            empty.append(sid)
            log.warning("slide %s has no patches; left out of its patient's mean", sid)
            continue
        if not np.isfinite(feats).all():
            raise GcmlmError("features contain NaN or infinite values", path)
        means[sid] = feats.astype(np.float64).mean(axis=0)
    table = pd.DataFrame.from_dict(means, orient="index")
    return table, counts, empty


def pool_patients(slides: pd.DataFrame, counts: dict[str, int], slide_to_patient: dict[str, str]) -> pd.DataFrame:
    """Patch-count-weighted mean of slide embeddings per patient."""
    patients: dict[str, list[str]] = {}
    for sid in counts:
        patients.setdefault(slide_to_patient[sid], []).append(sid)
    rows = []
    for pid, sids in patients.items():
        usable = [s for s in sids if counts[s] > 0]
        if not usable:
            raise GcmlmError(f"patient '{pid}' has no usable slide: every slide ({', '.join(sids)}) has zero patches")
        weights = np.array([counts[s] for s in usable], dtype=np.float64)
        mean = (slides.loc[usable].to_numpy() * weights[:, None]).sum(axis=0) / weights.sum()
        rows.append({PATIENT_ID: pid, "path_n_slides": len(usable), "path_n_patches": int(weights.sum()),
                     **{f"path_{i:04d}": v for i, v in enumerate(mean)}})
    return pd.DataFrame(rows)


def run(args: argparse.Namespace) -> int:
    slide_ids = [slide_id(p) for p in args.features]
    if args.slide_map:
        mapping = slide_patient_map(args.slide_map)
        unmapped = [p for p, s in zip(args.features, slide_ids, strict=True) if s not in mapping]
        if unmapped:
            raise GcmlmError(f"slide '{slide_id(unmapped[0])}' is not in the slide map {args.slide_map}", unmapped[0])
    else:
        mapping = {s: s for s in slide_ids}
    slides, counts, empty = pool_slides(args.features)
    patients = pool_patients(slides, counts, mapping)
    write_patient_table(patients, args.out)
    if args.slide_table:
        table = slides.rename(columns=lambda i: f"path_{i:04d}")
        table.insert(0, "n_patches", [counts[s] for s in table.index])
        table.insert(0, PATIENT_ID, [mapping[s] for s in table.index])
        with atomic_file(args.slide_table) as tmp:
            table.rename_axis("slide_id").reset_index().to_csv(tmp, index=False, float_format="%.8g")
    if args.report:
        write_json(args.report, {
            "slides": [{"slide_id": s, PATIENT_ID: mapping[s], "n_patches": counts[s],
                        "used": counts[s] > 0} for s in counts],
            "empty_slides": empty,
            "n_patients": len(patients),
        })
    log.info("pooled %d slides (%d empty) into %d patients -> %s", len(counts), len(empty), len(patients), args.out)
    return 0

