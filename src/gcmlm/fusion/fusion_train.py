"""fusion-train: nested cross-validation of per-modality, early-fused and stacked risk models.

Candidate models: one per modality found by column prefix (rad_, path_, clin_), ``fused`` (all
prefixes in one pipeline) and ``stacked`` (late fusion of the per-modality scores). Outputs:
metrics.json, oof_predictions.csv, selected_features.csv, cv_roc/cv_calibration plots, the final
models refit on all patients (models/<name>.skops) and model_card.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from gcmlm import __version__
from gcmlm.common.atomic import atomic_dir, write_json, write_text
from gcmlm.common.errors import GcmlmError
from gcmlm.fusion.core import plots, report, validation
from gcmlm.fusion.core.inputs import CARD, MODEL_SUFFIX, modality_columns, read_labels, read_table, save_model
from gcmlm.fusion.core.models import (
    CLASSIFIERS,
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
MODEL_NAMES = ("rad", "path", "clin", "fused", "stacked")
THRESHOLD_RULES = ("youden", "sens90", "sens95", "spec90", "spec95")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", required=True, metavar="CSV", help="patient table (e.g. from fusion-merge)")
    parser.add_argument("--label", required=True, metavar="COLUMN", help="binary outcome column (0/1)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (replaced atomically)")
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES,
                        help="models to validate (default: every modality present, fused and stacked)")
    parser.add_argument("--classifier", choices=CLASSIFIERS, default="logreg")
    parser.add_argument("--penalty", choices=PENALTIES, default="l2", help="logistic regression penalty")
    parser.add_argument("--class-weight", choices=("balanced", "none"), default="balanced")
    parser.add_argument("--selection", choices=SELECTIONS, default="anova")
    parser.add_argument("--k-features", nargs="+", type=int, default=[10], metavar="K",
                        help="features kept by the selection step; several values are tuned in the inner CV")
    parser.add_argument("--corr-threshold", type=float, default=0.9,
                        help="drop features with |r| above this with a more relevant one (1 = off)")
    parser.add_argument("--combat-column", metavar="COLUMN", help="harmonise features by this centre column (ComBat)")
    parser.add_argument("--outer-folds", type=int, default=5)
    parser.add_argument("--outer-repeats", type=int, default=10)
    parser.add_argument("--inner-folds", type=int, default=5)
    parser.add_argument("--tuning", choices=TUNING, default="full", help="inner-CV grid size (fast: tiny grids)")
    parser.add_argument("--threshold-rule", choices=THRESHOLD_RULES, default="youden")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=1, help="parallel inner-CV fits")


def cv_levels(args, names: list[str]) -> list[tuple[str, int]]:
    """The nested stratified splits the deepest model fit sits in, outermost first: the outer CV;
    the inner CV (tuning, training-fold thresholds); for ``stacked`` the stacker's own folds, inside
    which each base model is tuned again; for the SVM its 3-fold Platt scaling."""
    levels = [("--outer-folds", args.outer_folds), ("--inner-folds", args.inner_folds)]
    if "stacked" in names:
        levels.append(("the stacked model's inner folds (--inner-folds)", args.inner_folds))
    if args.classifier == "svm":
        levels.append(("the SVM's 3-fold Platt scaling", 3))
    return levels


def _check_design(table: pd.DataFrame, y: np.ndarray, args, names: list[str], source) -> None:
    """Refuse a design whose innermost fits would see one outcome class only (sklearn would fail
    deep inside the CV with a message that names neither the table nor the flags)."""
    smallest = int(min(np.bincount(y, minlength=2)))
    reach = smallest
    for what, folds in cv_levels(args, names):
        if reach < folds:
            hint = "fewer folds, more patients" + (", or --models without stacked" if "stacked" in names else "")
            raise GcmlmError(f"the smaller outcome class has {smallest} patients; about {reach} of them are left "
                             f"for {what} = {folds}: use {hint}", source)
        reach -= -(-reach // folds)  # a training part loses its largest held-out fold
    if args.combat_column and args.combat_column not in table.columns:
        raise GcmlmError(f"no centre column '{args.combat_column}'", source)


def _model_names(requested, modalities: dict) -> list[str]:
    if requested:
        absent = [m for m in requested if m in MODEL_NAMES[:3] and m not in modalities]
        if absent:
            raise GcmlmError(f"no {', '.join(absent)} feature columns for model(s) {', '.join(absent)}")
        if any(m in ("fused", "stacked") for m in requested) and len(modalities) < 2:
            raise GcmlmError("fused and stacked models need at least two modalities")
        return list(dict.fromkeys(requested))
    names = list(modalities)
    return names + (["fused", "stacked"] if len(modalities) > 1 else [])


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"gcmlm": __version__, "python": platform.python_version()}
    for package in ("scikit-learn", "numpy", "pandas", "scipy", "skops", "neuroCombat"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


def run(args: argparse.Namespace) -> int:
    table = read_table(args.table)
    y = read_labels(table, args.label, args.table)
    modalities = modality_columns(table)
    if not modalities:
        raise GcmlmError("no feature columns (prefixes rad_, path_, clin_)", args.table)
    names = _model_names(args.models, modalities)
    _check_design(table, y, args, names, args.table)
    used = {m: c for m, c in modalities.items() if any(n in (m, "fused", "stacked") for n in names)}
    if args.combat_column:
        used = {m: c + [args.combat_column] for m, c in used.items()}
    config = ModelConfig(classifier=args.classifier, penalty=args.penalty, selection=args.selection,
                         k_features=args.k_features, corr_threshold=args.corr_threshold,
                         combat_column=args.combat_column, inner_folds=args.inner_folds, tuning=args.tuning,
                         class_weight=None if args.class_weight == "none" else "balanced",
                         seed=args.seed, n_jobs=args.n_jobs)
    factories = {n: make_model(n, used, config) for n in names}
    log.info("%d patients, prevalence %.3f, models %s; %d x %d-fold outer CV, %d-fold inner CV",
             len(y), y.mean(), ", ".join(names), args.outer_repeats, args.outer_folds, args.inner_folds)

    cv = validation.nested_cv(table, y, factories, outer_folds=args.outer_folds, outer_repeats=args.outer_repeats,
                              inner_cv=config.inner_cv(), seed=args.seed, threshold_rule=args.threshold_rule)
    summary = validation.summarise(cv.oof)
    comparisons = validation.compare(cv.oof)
    n_splits = args.outer_folds * args.outer_repeats
    selected = validation.selection_table(cv.weights, n_splits)

    design = {
        "patients": int(len(y)), "events": int(y.sum()), "prevalence": float(y.mean()), "label": args.label,
        "outer_folds": args.outer_folds, "outer_repeats": args.outer_repeats, "inner_folds": args.inner_folds,
        "seed": args.seed, "threshold_rule": args.threshold_rule, "config": config.describe(),
        "features_per_modality": {m: len(c) for m, c in modalities.items()},
        "ci_method": "DeLong variance per repeat (pooled out-of-fold scores), averaged over repeats; "
                     "Wald interval on the logit scale around the mean AUC",
        "threshold_provenance": "chosen per outer fold by the rule on inner-CV out-of-fold scores of the "
                                "training fold; sensitivity etc. average the per-repeat pooled values",
    }

    with atomic_dir(args.out) as out:
        (out / "models").mkdir()
        card_models, final_weights = {}, []
        for name in names:
            final = make_model(name, used, config).fit(table, y)
            threshold, scores = validation.training_threshold(final, table, y, config.inner_cv(), args.threshold_rule)
            features = list(dict.fromkeys(c for cols in ([used[name]] if name in used else used.values()) for c in cols))
            card = {"name": name, "label": args.label, "features": features, "n_features": len(features),
                    "training_patients": int(len(y)), "prevalence": float(y.mean()),
                    "threshold": threshold, "threshold_rule": args.threshold_rule,
                    "threshold_provenance": "inner-CV out-of-fold scores on all training patients",
                    "tertiles": [float(q) for q in np.quantile(scores, [1 / 3, 2 / 3])],
                    "hyperparameters": chosen_params(final), "config": config.describe(),
                    "cv_auc": summary[name]["auc"], "cv_auc_ci95": summary[name]["auc_ci95"],
                    "validation": f"nested CV, {args.outer_repeats} x {args.outer_folds}-fold outer, "
                                  f"{args.inner_folds}-fold inner", "versions": versions()}
            model = RiskModel(name=name, estimator=final, features=features, label=args.label, threshold=threshold,
                              threshold_rule=args.threshold_rule, tertiles=card["tertiles"], card=card)
            save_model(model, out / "models" / f"{name}{MODEL_SUFFIX}")
            card_models[name] = {k: v for k, v in card.items() if k != "versions"}
            final_weights += [{"model": name, **w} for w in feature_weights(final)]
        default = next((n for n in ("fused", "stacked") if n in names), names[0])
        write_json(out / CARD, {"default_model": default, "models": card_models, "design": design,
                                "versions": versions()})
        if final_weights:
            fw = pd.DataFrame(final_weights).rename(columns={"weight": "final_weight"})
            selected = selected.merge(fw, on=["model", "base", "feature"], how="outer")
            selected["selection_frequency"] = selected["selection_frequency"].fillna(0.0)
            selected["in_final_model"] = selected["final_weight"].notna()
        selected.to_csv(out / "selected_features.csv", index=False, float_format="%.6g")
        cv.oof.to_csv(out / "oof_predictions.csv", index=False, float_format="%.6g")
        write_json(out / "metrics.json", {"models": summary, "comparisons": comparisons, "design": design,
                                          "hyperparameters_per_fold": cv.params})
        repeats = {n: [(r["label"].to_numpy(), r["score"].to_numpy()) for _, r in part.groupby("repeat")]
                   for n, part in cv.oof.groupby("model", sort=False)}
        labels = {n: f"AUC {s['auc']:.2f} [{s['auc_ci95'][0]:.2f}, {s['auc_ci95'][1]:.2f}]" for n, s in summary.items()}
        roc_png = plots.roc(repeats, labels, out, stem="cv_roc", title="Nested CV ROC (mean over repeats)")[0]
        first = cv.oof[cv.oof["repeat"] == 0]
        cal_png = plots.calibration({n: (p["label"].to_numpy(), p["score"].to_numpy())
                                     for n, p in first.groupby("model", sort=False)},
                                    out, stem="cv_calibration", title="Nested CV calibration (repeat 1)")[0]
        write_text(out / "report.html", render(args, design, summary, comparisons, card_models, [roc_png, cal_png]))
    for name in names:
        s = summary[name]
        log.info("%-8s AUC %.3f [%.3f, %.3f]", name, s["auc"], *s["auc_ci95"])
    log.info("wrote %s", args.out)
    print(json.dumps({n: round(summary[n]["auc"], 4) for n in names}))
    return 0


def render(args, design, summary, comparisons, cards, images) -> str:
    """The internal-validation report: design, nested-CV metrics, comparisons, CV curves."""
    rows = [{"model": n, "features": cards[n]["n_features"], **s} for n, s in summary.items()]
    cols = ["model", "features", "auc", "auc_ci95", "auc_fold_mean", "auc_fold_sd", "sensitivity", "specificity",
            "ppv", "npv", "brier", "calibration_intercept", "calibration_slope", "threshold_median"]
    cfg = design["config"]
    notes = [
        f"Validation type: internal validation by nested cross-validation ({design['outer_repeats']} x "
        f"{design['outer_folds']}-fold stratified outer, {design['inner_folds']}-fold inner tuning on AUC, seed {design['seed']}).",
        "Inside every training fold: imputation, constant-feature removal, scaling, "
        + ("ComBat by '" + cfg["combat_column"] + "', " if cfg.get("combat_column") else "")
        + f"correlation pruning (|r| > {cfg['corr_threshold']}), selection ({cfg['selection']}, k={cfg['k_features']}), "
        f"classifier ({cfg['classifier']}, class weight {cfg['class_weight']}).",
        f"Threshold ({design['threshold_rule']}): {design['threshold_provenance']}.",
        f"AUC 95% CI: {design['ci_method']}.",
        "DeLong p-values: per repeat on the same patients' out-of-fold scores, median shown; not adjusted for "
        "multiple comparisons.",
        "The saved models are refit on all patients; their performance on new patients is estimated by this "
        "nested CV, and should be confirmed on an external cohort (fusion-evaluate).",
    ]
    cohort = [{"patients": design["patients"], "events": design["events"], "prevalence": design["prevalence"],
               **{f"{m} features": n for m, n in design["features_per_modality"].items()}}]
    sections = [
        ("Cohort", report.table(cohort, list(cohort[0]))),
        ("Nested cross-validation", report.table(rows, cols)),
        ("Fusion vs single modalities (DeLong)", report.table(comparisons, ["model", "versus", "auc_difference", "p_value"])
         if comparisons else "<p>No fusion model trained.</p>"),
        ("Reporting notes (TRIPOD+AI)", report.bullet_list(notes)),
    ]
    return report.page(f"gcmlm nested cross-validation: {Path(args.table).name} ({args.label})", sections, images)
