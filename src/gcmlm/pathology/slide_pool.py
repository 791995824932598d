"""slide-pool: CLAM feature files -> one mean-pooled feature row per patient.

A slide's embedding is the mean of its patch features. A patient's row is the mean over its
slides weighted by patch count, which equals the mean over all of the patient's patches.
Slides with zero patches carry no information: they are reported and left out, never averaged
into NaN. A patient left with no usable slide is an error naming the patient.

From Python: ``pool_features(feature_files, slide_map)`` returns the tables (``pool_slides`` and
``pool_patients`` are its two steps); ``write_pooled`` writes them.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gcmlm.common.atomic import atomic_file, check_outputs, write_json
from gcmlm.common.errors import GcmlmError
from gcmlm.common.manifest import map_slides, slide_id
from gcmlm.common.tables import PATIENT_ID, write_patient_table
from gcmlm.pathology.core.clam_h5 import read_features, refuse_incomplete
from gcmlm.pathology.core.slide import claim_slide_id

log = logging.getLogger("gcmlm")

PathLike = str | os.PathLike


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", nargs="+", required=True, metavar="H5",
                        help="CLAM-layout feature files (h5_files/<slide_id>.h5); the slide ID is the file stem")
    parser.add_argument("--slide-map", metavar="CSV",
                        help="cohort manifest or CSV with patient_id,slide_id; default: each slide is its own patient")
    parser.add_argument("--out", required=True, metavar="CSV", help="patient table to write")
    parser.add_argument("--report", metavar="JSON", help="per-slide report (patch counts, skipped slides)")
    parser.add_argument("--slide-table", metavar="CSV", help="also write the per-slide mean features")


def pool_slides(feature_files: Sequence[PathLike]) -> tuple[pd.DataFrame, dict[str, int], list[str]]:
    """Per-slide means. Returns (slide table indexed by slide_id, patch counts, empty slide IDs)."""
    means, counts, empty, dim = {}, {}, [], None
    seen: set[str] = set()
    for path in feature_files:
        sid = slide_id(path)
        claim_slide_id(sid, seen, path)
        read = read_features(path)
        refuse_incomplete(read.attrs, path)
        feats = read.features
        if dim is None and len(feats):
            dim = feats.shape[1]
        if len(feats) and feats.shape[1] != dim:
            raise GcmlmError(f"feature dimension {feats.shape[1]} differs from the other slides' {dim}", path)
        counts[sid] = len(feats)
        if len(feats) == 0:
            empty.append(sid)  # warned about by pool_features once pooling has succeeded
            continue
        if not np.isfinite(feats).all():
            raise GcmlmError("features contain NaN or infinite values", path)
        means[sid] = feats.astype(np.float64).mean(axis=0)
    table = pd.DataFrame.from_dict(means, orient="index")
    return table, counts, empty


def pool_patients(slides: pd.DataFrame, counts: dict[str, int], slide_to_patient: dict[str, str],
                  paths: dict[str, PathLike] | None = None, own_patients: bool = False) -> pd.DataFrame:
    """Patch-count-weighted mean of slide embeddings per patient.

    A patient whose slides all have zero patches is an error naming the patient and its first
    slide's file (``paths``: slide ID -> file) unless ``own_patients`` (no slide map: each slide is
    its own patient), where such a slide is simply left out (``pool_slides`` reported it); then only
    a batch without any usable slide is an error.
    """
    patients: dict[str, list[str]] = {}
    for sid in counts:
        patients.setdefault(slide_to_patient[sid], []).append(sid)
    paths = paths or {}
    rows = []
    for pid, sids in patients.items():
        usable = [s for s in sids if counts[s] > 0]
        if not usable and own_patients and any(counts.values()):
            continue
        if not usable:
            raise GcmlmError(f"patient '{pid}' has no usable slide: every slide ({', '.join(sids)}) has zero patches",
                             paths.get(sids[0]))
        weights = np.array([counts[s] for s in usable], dtype=np.float64)
        mean = (slides.loc[usable].to_numpy() * weights[:, None]).sum(axis=0) / weights.sum()
        rows.append({PATIENT_ID: pid, "path_n_slides": len(usable), "path_n_patches": int(weights.sum()),
                     **{f"path_{i:04d}": v for i, v in enumerate(mean)}})
    return pd.DataFrame(rows)


@dataclass
class PooledFeatures:
    """What slide-pool computes: ``patients`` is the patient table it writes (patient_id,
    path_n_slides, path_n_patches, path_0000...), ``slides`` the per-slide means (indexed by slide_id)."""

    patients: pd.DataFrame
    slides: pd.DataFrame
    counts: dict[str, int]  # patches per slide
    empty: list[str]  # slides with zero patches, left out of the means
    slide_to_patient: dict[str, str]

    def slide_table(self) -> pd.DataFrame:
        """Per-slide rows: slide_id, patient_id, n_patches, path_0000..."""
        table = self.slides.rename(columns=lambda i: f"path_{i:04d}")
        table.insert(0, "n_patches", [self.counts[s] for s in table.index])
        table.insert(0, PATIENT_ID, [self.slide_to_patient[s] for s in table.index])
        return table.rename_axis("slide_id").reset_index()

    def report(self) -> dict:
        """Per-slide patch counts and which slides were used."""
        return {
            "slides": [{"slide_id": s, PATIENT_ID: self.slide_to_patient[s], "n_patches": self.counts[s],
                        "used": self.counts[s] > 0} for s in self.counts],
            "empty_slides": self.empty,
            "n_patients": len(self.patients),
        }


def pool_features(feature_files: Sequence[PathLike], slide_map: PathLike | None = None) -> PooledFeatures:
    """Mean-pool CLAM feature files (h5_files/<slide_id>.h5) per slide, then per patient
    (``map_slides``: ``slide_map`` or one patient per slide)."""
    mapping = map_slides(feature_files, slide_map)
    slides, counts, empty = pool_slides(feature_files)
    paths = {slide_id(p): p for p in feature_files}
    patients = pool_patients(slides, counts, mapping, paths, own_patients=not slide_map)
    for sid in empty:  # after the refusals above, so that a refused run prints its one error line only
        log.warning("slide %s has no patches (%s); left out of its patient's mean and listed under empty_slides "
                    "in the report", sid, paths[sid])
    return PooledFeatures(patients, slides, counts, empty, mapping)


def write_pooled(pooled: PooledFeatures, out: PathLike, slide_table: PathLike | None = None,
                 report: PathLike | None = None) -> None:
    """The patient table to ``out``; the per-slide table and the JSON report when asked for."""
    write_patient_table(pooled.patients, out)
    if slide_table:
        with atomic_file(slide_table) as tmp:
            pooled.slide_table().to_csv(tmp, index=False, float_format="%.8g")
    if report:
        write_json(report, pooled.report())


def check_pool_outputs(features: Sequence[PathLike], out: PathLike, slide_map: PathLike | None = None,
                       slide_table: PathLike | None = None, report: PathLike | None = None) -> None:
    """Before reading any feature file: every output path writable, none of them an input."""
    check_outputs(files=[out, slide_table, report], inputs=[*features, slide_map])


def run(args: argparse.Namespace) -> int:
    check_pool_outputs(args.features, args.out, args.slide_map, args.slide_table, args.report)
    pooled = pool_features(args.features, args.slide_map)
    write_pooled(pooled, args.out, slide_table=args.slide_table, report=args.report)
    log.info("pooled %d slides (%d empty) into %d patients -> %s", len(pooled.counts), len(pooled.empty),
             len(pooled.patients), args.out)
    return 0
