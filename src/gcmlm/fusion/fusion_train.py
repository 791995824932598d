"""fusion-train: nested cross-validation of per-modality, early-fused and stacked risk models.

Candidate models: one per modality found by column prefix (rad_, path_, clin_), ``fused`` (all
prefixes in one pipeline) and ``stacked`` (late fusion of the per-modality scores). With patch
features (``--mil-features``), ``path_mil``: an attention-MIL score trained inside every outer fold
(core/mil_feature.py), also an input of ``fused`` and ``stacked``. Outputs:
metrics.json, oof_predictions.csv, selected_features.csv, cv_roc/cv_calibration plots, the final
models refit on all patients (models/<name>.skops) and model_card.json.

From Python: ``train_models(table, label, TrainSettings(...), out_dir)``; ``run(args)`` only
turns the command line into those arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from gcmlm import __version__
from gcmlm.common.atomic import atomic_dir, check_outputs, write_json, write_text
from gcmlm.common.errors import GcmlmError, one_line, require_file
from gcmlm.common.tables import MODALITIES, check_patient_table, feature_columns, read_patient_table
from gcmlm.fusion.core import checks, mil_feature, plots, report, survival, survival_report, validation
from gcmlm.fusion.core.inputs import CARD, MODEL_SUFFIX, modality_columns, read_labels, save_model
from gcmlm.fusion.core.models import (
    CLASSIFIERS,
    FUSION_MODELS,
    PENALTIES,
    SELECTIONS,
    TUNING,
    ModelConfig,
    RiskModel,
    chosen_params,
    feature_weights,
    make_model,
)

log = logging.getLogger("gcmlm")
MODEL_NAMES = (*MODALITIES, mil_feature.MODEL, *FUSION_MODELS)
THRESHOLD_RULES = ("youden", "sens90", "sens95", "spec90", "spec95")
CLASS_WEIGHTS = ("balanced", "none")


@dataclass(frozen=True)
class TrainSettings:
    """Everything fusion-train can be told, with its defaults (the command line's too).

    Each field is the option of the same name (``k_features`` is ``--k-features``); the model
    defaults are ``ModelConfig``'s. ``models=None``: every modality present, fused and stacked.
    """

    models: tuple[str, ...] | None = None
    classifier: str = ModelConfig.classifier
    penalty: str | None = None  # None: l1 for the logistic models, l2 (near-ridge) for Cox models
    class_weight: str = ModelConfig.class_weight  # "balanced" or "none"
    selection: str | None = None  # None: none (the lasso selects) for --label, anova for Cox models
    k_features: tuple[int, ...] = tuple(ModelConfig.k_features)
    corr_threshold: float | None = None  # None: 1.0 (off) for --label, 0.9 for Cox models
    combat_column: str | None = ModelConfig.combat_column
    outer_folds: int = 5
    outer_repeats: int = 10
    inner_folds: int = ModelConfig.inner_folds
    tuning: str = ModelConfig.tuning
    threshold_rule: str = "youden"
    seed: int = ModelConfig.seed
    n_jobs: int = ModelConfig.n_jobs

    def __post_init__(self) -> None:
        for name in ("models", "k_features"):  # lists (argparse's nargs) become tuples: settings stay immutable
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        choices = {"classifier": CLASSIFIERS, "penalty": PENALTIES, "class_weight": CLASS_WEIGHTS,
                   "selection": SELECTIONS, "tuning": TUNING, "threshold_rule": THRESHOLD_RULES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed and not (name in ("penalty", "selection") and getattr(self, name) is None):
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        unknown = [m for m in self.models or () if m not in MODEL_NAMES]
        if unknown:
            raise ValueError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODEL_NAMES)}")
        self._check_ranges()

    def _check_ranges(self) -> None:
        """Numbers sklearn would refuse deep inside the CV (or take silently): refused by option name."""
        checks.require_option("--outer-folds", self.outer_folds, 2)
        checks.require_option("--inner-folds", self.inner_folds, 2)
        checks.require_option("--outer-repeats", self.outer_repeats, 1)
        for k in self.k_features:
            checks.require_option("--k-features", k, 1)
        if self.corr_threshold is not None:
            checks.require_option("--corr-threshold", self.corr_threshold, 0, 1, low_open=True)
        checks.require_option("--seed", self.seed, 0, 2**32 - 1)
        if self.n_jobs == 0:
            raise GcmlmError("must be a number of parallel jobs (>= 1, or -1 for every CPU), got 0", "--n-jobs")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainSettings:
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})

    def model_config(self, outcome: str = "binary") -> ModelConfig:
        """The model configuration; settings left None take the outcome's defaults (``ModelConfig``'s
        for a binary outcome, ``survival.COX_DEFAULTS`` for ``outcome="survival"``)."""
        defaults = survival.COX_DEFAULTS if outcome == "survival" else {}

        def chosen(name: str):
            value = getattr(self, name)
            return value if value is not None else defaults.get(name, getattr(ModelConfig, name))

        return ModelConfig(classifier=self.classifier, penalty=chosen("penalty"), selection=chosen("selection"),
                           k_features=list(self.k_features), corr_threshold=chosen("corr_threshold"),
                           combat_column=self.combat_column, inner_folds=self.inner_folds, tuning=self.tuning,
                           class_weight=None if self.class_weight == "none" else self.class_weight,
                           seed=self.seed, n_jobs=self.n_jobs, outcome=outcome)

    def validation_text(self) -> str:
        return f"nested CV, {self.outer_repeats} x {self.outer_folds}-fold outer, {self.inner_folds}-fold inner"


DEFAULTS = TrainSettings()


@dataclass
class TrainResult:
    """What ``train_models`` found and fitted (``write_outputs`` turns it into the output folder)."""

    models: dict[str, RiskModel]  # refit on all patients, with thresholds and model cards
    cv: validation.CVResult  # out-of-fold scores, per-fold feature weights and hyperparameters
    summary: dict[str, dict]  # nested-CV metrics per model
    comparisons: list[dict]  # DeLong tests of fusion models against single modalities
    selected: pd.DataFrame  # selection frequency per feature, with the final models' weights
    design: dict
    default_model: str
    title: str  # the report's title
    mil_model: object | None = None  # --mil-features: the MILModel fit on all patients (torch imported only then)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    parser.add_argument("--table", required=True, metavar="CSV", help="patient table (e.g. from fusion-merge)")
    parser.add_argument("--label", metavar="COLUMN", help="binary outcome column (0/1); or --time with --event")
    survival_report.add_outcome_arguments(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (replaced atomically)")
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES,
                        help="models to validate (default: every modality present, path_mil with --mil-features, "
                             "fused and stacked)")
    parser.add_argument("--mil-features", nargs="+", metavar="H5",
                        help="CLAM-layout patch feature files (slide ID = file stem): adds path_mil, an attention-MIL "
                             "risk trained inside every outer fold, also used by fused and stacked (binary --label)")
    parser.add_argument("--slide-map", metavar="CSV",
                        help="with --mil-features: cohort manifest or CSV with patient_id,slide_id (default: each "
                             "slide is its own patient)")
    parser.add_argument("--classifier", choices=CLASSIFIERS, default=d.classifier,
                        help="logreg: logistic regression; svm: linear SVM (Platt-scaled); rf: random forest; "
                             "gb: gradient boosting")
    parser.add_argument("--penalty", choices=PENALTIES, default=d.penalty,
                        help="penalty of the logistic or Cox models (default: l1 for a binary --label, l2 - "
                             "near-ridge, which converges on small cohorts - for --time/--event)")
    parser.add_argument("--class-weight", choices=CLASS_WEIGHTS, default=d.class_weight,
                        help="balanced: weight classes by inverse frequency (MLM is the rarer class)")
    parser.add_argument("--selection", choices=SELECTIONS, default=d.selection,
                        help="in-fold feature selection before the classifier (default: none for a binary --label, "
                             "where the lasso selects; anova for --time/--event)")
    parser.add_argument("--k-features", nargs="+", type=int, default=list(d.k_features), metavar="K",
                        help="features kept by the selection step; several values are tuned in the inner CV")
    parser.add_argument("--corr-threshold", type=float, default=d.corr_threshold,
                        help="drop features with |r| above this with a more relevant one (1 = off; default: off for "
                             "a binary --label, 0.9 for --time/--event)")
    parser.add_argument("--combat-column", metavar="COLUMN", help="harmonise features by this centre column (ComBat)")
    parser.add_argument("--outer-folds", type=int, default=d.outer_folds, help="folds of the outer (test) CV")
    parser.add_argument("--outer-repeats", type=int, default=d.outer_repeats,
                        help="repeats of the outer CV with new fold assignments")
    parser.add_argument("--inner-folds", type=int, default=d.inner_folds,
                        help="folds of the inner CV that tunes the grid and the threshold")
    parser.add_argument("--tuning", choices=TUNING, default=d.tuning, help="inner-CV grid size (fast: tiny grids)")
    parser.add_argument("--threshold-rule", choices=THRESHOLD_RULES, default=d.threshold_rule,
                        help="how the risk threshold is chosen on training data (youden, or a sensitivity/"
                             "specificity target)")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of the fold assignments and the models")
    parser.add_argument("--n-jobs", type=int, default=d.n_jobs,
                        help="outer CV splits fitted in parallel (default -1: every CPU this process may use; "
                             "results do not depend on it)")


def run(args: argparse.Namespace) -> int:
    outcome = survival_report.outcome_from_args(args)
    features, slide_map = getattr(args, "mil_features", None), getattr(args, "slide_map", None)
    if slide_map and not features:
        raise GcmlmError("is only used with --mil-features", "--slide-map")
    mil = mil_feature.MILInputs(features, slide_map) if features else None
    result = train_models(args.table, outcome, TrainSettings.from_args(args), args.out, mil=mil)
    key = "harrell_c" if isinstance(outcome, survival.SurvivalOutcome) else "auc"
    print(json.dumps({n: round(s[key], 4) for n, s in result.summary.items()}))
    return 0


def train_models(table: pd.DataFrame | str | os.PathLike, label: str | survival.SurvivalOutcome,
                 settings: TrainSettings = DEFAULTS, out_dir: str | os.PathLike | None = None, *,
                 source: str | os.PathLike = "table", mil: mil_feature.MILInputs | None = None) -> TrainResult:
    """Nested CV of the candidate models, then each refit on all patients; written to ``out_dir``
    (replaced atomically) unless it is None. ``table``: a patient table or its CSV; ``source``
    names an in-memory table in errors and in the report. ``label``: a 0/1 outcome column, or a
    ``survival.SurvivalOutcome`` (time and event columns): penalised Cox models, same nested CV.
    ``mil``: patch feature files for ``path_mil`` (binary outcomes; see core/mil_feature.py)."""
    is_survival = isinstance(label, survival.SurvivalOutcome)
    if is_survival and settings.classifier != ModelConfig.classifier:
        raise GcmlmError(f"time-to-event outcomes use penalised Cox models; --classifier {settings.classifier} "
                         "is for a binary --label", "--classifier")
    if is_survival and mil is not None:
        raise GcmlmError("the MIL model (path_mil) is trained on a binary outcome; use --label, or leave out "
                         "--mil-features for --time/--event", "--mil-features")
    if out_dir is not None:  # before reading anything: a bad --out is refused in a second, not after the CV
        check_outputs(dirs=[out_dir], inputs=([] if isinstance(table, pd.DataFrame) else [table])
                      + (mil.paths() if mil else []))
    if mil is not None:
        mil.require_files()
    table, y, source = read_training_data(table, label, source)
    if mil is not None:
        mil_feature.check_not_in_table(table, source)
    table, data_notes = set_aside_columns(table, label, settings.combat_column, source)
    table = table.copy()  # one block per dtype: a table built column by column makes every CV split slow
    feature = mil and mil_feature.load_feature(mil, table, settings.inner_folds, settings.seed, source)
    names, modalities, used = plan_models(table, y, settings, source, with_mil=feature is not None)
    if feature is not None and mil_feature.MODEL not in used:  # no model reads the MIL score: no MIL fits
        feature = None
    config = settings.model_config("survival" if is_survival else "binary")
    log.info("%d patients, prevalence %.3f, models %s; %d x %d-fold outer CV, %d-fold inner CV",
             len(y), survival.event_of(y).mean(), ", ".join(names), settings.outer_repeats, settings.outer_folds,
             settings.inner_folds)
    task = survival_report.task_for(label, y) if is_survival else None
    try:
        cv = cross_validate(table, y, {n: make_model(n, used, config) for n in names}, settings, config, task,
                            augment=feature and feature.augment)
    except ArithmeticError as exc:  # Coxnet's "weights are too large": the fit diverged
        raise GcmlmError(f"the {config.penalty} Cox model did not converge ({one_line(exc)}); use a stronger "
                         "penalty (--penalty l2), fewer features (--k-features) or --tuning full", source) from None
    if is_survival:
        summary, comparisons, survival_design = survival_report.summarise_cv(cv.oof, y, label, names, settings.seed)
    else:
        summary, comparisons, survival_design = validation.summarise(cv.oof), validation.compare(cv.oof), {}
        warn_calibration(summary)
    design = {**describe_design(survival.event_of(y), outcome_name(label), settings, config, modalities),
              **survival_design, **data_notes, **({"mil": mil_feature.describe(feature)} if feature else {})}
    mil_model = None
    if feature is not None:  # the final models read mil_logit cross-fitted on all patients
        table, mil_model = feature.final(table, y)
    models, final_weights = fit_final_models(table, y, names, used, label, settings, config, summary)
    result = TrainResult(models=models, cv=cv, summary=summary, comparisons=comparisons,
                         selected=feature_table(cv, final_weights, settings), design=design,
                         default_model=next((n for n in FUSION_MODELS if n in names), names[0]),
                         title=f"gcmlm nested cross-validation: {Path(source).name} ({outcome_name(label)})",
                         mil_model=mil_model)
    if out_dir is not None:
        write_outputs(result, out_dir)
    for name, s in summary.items():
        if is_survival:
            log.info("%-8s Harrell's C %.3f [%.3f, %.3f]", name, s["harrell_c"], *s["harrell_c_ci95"])
        else:
            log.info("%-8s AUC %.3f [%.3f, %.3f]", name, s["auc"], *s["auc_ci95"])
    if out_dir is not None:
        log.info("wrote %s", out_dir)
    return result


# --- read and check ------------------------------------------------------------------------------------

def read_training_data(table: pd.DataFrame | str | os.PathLike, label: str,
                       source: str | os.PathLike = "table") -> tuple[pd.DataFrame, np.ndarray, str | os.PathLike]:
    """The patient table, its outcome as 0/1 and the name errors give it (the path when read).

    Refused: no patients, an outcome that is also a feature column, missing or non-0/1 outcomes,
    one outcome class only, infinite feature values (named by column and patient)."""
    if isinstance(table, pd.DataFrame):
        check_patient_table(table, source)
    else:
        source, table = table, read_patient_table(require_file(table, "file"))
    checks.require_patients(table, source)  # first: a header without rows has no numbers either
    _check_numeric_features(table, source)
    for column in outcome_columns(label):
        checks.require_label_not_feature(column, feature_columns(table), source)
    if isinstance(label, survival.SurvivalOutcome):
        y = survival.read_outcome(table, label, source)
    else:
        y = read_labels(table, label, source)
        checks.require_two_classes(y, label, source)
    checks.require_finite(table, feature_columns(table), source)
    return table, y, source


def outcome_columns(label: str | survival.SurvivalOutcome) -> list[str]:
    return label.columns if isinstance(label, survival.SurvivalOutcome) else [label]


def outcome_name(label: str | survival.SurvivalOutcome) -> str:
    """How the outcome is named in reports and model cards: the label, or 'time/event'."""
    return "/".join(outcome_columns(label))


def set_aside_columns(table: pd.DataFrame, label: str, combat_column: str | None,
                      source: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """The table without feature columns no model can learn from (every value missing, or one value
    for everybody), and a note of what was set aside, for metrics.json and the model card: those
    columns, and the numeric columns the models never read because they carry no modality prefix.
    Both are warned about; a table with no informative feature left is refused."""
    dropped = checks.uninformative_features(table)
    unusable = [c for cols in dropped.values() for c in cols]
    if unusable and len(unusable) == len(feature_columns(table)):  # refused before any warning
        raise GcmlmError(f"every feature column is constant or empty ({len(unusable)} columns)", source)
    ignored = checks.unprefixed_numeric_columns(table, [*outcome_columns(label), combat_column])
    if ignored:
        log.warning("%d numeric column(s) without a rad_/path_/clin_ prefix are not used as features: %s "
                    "(right for other outcomes, follow-up and IDs; a clinical variable meant as a feature "
                    "needs the clin_ prefix)", len(ignored), ", ".join(ignored))
    for why, columns in dropped.items():
        if columns:
            log.warning("%d feature column(s) dropped, %s: %s", len(columns), why.replace("_", " "),
                        ", ".join(columns))
    notes = {"ignored_columns": ignored, "dropped_features": dropped}
    return table.drop(columns=unusable), notes


def warn_calibration(summary: dict[str, dict]) -> None:
    for name, s in summary.items():
        if s.get("calibration_not_estimable"):
            log.warning("%s: calibration intercept/slope not estimable in %s (NaN or averaged over the other "
                        "repeats in metrics.json)", name, s["calibration_not_estimable"])


def _check_numeric_features(table: pd.DataFrame, source: str | os.PathLike) -> None:
    """Feature columns must hold numbers (what ``inputs.read_table`` checks in a CSV)."""
    bad = [c for c in feature_columns(table) if not pd.api.types.is_numeric_dtype(table[c])]
    if bad:
        raise GcmlmError(f"non-numeric feature column(s) {', '.join(bad[:5])}; run fusion-merge first", source)


def plan_models(table: pd.DataFrame, y: np.ndarray, settings: TrainSettings, source: str | os.PathLike,
                with_mil: bool = False) -> tuple[list[str], dict[str, list[str]], dict[str, list[str]]]:
    """The models to validate, the feature columns per modality (``path_mil``: the in-fold MIL
    column), and the columns the models read (with the centre column for ComBat); a design the
    data cannot support is refused here."""
    modalities = modality_columns(table)
    if not modalities and not with_mil:
        raise GcmlmError("no feature columns (prefixes rad_, path_, clin_)", source)
    if with_mil:
        modalities[mil_feature.MODEL] = [mil_feature.COLUMN]
    names = model_names(settings.models, modalities, source)
    check_design(table, y, settings, names, source)
    used = {m: c for m, c in modalities.items() if any(n in (m, *FUSION_MODELS) for n in names)}
    if settings.combat_column:
        used = {m: c + [settings.combat_column] for m, c in used.items()}
    return names, modalities, used


def model_names(requested: tuple[str, ...] | None, modalities: dict, source: str | os.PathLike | None = None) -> list[str]:
    if requested:
        if mil_feature.MODEL in requested and mil_feature.MODEL not in modalities:
            raise GcmlmError(f"model {mil_feature.MODEL} needs patch features (--mil-features)", "--models")
        absent = [m for m in requested if m in MODALITIES and m not in modalities]
        if absent:
            raise GcmlmError(f"no {', '.join(absent)} feature columns for model(s) {', '.join(absent)}", source)
        if any(m in FUSION_MODELS for m in requested) and len(modalities) < 2:
            raise GcmlmError("fused and stacked models need at least two modalities", source)
        return list(dict.fromkeys(requested))
    names = list(modalities)
    return names + (list(FUSION_MODELS) if len(modalities) > 1 else [])


def cv_levels(settings: TrainSettings, names: list[str]) -> list[tuple[str, int]]:
    """The nested stratified splits the deepest model fit sits in, outermost first: the outer CV;
    the inner CV (tuning, training-fold thresholds); for ``stacked`` the stacker's own folds, inside
    which each base model is tuned again; for the SVM its 3-fold Platt scaling."""
    levels = [("--outer-folds", settings.outer_folds), ("--inner-folds", settings.inner_folds)]
    if "stacked" in names:
        levels.append(("the stacked model's inner folds (--inner-folds)", settings.inner_folds))
    elif mil_feature.MODEL in names:
        levels.append(("the MIL model's cross-fitting folds (--inner-folds)", settings.inner_folds))
    if settings.classifier == "svm":
        levels.append(("the SVM's 3-fold Platt scaling", 3))
    return levels


def check_design(table: pd.DataFrame, y: np.ndarray, settings: TrainSettings, names: list[str],
                 source: str | os.PathLike) -> None:
    """Refuse a design whose innermost fits would see one outcome class only (sklearn would fail
    deep inside the CV with a message that names neither the table nor the flags)."""
    smallest = int(min(np.bincount(survival.event_of(y), minlength=2)))  # survival: events or non-events
    reach = smallest
    for what, folds in cv_levels(settings, names):
        if reach < folds:
            hint = "fewer folds, more patients" + (", or --models without stacked" if "stacked" in names else "")
            raise GcmlmError(f"the smaller outcome class has {smallest} patients; about {reach} of them are left "
                             f"for {what} = {folds}: use {hint}", source)
        reach -= -(-reach // folds)  # a training part loses its largest held-out fold
    if settings.combat_column and settings.combat_column not in table.columns:
        raise GcmlmError(f"no centre column '{settings.combat_column}'", source)


# --- validate and fit ----------------------------------------------------------------------------------

def cross_validate(table: pd.DataFrame, y: np.ndarray, factories: dict, settings: TrainSettings,
                   config: ModelConfig | None = None, task=None, augment=None) -> validation.CVResult:
    config = config or settings.model_config()
    return validation.nested_cv(table, y, factories, outer_folds=settings.outer_folds,
                                outer_repeats=settings.outer_repeats, inner_cv=config.inner_cv(),
                                seed=settings.seed, threshold_rule=settings.threshold_rule, task=task,
                                n_jobs=settings.n_jobs, augment=augment)


def describe_design(y: np.ndarray, label: str, settings: TrainSettings, config: ModelConfig,
                    modalities: dict[str, list[str]]) -> dict:
    return {
        "patients": int(len(y)), "events": int(y.sum()), "prevalence": float(y.mean()), "label": label,
        "outer_folds": settings.outer_folds, "outer_repeats": settings.outer_repeats,
        "inner_folds": settings.inner_folds, "seed": settings.seed, "threshold_rule": settings.threshold_rule,
        "config": config.describe(), "features_per_modality": {m: len(c) for m, c in modalities.items()},
        "ci_method": "DeLong variance per repeat (pooled out-of-fold scores), averaged over repeats; "
                     "Wald interval on the logit scale around the mean AUC",
        "threshold_provenance": "chosen per outer fold by the rule on inner-CV out-of-fold scores of the "
                                "training fold; sensitivity etc. average the per-repeat pooled values",
    }


def fit_final_models(table: pd.DataFrame, y: np.ndarray, names: list[str], used: dict[str, list[str]], label: str,
                     settings: TrainSettings, config: ModelConfig,
                     summary: dict[str, dict]) -> tuple[dict[str, RiskModel], list[dict]]:
    """Each model refit on all patients, its threshold chosen on inner-CV out-of-fold scores, with
    its model card; and the weights of the features that reach each final classifier."""
    models, weights = {}, []
    environment = versions()
    for name in names:
        final = make_model(name, used, config).fit(table, y)
        features = list(dict.fromkeys(c for cols in ([used[name]] if name in used else used.values()) for c in cols))
        if isinstance(label, survival.SurvivalOutcome):
            card = survival_report.final_card(final, table, y, label, summary[name])
        else:
            threshold, scores = validation.training_threshold(final, table, y, config.inner_cv(),
                                                              settings.threshold_rule)
            card = {"prevalence": float(y.mean()), "threshold": threshold, "threshold_rule": settings.threshold_rule,
                    "threshold_provenance": "inner-CV out-of-fold scores on all training patients",
                    "tertiles": [float(q) for q in np.quantile(scores, [1 / 3, 2 / 3])]}
        card = {"name": name, "label": outcome_name(label), "features": features, "n_features": len(features),
                "training_patients": int(len(y)), **card,
                "hyperparameters": chosen_params(final), "config": config.describe(),
                **({} if isinstance(label, survival.SurvivalOutcome) else
                   {"cv_auc": summary[name]["auc"], "cv_auc_ci95": summary[name]["auc_ci95"]}),
                "validation": settings.validation_text(), "versions": environment}
        threshold = card["threshold"]
        models[name] = RiskModel(name=name, estimator=final, features=features, label=outcome_name(label),
                                 threshold=threshold,
                                 threshold_rule=card["threshold_rule"], tertiles=card["tertiles"], card=card)
        weights += [{"model": name, **w} for w in feature_weights(final)]
    return models, weights


def feature_table(cv: validation.CVResult, final_weights: list[dict], settings: TrainSettings) -> pd.DataFrame:
    """Selection frequency over the outer folds, joined with the final models' weights."""
    selected = validation.selection_table(cv.weights, settings.outer_folds * settings.outer_repeats)
    if final_weights:
        fw = pd.DataFrame(final_weights).rename(columns={"weight": "final_weight"})
        selected = selected.merge(fw, on=["model", "base", "feature"], how="outer")
        selected["selection_frequency"] = selected["selection_frequency"].fillna(0.0)
        selected["in_final_model"] = selected["final_weight"].notna()
    return selected


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"gcmlm": __version__, "python": platform.python_version()}
    for package in ("scikit-learn", "numpy", "pandas", "scipy", "skops", "neuroCombat", "scikit-survival"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


# --- write ---------------------------------------------------------------------------------------------

def write_outputs(result: TrainResult, out_dir: str | os.PathLike) -> None:
    """The output folder, replaced atomically: models, card, tables, metrics, plots and report."""
    with atomic_dir(out_dir) as out:
        (out / "models").mkdir()
        for name, model in result.models.items():
            save_model(model, out / "models" / f"{name}{MODEL_SUFFIX}")
        if result.mil_model is not None:  # mil-predict reads it: mil_logit for new patients
            from gcmlm.pathology.core.mil import save_mil_model

            save_mil_model(result.mil_model, out / "models" / mil_feature.SAVED_MODEL)
        cards = {n: {k: v for k, v in m.card.items() if k != "versions"} for n, m in result.models.items()}
        write_json(out / CARD, {"default_model": result.default_model, "models": cards, "design": result.design,
                                "versions": versions()})
        result.selected.to_csv(out / "selected_features.csv", index=False, float_format="%.6g")
        result.cv.oof.to_csv(out / "oof_predictions.csv", index=False, float_format="%.6g")
        write_json(out / "metrics.json", {"models": result.summary, "comparisons": result.comparisons,
                                          "design": result.design, "hyperparameters_per_fold": result.cv.params})
        if result.design.get("outcome") == "survival":
            write_text(out / "report.html", survival_report.render_train(result, cards, out))
        else:
            write_text(out / "report.html", render(result, cards, cv_plots(result, out)))


def cv_plots(result: TrainResult, out: Path) -> list[Path]:
    """ROC averaged over repeats and calibration of the first repeat; the PNGs the report embeds."""
    oof = result.cv.oof
    repeats = {n: [(r["label"].to_numpy(), r["score"].to_numpy()) for _, r in part.groupby("repeat")]
               for n, part in oof.groupby("model", sort=False)}
    labels = {n: plots.auc_label(s["auc"], s["auc_ci95"]) for n, s in result.summary.items()}
    roc_png = plots.roc(repeats, labels, out, stem="cv_roc", title="Nested CV ROC (mean over repeats)")[0]
    first = oof[oof["repeat"] == 0]
    cal_png = plots.calibration({n: (p["label"].to_numpy(), p["score"].to_numpy())
                                 for n, p in first.groupby("model", sort=False)},
                                out, stem="cv_calibration", title="Nested CV calibration (repeat 1)")[0]
    return [roc_png, cal_png]


def render(result: TrainResult, cards: dict[str, dict], images: list[Path]) -> str:
    """The internal-validation report: design, nested-CV metrics, comparisons, CV curves."""
    design, summary, comparisons = result.design, result.summary, result.comparisons
    rows = [{"model": n, "features": cards[n]["n_features"], **s} for n, s in summary.items()]
    cols = ["model", "features", "auc", "auc_ci95", "auc_fold_mean", "auc_fold_sd", "sensitivity", "specificity",
            "ppv", "npv", "brier", "calibration_intercept", "calibration_slope", "threshold_median"]
    cfg = design["config"]
    notes = [
        f"Validation type: internal validation by nested cross-validation ({design['outer_repeats']} x "
        f"{design['outer_folds']}-fold stratified outer, {design['inner_folds']}-fold inner tuning on AUC, seed {design['seed']}).",
        "Inside every training fold: imputation, constant-feature removal, scaling, "
        + ("ComBat by '" + cfg["combat_column"] + "', " if cfg.get("combat_column") else "")
        + (f"correlation pruning (|r| > {cfg['corr_threshold']}), " if cfg["corr_threshold"] < 1 else "")
        + (f"selection ({cfg['selection']}, k={cfg['k_features']}), " if cfg["selection"] != "none" else "")
        + f"classifier ({cfg['classifier']}, class weight {cfg['class_weight']}).",
        f"Threshold ({design['threshold_rule']}): {design['threshold_provenance']}.",
        f"AUC 95% CI: {design['ci_method']}.",
        "DeLong p-values: per repeat on the same patients' out-of-fold scores, median shown; not adjusted for "
        "multiple comparisons.",
        "The saved models are refit on all patients; their performance on new patients is estimated by this "
        "nested CV, and should be confirmed on an external cohort (fusion-evaluate).",
    ]
    notes += data_notes(design)
    cohort = [{"patients": design["patients"], "events": design["events"], "prevalence": design["prevalence"],
               **{f"{m} features": n for m, n in design["features_per_modality"].items()}}]
    sections = [
        ("Cohort", report.table(cohort, list(cohort[0]))),
        ("Nested cross-validation", report.table(rows, cols)),
        ("Fusion vs single modalities (DeLong)", report.table(comparisons, ["model", "versus", "auc_difference", "p_value"])
         if comparisons else "<p>No fusion model trained.</p>"),
        ("Reporting notes (TRIPOD+AI)", report.bullet_list(notes)),
    ]
    return report.page(result.title, sections, images)


def data_notes(design: dict) -> list[str]:
    """Report lines for what the table held that no model used (empty when nothing was set aside)."""
    lines = []
    if design.get("ignored_columns"):
        lines.append("Not used as features (numeric, but no rad_/path_/clin_ prefix): "
                     + ", ".join(design["ignored_columns"]) + ".")
    for why, columns in design.get("dropped_features", {}).items():
        if columns:
            lines.append(f"Feature columns dropped before modelling ({why.replace('_', ' ')}): {', '.join(columns)}.")
    return lines
