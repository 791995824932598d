"""mil-train: patch-feature bags + a binary outcome -> an attention-MIL model folder.

A patient is one bag (the patches of all of its slides); see ``gcmlm.pathology.core.mil``. The
model folder holds ``model.safetensors`` (weights only), ``config.json`` (architecture, feature
dimension, the encoder the features came from, training summary), ``training.json`` (loss curves,
chosen epoch, inner split) and ``learning_curve.png``.

From Python: ``train_mil(feature_files, labels_csv, label, out, ...)`` is the whole command;
``fit_mil`` (core) trains on bags held in memory or read from h5 files.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gcmlm.common.atomic import check_outputs
from gcmlm.common.errors import GcmlmError, require_file
from gcmlm.common.manifest import slide_id
from gcmlm.common.tables import PATIENT_ID, read_patient_table
from gcmlm.pathology.core.mil import (
    DEVICES,
    MODELS,
    MILConfig,
    MILModel,
    bags_from_files,
    configure_threads,
    fit_mil,
    resolve_device,
    save_mil_model,
)

log = logging.getLogger("gcmlm")

PathLike = str | os.PathLike
DEFAULTS = MILConfig()
SEED = 0
DEVICE = "auto"
TRAINING = "training.json"
CURVE = "learning_curve.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", nargs="+", required=True, metavar="H5",
                        help="CLAM-layout feature files (h5_files/<slide_id>.h5); the slide ID is the file stem")
    parser.add_argument("--slide-map", metavar="CSV",
                        help="cohort manifest or CSV with patient_id,slide_id; default: each slide is its own patient")
    parser.add_argument("--labels", required=True, metavar="CSV", help="patient table (patient_id first) with the outcome")
    parser.add_argument("--label", required=True, metavar="COLUMN", help="binary outcome column (0/1)")
    parser.add_argument("--out", required=True, metavar="DIR", help="model folder to write")
    parser.add_argument("--model", choices=MODELS, default=DEFAULTS.model, help="gated attention MIL (Ilse et al. 2018)")
    parser.add_argument("--hidden", type=int, default=DEFAULTS.hidden, metavar="N", help="patch embedding width")
    parser.add_argument("--attention-dim", type=int, default=DEFAULTS.attention_dim, metavar="N")
    parser.add_argument("--dropout", type=float, default=DEFAULTS.dropout, metavar="P")
    parser.add_argument("--lr", type=float, default=DEFAULTS.lr, metavar="LR", help="AdamW learning rate")
    parser.add_argument("--weight-decay", type=float, default=DEFAULTS.weight_decay, metavar="W")
    parser.add_argument("--max-epochs", type=int, default=DEFAULTS.max_epochs, metavar="N")
    parser.add_argument("--patience", type=int, default=DEFAULTS.patience, metavar="N",
                        help="stop after N epochs without a lower validation loss")
    parser.add_argument("--val-fraction", type=float, default=DEFAULTS.val_fraction, metavar="F",
                        help="stratified share of the training patients held out for early stopping (0: none)")
    parser.add_argument("--max-patches", type=int, default=DEFAULTS.max_patches, metavar="N",
                        help="random patches per bag and epoch in training (0: all); prediction uses all")
    parser.add_argument("--seed", type=int, default=SEED, metavar="N")
    parser.add_argument("--device", choices=DEVICES, default=DEVICE,
                        help="auto: CUDA when PyTorch sees a GPU, else the CPU (deterministic)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads (default: torch's); fixed per run for reproducible results")


def run(args: argparse.Namespace) -> int:
    config = MILConfig(model=args.model, hidden=args.hidden, attention_dim=args.attention_dim, dropout=args.dropout,
                       lr=args.lr, weight_decay=args.weight_decay, max_epochs=args.max_epochs,
                       patience=args.patience, val_fraction=args.val_fraction, max_patches=args.max_patches)
    result = train_mil(args.features, args.labels, args.label, args.out, slide_map=args.slide_map, config=config,
                       seed=args.seed, device=args.device, threads=args.threads)
    log.info("trained %s on %d patients (%d slides) in %.1f s; best epoch %d -> %s", config.model,
             result.n_patients, result.n_slides, result.seconds, result.model.training["best_epoch"], args.out)
    return 0


@dataclass
class TrainResult:
    model: MILModel
    out: Path
    n_patients: int
    n_slides: int
    seconds: float


def read_outcomes(labels_csv: PathLike, label: str) -> dict[str, int]:
    """patient ID -> 0/1 outcome, from a patient table (patient_id first)."""
    from gcmlm.common.tables import read_labels

    table = read_patient_table(require_file(labels_csv, "label table"))
    return dict(zip(table[PATIENT_ID].astype(str), read_labels(table, label, labels_csv).tolist(), strict=True))


def outcomes_of(patients: Sequence[str], outcomes: dict[str, int], labels_csv: PathLike) -> np.ndarray:
    """The outcome of each of ``patients``, in order; a patient missing from the table is an error."""
    missing = [p for p in patients if p not in outcomes]
    if missing:
        raise GcmlmError(f"{len(missing)} patient(s) with slides are not in the label table: "
                         f"{', '.join(missing[:5])}", labels_csv)
    return np.array([outcomes[p] for p in patients], np.int64)


def train_mil(feature_files: Sequence[PathLike], labels_csv: PathLike, label: str, out: PathLike, *,
              slide_map: PathLike | None = None, config: MILConfig = DEFAULTS, seed: int = SEED,
              device: str = DEVICE, threads: int | None = None) -> TrainResult:
    """``gcmlm mil-train``: a model folder at ``out`` (see the module docstring)."""
    from gcmlm.common.manifest import map_slides

    check_outputs(dirs=[out], inputs=[*feature_files, labels_csv, slide_map])
    config.check()
    torch_device = resolve_device(device)
    configure_threads(torch_device, threads)
    for path in feature_files:
        require_file(path, "feature file")
    outcomes = read_outcomes(labels_csv, label)  # the small inputs first: their errors come before any big read
    mapping = map_slides(feature_files, slide_map)
    outcomes_of(sorted(set(mapping[slide_id(p)] for p in feature_files)), outcomes, labels_csv)
    start = time.perf_counter()
    features = bags_from_files(feature_files, mapping)
    y = outcomes_of([bag.patient_id for bag in features.bags], outcomes, labels_csv)
    model = fit_mil(features.bags, y, config, seed=seed, device=torch_device, identity=features.identity)
    model.training.update({"label": label, "n_slides": sum(len(b.slides) for b in features.bags),
                           "empty_slides": features.empty_slides, "threads": threads,
                           "seconds": round(time.perf_counter() - start, 2)})
    record = {**model.training, "config": config.to_dict()}
    extra = {TRAINING: (json.dumps(record, indent=2) + "\n").encode(), CURVE: learning_curve_png(model.training)}
    save_mil_model(model, out, extra_files=extra)
    return TrainResult(model, Path(out), len(features.bags), model.training["n_slides"], model.training["seconds"])


# --- the learning-curve plot (drawn with OpenCV: the pathology image has no matplotlib) -----------------

def learning_curve_png(training: dict, size: tuple[int, int] = (640, 400)) -> bytes:
    """Training and validation loss per epoch, the chosen epoch marked, as PNG bytes."""
    history = training["history"]
    w, h = size
    left, right, top, bottom = 60, 20, 30, 45
    img = np.full((h, w, 3), 255, np.uint8)
    series = [("train loss", [r["train_loss"] for r in history], (200, 90, 30))]
    if history and "val_loss" in history[0]:
        series.append(("validation loss", [r["val_loss"] for r in history], (30, 120, 230)))
    values = np.array([v for _, vs, _ in series for v in vs], np.float64)
    low, high = float(values.min()), float(values.max())
    high = high if high > low else low + 1.0
    n = max(2, len(history))

    def point(i: int, v: float) -> tuple[int, int]:
        x = left + round(i / (n - 1) * (w - left - right))
        return x, top + round((high - v) / (high - low) * (h - top - bottom))

    cv2.rectangle(img, (left, top), (w - right, h - bottom), (0, 0, 0), 1)
    best = training["best_epoch"] - 1
    cv2.line(img, (point(best, low)[0], top), (point(best, low)[0], h - bottom), (150, 150, 150), 1)
    for k, (name, vs, colour) in enumerate(series):
        pts = np.array([point(i, v) for i, v in enumerate(vs)], np.int32)
        cv2.polylines(img, [pts], False, colour, 2, lineType=cv2.LINE_AA)
        cv2.putText(img, name, (w - right - 170, top + 18 + 18 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1,
                    cv2.LINE_AA)
    text = [(f"{high:.3g}", (5, top + 5)), (f"{low:.3g}", (5, h - bottom)), ("epoch", (w // 2 - 20, h - 10)),
            ("1", (left - 3, h - bottom + 18)), (str(len(history)), (w - right - 10, h - bottom + 18)),
            (f"chosen: epoch {best + 1} (grey line)", (w - right - 170, top + 18 + 18 * len(series)))]
    for label, (x, y) in text:
        cv2.putText(img, label, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    ok, data = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if not ok:
        raise GcmlmError("could not encode the learning-curve PNG")
    return data.tobytes()
