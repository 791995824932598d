"""Performance metrics for binary risk models, each checked against a reference in the tests.

What comes from a library, and why the rest is written here:
- Brier score: ``sklearn.metrics.brier_score_loss``. It sums the squared errors of both class
  columns and halves the sum, so it can differ from mean((p - y)^2) in the last bit (< 1e-15).
- Threshold sweep: ``sklearn.metrics.roc_curve`` (every distinct score as a "score >= cut" rule).
  Specificity is taken back to counts, (negatives - false positives) / negatives, rather than
  1 - FPR: the Youden sums then keep the exact floating-point values on which ties between cut-offs
  are broken (the first, highest cut wins), so the chosen thresholds do not move.
- Wilson interval: ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")`` (Newcombe's
  algebra: equal to the textbook form within 1e-15; exactly 0 / 1 at k = 0 / k = n).
- Written here, for want of a library equivalent among our dependencies: the DeLong variance and
  paired test (DeLong et al. 1988, in the fast midrank form of Sun & Xu 2014; the AUC comes out of
  the same components and equals ``roc_auc_score``), the logit-scale Wald interval around it, the
  calibration intercept and slope (Van Calster et al. 2016: the slope is the coefficient of a
  logistic regression of the outcome on logit(p), the intercept ("calibration-in-the-large") that
  of a logistic regression with logit(p) as an offset; sklearn fits no offsets) and net benefit
  (Vickers & Elkin 2006; ``dcurves`` is not a dependency).
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import brier_score_loss, roc_curve

EPS = 1e-12


def _midrank(x: np.ndarray) -> np.ndarray:
    return stats.rankdata(x, method="average")


def delong_components(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs and structural components of one or several score vectors (rows of ``scores``).

    Returns (auc (k,), v10 (k, n_pos), v01 (k, n_neg)): v10[i] is the fraction of negatives a
    positive outscores (ties count 1/2), v01[j] the fraction of positives that outscore a negative.
    """
    y = np.asarray(y).astype(bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    pos, neg = scores[:, y], scores[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    if m == 0 or n == 0:
        raise ValueError("AUC needs both outcome classes")
    aucs, v10s, v01s = [], [], []
    for s_pos, s_neg, s_all in zip(pos, neg, scores[:, np.r_[np.flatnonzero(y), np.flatnonzero(~y)]], strict=True):
        r_all, r_pos, r_neg = _midrank(s_all), _midrank(s_pos), _midrank(s_neg)
        v10 = (r_all[:m] - r_pos) / n
        v01 = 1.0 - (r_all[m:] - r_neg) / m
        aucs.append(v10.mean())
        v10s.append(v10)
        v01s.append(v01)
    return np.array(aucs), np.array(v10s), np.array(v01s)


def delong_covariance(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their DeLong covariance matrix for score vectors on the same patients."""
    aucs, v10, v01 = delong_components(y, scores)
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return aucs, s10 / v10.shape[1] + s01 / v01.shape[1]


def logit_wald_ci(auc: float, se: float, level: float = 0.95) -> tuple[float, float]:
    """A Wald interval on the logit scale around an AUC with standard error ``se`` (stays inside
    [0, 1]); the point itself when the AUC is 0 or 1 or the SE is 0."""
    if auc <= 0 or auc >= 1 or se == 0:
        return auc, auc
    z = stats.norm.ppf(0.5 + level / 2)
    logit = np.log(auc / (1 - auc))
    se_logit = se / (auc * (1 - auc))
    lo, hi = logit - z * se_logit, logit + z * se_logit
    return float(1 / (1 + np.exp(-lo))), float(1 / (1 + np.exp(-hi)))


def auc_ci(y, score, level: float = 0.95) -> tuple[float, float, float, float]:
    """AUC, DeLong standard error and a Wald interval on the logit scale."""
    aucs, cov = delong_covariance(y, score)
    auc, var = float(aucs[0]), float(cov[0, 0])
    se = float(np.sqrt(max(var, 0.0)))
    return (auc, se, *logit_wald_ci(auc, se, level))


def delong_test(y, score_a, score_b) -> dict:
    """Two-sided DeLong test of AUC(a) == AUC(b) for two scores on the same patients."""
    aucs, cov = delong_covariance(y, np.vstack([score_a, score_b]))
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if var <= 0:
        p = 1.0 if diff == 0 else 0.0
        z = 0.0 if diff == 0 else float(np.sign(diff) * np.inf)
    else:
        z = diff / np.sqrt(var)
        p = float(2 * stats.norm.sf(abs(z)))
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "difference": diff, "z": float(z), "p_value": p}


def wilson_ci(successes: int, total: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson interval of a proportion (NaN when there is nothing to count: binomtest needs n > 0)."""
    if total == 0:
        return (float("nan"), float("nan"))
    ci = stats.binomtest(int(successes), int(total)).proportion_ci(confidence_level=level, method="wilson")
    return (float(ci.low), float(ci.high))


def threshold_metrics(y, score, threshold: float, with_ci: bool = False) -> dict:
    """Sensitivity, specificity, PPV and NPV when ``score >= threshold`` means high risk.

    ``threshold`` may be one value per patient (each outer fold's own training threshold).
    """
    y = np.asarray(y).astype(bool)
    pred = np.asarray(score) >= threshold
    tp, fn = int((pred & y).sum()), int((~pred & y).sum())
    tn, fp = int((~pred & ~y).sum()), int((pred & ~y).sum())
    parts = {"sensitivity": (tp, tp + fn), "specificity": (tn, tn + fp),
             "ppv": (tp, tp + fp), "npv": (tn, tn + fn)}
    out: dict = {"threshold": float(np.median(threshold)), "tp": tp, "fp": fp, "tn": tn, "fn": fn}
    for name, (k, n) in parts.items():
        out[name] = k / n if n else float("nan")
        if with_ci:
            out[f"{name}_ci95"] = list(wilson_ci(k, n))
    return out


def choose_threshold(y, score, rule: str = "youden") -> float:
    """A decision threshold from (training) scores.

    youden: maximises sensitivity + specificity - 1; sensNN / specNN: the highest threshold with
    sensitivity >= NN % (the lowest with specificity >= NN %).
    """
    y = np.asarray(y).astype(int)
    fpr, sens, cuts = roc_curve(y, np.asarray(score, dtype=float), drop_intermediate=False)
    fpr, sens, cuts = fpr[1:], sens[1:], cuts[1:]  # high to low: every distinct score; drop the +inf start
    negatives = int((y == 0).sum())
    spec = (negatives - np.rint(fpr * negatives)) / negatives  # from counts: see the module docstring
    if rule == "youden":
        return float(cuts[int(np.argmax(sens + spec - 1))])
    if rule.startswith("sens"):
        target = int(rule[4:]) / 100
        return float(cuts[int(np.flatnonzero(sens >= target)[0])])
    if rule.startswith("spec"):
        target = int(rule[4:]) / 100
        reached = np.flatnonzero(spec >= target)
        if len(reached):
            return float(cuts[int(reached[-1])])
        # Even the top score is shared by too many negatives (ties): only a cut above every
        # score keeps the specificity, so nobody is called high risk.
        return float(np.nextafter(cuts[0], np.inf))
    raise ValueError(f"unknown threshold rule '{rule}'")


def brier(y, p) -> float:
    return float(brier_score_loss(np.asarray(y, dtype=int), np.asarray(p, dtype=float), pos_label=1))


def _logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-8, 1 - 1e-8)
    return np.log(p / (1 - p))


def _logistic_fit(X: np.ndarray, y: np.ndarray, offset: np.ndarray, iterations: int = 100) -> np.ndarray | None:
    """Unpenalised logistic regression by Newton-Raphson (sklearn has no offsets); None when the
    fit does not converge to finite values (callers rule out separation and constant scores first)."""
    beta = np.zeros(X.shape[1])
    for _ in range(iterations):
        mu = 1 / (1 + np.exp(-np.clip(X @ beta + offset, -700, 700)))
        w = mu * (1 - mu) + EPS
        try:
            step = np.linalg.solve(X.T @ (X * w[:, None]), X.T @ (y - mu))
        except np.linalg.LinAlgError:
            return None
        beta += step
        if not np.all(np.isfinite(beta)):
            return None
        if np.max(np.abs(step)) < 1e-10:
            return beta
    return None


def calibration_obstacle(y, p) -> str | None:
    """Why the calibration slope has no finite estimate for these scores, or None when it has one.

    The slope is the coefficient of logit(p): it is not identified when the scores take a single
    value, and it runs off to infinity when they separate the outcomes (every positive scored at or
    above every negative, or the reverse).
    """
    y = np.asarray(y).astype(bool)
    lp = _logit(p)
    if not y.any() or y.all():
        return "one outcome class only"
    if np.ptp(lp) == 0:
        return "every patient has the same score"
    if lp[~y].max() <= lp[y].min() or lp[y].max() <= lp[~y].min():
        return "the scores separate the outcomes completely"
    return None


def calibration(y, p) -> dict:
    """Calibration intercept (calibration-in-the-large, slope fixed at 1) and calibration slope.

    Scores that leave the slope without a finite estimate (see ``calibration_obstacle``) give NaN
    for both, and ``calibration_not_estimable`` says why (None when both were estimated).
    """
    y = np.asarray(y, dtype=float)
    lp = _logit(p)
    ones = np.ones((len(y), 1))
    why = calibration_obstacle(y, p)
    intercept = slope = None
    if why is None:
        intercept = _logistic_fit(ones, y, offset=lp)
        slope = _logistic_fit(np.column_stack([ones, lp]), y, offset=np.zeros(len(y)))
        if intercept is None or slope is None:
            why = "the logistic fit did not converge"
    if why is not None:
        return {"calibration_intercept": float("nan"), "calibration_slope": float("nan"),
                "calibration_not_estimable": why}
    return {"calibration_intercept": float(intercept[0]), "calibration_slope": float(slope[1]),
            "calibration_not_estimable": None}


def decision_thresholds() -> np.ndarray:
    """The threshold probabilities of the reports' decision curves: 0.01 to 0.80 by 0.01."""
    return np.linspace(0.01, 0.8, 80)


def net_benefit(y, p, thresholds) -> dict:
    """Net benefit of the model, of treating all and of treating none at each threshold probability."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=float)
    n = len(y)
    prevalence = y.mean()
    model, treat_all = [], []
    for t in thresholds:
        pred = p >= t
        odds = t / (1 - t)
        model.append(((pred & y).sum() - (pred & ~y).sum() * odds) / n)
        treat_all.append(prevalence - (1 - prevalence) * odds)
    return {"threshold": list(map(float, thresholds)), "model": model, "treat_all": treat_all,
            "treat_none": [0.0] * len(thresholds)}


def summary(y, p, threshold: float, with_ci: bool = False) -> dict:
    """The metric set every report shows: AUC (+ DeLong CI), threshold metrics, Brier, calibration."""
    auc, se, lo, hi = auc_ci(y, p)
    out = {"auc": auc, "auc_se": se, "auc_ci95": [lo, hi]}
    out.update(threshold_metrics(y, p, threshold, with_ci=with_ci))
    out["brier"] = brier(y, p)
    out.update(calibration(y, p))
    return out
