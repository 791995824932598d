"""fusion-predict: risk scores and risk groups for new patients from a saved model.

Groups come from training, never from the new patients: the model's training threshold
(``threshold``: low/high), its training score tertiles (``tertiles``: low/intermediate/high),
or explicit cut-offs (``--cutoffs``).

From Python: ``predict_risk(model, table)`` (then ``write_predictions``); ``run(args)`` only
turns the command line into those arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gcmlm.common.atomic import atomic_file, check_outputs
from gcmlm.common.errors import GcmlmError, require_file
from gcmlm.common.tables import PATIENT_ID, check_patient_table, read_patient_table
from gcmlm.fusion.core import checks, survival, survival_report
from gcmlm.fusion.core.inputs import CARD, load_models
from gcmlm.fusion.core.models import RiskModel

log = logging.getLogger("gcmlm")
GROUPINGS = ("threshold", "tertiles")
DEFAULT_GROUPS = "threshold"


@dataclass
class RiskPredictions:
    """Scores and groups of new patients (``table``), and where the group cut-offs came from."""

    table: pd.DataFrame  # patient_id, model, risk_score, risk_group
    model: RiskModel
    cutoffs: list[float]
    cutoff_source: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR_OR_SKOPS",
                        help="fusion-train output folder or one models/<name>.skops file")
    parser.add_argument("--name", help="model to use from a folder (default: the folder's default model)")
    parser.add_argument("--table", required=True, metavar="CSV", help="patient table of the new patients")
    parser.add_argument("--out", required=True, metavar="CSV", help="predictions to write")
    parser.add_argument("--groups", choices=GROUPINGS, default=DEFAULT_GROUPS,
                        help="risk groups from the training threshold or the training score tertiles")
    parser.add_argument("--cutoffs", nargs="+", type=float, metavar="P",
                        help="explicit risk cut-offs, increasing, inside (0, 1) (overrides --groups)")
    survival_report.add_outcome_arguments(parser, with_columns=False)  # time-to-event models: --horizons


def run(args: argparse.Namespace) -> int:
    if args.cutoffs:
        checks.require_cutoffs(args.cutoffs)
    check_outputs(files=[args.out], inputs=[args.model, args.table])  # before the model is read
    model = pick_model(args.model, args.name)
    write_predictions(predict_risk(model, args.table, groups=args.groups, cutoffs=args.cutoffs,
                                   horizons=getattr(args, "horizons", None)), args.out)
    return 0


def predict_risk(model: RiskModel | str | os.PathLike, table: pd.DataFrame | str | os.PathLike, *,
                 groups: str = DEFAULT_GROUPS, cutoffs: Sequence[float] | None = None,
                 horizons: Sequence[float] | None = None, source: str | os.PathLike = "table") -> RiskPredictions:
    """Risk scores and groups. ``model``: a model, a .skops file or a fusion-train output folder
    (its default model); ``table``: a patient table or its CSV (``source`` names an in-memory
    one); ``cutoffs`` (explicit) override ``groups``."""
    if not isinstance(model, RiskModel):
        model = pick_model(model)
    cutoffs, cutoff_source = group_cutoffs(model, groups, cutoffs)
    table, source = read_new_patients(table, model, source)
    scores = model.predict_risk(table)
    out = pd.DataFrame({PATIENT_ID: table[PATIENT_ID].astype(str), "model": model.name, "risk_score": scores,
                        "risk_group": risk_groups(scores, cutoffs)})
    if model.card.get("outcome") == "survival":  # S(t) per horizon, in the model's time unit
        times = survival_horizons(model, horizons)
        at = survival.survival_at(model.estimator, table[model.features], times)
        for j, t in enumerate(times):
            out[f"survival_{t:g}_{model.card['time_unit']}"] = at[:, j]
    elif horizons:
        raise GcmlmError("--horizons applies to time-to-event models only", "--horizons")
    return RiskPredictions(out, model, cutoffs, cutoff_source)


def survival_horizons(model: RiskModel, horizons: Sequence[float] | None) -> list[float]:
    """The horizons asked for (else the model's); beyond the training follow-up S(t) would be an
    extrapolation of the baseline hazard, so those are refused."""
    times = sorted({float(h) for h in horizons}) if horizons else list(model.card.get("horizons", []))
    for t in times:
        checks.require_option("--horizons", t, 0, low_open=True)
    longest = model.card.get("max_follow_up", float("inf"))
    beyond = [t for t in times if t >= longest]
    if beyond:
        raise GcmlmError(f"horizon(s) {', '.join(f'{t:g}' for t in beyond)} are beyond the training follow-up "
                         f"({longest:g} {model.card.get('time_unit', '')})", "--horizons")
    return times


def write_predictions(predictions: RiskPredictions, out: str | os.PathLike) -> Path:
    check_outputs(files=[out])
    with atomic_file(out) as tmp:
        predictions.table.to_csv(tmp, index=False, float_format="%.6f")
    log.info("%d patients scored with model '%s'; groups from %s: cut-offs %s", len(predictions.table),
             predictions.model.name, predictions.cutoff_source, ", ".join(f"{c:.4f}" for c in predictions.cutoffs))
    return Path(out)


def pick_model(models_path: str | os.PathLike, name: str | None = None) -> RiskModel:
    """One model from a .skops file, or from a fusion-train folder (``name``, else its default)."""
    path = Path(models_path)
    if path.is_dir() and name is None:
        card = path / CARD
        if card.is_file():
            name = json.loads(card.read_text()).get("default_model")
    models = load_models(path, [name] if name else None)
    if len(models) != 1:
        raise GcmlmError(f"several models ({', '.join(models)}); choose one with --name", models_path)
    return next(iter(models.values()))


def read_new_patients(table: pd.DataFrame | str | os.PathLike, model: RiskModel,
                      source: str | os.PathLike = "table") -> tuple[pd.DataFrame, str | os.PathLike]:
    """The new patients' table, checked to hold every column the model reads, as finite numbers."""
    if isinstance(table, pd.DataFrame):
        check_patient_table(table, source)
    else:
        source, table = table, read_patient_table(require_file(table, "file"))
    checks.require_patients(table, source)
    checks.require_model_inputs(model, table, source)
    return table, source


def group_cutoffs(model: RiskModel, groups: str = DEFAULT_GROUPS,
                  cutoffs: Sequence[float] | None = None) -> tuple[list[float], str]:
    """The cut-offs between risk groups and where they come from (never from the new patients)."""
    if cutoffs:
        return checks.require_cutoffs(cutoffs), "explicit cut-offs"
    if groups == "tertiles":
        if len(model.tertiles) != 2:
            raise GcmlmError(f"model '{model.name}' carries no training score tertiles; use --groups threshold "
                             "or --cutoffs", "--groups")
        return model.tertiles, "training score tertiles"
    if groups == "threshold":
        return [model.threshold], f"training threshold ({model.threshold_rule})"
    raise ValueError(f"groups must be one of {', '.join(GROUPINGS)}, not {groups!r}")


def group_names(k: int) -> list[str]:
    return {1: ["low", "high"], 2: ["low", "intermediate", "high"]}.get(k, [f"group_{i + 1}" for i in range(k + 1)])


def risk_groups(scores: np.ndarray, cutoffs: list[float]) -> list[str]:
    cutoffs = sorted(cutoffs)
    names = group_names(len(cutoffs))
    return [names[int(np.searchsorted(cutoffs, s, side="right"))] for s in scores]
