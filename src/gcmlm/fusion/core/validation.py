"""Nested cross-validation: repeated stratified outer folds, inner tuning, training-fold thresholds.

For each outer split every model is fit (its inner GridSearchCV tunes on the training fold
only) and scores the held-out fold. The decision threshold used on a held-out fold is chosen
from inner-CV out-of-fold scores of the *training* fold (hyperparameters frozen), never from
the held-out patients. Each repeat gives one out-of-fold score per patient.

Aggregation (documented in tools/fusion-train/README.md): metrics are computed on each repeat's
pooled out-of-fold scores and averaged over repeats. ``auc_ci95`` is a DeLong interval on the
logit scale around the mean AUC using the mean per-repeat DeLong variance: the variance of one
repeat's AUC, not divided by the number of repeats, because repeats re-use the same patients.
DeLong comparisons are run per repeat; the median p-value is reported with all of them.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, parallel_config
from sklearn.base import clone
from sklearn.model_selection import RepeatedStratifiedKFold, cross_val_predict

from gcmlm.common.progress import Progress
from gcmlm.common.tables import PATIENT_ID
from gcmlm.fusion.core import metrics
from gcmlm.fusion.core.models import chosen_params, feature_weights, fusion_pairs, with_fixed_params

log = logging.getLogger("gcmlm")


@dataclass
class CVResult:
    oof: pd.DataFrame  # patient_id, repeat, fold, model, score, threshold, label
    weights: pd.DataFrame  # model, repeat, fold, base, feature, weight
    params: list[dict] = field(default_factory=list)


def training_threshold(fitted, X: pd.DataFrame, y: np.ndarray, cv, rule: str) -> tuple[float, np.ndarray]:
    """Threshold (and the scores it came from) from inner-CV out-of-fold scores on training data."""
    scores = cross_val_predict(with_fixed_params(fitted), X, y, cv=cv, method="predict_proba")[:, 1]
    return metrics.choose_threshold(y, scores, rule), scores


class BinaryTask:
    """What nested_cv does per outcome type: folds stratified on the label, the probability of the
    positive class, a training-fold threshold. ``survival.SurvivalTask`` is the time-to-event one."""

    def strata(self, y: np.ndarray) -> np.ndarray:
        return y

    def predict(self, model, X: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"score": model.predict_proba(X)[:, 1]}

    def cutoffs(self, model, X: pd.DataFrame, y: np.ndarray, inner_cv, rule: str) -> dict[str, float]:
        return {"threshold": training_threshold(model, X, y, inner_cv, rule)[0]}

    def outcome(self, y: np.ndarray) -> dict[str, np.ndarray]:
        return {"label": y}


def nested_cv(table: pd.DataFrame, y: np.ndarray, factories: dict, *, outer_folds: int, outer_repeats: int,
              inner_cv, seed: int, threshold_rule: str, task=None, n_jobs: int = 1, augment=None) -> CVResult:
    """Every model on every outer split; ``n_jobs`` outer splits at a time (-1: every CPU).

    Each split's fits are seeded and its results are gathered in split order, so any ``n_jobs``
    gives the same output byte for byte. ``augment(table, y, train, test, split)``, when given,
    returns the table with columns learned on that split's training patients only (the MIL score
    of ``mil_feature.MILFeature``)."""
    task = task or BinaryTask()
    outer = RepeatedStratifiedKFold(n_splits=outer_folds, n_repeats=outer_repeats, random_state=seed)
    rows, weights, params = [], [], []
    progress = Progress(outer_folds * outer_repeats * len(factories), "nested CV", unit="fits")
    jobs = (delayed(_one_split)(table, y, factories, train, test, divmod(split, outer_folds), inner_cv,
                                threshold_rule, task, inner_serial=n_jobs != 1, augment=augment, split=split)
            for split, (train, test) in enumerate(outer.split(table, task.strata(y))))
    for split_rows, split_weights, split_params in Parallel(n_jobs=n_jobs, return_as="generator")(jobs):
        rows += split_rows
        weights += split_weights
        params += split_params
        progress.update(len(split_rows))
    progress.close()
    return CVResult(pd.concat(rows, ignore_index=True), pd.DataFrame(weights), params)


def _one_split(table: pd.DataFrame, y: np.ndarray, factories: dict, train: np.ndarray, test: np.ndarray,
               repeat_fold: tuple[int, int], inner_cv, threshold_rule: str, task, *,
               inner_serial: bool, augment=None, split: int = 0) -> tuple[list[pd.DataFrame], list[dict], list[dict]]:
    """Each model fitted on one outer training fold and scored on its held-out fold. With the outer
    splits already in parallel, the inner searches run serially (no processes inside processes)."""
    repeat, fold = repeat_fold
    if augment is not None:
        table = augment(table, y, train, test, split)
    ids = table[PATIENT_ID].astype(str).to_numpy()[test]
    X_train, X_test = table.iloc[train], table.iloc[test]
    rows, weights, params = [], [], []
    with parallel_config(backend="sequential") if inner_serial else nullcontext():
        for name, factory in factories.items():
            model = clone(factory).fit(X_train, y[train])
            cutoffs = task.cutoffs(model, X_train, y[train], inner_cv, threshold_rule)
            rows.append(pd.DataFrame({PATIENT_ID: ids, "repeat": repeat, "fold": fold, "model": name,
                                      **task.predict(model, X_test), **cutoffs, **task.outcome(y[test])}))
            weights += [{"model": name, "repeat": repeat, "fold": fold, **w} for w in feature_weights(model)]
            params.append({"model": name, "repeat": repeat, "fold": fold, "params": chosen_params(model)})
    return rows, weights, params


REPEAT_METRICS = ("sensitivity", "specificity", "ppv", "npv", "brier", "calibration_intercept", "calibration_slope")


def _repeat_metrics(part: pd.DataFrame) -> dict:
    """One repeat's pooled out-of-fold metrics, each fold's patients at that fold's own threshold."""
    m = metrics.summary(part["label"].to_numpy(), part["score"].to_numpy(), part["threshold"].to_numpy())
    return {"auc": m["auc"], "auc_var": m["auc_se"] ** 2, **{k: m[k] for k in REPEAT_METRICS},
            "calibration_not_estimable": m["calibration_not_estimable"]}


CALIBRATION = ("calibration_intercept", "calibration_slope")


def _mean_over_repeats(per_repeat: list[dict]) -> dict:
    """Each metric averaged over repeats; calibration over the repeats where it was estimable
    (NaN when none was), with ``calibration_not_estimable`` saying in how many it was not and why."""
    mean = {k: float(np.mean([m[k] for m in per_repeat])) for k in per_repeat[0]
            if k not in (*CALIBRATION, "calibration_not_estimable")}
    estimable = [m for m in per_repeat if m["calibration_not_estimable"] is None]
    for k in CALIBRATION:
        mean[k] = float(np.mean([m[k] for m in estimable])) if estimable else float("nan")
    reasons = sorted({m["calibration_not_estimable"] for m in per_repeat} - {None})
    mean["calibration_not_estimable"] = (f"{len(per_repeat) - len(estimable)} of {len(per_repeat)} repeat(s): "
                                         + "; ".join(reasons)) if reasons else None
    return mean


def summarise(oof: pd.DataFrame) -> dict:
    """Per-model metrics from out-of-fold scores (see the module docstring for the aggregation)."""
    summary = {}
    for name, part in oof.groupby("model", sort=False):
        per_repeat = [_repeat_metrics(r) for _, r in part.groupby("repeat")]
        mean = _mean_over_repeats(per_repeat)
        auc, se = mean["auc"], float(np.sqrt(mean.pop("auc_var")))
        ci = list(metrics.logit_wald_ci(auc, se))
        fold_aucs = [metrics.auc_ci(f["label"], f["score"])[0] for _, f in part.groupby(["repeat", "fold"])
                     if f["label"].nunique() == 2]
        summary[name] = {
            "auc": auc, "auc_ci95": ci, "auc_se": se,
            "auc_per_repeat": [m["auc"] for m in per_repeat],
            "auc_fold_mean": float(np.mean(fold_aucs)), "auc_fold_sd": float(np.std(fold_aucs, ddof=1)) if len(fold_aucs) > 1 else 0.0,
            **{k: v for k, v in mean.items() if k != "auc"},
            "threshold_median": float(part["threshold"].median()),
        }
    return summary


def compare(oof: pd.DataFrame) -> list[dict]:
    """DeLong tests of each fusion model against each single modality, per repeat."""
    out = []
    for challenger, single in fusion_pairs(list(dict.fromkeys(oof["model"]))):
        tests = []
        for _, rep in oof.groupby("repeat"):
            a = rep[rep["model"] == challenger].set_index(PATIENT_ID)
            b = rep[rep["model"] == single].set_index(PATIENT_ID).loc[a.index]
            tests.append(metrics.delong_test(a["label"].to_numpy(), a["score"].to_numpy(), b["score"].to_numpy()))
        out.append({"model": challenger, "versus": single,
                    "auc_difference": float(np.mean([t["difference"] for t in tests])),
                    "p_value": float(np.median([t["p_value"] for t in tests])),
                    "p_values_per_repeat": [t["p_value"] for t in tests]})
    return out


def selection_table(weights: pd.DataFrame, n_splits: int) -> pd.DataFrame:
    """Per model and feature: how often it reached the classifier, and its mean weight when it did."""
    if weights.empty:
        return pd.DataFrame(columns=["model", "base", "feature", "selection_frequency", "mean_weight"])
    grouped = weights.groupby(["model", "base", "feature"], sort=False)
    table = grouped.agg(n=("weight", "size"), mean_weight=("weight", "mean")).reset_index()
    table["selection_frequency"] = table.pop("n") / n_splits
    return table.sort_values(["model", "selection_frequency", "mean_weight"], ascending=[True, False, False],
                             key=lambda s: s.abs() if s.name == "mean_weight" else s)
