"""Every classifier, penalty, selection and ComBat option builds, fits and reports its features."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV

from gcmlm.fusion.core.models import ModelConfig, feature_weights, make_model, param_grid, with_fixed_params
from gcmlm.fusion.core.synthetic import merged, planted_tables


@pytest.fixture(scope="module")
def data():
    table = merged(planted_tables(90, noise_features=3, effect=2.0, seed=5, centres=2))
    cols = {m: [c for c in table.columns if c.startswith(f"{m}_")] for m in ("rad", "path", "clin")}
    return table, table["mlm"].to_numpy(), cols


@pytest.mark.parametrize("classifier,penalty,selection", [
    ("logreg", "l1", "l1"), ("logreg", "elasticnet", "mrmr"), ("svm", "l2", "anova"), ("rf", "l2", "none"),
    ("gb", "l2", "mrmr"),
])
def test_each_classifier_learns_the_planted_signal(data, classifier, penalty, selection):
    table, y, cols = data
    config = ModelConfig(classifier=classifier, penalty=penalty, selection=selection, k_features=[2],
                         corr_threshold=0.9, tuning="fast", inner_folds=3)
    model = make_model("rad", cols, config).fit(table, y)
    assert roc_auc_score(y, model.predict_proba(table)[:, 1]) > 0.75
    weights = feature_weights(model)
    assert {w["feature"] for w in weights} <= set(cols["rad"])
    # 5 rad columns, the signal copy pruned; L1 keeps at most k
    assert len(weights) == 4 if selection == "none" else 1 <= len(weights) <= 2
    if classifier in ("logreg", "rf"):
        assert all(np.isfinite(w["weight"]) for w in weights)


def test_combat_runs_inside_the_pipeline_and_the_centre_is_not_a_feature(data):
    table, y, cols = data
    with_centre = {m: c + ["centre"] for m, c in cols.items()}
    config = ModelConfig(combat_column="centre", selection="anova", k_features=[3], tuning="none", inner_folds=3)
    model = make_model("fused", with_centre, config).fit(table, y)
    names = {w["feature"] for w in feature_weights(model)}
    assert "centre" not in names and len(names) == 3
    assert roc_auc_score(y, model.predict_proba(table)[:, 1]) > 0.8


def test_tuned_models_freeze_their_chosen_hyperparameters(data):
    table, y, cols = data
    config = ModelConfig(tuning="fast", selection="anova", k_features=[1, 3], inner_folds=3)
    assert param_grid(config) == {"clf__C": [0.1, 1.0], "select__k": [1, 3]}
    model = make_model("clin", cols, config).fit(table, y)
    assert isinstance(model, GridSearchCV)
    frozen = with_fixed_params(model)
    assert frozen.get_params()["select__k"] == model.best_params_["select__k"]
    assert not hasattr(frozen, "best_params_")
