"""mil-predict: a mil-train model folder + feature files -> MIL risk per patient and slide, and
per-patch attention beside the coords.

Outputs: the patient table ``--out`` (``patient_id, mil_risk, mil_logit, n_slides, n_patches,
n_empty_slides``; ``mil_risk`` is the model's probability with all of the patient's patches in one
bag, ``mil_logit`` the same before the sigmoid: the column fusion-train's path_mil, fused and stacked
models read), optionally ``--slide-out`` (``slide_id, patient_id, mil_risk, n_patches``: each slide alone as
a bag) and ``--attention-dir`` (``<slide_id>.h5`` in CLAM's layout: ``coords`` with the feature
file's coords attrs, and ``attention`` (N,) float32, the softmax weight of each patch within its
patient's bag). The model is read through safetensors only; features from another encoder or of
another dimension than the model's are refused.

From Python: ``predict_files(model_dir, feature_files, ...)`` computes, ``write_predictions`` writes.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from gcmlm.common.atomic import atomic_file, check_outputs
from gcmlm.common.errors import require_file
from gcmlm.common.manifest import slide_id
from gcmlm.common.tables import PATIENT_ID, write_patient_table
from gcmlm.pathology.core.clam_h5 import read_coords
from gcmlm.pathology.core.mil import (
    DEVICES,
    BagPrediction,
    FeatureSet,
    bags_from_files,
    configure_threads,
    load_mil_model,
    predict_mil,
    resolve_device,
)

log = logging.getLogger("gcmlm")

PathLike = str | os.PathLike
DEVICE = "auto"
NORMALISATION = "softmax over the patient's bag (all of its slides' patches)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="model folder written by mil-train")
    parser.add_argument("--features", nargs="+", required=True, metavar="H5",
                        help="CLAM-layout feature files (h5_files/<slide_id>.h5); the slide ID is the file stem")
    parser.add_argument("--slide-map", metavar="CSV",
                        help="cohort manifest or CSV with patient_id,slide_id; default: each slide is its own patient")
    parser.add_argument("--out", required=True, metavar="CSV", help="patient table: patient_id, mil_risk, ...")
    parser.add_argument("--slide-out", metavar="CSV", help="per-slide risks: slide_id, patient_id, mil_risk, n_patches")
    parser.add_argument("--attention-dir", metavar="DIR",
                        help="writes DIR/<slide_id>.h5: coords (with their attrs) and attention (N,)")
    parser.add_argument("--device", choices=DEVICES, default=DEVICE,
                        help="auto: CUDA when PyTorch sees a GPU, else the CPU")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: torch's)")


def run(args: argparse.Namespace) -> int:
    check_predict_outputs(args.model, args.features, args.out, args.slide_map, args.slide_out, args.attention_dir)
    result = predict_files(args.model, args.features, slide_map=args.slide_map, device=args.device,
                           threads=args.threads)
    write_predictions(result, args.out, slide_out=args.slide_out, attention_dir=args.attention_dir)
    log.info("MIL risk for %d patients (%d slides) -> %s", len(result.predictions),
             sum(len(p.slide_risks) for p in result.predictions), args.out)
    return 0


def attention_paths(feature_files: Sequence[PathLike], attention_dir: PathLike) -> list[Path]:
    return [Path(attention_dir) / f"{slide_id(p)}.h5" for p in feature_files]


def check_predict_outputs(model: PathLike, features: Sequence[PathLike], out: PathLike,
                          slide_map: PathLike | None = None, slide_out: PathLike | None = None,
                          attention_dir: PathLike | None = None) -> None:
    """Before loading anything: every output writable, none of them an input. The attention folder
    is written into (not replaced), so inputs may live in it as long as no output name is one."""
    inputs = [model, *features, slide_map]
    if attention_dir is not None:
        check_outputs(dirs=[attention_dir])
    attention = attention_paths(features, attention_dir) if attention_dir is not None else []
    check_outputs(files=[out, slide_out, *attention], inputs=inputs)


@dataclass
class MILPredictions:
    predictions: list[BagPrediction]
    features: FeatureSet
    model_dir: Path


def predict_files(model_dir: PathLike, feature_files: Sequence[PathLike], slide_map: PathLike | None = None,
                  device: str = DEVICE, threads: int | None = None) -> MILPredictions:
    """Load the model (refusing anything but its safetensors folder), check every feature file
    against its dimension and encoder, and predict."""
    from gcmlm.common.manifest import map_slides

    model = load_mil_model(model_dir)
    for path in feature_files:
        require_file(path, "feature file")
    torch_device = resolve_device(device)
    configure_threads(torch_device, threads)
    mapping = map_slides(feature_files, slide_map)
    identity = {k: model.identity.get(k) for k in ("encoder", "checkpoint_sha256")}
    features = bags_from_files(feature_files, mapping, expect_dim=model.feature_dim, expect_identity=identity)
    return MILPredictions(predict_mil(model, features.bags, torch_device), features, Path(model_dir))


def patient_rows(result: MILPredictions) -> list[dict]:
    owners = result.features.slide_to_patient
    return [{PATIENT_ID: p.patient_id, "mil_risk": p.risk, "mil_logit": p.logit, "n_slides": len(p.slide_risks),
             "n_patches": sum(p.n_patches.values()),
             "n_empty_slides": sum(1 for s in result.features.empty_slides if owners[s] == p.patient_id)}
            for p in result.predictions]


def slide_rows(result: MILPredictions) -> list[dict]:
    rows = [{"slide_id": sid, PATIENT_ID: p.patient_id, "mil_risk": risk, "n_patches": p.n_patches[sid]}
            for p in result.predictions for sid, risk in p.slide_risks.items()]
    return rows


def write_predictions(result: MILPredictions, out: PathLike, slide_out: PathLike | None = None,
                      attention_dir: PathLike | None = None) -> None:
    import pandas as pd

    write_patient_table(pd.DataFrame(patient_rows(result)), out)
    if slide_out:
        with atomic_file(slide_out) as tmp:
            pd.DataFrame(slide_rows(result)).to_csv(tmp, index=False, float_format="%.8g")
    if attention_dir is not None:
        for p in result.predictions:
            for sid, weights in p.attention.items():
                write_attention(Path(attention_dir) / f"{sid}.h5", result.features.paths[sid], weights, p)


def write_attention(path: Path, features_h5: Path, weights: np.ndarray, prediction: BagPrediction) -> None:
    """CLAM's layout: ``coords`` as the feature file has them (same attrs) + ``attention`` (N,)."""
    coords, coord_attrs = read_coords(features_h5)
    sid = slide_id(features_h5)
    with atomic_file(path) as tmp, h5py.File(tmp, "w") as h5:
        cset = h5.create_dataset("coords", data=coords)
        for key, value in coord_attrs.items():
            cset.attrs[key] = value
        aset = h5.create_dataset("attention", data=np.asarray(weights, np.float32))
        aset.attrs.update({"normalisation": NORMALISATION, "patient_id": prediction.patient_id,
                           "slide_id": sid, "patient_risk": prediction.risk,
                           "slide_risk": prediction.slide_risks[sid], "features": features_h5.name})
