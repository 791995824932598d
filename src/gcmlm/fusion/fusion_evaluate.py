"""fusion-evaluate: saved model(s) on an external cohort.

Metrics with 95 % CIs (AUC: DeLong; sensitivity/specificity/PPV/NPV at the *training*
threshold: Wilson; Brier and calibration intercept/slope: percentile bootstrap), DeLong tests of
fused/stacked against each single modality, ROC, calibration and decision curves (PNG + SVG),
and a self-contained HTML report with TRIPOD+AI-minded notes.

From Python: ``evaluate_model(models, table, label, EvaluateSettings(...), out_dir)``;
``run(args)`` only turns the command line into those arguments.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gcmlm.common.atomic import atomic_dir, check_outputs, write_json, write_text
from gcmlm.common.errors import GcmlmError, require_file
from gcmlm.common.tables import (
    MODALITIES,
    PATIENT_ID,
    check_patient_table,
    feature_columns,
    read_patient_table,
)
from gcmlm.fusion.core import checks, metrics, plots, report, survival, survival_report
from gcmlm.fusion.core.inputs import load_models, read_labels
from gcmlm.fusion.core.models import RiskModel, fusion_pairs

log = logging.getLogger("gcmlm")


@dataclass(frozen=True)
class EvaluateSettings:
    """fusion-evaluate's options beyond its inputs, with their defaults (the command line's too)."""

    bootstrap: int = 1000  # resamples for the Brier and calibration CIs
    seed: int = 0

    def __post_init__(self) -> None:
        checks.require_option("--bootstrap", self.bootstrap, 1)
        checks.require_option("--seed", self.seed, 0, 2**32 - 1)


DEFAULTS = EvaluateSettings()


@dataclass
class Evaluation:
    """What ``evaluate_model`` measured (``write_outputs`` turns it into the output folder)."""

    models: dict[str, RiskModel]
    patient_ids: list[str]
    labels: np.ndarray
    scores: dict[str, np.ndarray]  # predicted risk per model
    cohort: dict  # size, prevalence, missing values
    results: dict[str, dict]  # metrics with CIs per model
    comparisons: list[dict]  # DeLong tests of fusion models against single modalities
    decision_curves: dict[str, dict]
    settings: EvaluateSettings
    title: str  # the report's title

    def predictions(self) -> pd.DataFrame:
        return pd.DataFrame({PATIENT_ID: self.patient_ids, "label": self.labels,
                             **{f"score_{n}": s for n, s in self.scores.items()}})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR_OR_SKOPS",
                        help="fusion-train output folder (all its models) or one .skops file")
    parser.add_argument("--names", nargs="+", metavar="NAME",
                        help="only these models from a folder (e.g. fused stacked)")
    parser.add_argument("--table", required=True, metavar="CSV", help="external cohort patient table")
    parser.add_argument("--label", metavar="COLUMN", help="binary outcome column (0/1); or --time with --event")
    survival_report.add_outcome_arguments(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (replaced atomically)")
    parser.add_argument("--bootstrap", type=int, default=DEFAULTS.bootstrap,
                        help="bootstrap resamples for Brier/calibration CIs")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of the bootstrap confidence intervals")


def run(args: argparse.Namespace) -> int:
    settings = EvaluateSettings(bootstrap=args.bootstrap, seed=args.seed)
    check_outputs(dirs=[args.out], inputs=[args.model, args.table])  # before the models are read
    models = load_models(args.model, args.names)
    outcome = survival_report.outcome_from_args(args)
    evaluate_model(models, args.table, outcome, settings, args.out)
    return 0


def evaluate_model(models: RiskModel | Mapping[str, RiskModel] | str | os.PathLike,
                   table: pd.DataFrame | str | os.PathLike, label: str, settings: EvaluateSettings = DEFAULTS,
                   out_dir: str | os.PathLike | None = None, *, source: str | os.PathLike = "table") -> Evaluation:
    """Frozen model(s) on an external cohort: no refitting, no threshold re-selection. ``models``: a
    model, models by name, a fusion-train output folder or a .skops file; ``table``: a patient table
    or its CSV (``source`` names an in-memory one). Written to ``out_dir`` unless it is None."""
    if out_dir is not None:
        check_outputs(dirs=[out_dir], inputs=[p for p in (models, table) if isinstance(p, (str, os.PathLike))])
    models = as_models(models)
    if isinstance(label, survival.SurvivalOutcome):  # frozen Cox models: C-indices, AUC(t), KM by group
        return evaluate_survival(models, table, label, settings, out_dir, source)
    table, y, source = read_cohort(table, label, source, models)
    for model in models.values():
        checks.require_model_inputs(model, table, source)
    scores = {name: m.predict_risk(table) for name, m in models.items()}
    thresholds = metrics.decision_thresholds()
    evaluation = Evaluation(
        models=models, patient_ids=table[PATIENT_ID].astype(str).tolist(), labels=y, scores=scores,
        cohort=describe_cohort(table, y, models),
        results={n: model_metrics(y, scores[n], m, settings) for n, m in models.items()},
        comparisons=[{"model": c, "versus": s, **metrics.delong_test(y, scores[c], scores[s])}
                     for c, s in fusion_pairs(list(models))],
        decision_curves={n: metrics.net_benefit(y, s, thresholds) for n, s in scores.items()},
        settings=settings, title=f"gcmlm external validation: {Path(source).name}")
    if out_dir is not None:
        write_outputs(evaluation, out_dir)
    for name, r in evaluation.results.items():
        log.info("%-8s AUC %.3f [%.3f, %.3f]", name, r["auc"], *r["auc_ci95"])
    if out_dir is not None:
        log.info("report: %s", Path(out_dir) / "report.html")
    return evaluation


def evaluate_survival(models: dict[str, RiskModel], table: pd.DataFrame | str | os.PathLike,
                      outcome: survival.SurvivalOutcome, settings: EvaluateSettings,
                      out_dir: str | os.PathLike | None, source: str | os.PathLike) -> dict:
    """The time-to-event evaluation (metrics as in ``survival_report.evaluate``), written to ``out_dir``."""
    if isinstance(table, pd.DataFrame):
        check_patient_table(table, source)
    else:
        source, table = table, read_patient_table(require_file(table, "file"))
    checks.require_patients(table, source)
    inputs = [f for m in models.values() for f in m.features]
    for column in outcome.columns:
        checks.require_label_not_feature(column, [*feature_columns(table), *inputs], source)
    y = survival.read_outcome(table, outcome, source)
    for model in models.values():
        checks.require_model_inputs(model, table, source)
    evaluation = survival_report.evaluate(models, table, y, outcome, resamples=settings.bootstrap,
                                          seed=settings.seed, source=source)
    evaluation["resamples"] = settings.bootstrap
    for name, r in evaluation["models"].items():
        log.info("%-8s Harrell's C %.3f [%.3f, %.3f]", name, r["harrell_c"], *r["harrell_c_ci95"])
    if out_dir is not None:
        with atomic_dir(out_dir) as out:
            survival_report.write_evaluation(dict(evaluation), out,
                                             f"gcmlm external validation (time to event): {Path(source).name}")
        log.info("report: %s", Path(out_dir) / "report.html")
    return evaluation


def as_models(models: RiskModel | Mapping[str, RiskModel] | str | os.PathLike) -> dict[str, RiskModel]:
    if isinstance(models, RiskModel):
        return {models.name: models}
    if isinstance(models, Mapping):
        return dict(models)
    return load_models(models)


def read_cohort(table: pd.DataFrame | str | os.PathLike, label: str, source: str | os.PathLike = "table",
                models: Mapping[str, RiskModel] | None = None) -> tuple[pd.DataFrame, np.ndarray, str | os.PathLike]:
    """The cohort, its outcome as 0/1 (both classes needed) and the name errors give it. The
    outcome must not be a feature column (nor one of ``models``' inputs)."""
    if isinstance(table, pd.DataFrame):
        check_patient_table(table, source)
    else:
        source, table = table, read_patient_table(require_file(table, "file"))
    checks.require_patients(table, source)
    inputs = [f for m in (models or {}).values() for f in m.features]
    checks.require_label_not_feature(label, [*feature_columns(table), *inputs], source)
    y = read_labels(table, label, source)
    if len(set(y)) < 2:
        raise GcmlmError(f"outcome '{label}' has one class only: AUC is undefined", source)
    return table, y, source


def model_metrics(y: np.ndarray, score: np.ndarray, model: RiskModel, settings: EvaluateSettings) -> dict:
    """The metric set at the model's training threshold, with Wilson and bootstrap intervals."""
    res = metrics.summary(y, score, model.threshold, with_ci=True)
    res.update(bootstrap_ci(y, score, settings.bootstrap, settings.seed))
    if res["calibration_not_estimable"]:
        log.warning("%s: calibration intercept/slope not estimable on this cohort (%s); NaN in metrics.json",
                    model.name, res["calibration_not_estimable"])
    res["threshold_rule"] = model.threshold_rule
    return res


def bootstrap_ci(y: np.ndarray, p: np.ndarray, n: int, seed: int) -> dict:
    """Percentile intervals for Brier and calibration intercept/slope (resamples with both classes;
    calibration over the resamples where it is estimable, their number in
    ``calibration_bootstrap_resamples``)."""
    rng = np.random.default_rng(seed)
    draws = {"brier": [], "calibration_intercept": [], "calibration_slope": []}
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        draws["brier"].append(metrics.brier(y[idx], p[idx]))
        cal = metrics.calibration(y[idx], p[idx])
        if cal["calibration_not_estimable"] is None:
            draws["calibration_intercept"].append(cal["calibration_intercept"])
            draws["calibration_slope"].append(cal["calibration_slope"])
    out = {f"{k}_ci95": [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if v else [np.nan, np.nan]
           for k, v in draws.items()}
    out["calibration_bootstrap_resamples"] = len(draws["calibration_slope"])
    return out


def describe_cohort(table: pd.DataFrame, y: np.ndarray, models: dict[str, RiskModel]) -> dict:
    features = list(dict.fromkeys(f for m in models.values() for f in m.features if f in table.columns))
    numeric = [f for f in features if pd.api.types.is_numeric_dtype(table[f])]
    return {"patients": int(len(y)), "events": int(y.sum()), "prevalence": float(y.mean()),
            "missing": missing_summary(table, numeric)}


def missing_summary(table: pd.DataFrame, features: list[str]) -> dict:
    cells = table[features].isna()
    by_modality = {}
    for m in MODALITIES:
        cols = [c for c in feature_columns(table, m) if c in features]
        if cols:
            by_modality[m] = {"missing_cells": int(cells[cols].to_numpy().sum()),
                              "patients_with_missing": int(cells[cols].any(axis=1).sum())}
    return {"missing_cells": int(cells.to_numpy().sum()), "patients_with_missing": int(cells.any(axis=1).sum()),
            "by_modality": by_modality}


def write_outputs(evaluation: Evaluation, out_dir: str | os.PathLike) -> None:
    """The output folder, replaced atomically: metrics, predictions, curves and the report."""
    with atomic_dir(out_dir) as out:
        write_json(out / "metrics.json", {"cohort": evaluation.cohort, "models": evaluation.results,
                                          "comparisons": evaluation.comparisons,
                                          "decision_curves": evaluation.decision_curves})
        evaluation.predictions().to_csv(out / "predictions.csv", index=False, float_format="%.6f")
        write_text(out / "report.html", render(evaluation, curves(evaluation, out)))


def curves(evaluation: Evaluation, out: Path) -> list[Path]:
    """ROC, calibration and decision curves; the PNGs the report embeds."""
    labels = {n: plots.auc_label(r["auc"], r["auc_ci95"]) for n, r in evaluation.results.items()}
    pairs = {n: (evaluation.labels, s) for n, s in evaluation.scores.items()}
    return [plots.roc({n: [p] for n, p in pairs.items()}, labels, out, title="External validation ROC")[0],
            plots.calibration(pairs, out)[0], plots.decision_curve(pairs, out)[0]]


def render(evaluation: Evaluation, images: list[Path]) -> str:
    """The external-validation report: cohort, models, metrics with CIs, comparisons, curves."""
    results, comparisons, cohort = evaluation.results, evaluation.comparisons, evaluation.cohort
    rows = [{"model": n, **r, "threshold": r["threshold"]} for n, r in results.items()]
    metric_cols = ["model", "auc", "auc_ci95", "threshold", "sensitivity", "sensitivity_ci95", "specificity",
                   "specificity_ci95", "ppv", "ppv_ci95", "npv", "npv_ci95", "brier", "brier_ci95", "calibration_intercept",
                   "calibration_intercept_ci95", "calibration_slope", "calibration_slope_ci95"]
    descriptions = [describe_model(n, m) for n, m in evaluation.models.items()]
    missing = cohort["missing"]
    notes = [
        "Validation type: external validation of models frozen at training (no refitting, no recalibration, "
        "no threshold re-selection on this cohort).",
        "Thresholds: chosen on the training data by the stated rule (inner-CV out-of-fold scores), not on this cohort.",
        "AUC 95% CI: DeLong, logit scale. Sensitivity/specificity/PPV/NPV: Wilson intervals. Brier and calibration: "
        f"percentile bootstrap ({evaluation.settings.bootstrap} resamples, seed {evaluation.settings.seed}).",
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
    return report.page(evaluation.title, sections, images)


def describe_model(name: str, model: RiskModel) -> dict:
    """One row of the report's model table, from the model card written at training."""
    card = model.card
    cfg = card.get("config", {})
    return {"model": name, "features": len(model.features), "classifier": cfg.get("classifier", ""),
            "selection": f"{cfg.get('selection', '')} (k={cfg.get('k_features', '')})",
            "training patients": card.get("training_patients", ""), "training prevalence": card.get("prevalence", ""),
            "CV AUC": card.get("cv_auc", ""), "CV AUC 95% CI": card.get("cv_auc_ci95", ""),
            "threshold": f"{model.threshold:.4f} ({model.threshold_rule})"}
