"""Each metric against an independent reference computation."""

import numpy as np
import pytest
from scipy import optimize
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from gcmlm.fusion.core import metrics


def _data(n=80, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    a = rng.normal(size=n) + y
    b = 0.5 * a + rng.normal(size=n) + 0.5 * y
    if ties:
        a, b = np.round(a), np.round(b)
    return y, a, b


def _structural_components(y, s):
    """Direct O(n^2) DeLong components: psi(x, y) = 1 if x > y, 1/2 if tied."""
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return psi.mean(axis=1), psi.mean(axis=0)


@pytest.mark.parametrize("ties", [False, True])
def test_auc_matches_sklearn(ties):
    y, a, _ = _data(ties=ties)
    assert metrics.auc_ci(y, a)[0] == pytest.approx(roc_auc_score(y, a), abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_delong_covariance_matches_direct_computation(ties):
    y, a, b = _data(ties=ties)
    (va10, va01), (vb10, vb01) = _structural_components(y, a), _structural_components(y, b)
    m, n = len(va10), len(va01)
    var_a = np.var(va10, ddof=1) / m + np.var(va01, ddof=1) / n
    var_b = np.var(vb10, ddof=1) / m + np.var(vb01, ddof=1) / n
    cov_ab = np.cov(va10, vb10)[0, 1] / m + np.cov(va01, vb01)[0, 1] / n
    aucs, cov = metrics.delong_covariance(y, np.vstack([a, b]))
    assert aucs == pytest.approx([va10.mean(), vb10.mean()], abs=1e-12)
    assert cov == pytest.approx(np.array([[var_a, cov_ab], [cov_ab, var_b]]), rel=1e-10)
    test = metrics.delong_test(y, a, b)
    z = (va10.mean() - vb10.mean()) / np.sqrt(var_a + var_b - 2 * cov_ab)
    assert test["z"] == pytest.approx(z, rel=1e-10)


def test_delong_standard_error_agrees_with_bootstrap():
    y, a, _ = _data(n=200, seed=3)
    auc, se, lo, hi = metrics.auc_ci(y, a)
    rng = np.random.default_rng(1)
    boots = []
    for _ in range(1000):
        i = rng.integers(0, len(y), len(y))
        boots.append(metrics.delong_components(y[i], a[i])[0][0])  # == roc_auc_score (tested above), faster
    assert se == pytest.approx(np.std(boots), rel=0.15)
    b_lo, b_hi = np.percentile(boots, [2.5, 97.5])
    assert lo == pytest.approx(b_lo, abs=0.02) and hi == pytest.approx(b_hi, abs=0.02)
    assert lo < auc < hi


def test_calibration_matches_direct_likelihood_fits():
    rng = np.random.default_rng(5)
    p = rng.uniform(0.05, 0.95, 300)
    y = (rng.uniform(size=300) < p**1.5).astype(int)  # miscalibrated on purpose
    got = metrics.calibration(y, p)
    lp = np.log(p / (1 - p))
    slope_ref = LogisticRegression(C=1e12, max_iter=10000).fit(lp[:, None], y).coef_[0, 0]

    def nll(b):  # intercept with logit(p) as an offset
        eta = b[0] + lp
        return np.sum(np.logaddexp(0, eta) - y * eta)

    intercept_ref = optimize.minimize(nll, [0.0], method="BFGS").x[0]
    assert got["calibration_slope"] == pytest.approx(slope_ref, abs=1e-4)
    assert got["calibration_intercept"] == pytest.approx(intercept_ref, abs=1e-4)
    assert got["calibration_intercept"] < 0  # outcomes rarer than predicted


def test_perfectly_calibrated_predictions_give_slope_one_intercept_zero():
    rng = np.random.default_rng(2)
    p = rng.uniform(0.02, 0.98, 20000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    got = metrics.calibration(y, p)
    assert got["calibration_slope"] == pytest.approx(1, abs=0.05)
    assert got["calibration_intercept"] == pytest.approx(0, abs=0.05)


def test_net_benefit_by_hand():
    y = np.array([1, 1, 0, 0, 0, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.4, 0.35, 0.1, 0.6, 0.2, 0.05, 0.3, 0.15, 0.25])
    nb = metrics.net_benefit(y, p, [0.3])
    # threshold 0.3: treated = p >= 0.3 -> 0.9(TP), 0.4(TP), 0.35(FP), 0.6(FP), 0.3(FP): TP 2, FP 3
    assert nb["model"][0] == pytest.approx(2 / 10 - 3 / 10 * 0.3 / 0.7)
    assert nb["treat_all"][0] == pytest.approx(0.3 - 0.7 * 0.3 / 0.7)
    assert nb["treat_none"][0] == 0


def test_threshold_metrics_and_wilson():
    y = np.array([1] * 10 + [0] * 10)
    s = np.array([0.9] * 8 + [0.1] * 2 + [0.8] * 3 + [0.2] * 7)
    m = metrics.threshold_metrics(y, s, 0.5, with_ci=True)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (8, 2, 3, 7)
    assert m["sensitivity"] == 0.8 and m["specificity"] == 0.7
    assert m["ppv"] == pytest.approx(8 / 11) and m["npv"] == pytest.approx(7 / 9)
    assert m["sensitivity_ci95"] == pytest.approx([0.4902, 0.9433], abs=1e-4)  # Wilson, 8/10


def test_choose_threshold_rules():
    y = np.array([0, 0, 0, 0, 1, 1, 0, 1, 1, 1])
    s = np.arange(10) / 10
    assert metrics.choose_threshold(y, s, "youden") == pytest.approx(0.4)  # sens 1, spec 4/5: J 0.8
    assert metrics.choose_threshold(y, s, "spec90") == pytest.approx(0.7)  # best sensitivity with spec 5/5
    sens_cut = metrics.choose_threshold(y, s, "sens90")
    assert (s[y == 1] >= sens_cut).mean() >= 0.9 and sens_cut == pytest.approx(0.4)


def test_brier():
    assert metrics.brier([1, 0, 1], [0.5, 0.5, 1.0]) == pytest.approx((0.25 + 0.25 + 0) / 3)


def test_curve_files_are_byte_identical_across_processes(tmp_path):
    """Two engines (or two reruns) must give the same PNG and SVG bytes: no dates, fixed SVG IDs."""
    import subprocess
    import sys

    script = (
        "import sys, numpy as np; from pathlib import Path; from gcmlm.fusion.core import plots\n"
        "rng = np.random.default_rng(0); y = rng.integers(0, 2, 60); s = rng.normal(size=60) + y\n"
        "plots.roc({'fused': [(y, s)]}, {'fused': '0.80'}, Path(sys.argv[1]))\n"
    )
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        subprocess.run([sys.executable, "-c", script, str(tmp_path / run)], check=True)
    for name in ("roc.png", "roc.svg"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_spec_rule_with_the_top_score_shared_by_many_negatives():
    """More than 10 % of negatives tie at the top score (a random forest's 1.0): no observed score
    reaches 90 % specificity, so the cut-off lies just above every score (nobody high risk)."""
    y = np.array([0] * 10 + [1] * 5)
    s = np.array([1.0, 1.0, 0.3, 0.2, 0.2, 0.1, 0.1, 0.1, 0.0, 0.0, 1.0, 1.0, 0.9, 0.5, 0.4])
    cut = metrics.choose_threshold(y, s, "spec90")
    assert cut > 1.0 and cut == np.nextafter(1.0, 2.0)
    assert ((s[y == 0] < cut).mean()) >= 0.9
    # ties below the top score: the cut-off is the lowest score whose whole tie group still leaves
    # 90 % of negatives below it (0.9 holds two negatives: specificity 8/10 there, 10/10 at 0.95)
    y2 = np.array([0] * 10 + [1] * 4)
    s2 = np.array([0.9, 0.9, 0.3, 0.2, 0.2, 0.1, 0.1, 0.1, 0.0, 0.0, 0.95, 0.9, 0.3, 0.1])
    assert metrics.choose_threshold(y2, s2, "spec90") == pytest.approx(0.95)
    s3 = s2.copy()
    s3[1] = 0.3  # one negative at 0.9: specificity 9/10 at 0.9 is enough
    assert metrics.choose_threshold(y2, s3, "spec90") == pytest.approx(0.9)


def test_calibration_of_constant_scores_is_not_estimable():
    y = np.array([1, 0, 1, 0, 0, 1])
    got = metrics.calibration(y, np.full(6, 0.5))  # what gradient boosting gives on a tiny fold
    assert np.isnan(got["calibration_slope"]) and np.isnan(got["calibration_intercept"])
    assert got["calibration_not_estimable"] == "every patient has the same score"


@pytest.mark.parametrize("scores", [[0.1, 0.2, 0.3, 0.7, 0.8, 0.9], [0.9, 0.8, 0.7, 0.3, 0.2, 0.1],
                                    [0.1, 0.2, 0.5, 0.5, 0.8, 0.9], [1e-12, 1e-12, 1e-12, 1.0, 1.0, 1.0]])
def test_calibration_of_separating_scores_is_not_estimable(scores):
    y = np.array([0, 0, 0, 1, 1, 1])
    got = metrics.calibration(y, np.array(scores))
    assert np.isnan(got["calibration_slope"])
    assert got["calibration_not_estimable"] == "the scores separate the outcomes completely"
    summary = metrics.summary(y, np.array(scores), 0.5)  # the whole metric set goes on
    assert summary["calibration_not_estimable"] and np.isfinite(summary["auc"])


def test_calibration_estimable_says_so():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.95, 200)
    y = (rng.uniform(size=200) < p).astype(int)
    assert metrics.calibration(y, p)["calibration_not_estimable"] is None
