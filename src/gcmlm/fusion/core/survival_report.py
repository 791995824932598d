"""The time-to-event side of the fusion stages: options, nested-CV summary, model cards, reports.

The stage modules branch here when the outcome is a ``survival.SurvivalOutcome`` (``--time`` and
``--event``), so their binary code stays as it was.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from gcmlm.common.tables import PATIENT_ID
from gcmlm.fusion.core import report, survival, survival_plots
from gcmlm.fusion.core.models import fusion_pairs

log = logging.getLogger("gcmlm")
GROUPS_2 = ["low risk", "high risk"]


def add_outcome_arguments(parser: argparse.ArgumentParser, *, with_columns: bool = True) -> None:
    """--time/--event (instead of --label), --time-unit and --horizons."""
    if with_columns:
        parser.add_argument("--time", metavar="COLUMN",
                            help="follow-up time column (time to event or censoring); with --event instead of --label")
        parser.add_argument("--event", metavar="COLUMN", help="event column (1 = event, 0 = censored)")
        parser.add_argument("--time-unit", choices=tuple(survival.TIME_UNITS), default="months",
                            help="unit of --time (stated in the outputs)")
    parser.add_argument("--horizons", nargs="+", type=float, metavar="T",
                        help="horizons for AUC(t), calibration and survival probabilities, in the time unit "
                             "(default: 1, 2 and 3 years)")


def outcome_from_args(args: argparse.Namespace) -> str | survival.SurvivalOutcome:
    """--label, or --time/--event with --time-unit and --horizons (absent attributes: not given)."""
    return survival.outcome_from_options(getattr(args, "label", None), getattr(args, "time", None),
                                         getattr(args, "event", None), getattr(args, "time_unit", "months"),
                                         getattr(args, "horizons", None))


def task_for(outcome: survival.SurvivalOutcome, y: np.ndarray) -> survival.SurvivalTask:
    horizons = outcome.horizon_times()
    return survival.SurvivalTask(sorted(set(horizons) | set(survival.brier_grid(y, horizons))))


def assessed_horizons(y: np.ndarray, outcome_horizons: list[float]) -> tuple[list[float], list[dict]]:
    valid, skipped = survival.horizon_check(y, outcome_horizons)
    for s in skipped:
        log.warning("horizon %g skipped: %s", s["horizon"], s["reason"])
    return valid, skipped


def summarise_cv(oof: pd.DataFrame, y: np.ndarray, outcome: survival.SurvivalOutcome, names: list[str],
                 seed: int) -> tuple[dict, list[dict], dict]:
    """Nested-CV metrics per model, paired comparisons, and the design notes of the survival path."""
    valid, skipped = assessed_horizons(y, outcome.horizon_times())
    summary = survival.summarise(oof, y, valid, seed=seed)
    comparisons = survival.compare(oof, fusion_pairs(names), seed=seed)
    design = {
        "outcome": "survival", **outcome.describe(), "horizons_assessed": valid, "horizons_skipped": skipped,
        "events": int(y["event"].sum()), "median_follow_up": float(np.median(y["time"])),
        "model": "penalised Cox (scikit-survival CoxnetSurvivalAnalysis, elastic net; alpha tuned in the inner "
                 "CV on Harrell's C); stacked: Cox model on the modality models' inner-CV linear predictors",
        "selection_note": "in-fold selection ranks features by univariate Cox score tests (anova, correlation "
                          "pruning, mrmr) or a Cox lasso path (l1)",
        "ci_method": f"mean over repeats; 95% CI = mean +- 1.96 x bootstrap SE of one repeat's pooled out-of-fold "
                     f"estimate ({survival.BOOTSTRAP} resamples of patients)",
        "threshold_rule": "training median",
        "threshold_provenance": "risk groups: each outer fold's patients split at the median (tertiles in "
                                "fusion-predict) of the training fold's own risk scores, never the held-out ones",
    }
    return summary, comparisons, design


def final_card(final, table: pd.DataFrame, y: np.ndarray, outcome: survival.SurvivalOutcome, cv: dict) -> dict:
    """Model-card fields of a final Cox model: cut-offs from its training scores, its CV C-index."""
    cut = survival.risk_cutoffs(final.predict(table))
    valid, skipped = survival.horizon_check(y, outcome.horizon_times())
    return {"outcome": "survival", "time": outcome.time, "event": outcome.event, "time_unit": outcome.unit,
            "horizons": valid, "horizons_skipped": skipped, "events": int(y["event"].sum()),
            "prevalence": float(y["event"].mean()), "max_follow_up": float(y["time"].max()),
            "threshold": cut["threshold"], "threshold_rule": "training median",
            "threshold_provenance": "median of the final model's risk scores on all training patients",
            "tertiles": [cut["tertile_low"], cut["tertile_high"]],
            "cv_harrell_c": cv["harrell_c"], "cv_harrell_c_ci95": cv["harrell_c_ci95"], "cv_uno_c": cv["uno_c"]}


# --- report pages --------------------------------------------------------------------------------------

def metric_rows(summary: dict[str, dict], horizons: list[float]) -> tuple[list[dict], list[str]]:
    cols = ["model", "harrell_c", "harrell_c_ci95", "uno_c", "uno_c_ci95"]
    for h in horizons:
        cols += [f"auc_{h:g}", f"auc_{h:g}_ci95"]
    cols += ["ibs", "ibs_ci95", "logrank_p"]
    rows = [{"model": n, **s, "logrank_p": s.get("logrank", {}).get("p_value", "")} for n, s in summary.items()]
    return rows, cols


def _first_repeat(oof: pd.DataFrame, model: str) -> pd.DataFrame:
    part = oof[(oof["model"] == model) & (oof["repeat"] == oof["repeat"].min())]
    return part.sort_values(PATIENT_ID)


def render_train(result, cards: dict[str, dict], out: Path) -> str:
    design, summary = result.design, result.summary
    unit, horizons = design["time_unit"], design["horizons_assessed"]
    model = result.default_model
    first = _first_repeat(result.cv.oof, model)
    y = survival.surv(first["event"].to_numpy(), first["time"].to_numpy())
    groups = survival.risk_group_labels(first["score"].to_numpy(), first["threshold"].to_numpy())
    images = [survival_plots.km_by_group(y, groups, GROUPS_2, out, stem="cv_km", unit=unit,
                                         title=f"{model}: out-of-fold risk groups (repeat 1)",
                                         p_value=summary[model]["logrank"]["p_value"])[0]]
    if horizons:
        images.append(survival_plots.time_auc(summary, horizons, out, unit=unit)[0])
        images.append(survival_plots.calibration_at_horizons(summary[model]["calibration"], out,
                                                             stem="cv_calibration",
                                                             title=f"{model}: calibration (repeat 1)")[0])
    rows, cols = metric_rows(summary, horizons)
    cfg = design["config"]
    notes = [
        f"Outcome: time to event, '{design['time']}' in {unit} (event '{design['event']}'); "
        f"{design['events']} events, median follow-up {design['median_follow_up']:.1f} {unit}.",
        f"Validation type: internal validation by nested cross-validation ({design['outer_repeats']} x "
        f"{design['outer_folds']}-fold outer stratified on the event, {design['inner_folds']}-fold inner, "
        f"seed {design['seed']}).",
        f"Model: {design['model']}. Inside every training fold: imputation, constant-feature removal, scaling, "
        + ("ComBat by '" + cfg["combat_column"] + "', " if cfg.get("combat_column") else "")
        + f"correlation pruning (|r| > {cfg['corr_threshold']}), selection ({cfg['selection']}, "
        f"k={cfg['k_features']}); {design['selection_note']}.",
        f"Metrics: {design['ci_method']}. Time-dependent AUC: cumulative/dynamic (IPCW); Uno's C truncated at the "
        "last assessed horizon; integrated Brier score over the horizons and follow-up deciles.",
        f"Risk groups: {design['threshold_provenance']}; log-rank test on repeat 1.",
        "Comparisons: paired bootstrap of the difference in Harrell's C (same patients, same resamples); "
        "not adjusted for multiple comparisons.",
    ]
    notes += [f"Horizon {s['horizon']:g} {unit} skipped: {s['reason']}." for s in design["horizons_skipped"]]
    cohort = [{"patients": design["patients"], "events": design["events"], "event rate": design["prevalence"],
               f"median follow-up ({unit})": design["median_follow_up"],
               **{f"{m} features": n for m, n in design["features_per_modality"].items()}}]
    sections = [
        ("Cohort", report.table(cohort, list(cohort[0]))),
        ("Nested cross-validation (time to event)", report.table(rows, cols)),
        ("Fusion vs single modalities (paired bootstrap, Harrell's C)",
         report.table(result.comparisons, ["model", "versus", "c_index_difference", "c_index_difference_ci95",
                                           "p_value"]) if result.comparisons else "<p>No fusion model trained.</p>"),
        (f"Calibration of {model} at each horizon (repeat 1, tertiles)",
         report.table(summary[model]["calibration"], ["horizon", "group", "patients", "predicted_survival",
                                                     "observed_survival_km"])),
        ("Reporting notes (TRIPOD+AI)", report.bullet_list(notes)),
    ]
    return report.page(result.title, sections, images)


# --- fusion-evaluate on an external cohort -------------------------------------------------------------

def check_units(models: dict, outcome: survival.SurvivalOutcome, source) -> None:
    """Frozen Cox models predict in their training time unit; a cohort in another unit is refused."""
    from gcmlm.common.errors import GcmlmError

    for name, model in models.items():
        if model.card.get("outcome") != "survival":
            raise GcmlmError(f"model '{name}' was trained on a binary label; evaluate it with --label", source)
        if model.card.get("time_unit") != outcome.unit:
            raise GcmlmError(f"model '{name}' was trained with times in {model.card.get('time_unit')}, this cohort "
                             f"is given in {outcome.unit} (--time-unit)", "--time-unit")


def evaluation_frame(table: pd.DataFrame, y: np.ndarray, models: dict, times: list[float]) -> pd.DataFrame:
    """One 'repeat' of predictions per model, shaped like nested CV's out-of-fold table."""
    rows = []
    for name, model in models.items():
        at = survival.survival_at(model.estimator, table[model.features], times)
        rows.append(pd.DataFrame({PATIENT_ID: table[PATIENT_ID].astype(str).to_numpy(), "repeat": 0, "fold": 0,
                                  "model": name, "score": model.predict_risk(table),
                                  **{survival.surv_column(t): at[:, j] for j, t in enumerate(times)},
                                  "threshold": model.threshold, "time": y["time"], "event": y["event"].astype(int)}))
    return pd.concat(rows, ignore_index=True)


def evaluate(models: dict, table: pd.DataFrame, y: np.ndarray, outcome: survival.SurvivalOutcome, *,
             resamples: int, seed: int, source) -> dict:
    """Frozen Cox models on a cohort: C-indices, AUC(t), IBS, calibration with bootstrap CIs;
    log-rank between the groups cut at each model's training median; paired comparisons."""
    check_units(models, outcome, source)
    valid, skipped = assessed_horizons(y, outcome.horizon_times())
    times = sorted(set(valid) | set(survival.brier_grid(y, valid or outcome.horizon_times())))
    frame = evaluation_frame(table, y, models, times)
    results = survival.summarise(frame, y, valid, resamples=resamples, seed=seed)
    return {"outcome": {"type": "survival", **outcome.describe(), "horizons_assessed": valid,
                        "horizons_skipped": skipped},
            "cohort": {"patients": int(len(y)), "events": int(y["event"].sum()),
                       "median_follow_up": float(np.median(y["time"]))},
            "models": results, "comparisons": survival.compare(frame, fusion_pairs(list(models)),
                                                               resamples=resamples, seed=seed),
            "frame": frame}


def write_evaluation(evaluation: dict, out: Path, title: str) -> None:
    """metrics.json, predictions.csv, KM/AUC(t)/calibration figures and report.html into ``out``."""
    from gcmlm.common.atomic import write_json, write_text

    frame = evaluation.pop("frame")
    write_json(out / "metrics.json", evaluation)
    wide = frame.pivot(index=PATIENT_ID, columns="model", values="score").add_prefix("score_")
    first = frame[frame["model"] == frame["model"].iloc[0]].set_index(PATIENT_ID)[["time", "event"]]
    first.join(wide).reset_index().to_csv(out / "predictions.csv", index=False, float_format="%.6f")
    outcome, results = evaluation["outcome"], evaluation["models"]
    unit, horizons = outcome["time_unit"], outcome["horizons_assessed"]
    images = []
    for name, part in frame.groupby("model", sort=False):
        y = survival.surv(part["event"].to_numpy(), part["time"].to_numpy())
        groups = survival.risk_group_labels(part["score"].to_numpy(), [part["threshold"].iloc[0]])
        images.append(survival_plots.km_by_group(y, groups, GROUPS_2, out, stem=f"km_{name}", unit=unit,
                                                 title=f"{name}: groups at the training median",
                                                 p_value=results[name]["logrank"]["p_value"])[0])
    if horizons:
        images.append(survival_plots.time_auc(results, horizons, out, unit=unit, stem="time_auc")[0])
    rows, cols = metric_rows(results, horizons)
    notes = [f"Validation type: external validation of frozen Cox models (no refitting); time in {unit}.",
             f"95% CIs: mean +- 1.96 bootstrap SE ({evaluation.get('resamples', survival.BOOTSTRAP)} resamples).",
             "Risk groups: cut at each model's training median risk score; log-rank test between them."]
    notes += [f"Horizon {s['horizon']:g} {unit} skipped: {s['reason']}." for s in outcome["horizons_skipped"]]
    sections = [("Cohort", report.table([evaluation["cohort"]], list(evaluation["cohort"]))),
                ("Performance on this cohort (time to event)", report.table(rows, cols)),
                ("Model comparisons (paired bootstrap, Harrell's C)",
                 report.table(evaluation["comparisons"], ["model", "versus", "c_index_difference",
                                                          "c_index_difference_ci95", "p_value"])
                 if evaluation["comparisons"] else "<p>No fusion model to compare.</p>"),
                ("Reporting notes (TRIPOD+AI)", report.bullet_list(notes))]
    write_text(out / "report.html", report.page(title, sections, images))
