"""fusion-predict: risk scores and risk groups for new patients from a saved model.

Groups come from training, never from the new patients: the model's training threshold
(``threshold``: low/high), its training score tertiles (``tertiles``: low/intermediate/high),
or explicit cut-offs (``--cutoffs``).
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd

from gcmlm.common.atomic import atomic_file
from gcmlm.common.errors import GcmlmError
from gcmlm.common.tables import PATIENT_ID, read_patient_table
from gcmlm.fusion.core.inputs import check_columns, load_models

log = logging.getLogger("gcmlm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR_OR_SKOPS",
                        help="fusion-train output folder or one models/<name>.skops file")
    parser.add_argument("--name", help="model to use from a folder (default: the folder's default model)")
    parser.add_argument("--table", required=True, metavar="CSV", help="patient table of the new patients")
    parser.add_argument("--out", required=True, metavar="CSV", help="predictions to write")
    parser.add_argument("--groups", choices=("threshold", "tertiles"), default="threshold",
                        help="risk groups from the training threshold or the training score tertiles")
    parser.add_argument("--cutoffs", nargs="+", type=float, metavar="P", help="explicit risk cut-offs (overrides --groups)")


def group_names(k: int) -> list[str]:
    return {1: ["low", "high"], 2: ["low", "intermediate", "high"]}.get(k, [f"group_{i + 1}" for i in range(k + 1)])


def risk_groups(scores: np.ndarray, cutoffs: list[float]) -> list[str]:
    cutoffs = sorted(cutoffs)
    names = group_names(len(cutoffs))
    return [names[int(np.searchsorted(cutoffs, s, side="right"))] for s in scores]


def pick_model(models_path, name: str | None):
    import json
    from pathlib import Path

    path = Path(models_path)
    if path.is_dir() and name is None:
        card = path / "model_card.json"
        if card.is_file():
            name = json.loads(card.read_text()).get("default_model")
    models = load_models(path, [name] if name else None)
    if len(models) != 1:
        raise GcmlmError(f"several models ({', '.join(models)}); choose one with --name", models_path)
    return next(iter(models.values()))


def run(args: argparse.Namespace) -> int:
    model = pick_model(args.model, args.name)
    table = read_patient_table(args.table)
    check_columns(model, table, args.table)
    bad = [c for c in model.features if c != model.card.get("config", {}).get("combat_column")
           and not pd.api.types.is_numeric_dtype(table[c])]
    if bad:
        raise GcmlmError(f"non-numeric values in column(s) {', '.join(bad[:5])}", args.table)
    scores = model.predict_risk(table)
    if args.cutoffs:
        cutoffs, source = args.cutoffs, "explicit cut-offs"
    elif args.groups == "tertiles":
        cutoffs, source = model.tertiles, "training score tertiles"
    else:
        cutoffs, source = [model.threshold], f"training threshold ({model.threshold_rule})"
    out = pd.DataFrame({PATIENT_ID: table[PATIENT_ID].astype(str), "model": model.name, "risk_score": scores,
                        "risk_group": risk_groups(scores, cutoffs)})
    with atomic_file(args.out) as tmp:
        out.to_csv(tmp, index=False, float_format="%.6f")
    log.info("%d patients scored with model '%s'; groups from %s: cut-offs %s", len(out), model.name, source,
             ", ".join(f"{c:.4f}" for c in cutoffs))
    return 0
