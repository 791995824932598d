"""fusion-evaluate: saved model(s) on an external cohort.

Metrics with 95 % CIs (AUC: DeLong; sensitivity/specificity/PPV/NPV at the *training*
threshold: Wilson; Brier and calibration intercept/slope: percentile bootstrap), DeLong tests of
fused/stacked against each single modality, ROC, calibration and decision curves (PNG + SVG),
and a self-contained HTML report with TRIPOD+AI-minded notes.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from gcmlm.common.atomic import atomic_dir, write_json, write_text
from gcmlm.common.errors import GcmlmError
from gcmlm.common.tables import PATIENT_ID, feature_columns, read_patient_table
from gcmlm.fusion.core import metrics, plots, report
from gcmlm.fusion.core.inputs import check_columns, load_models, read_labels

log = logging.getLogger("gcmlm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR_OR_SKOPS",
                        help="fusion-train output folder (all its models) or one .skops file")
    parser.add_argument("--names", nargs="+", help="only these models from a folder")
    parser.add_argument("--table", required=True, metavar="CSV", help="external cohort patient table")
    parser.add_argument("--label", required=True, metavar="COLUMN", help="binary outcome column (0/1)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (replaced atomically)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for Brier/calibration CIs")
    parser.add_argument("--seed", type=int, default=0)


def bootstrap_ci(y: np.ndarray, p: np.ndarray, n: int, seed: int) -> dict:
    """Percentile intervals for Brier and calibration intercept/slope (resamples with both classes)."""
    rng = np.random.default_rng(seed)
    draws = {"brier": [], "calibration_intercept": [], "calibration_slope": []}
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        draws["brier"].append(metrics.brier(y[idx], p[idx]))
        cal = metrics.calibration(y[idx], p[idx])
        draws["calibration_intercept"].append(cal["calibration_intercept"])
        draws["calibration_slope"].append(cal["calibration_slope"])
    return {f"{k}_ci95": [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if v else [np.nan, np.nan]
            for k, v in draws.items()}


def missing_summary(table: pd.DataFrame, features: list[str]) -> dict:
    cells = table[features].isna()
    by_modality = {}
    for m in ("rad", "path", "clin"):
        cols = [c for c in feature_columns(table, m) if c in features]
        if cols:
            by_modality[m] = {"missing_cells": int(cells[cols].to_numpy().sum()),
                              "patients_with_missing": int(cells[cols].any(axis=1).sum())}
    return {"missing_cells": int(cells.to_numpy().sum()), "patients_with_missing": int(cells.any(axis=1).sum()),
            "by_modality": by_modality}


def run(args: argparse.Namespace) -> int:
    models = load_models(args.model, args.names)
    table = read_patient_table(args.table)
    y = read_labels(table, args.label, args.table)
    if len(set(y)) < 2:
        raise GcmlmError(f"outcome '{args.label}' has one class only: AUC is undefined", args.table)
    for model in models.values():
        check_columns(model, table, args.table)
    scores = {name: m.predict_risk(table) for name, m in models.items()}
    results = {}
    for name, m in models.items():
        res = metrics.summary(y, scores[name], m.threshold, with_ci=True)
        res.update(bootstrap_ci(y, scores[name], args.bootstrap, args.seed))
        res["threshold_rule"] = m.threshold_rule
        results[name] = res
    singles = [n for n in models if n not in ("fused", "stacked")]
    comparisons = [{"model": c, "versus": s, **metrics.delong_test(y, scores[c], scores[s])}
                   for c in ("fused", "stacked") if c in models for s in singles]
    features = list(dict.fromkeys(f for m in models.values() for f in m.features if f in table.columns))
    cohort = {"patients": int(len(y)), "events": int(y.sum()), "prevalence": float(y.mean()),
              "missing": missing_summary(table, [f for f in features if pd.api.types.is_numeric_dtype(table[f])])}
    thresholds = np.linspace(0.01, 0.8, 80)
    curves = {n: metrics.net_benefit(y, s, thresholds) for n, s in scores.items()}

    with atomic_dir(args.out) as out:
        write_json(out / "metrics.json", {"cohort": cohort, "models": results, "comparisons": comparisons,
                                          "decision_curves": curves})
        pd.DataFrame({PATIENT_ID: table[PATIENT_ID].astype(str), "label": y,
                      **{f"score_{n}": s for n, s in scores.items()}}).to_csv(out / "predictions.csv", index=False,
                                                                             float_format="%.6f")
        labels = {n: f"AUC {r['auc']:.2f} [{r['auc_ci95'][0]:.2f}, {r['auc_ci95'][1]:.2f}]" for n, r in results.items()}
        pairs = {n: (y, s) for n, s in scores.items()}
        images = [plots.roc({n: [p] for n, p in pairs.items()}, labels, out, title="External validation ROC")[0],
                  plots.calibration(pairs, out)[0], plots.decision_curve(pairs, out, thresholds=thresholds)[0]]
        write_text(out / "report.html", render(args, models, cohort, results, comparisons, images))
    for name, r in results.items():
        log.info("%-8s AUC %.3f [%.3f, %.3f]", name, r["auc"], *r["auc_ci95"])
    log.info("report: %s", Path(args.out) / "report.html")
    return 0


def render(args, models, cohort, results, comparisons, images) -> str:
    rows = [{"model": n, **r, "threshold": r["threshold"]} for n, r in results.items()]
    metric_cols = ["model", "auc", "auc_ci95", "threshold", "sensitivity", "sensitivity_ci95", "specificity",
                   "specificity_ci95", "ppv", "ppv_ci95", "npv", "npv_ci95", "brier", "brier_ci95", "calibration_intercept",
                   "calibration_intercept_ci95", "calibration_slope", "calibration_slope_ci95"]
    descriptions = []
    for n, m in models.items():
        card = m.card
        cfg = card.get("config", {})
        descriptions.append({
            "model": n, "features": len(m.features), "classifier": cfg.get("classifier", ""),
            "selection": f"{cfg.get('selection', '')} (k={cfg.get('k_features', '')})",
            "training patients": card.get("training_patients", ""), "training prevalence": card.get("prevalence", ""),
            "CV AUC": card.get("cv_auc", ""), "CV AUC 95% CI": card.get("cv_auc_ci95", ""),
            "threshold": f"{m.threshold:.4f} ({m.threshold_rule})"})
    missing = cohort["missing"]
    notes = [
        "Validation type: external validation of models frozen at training (no refitting, no recalibration, "
        "no threshold re-selection on this cohort).",
        "Thresholds: chosen on the training data by the stated rule (inner-CV out-of-fold scores), not on this cohort.",
        "AUC 95% CI: DeLong, logit scale. Sensitivity/specificity/PPV/NPV: Wilson intervals. Brier and calibration: "
        f"percentile bootstrap ({args.bootstrap} resamples, seed {args.seed}).",
        "Calibration intercept (calibration-in-the-large) should be near 0 and slope near 1; PPV/NPV depend on "
        "this cohort's prevalence.",
        "Missing feature values were imputed with the training medians inside each model's pipeline.",
        "DeLong p-values compare models on the same patients; they are not adjusted for multiple comparisons.",
    ]
    sections = [
        ("Cohort", report.table([{"patients": cohort["patients"], "events": cohort["events"],
                                  "prevalence": cohort["prevalence"], "patients with missing features":
                                  missing["patients_with_missing"], "missing cells": missing["missing_cells"]}],
                                ["patients", "events", "prevalence", "patients with missing features", "missing cells"])
         + report.table([{"modality": k, **v} for k, v in missing["by_modality"].items()],
                        ["modality", "missing_cells", "patients_with_missing"])),
        ("Models", report.table(descriptions, list(descriptions[0]))),
        ("Performance on this cohort", report.table(rows, metric_cols)),
        ("Model comparisons (DeLong)", report.table(comparisons, ["model", "versus", "auc_a", "auc_b", "difference", "p_value"])
         if comparisons else "<p>No fusion model to compare.</p>"),
        ("Reporting notes (TRIPOD+AI)", report.bullet_list(notes)),
    ]
    return report.page(f"gcmlm external validation: {Path(args.table).name}", sections, images)
