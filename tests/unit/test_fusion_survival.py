"""Time-to-event path of the fusion stages: metrics against scikit-survival, end to end, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sksurv.datasets import load_whas500
from sksurv.metrics import concordance_index_censored
from sksurv.nonparametric import kaplan_meier_estimator

from gcmlm.common.errors import GcmlmError
from gcmlm.fusion.core import survival
from gcmlm.fusion.core.synthetic import merged, planted_tables
from gcmlm.fusion.fusion_evaluate import evaluate_model
from gcmlm.fusion.fusion_predict import predict_risk
from gcmlm.fusion.fusion_train import TrainSettings, train_models

FAST = TrainSettings(outer_folds=3, outer_repeats=1, inner_folds=3, tuning="none", k_features=(3,))
OUTCOME = survival.SurvivalOutcome("mlm_time_months", "mlm_event", "months", (12, 24, 240))


def survival_table(patients: int = 60, seed: int = 0) -> pd.DataFrame:
    """The planted binary cohort with follow-up: events come earlier for MLM patients; some censored."""
    table = merged(planted_tables(patients, noise_features=2, effect=2.0, seed=seed))
    rng = np.random.default_rng(seed)
    time = rng.exponential(np.where(table["mlm"] == 1, 12.0, 60.0))
    censor = rng.uniform(6, 72, patients)
    table["mlm_time_months"] = np.round(np.minimum(time, censor), 3)
    table["mlm_event"] = (time <= censor).astype(int)
    return table.drop(columns="mlm")


def test_harrell_c_and_km_match_scikit_survival():
    """On WHAS500 (a public data set): our Harrell's C and Kaplan-Meier are scikit-survival's."""
    X, y = load_whas500()
    ours = survival.surv(y["fstat"], y["lenfol"])
    risk = X["age"].to_numpy() + 0.1 * X["bmi"].to_numpy()
    expected = concordance_index_censored(y["fstat"], y["lenfol"], risk)[0]
    assert survival.harrell_c(ours, risk) == pytest.approx(expected, abs=1e-12)
    assert survival.metric_set(ours, ours, risk, {}, [])["harrell_c"] == pytest.approx(expected, abs=1e-12)
    times, surv = kaplan_meier_estimator(y["fstat"], y["lenfol"])
    our_times, our_surv = survival.kaplan_meier(ours)
    np.testing.assert_allclose(our_times, times)
    np.testing.assert_allclose(our_surv, surv)
    assert survival.km_at(ours, times[10] + 1e-9) == pytest.approx(surv[10])
    assert survival.km_at(ours, 0.0) == 1.0


def test_cox_score_statistic_ranks_the_planted_feature_first():
    table = survival_table(80)
    y = survival.read_outcome(table, OUTCOME, "t")
    X = table[["clin_signal", "clin_noise0", "clin_noise1"]].to_numpy()
    chi2 = survival.cox_score_statistic(X, y)
    assert chi2.argmax() == 0 and chi2[0] > 3.84


def test_train_evaluate_predict_end_to_end(tmp_path):
    table = survival_table()
    result = train_models(table, OUTCOME, FAST, tmp_path / "train")
    assert set(result.summary) == {"rad", "path", "clin", "fused", "stacked"}
    fused = result.summary["fused"]
    assert 0.6 < fused["harrell_c"] <= 1 and fused["harrell_c_ci95"][0] < fused["harrell_c"]
    assert {"uno_c", "auc_12", "auc_24", "ibs", "calibration", "logrank"} <= set(fused)
    metrics = json.loads((tmp_path / "train" / "metrics.json").read_text())
    assert metrics["design"]["horizons_skipped"][0]["horizon"] == 240  # beyond follow-up: skipped, reported
    assert metrics["comparisons"] and "c_index_difference" in metrics["comparisons"][0]
    for name in ("cv_km.png", "cv_km.svg", "cv_time_auc.png", "report.html", "models/stacked.skops"):
        assert (tmp_path / "train" / name).is_file()
    assert "Kaplan" in (tmp_path / "train" / "report.html").read_text() or "log-rank" in (
        tmp_path / "train" / "report.html").read_text()
    predictions = predict_risk(tmp_path / "train", table, groups="tertiles").table
    assert {"risk_score", "risk_group", "survival_12_months", "survival_24_months"} <= set(predictions.columns)
    assert predictions["survival_24_months"].le(predictions["survival_12_months"] + 1e-12).all()
    evaluation = evaluate_model(tmp_path / "train", table, OUTCOME, out_dir=tmp_path / "eval")
    assert evaluation["models"]["fused"]["harrell_c"] > 0.6
    assert (tmp_path / "eval" / "km_fused.png").is_file()


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.assign(mlm_time_months=t["mlm_time_months"].where(t.index != 3, -1.0)), "negative"),
    (lambda t: t.assign(mlm_time_months=t["mlm_time_months"].where(t.index != 3)), "missing"),
    (lambda t: t.assign(mlm_event=t["mlm_event"].where(t.index != 3, 2)), "must be 0/1"),
    (lambda t: t.assign(mlm_event=0), "no event"),
    (lambda t: t.drop(columns="mlm_event"), "no event column"),
])
def test_bad_outcomes_are_one_line_errors(change, message):
    with pytest.raises(GcmlmError, match=message):
        train_models(change(survival_table()), OUTCOME, FAST)


def test_too_few_events_for_the_folds_is_refused_up_front():
    table = survival_table()
    table["mlm_event"] = 0
    table.loc[:1, "mlm_event"] = 1
    with pytest.raises(GcmlmError, match="smaller outcome class has 2"):
        train_models(table, OUTCOME, FAST)


def test_outcome_options_and_classifier_are_checked():
    with pytest.raises(GcmlmError, match="not both"):
        survival.outcome_from_options("mlm", "t", "e")
    with pytest.raises(GcmlmError, match="--event"):
        survival.outcome_from_options(None, "t", None)
    with pytest.raises(GcmlmError, match="--horizons"):
        survival.SurvivalOutcome("t", "e", horizons=(0,))
    assert survival.SurvivalOutcome("t", "e", "days").horizon_times() == [365.25, 730.5, 1095.75]
    with pytest.raises(GcmlmError, match="penalised Cox"):
        train_models(survival_table(), OUTCOME, TrainSettings(classifier="rf"))


def test_cox_default_converges_where_the_lasso_path_would_diverge():
    """Tens of patients, hundreds of features (the demo's shape): Coxnet's lasso diverges ("weights are
    too large") at small penalties; the default near-ridge Cox, warm-started down its penalty path,
    converges, and a diverging choice is one line naming the way out, never a traceback."""
    rng = np.random.default_rng(1)
    table = survival_table(40, seed=1)
    signal = table["mlm_event"].to_numpy()[:, None] * (np.arange(300) < 5)
    extra = pd.DataFrame(rng.normal(size=(len(table), 300)) + 0.5 * signal,
                         columns=[f"path_{i:04d}" for i in range(300)], index=table.index)
    table = pd.concat([table, extra], axis=1)
    settings = TrainSettings(models=("path",), outer_folds=3, outer_repeats=1, inner_folds=3, tuning="fast",
                             k_features=(50,), selection="none")
    result = train_models(table, OUTCOME, settings)
    assert result.design["config"]["penalty"] == "l2"
    assert 0.5 < result.summary["path"]["harrell_c"] <= 1
    assert survival.alpha_path(0.03)[-1] == 0.03 and survival.alpha_path(0.03)[0] == pytest.approx(0.9)


def test_an_inner_fold_without_comparable_pairs_cannot_rank_candidates():
    y = survival.surv(np.array([1, 0, 0]), np.array([30.0, 10.0, 20.0]))  # the only event comes last

    class Constant:
        def predict(self, X):
            return np.zeros(len(X))

    assert survival.inner_cv_score(Constant(), np.zeros((3, 1)), y) == 0.5
