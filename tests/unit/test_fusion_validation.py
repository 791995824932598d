"""Nested CV is honest (noise gives chance AUC) and fusion finds independent planted signals."""

import argparse

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from gcmlm.fusion.core import validation
from gcmlm.fusion.core.models import ModelConfig, make_model
from gcmlm.fusion.core.synthetic import merged, planted_tables


def _noise_table(n=40, p=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = np.array([0, 1] * (n // 2))
    table = pd.DataFrame(X, columns=[f"rad_{i:03d}" for i in range(p)])
    table.insert(0, "patient_id", [f"N{i:03d}" for i in range(n)])
    return table, y


def test_pure_noise_gives_chance_auc_where_selection_outside_the_folds_is_optimistic():
    table, y = _noise_table()
    config = ModelConfig(selection="anova", k_features=[10], tuning="none", inner_folds=3)
    factories = {"rad": make_model("rad", {"rad": list(table.columns[1:])}, config)}
    cv = validation.nested_cv(table, y, factories, outer_folds=5, outer_repeats=2, inner_cv=config.inner_cv(),
                              seed=0, threshold_rule="youden")
    honest = validation.summarise(cv.oof)["rad"]
    assert 0.25 < honest["auc"] < 0.75
    assert honest["auc_ci95"][0] < 0.5 < honest["auc_ci95"][1]
    # The classic leak: select the 10 "best" features on all patients, then cross-validate.
    X = table.iloc[:, 1:].to_numpy()
    leaked = SelectKBest(f_classif, k=10).fit_transform(X, y)
    scores = cross_val_predict(LogisticRegression(), leaked, y, cv=StratifiedKFold(5, shuffle=True, random_state=0),
                               method="predict_proba")[:, 1]
    assert roc_auc_score(y, scores) > 0.8 > honest["auc"] + 0.15


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    from gcmlm.fusion import fusion_train as train

    out = tmp_path_factory.mktemp("train") / "model"
    table = merged(planted_tables(150, noise_features=3, effect=1.2, seed=11))
    path = out.parent / "table.csv"
    table.to_csv(path, index=False)
    args = argparse.Namespace(table=str(path), label="mlm", out=str(out), models=None, classifier="logreg",
                              penalty="l2", class_weight="balanced", selection="anova", k_features=[3],
                              corr_threshold=0.9, combat_column=None, outer_folds=3, outer_repeats=1, inner_folds=3,
                              tuning="none", threshold_rule="youden", seed=0, n_jobs=1)
    assert train.run(args) == 0
    return out


@pytest.mark.slow  # ~25 s of CPU (150 patients, stacked model)
def test_fusion_beats_every_single_modality_on_independent_planted_signals(planted_run):
    import json

    m = json.loads((planted_run / "metrics.json").read_text())
    aucs = {k: v["auc"] for k, v in m["models"].items()}
    assert set(aucs) == {"rad", "path", "clin", "fused", "stacked"}
    for single in ("rad", "path", "clin"):
        assert 0.65 < aucs[single] < 0.9
        assert aucs["fused"] > aucs[single] + 0.05
        assert aucs["stacked"] > aucs[single] + 0.05
    comparisons = {(c["model"], c["versus"]): c["p_value"] for c in m["comparisons"]}
    assert len(comparisons) == 6 and max(comparisons.values()) < 0.05


@pytest.mark.slow
def test_training_outputs_are_complete(planted_run):
    oof = pd.read_csv(planted_run / "oof_predictions.csv")
    assert len(oof) == 150 * 5 and oof.groupby("model")["patient_id"].nunique().eq(150).all()
    features = pd.read_csv(planted_run / "selected_features.csv")
    fused = features[(features["model"] == "fused") & features["in_final_model"]]
    assert set(fused["feature"]) & {"rad_signal", "rad_signal_copy"} and len(fused) == 3
    # the correlation pruner keeps one of each signal pair; the signals are selected in every fold
    for m in ("rad", "path", "clin"):
        pair = features[(features["model"] == "fused") & features["feature"].str.startswith(f"{m}_signal")]
        assert pair["selection_frequency"].sum() == pytest.approx(1.0)
    card = __import__("json").loads((planted_run / "model_card.json").read_text())
    assert card["default_model"] == "fused"
    assert card["models"]["rad"]["features"] == ["rad_signal", "rad_signal_copy", "rad_noise0", "rad_noise1", "rad_noise2"]
    for ext in ("png", "svg"):
        assert (planted_run / f"cv_roc.{ext}").stat().st_size > 1000


def _small_cohort(tmp_path, positives=4, n=12):
    rng = np.random.default_rng(3)
    y = np.array([1] * positives + [0] * (n - positives))
    table = pd.DataFrame({"patient_id": [f"S{i:02d}" for i in range(n)],
                          **{f"{m}_{j}": rng.normal(size=n) + y for m in ("rad", "path") for j in range(3)}, "mlm": y})
    table.to_csv(tmp_path / "small.csv", index=False)
    return tmp_path / "small.csv"


def test_a_design_too_deep_for_the_smaller_class_is_refused_up_front(tmp_path, capsys):
    """12 patients, 4 with MLM, 3 outer x 2 inner folds: the stacked model's inner fits would see
    one class only. The error names the table and the way out; nothing is written."""
    from gcmlm.cli import main

    table = _small_cohort(tmp_path)
    flags = ["--table", str(table), "--label", "mlm", "--outer-folds", "3", "--inner-folds", "2", "--outer-repeats", "1",
             "--tuning", "none", "--k-features", "2"]
    assert main(["fusion-train", *flags, "--out", str(tmp_path / "deep")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "small.csv" in err[0]
    assert "smaller outcome class has 4 patients; about 1 of them are left for the stacked model's inner folds" in err[0]
    assert "--models without stacked" in err[0]
    assert not (tmp_path / "deep").exists()
    # The same design without the stacked model has one level less and trains.
    assert main(["fusion-train", *flags, "--models", "rad", "path", "fused", "--out", str(tmp_path / "flat")]) == 0
    assert (tmp_path / "flat" / "metrics.json").is_file()
    assert main(["fusion-train", *flags, "--outer-folds", "5", "--out", str(tmp_path / "wide")]) == 2
    assert "about 4 of them are left for --outer-folds = 5" in capsys.readouterr().err
