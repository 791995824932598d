"""Candidate models as sklearn Pipelines, and the saved ``RiskModel``.

Every step that learns from data (imputation, ComBat, constant-feature removal, scaling,
correlation pruning, feature selection, the classifier) is a pipeline step, so cross-validation
refits all of it on each training fold: leakage is impossible by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier, StackingClassifier
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from gcmlm.fusion.core import survival
from gcmlm.fusion.core.harmonize import ComBatHarmonizer
from gcmlm.fusion.core.selection import CorrelationPruner, Passthrough, make_selector

CLASSIFIERS = ("logreg", "svm", "rf", "gb")
PENALTIES = ("l1", "l2", "elasticnet")
SELECTIONS = ("none", "l1", "anova", "mrmr")
TUNING = ("full", "fast", "none")
FUSION_MODELS = ("fused", "stacked")  # make_model's names for the models that combine modalities


def fusion_pairs(names: list[str]) -> list[tuple[str, str]]:
    """(challenger, reference) pairs to compare: each fusion model against each single-modality
    model (fused before stacked), and attention MIL (path_mil) against mean pooling (path)."""
    singles = [n for n in names if n not in FUSION_MODELS]
    mil = [("path_mil", "path")] if {"path_mil", "path"} <= set(names) else []
    return [(c, s) for c in FUSION_MODELS if c in names for s in singles] + mil


@dataclass
class ModelConfig:
    """How each candidate model is built and tuned; these defaults are fusion-train's."""

    classifier: str = "logreg"
    penalty: str = "l1"  # lasso: on public radiomics tables as good as L2 or better, and faster (liblinear)
    # The lasso selects by itself: on five public radiomics tables an ANOVA top-10 step before it
    # lost up to 0.044 AUC against a plain nested lasso, and pruning correlated features changed
    # nothing but time (benchmarks/fusion/README.md). Both stay available (--selection, --corr-threshold).
    selection: str = "none"
    k_features: Sequence[int] = (10,)  # several values: tuned in the inner CV
    corr_threshold: float = 1.0  # >= 1: no correlation pruning
    combat_column: str | None = None
    class_weight: str | None = "balanced"
    inner_folds: int = 5
    tuning: str = "full"
    seed: int = 0
    n_jobs: int = -1  # every CPU the process may use (joblib counts its affinity and cgroup quota)
    outcome: str = "binary"  # or "survival": penalised Cox models (core/survival.py)

    def inner_cv(self) -> StratifiedKFold:
        if self.outcome == "survival":  # stratified on the event indicator
            return survival.EventStratifiedKFold(self.inner_folds, shuffle=True, random_state=self.seed)
        return StratifiedKFold(self.inner_folds, shuffle=True, random_state=self.seed)

    def describe(self) -> dict:
        return {k: v for k, v in self.__dict__.items()
                if k != "n_jobs" and not (k == "outcome" and v == "binary")}


def _is_stack(fitted) -> bool:
    """sklearn's StackingClassifier or the survival CoxStacker (same attributes)."""
    return isinstance(fitted, StackingClassifier) or getattr(fitted, "_gcmlm_stack", False)


class ColumnSelector(TransformerMixin, BaseEstimator):
    """First step of every pipeline: the model's own columns, by name, from the patient table.

    ``as_array``: hand them on as one float array. sklearn checks a DataFrame column by column,
    which on a wide radiomics table costs more than the imputation itself, in every fit of the
    nested CV; only ComBat's pipeline needs the names (and a text centre column) downstream.
    """

    def __init__(self, columns: list[str], as_array: bool = False):
        self.columns = columns
        self.as_array = as_array

    def fit(self, X, y=None):
        self._check(X)
        self.n_features_in_ = len(self.columns)
        return self

    def _check(self, X):
        if not isinstance(X, pd.DataFrame):
            raise TypeError("ColumnSelector needs a pandas DataFrame")
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise KeyError(f"missing column(s): {', '.join(missing)}")

    def transform(self, X):
        self._check(X)
        selected = X[list(self.columns)]
        return selected.to_numpy(dtype=float) if getattr(self, "as_array", False) else selected

    def get_feature_names_out(self, input_features=None):
        return np.array(self.columns, dtype=object)


def make_classifier(config: ModelConfig):
    cw = config.class_weight
    if config.outcome == "survival":
        return survival.make_cox(config.penalty, config.seed)
    if config.classifier == "logreg":
        ratio = {"l1": 1.0, "l2": 0.0, "elasticnet": 0.5}[config.penalty]
        # liblinear solves the small L1 problems of radiomics tables many times faster than saga
        solver = {"l1": "liblinear", "l2": "lbfgs", "elasticnet": "saga"}[config.penalty]
        return LogisticRegression(l1_ratio=ratio, solver=solver, class_weight=cw, max_iter=5000,
                                  random_state=config.seed)
    if config.classifier == "svm":  # Platt scaling fitted on held-out folds (sklearn >= 1.9 replacement for probability=True)
        return CalibratedClassifierCV(SVC(kernel="rbf", class_weight=cw, random_state=config.seed), method="sigmoid",
                                      cv=3, ensemble=False)
    if config.classifier == "rf":
        return RandomForestClassifier(n_estimators=300 if config.tuning == "full" else 100, class_weight=cw,
                                      random_state=config.seed, n_jobs=1)
    if config.classifier == "gb":
        return HistGradientBoostingClassifier(class_weight=cw, max_iter=100, random_state=config.seed)
    raise ValueError(f"unknown classifier '{config.classifier}'")


def param_grid(config: ModelConfig) -> dict:
    """The inner-CV search space; ``fast`` is a tiny grid for tests and demos."""
    if config.tuning == "none":
        return {}
    full = config.tuning == "full"
    grid: dict = {}
    if config.outcome == "survival":
        grid = survival.cox_grid(config.penalty, config.tuning)
    elif config.classifier == "logreg":
        if config.penalty == "l1":  # below C ~ 0.03 the lasso keeps no standardised feature at these sizes
            grid["clf__C"] = [0.05, 0.1, 0.3, 1.0] if full else [0.1, 1.0]
        else:
            grid["clf__C"] = [0.01, 0.1, 1.0, 10.0] if full else [0.1, 1.0]
        if config.penalty == "elasticnet":
            grid["clf__l1_ratio"] = [0.2, 0.5, 0.8] if full else [0.5]
    elif config.classifier == "svm":
        grid["clf__estimator__C"] = [0.1, 1.0, 10.0] if full else [1.0]
        grid["clf__estimator__gamma"] = ["scale", 0.01] if full else ["scale"]
    elif config.classifier == "rf":
        grid["clf__max_depth"] = [None, 3, 6] if full else [3]
        grid["clf__min_samples_leaf"] = [1, 5] if full else [1]
    elif config.classifier == "gb":
        grid["clf__learning_rate"] = [0.05, 0.1] if full else [0.1]
        grid["clf__max_depth"] = [2, 3] if full else [2]
    if config.selection != "none" and len(config.k_features) > 1:
        grid["select__k"] = list(config.k_features)
    return grid


def make_pipeline(columns: list[str], config: ModelConfig) -> Pipeline:
    if config.combat_column:
        cols = [c for c in columns if c != config.combat_column]
        impute = ColumnTransformer([("features", SimpleImputer(strategy="median"), cols)], remainder="passthrough",
                                   verbose_feature_names_out=False).set_output(transform="pandas")
        combat = ComBatHarmonizer(batch_column=config.combat_column)
        select_cols = cols + [config.combat_column]
    else:
        impute, combat, select_cols = SimpleImputer(strategy="median"), Passthrough(), list(columns)
    return Pipeline([
        ("columns", ColumnSelector(select_cols, as_array=not config.combat_column)),
        ("impute", impute),
        ("combat", combat),
        ("constant", VarianceThreshold(0.0)),
        ("scale", StandardScaler()),
        ("decorrelate", CorrelationPruner(config.corr_threshold)),
        ("select", make_selector(config.selection, config.k_features[0], config.seed)),
        ("clf", make_classifier(config)),
    ])


def tuned(pipeline: Pipeline, config: ModelConfig):
    """Inner-CV tuning (GridSearchCV on AUC); a plain pipeline when there is nothing to tune."""
    grid = param_grid(config)
    pipeline.set_params(**{k: v[0] for k, v in grid.items() if len(v) == 1})
    grid = {k: v for k, v in grid.items() if len(v) > 1}
    if not grid:
        return pipeline
    scoring = survival.inner_cv_score if config.outcome == "survival" else "roc_auc"  # Harrell's C or AUC
    return GridSearchCV(pipeline, grid, scoring=scoring, cv=config.inner_cv(), n_jobs=config.n_jobs,
                        refit=True, error_score="raise")


def make_model(name: str, columns_by_modality: dict[str, list[str]], config: ModelConfig):
    """``rad``/``path``/``clin``: one modality; ``fused``: all columns; ``stacked``: late fusion.

    The stacker is sklearn's StackingClassifier: each modality model is refit on the training
    data, and the logistic-regression combiner learns from their inner-CV out-of-fold
    probabilities, so no training patient's own score ever trains the combiner.
    """
    if name in columns_by_modality:
        return tuned(make_pipeline(columns_by_modality[name], config), config)
    if name == "fused":
        return tuned(make_pipeline([c for cols in columns_by_modality.values() for c in cols], config), config)
    if name == "stacked":
        bases = [(m, tuned(make_pipeline(cols, config), config)) for m, cols in columns_by_modality.items()]
        if config.outcome == "survival":
            return survival.CoxStacker(bases, cv=config.inner_cv())
        return StackingClassifier(bases, final_estimator=LogisticRegression(), cv=config.inner_cv(),
                                  stack_method="predict_proba", n_jobs=config.n_jobs)
    raise ValueError(f"unknown model '{name}'")


def with_fixed_params(fitted):
    """An unfitted copy of a fitted model with its tuned hyperparameters frozen (no inner search).

    Used to get inner-CV out-of-fold scores on training data for choosing thresholds.
    """
    if isinstance(fitted, GridSearchCV):
        return clone(fitted.best_estimator_)
    if _is_stack(fitted):
        bases = [(n, with_fixed_params(e)) for (n, _), e in zip(fitted.estimators, fitted.estimators_, strict=True)]
        return clone(fitted).set_params(estimators=bases)
    return clone(fitted)


def fitted_pipelines(fitted) -> dict[str, Pipeline]:
    """The fitted pipelines inside a model, by modality name (one entry unless stacked)."""
    if isinstance(fitted, GridSearchCV):
        return {"": fitted.best_estimator_}
    if _is_stack(fitted):
        return {n: fitted_pipelines(e)[""] for (n, _), e in zip(fitted.estimators, fitted.estimators_, strict=True)}
    return {"": fitted}


def feature_weights(fitted) -> list[dict]:
    """Features that reach the classifier, with coefficient (logreg) or importance (rf).

    Coefficients are on standardised features. SVM (RBF) and histogram gradient boosting expose
    neither, so their weight is NaN (the selection frequency still says what was used).
    """
    rows = []
    for base, pipe in fitted_pipelines(fitted).items():
        names = pipe[:-1].get_feature_names_out()
        clf = pipe[-1]
        if hasattr(clf, "coef_"):
            weights = _coefficients(clf)
        elif hasattr(clf, "feature_importances_"):
            weights = np.asarray(clf.feature_importances_)
        else:
            weights = np.full(len(names), np.nan)
        rows += [{"base": base, "feature": str(n), "weight": float(w)} for n, w in zip(names, weights, strict=True)]
    if _is_stack(fitted):
        coef = _coefficients(fitted.final_estimator_)
        rows += [{"base": "combiner", "feature": f"stack:{n}", "weight": float(w)}
                 for (n, _), w in zip(fitted.estimators, coef, strict=True)]
    return rows


def _coefficients(estimator) -> np.ndarray:
    """One weight per input: a Cox model fitted along a penalty path keeps one column per penalty
    (features x alphas) and predicts with the last; a logistic regression has one row."""
    coef = np.asarray(estimator.coef_)
    return coef[:, -1] if hasattr(estimator, "alphas_") else np.ravel(coef)


def chosen_params(fitted) -> dict:
    if isinstance(fitted, GridSearchCV):
        return {k: v for k, v in fitted.best_params_.items()}
    if _is_stack(fitted):
        return {n: chosen_params(e) for (n, _), e in zip(fitted.estimators, fitted.estimators_, strict=True)}
    return {}


class RiskModel:
    """A fitted model with what is needed to use it honestly on new patients (saved with skops).

    ``features``: the columns it reads; ``threshold``: the cut-off chosen on training data by
    ``threshold_rule`` (inner-CV out-of-fold scores); ``tertiles``: the training score tertiles.
    """

    def __init__(self, name: str = "", estimator=None, features: list[str] | None = None, label: str = "",
                 threshold: float = 0.5, threshold_rule: str = "youden", tertiles: list[float] | None = None,
                 card: dict | None = None):
        self.name, self.estimator, self.features, self.label = name, estimator, features or [], label
        self.threshold, self.threshold_rule = threshold, threshold_rule
        self.tertiles, self.card = tertiles or [], card or {}

    def missing_columns(self, table: pd.DataFrame) -> list[str]:
        return [c for c in self.features if c not in table.columns]

    def predict_risk(self, table: pd.DataFrame) -> np.ndarray:
        X = table[self.features].copy()
        combat = self.card.get("config", {}).get("combat_column")
        numeric = [c for c in self.features if c != combat]
        X[numeric] = X[numeric].apply(pd.to_numeric, errors="coerce")
        if self.card.get("outcome") == "survival":  # a Cox model: the linear predictor (log relative hazard)
            return self.estimator.predict(X)
        return self.estimator.predict_proba(X)[:, 1]
