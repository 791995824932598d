"""Time-to-event outcomes: the penalised Cox model, its nested-CV task, metrics, Kaplan-Meier and log-rank.

The survival path reuses the binary one (same pipelines, same nested CV, same model files); what
differs is gathered here:

- the outcome is a structured array (``event`` bool, ``time`` float, scikit-survival's ``Surv``);
- the estimator is scikit-survival's ``CoxnetSurvivalAnalysis`` (elastic net, one alpha tuned in
  the inner CV on Harrell's C, baseline hazard kept for survival probabilities); ``stacked`` is
  ``CoxStacker``: a Cox model on the base models' inner-CV out-of-fold linear predictors;
- folds (outer, inner, stacker) are stratified on the event indicator (``EventStratifiedKFold``);
- in-fold selection that needs an outcome uses survival relevance (``cox_score_statistic``,
  ``selection.py``): univariate Cox score tests instead of ANOVA F, a Cox lasso for ``l1``;
- risk-group cut-offs come from the training fold's own risk scores (median; tertiles);
- metrics: Harrell's and Uno's C, time-dependent AUC at horizons, integrated Brier score,
  calibration at each horizon (mean predicted vs Kaplan-Meier observed survival by tertile).
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from gcmlm.common.errors import GcmlmError
from gcmlm.common.tables import PATIENT_ID

log = logging.getLogger("gcmlm")

TIME_UNITS = {"days": 365.25, "months": 12.0, "years": 1.0}  # units per year
DEFAULT_HORIZON_YEARS = (1.0, 2.0, 3.0)
L1_RATIOS = {"l1": 1.0, "elasticnet": 0.5, "l2": 0.05}  # Coxnet needs l1_ratio > 0: "l2" is near-ridge
# The lasso path diverges ("weights are too large") on cohorts of tens of patients with hundreds of
# features; the near-ridge penalty converges there and was as good on the public benchmarks.
# Cox models also keep the selection they were benchmarked with: a near-ridge Cox on every feature
# of a wide radiomics table is slow and no better. (The logistic defaults are models.ModelConfig's.)
COX_DEFAULTS = {"penalty": "l2", "selection": "anova", "corr_threshold": 0.9}
ALPHAS = {"full": [0.3, 0.1, 0.03, 0.01], "fast": [0.1, 0.03], "none": [0.05]}
PATH_STEPS = 8  # penalties fitted from 30x the chosen alpha down to it (warm starts)


# The strong end of a warm-start path keeps no feature by design; scikit-survival warns about it
# once per fit. Ignored here (also in joblib's workers, which import this module), not globally.
warnings.filterwarnings("ignore", message="all coefficients are zero, consider decreasing alpha",
                        category=UserWarning)


def alpha_path(alpha: float) -> list[float]:
    """The penalties Coxnet fits for one chosen ``alpha``, strongest first, ending at ``alpha``.

    Coordinate descent started at a small penalty diverges on small cohorts ("weights are too large");
    started at a strong one and warm-started down the path, it converges to the same solution.
    Predictions use the path's last penalty, i.e. ``alpha`` itself.
    """
    return [float(a) for a in np.geomspace(30 * alpha, alpha, PATH_STEPS)]
BOOTSTRAP = 200  # resamples of the out-of-fold predictions for the CIs and the paired comparisons


# --- the outcome ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SurvivalOutcome:
    """Which columns hold follow-up time and event, the time unit, and the horizons (in that unit)."""

    time: str
    event: str
    unit: str = "months"
    horizons: tuple[float, ...] | None = None  # None: 1, 2 and 3 years

    def __post_init__(self) -> None:
        if self.unit not in TIME_UNITS:
            raise GcmlmError(f"must be one of {', '.join(TIME_UNITS)}, got {self.unit!r}", "--time-unit")
        if self.time == self.event:
            raise GcmlmError(f"time and event must be two columns, both are '{self.time}'", "--event")
        if self.horizons is not None:
            object.__setattr__(self, "horizons", tuple(float(h) for h in self.horizons))
            if not self.horizons or any(not math.isfinite(h) or h <= 0 for h in self.horizons):
                raise GcmlmError(f"must be positive times, got {' '.join(map(str, self.horizons))}", "--horizons")

    @property
    def columns(self) -> list[str]:
        return [self.time, self.event]

    def horizon_times(self) -> list[float]:
        if self.horizons is not None:
            return sorted(set(self.horizons))
        return [round(y * TIME_UNITS[self.unit], 2) for y in DEFAULT_HORIZON_YEARS]

    def describe(self) -> dict:
        return {"time": self.time, "event": self.event, "time_unit": self.unit, "horizons": self.horizon_times()}


def outcome_from_options(label: str | None, time: str | None, event: str | None, unit: str = "months",
                         horizons=None) -> str | SurvivalOutcome:
    """``--label`` or ``--time`` with ``--event``: exactly one of the two forms."""
    if label and (time or event):
        raise GcmlmError("give either --label (binary outcome) or --time with --event (time to event), not both",
                         "--label")
    if label:
        return label
    if not (time and event):
        missing = "--event" if time else "--time" if event else "--label, or --time with --event"
        raise GcmlmError(f"no outcome: {missing} is needed", missing.split(",")[0])
    return SurvivalOutcome(time, event, unit, tuple(horizons) if horizons else None)


def surv(event, time) -> np.ndarray:
    """scikit-survival's structured outcome (fields ``event``, ``time``)."""
    out = np.empty(len(time), dtype=[("event", bool), ("time", float)])
    out["event"], out["time"] = np.asarray(event, dtype=bool), np.asarray(time, dtype=float)
    return out


def is_survival(y) -> bool:
    return isinstance(y, np.ndarray) and y.dtype.names is not None and "event" in y.dtype.names


def event_of(y) -> np.ndarray:
    """The event indicator as 0/1 (what folds are stratified on); a binary label is returned as is."""
    return y["event"].astype(int) if is_survival(y) else np.asarray(y)


def read_outcome(table: pd.DataFrame, outcome: SurvivalOutcome, source: str | os.PathLike) -> np.ndarray:
    """Times (>= 0, present) and events (0/1, present) as a structured array; errors name the patients."""
    for column in outcome.columns:
        if column not in table.columns:
            raise GcmlmError(f"no {'time' if column == outcome.time else 'event'} column '{column}'", source)
    ids = table[PATIENT_ID].astype(str)
    time = pd.to_numeric(table[outcome.time], errors="coerce")
    bad = ids[time.isna() | ~np.isfinite(time.fillna(0))].tolist()
    if bad:
        raise GcmlmError(f"follow-up time '{outcome.time}' is missing or not a finite number for {len(bad)} "
                         f"patient(s): {', '.join(bad[:10])}", source)
    negative = ids[time < 0].tolist()
    if negative:
        raise GcmlmError(f"follow-up time '{outcome.time}' is negative for {len(negative)} patient(s): "
                         f"{', '.join(negative[:10])}", source)
    event = table[outcome.event]
    event = event.astype(int) if event.dtype == bool else pd.to_numeric(event, errors="coerce")
    bad = ids[event.isna() | ~event.isin([0, 1])].tolist()
    if bad:
        raise GcmlmError(f"event '{outcome.event}' must be 0/1 for every patient; not for {len(bad)}: "
                         f"{', '.join(bad[:10])}", source)
    if not event.any():
        raise GcmlmError(f"event '{outcome.event}' is 0 for every patient: no event to model", source)
    return surv(event.to_numpy(), time.to_numpy())


# --- folds, estimators ---------------------------------------------------------------------------------

class EventStratifiedKFold(StratifiedKFold):
    """Stratified k-fold that stratifies a survival outcome on its event indicator."""

    def split(self, X, y, groups=None):
        return super().split(X, event_of(y), groups)


def make_cox(penalty: str, seed: int = 0):
    from sksurv.linear_model import CoxnetSurvivalAnalysis

    return CoxnetSurvivalAnalysis(l1_ratio=L1_RATIOS[penalty], alphas=alpha_path(ALPHAS["none"][0]),
                                  fit_baseline_model=True, max_iter=100_000)


def cox_grid(penalty: str, tuning: str) -> dict:
    """The inner-CV grid of the Cox model (one alpha per fit; ``l1_ratio`` too for elastic net)."""
    grid = {"clf__alphas": [alpha_path(a) for a in ALPHAS[tuning]]}
    if penalty == "elasticnet" and tuning == "full":
        grid["clf__l1_ratio"] = [0.2, 0.5, 0.8]
    return grid


class CoxStacker(BaseEstimator):
    """Late fusion for survival: a Cox model on the base models' standardised linear predictors.

    Like sklearn's StackingClassifier, the combiner learns from inner-CV out-of-fold predictions
    (``cv``), so no training patient's own score trains it; the bases are then refit on all data.
    """

    _gcmlm_stack = True  # models.py treats it like StackingClassifier (weights, params, frozen copies)

    def __init__(self, estimators=None, cv=None, alpha: float = 0.01):
        self.estimators, self.cv, self.alpha = estimators, cv, alpha

    def fit(self, X, y):
        from sksurv.linear_model import CoxnetSurvivalAnalysis

        oof = np.column_stack([cross_val_predict(clone(e), X, y, cv=self.cv) for _, e in self.estimators])
        self.estimators_ = [clone(e).fit(X, y) for _, e in self.estimators]
        self.center_, self.scale_ = oof.mean(axis=0), oof.std(axis=0) + 1e-12
        self.final_estimator_ = CoxnetSurvivalAnalysis(l1_ratio=0.5, alphas=alpha_path(self.alpha),
                                                       fit_baseline_model=True,
                                                       max_iter=100_000).fit((oof - self.center_) / self.scale_, y)
        return self

    def _stack(self, X) -> np.ndarray:
        base = np.column_stack([e.predict(X) for e in self.estimators_])
        return (base - self.center_) / self.scale_

    def predict(self, X) -> np.ndarray:
        return self.final_estimator_.predict(self._stack(X))

    def predict_survival_function(self, X, return_array: bool = False):
        return self.final_estimator_.predict_survival_function(self._stack(X), return_array=return_array)

    def score(self, X, y) -> float:
        return harrell_c(y, self.predict(X))


def survival_functions(estimator, X) -> list:
    """Each patient's predicted survival function (step functions), through a tuned search or pipeline."""
    if hasattr(estimator, "best_estimator_"):
        estimator = estimator.best_estimator_
    if hasattr(estimator, "steps"):
        return estimator[-1].predict_survival_function(estimator[:-1].transform(X))
    return estimator.predict_survival_function(X)


def survival_at(estimator, X, times) -> np.ndarray:
    """Predicted S(t) per patient (rows) and time (columns); 1 before the first training event,
    the last value after the last one."""
    times = np.asarray(times, dtype=float)
    out = np.empty((len(X), len(times)))
    for i, fn in enumerate(survival_functions(estimator, X)):
        at = np.searchsorted(fn.x, times, side="right") - 1
        values = np.asarray(fn.y) * getattr(fn, "a", 1.0) + getattr(fn, "b", 0.0)
        out[i] = np.where(at < 0, 1.0, values[np.clip(at, 0, None)])
    return out


def risk_cutoffs(scores: np.ndarray) -> dict[str, float]:
    """Risk-group cut-offs from training patients' scores: median (low/high) and tertiles."""
    low, high = np.quantile(scores, [1 / 3, 2 / 3])
    return {"threshold": float(np.median(scores)), "tertile_low": float(low), "tertile_high": float(high)}


def surv_column(t: float) -> str:
    return f"surv_{t:g}"


@dataclass
class SurvivalTask:
    """What nested_cv does differently for a time-to-event outcome (see validation.BinaryTask)."""

    times: list[float]  # predicted survival is kept at these times (horizons and the Brier grid)

    def strata(self, y) -> np.ndarray:
        return event_of(y)

    def predict(self, model, X) -> dict[str, np.ndarray]:
        at = survival_at(model, X, self.times)
        return {"score": model.predict(X), **{surv_column(t): at[:, j] for j, t in enumerate(self.times)}}

    def cutoffs(self, model, X, y, inner_cv, rule) -> dict[str, float]:
        return risk_cutoffs(model.predict(X))

    def outcome(self, y) -> dict[str, np.ndarray]:
        return {"time": y["time"], "event": y["event"].astype(int)}


# --- metrics -------------------------------------------------------------------------------------------

def harrell_c(y: np.ndarray, risk: np.ndarray) -> float:
    from sksurv.metrics import concordance_index_censored

    return float(concordance_index_censored(y["event"], y["time"], risk)[0])


def inner_cv_score(estimator, X, y) -> float:
    """Harrell's C of an inner-CV validation fold, the grid search's score.

    A small fold can hold no comparable pair (no event before another patient's time); it then
    cannot rank the candidates, and scores 0.5 for every one of them, which leaves their order to
    the other folds.
    """
    from sksurv.exceptions import NoComparablePairException

    try:
        return harrell_c(y, estimator.predict(X))
    except NoComparablePairException:
        return 0.5


def horizon_check(y: np.ndarray, horizons: list[float]) -> tuple[list[float], list[dict]]:
    """Horizons the data can assess: after the first event and before the end of follow-up."""
    first_event, last = y["time"][y["event"]].min(), y["time"].max()
    valid, skipped = [], []
    for h in horizons:
        if h >= last:
            skipped.append({"horizon": h, "reason": f"beyond follow-up (longest follow-up {last:g})"})
        elif h < first_event:
            skipped.append({"horizon": h, "reason": f"before the first event ({first_event:g})"})
        else:
            valid.append(h)
    return valid, skipped


def brier_grid(y: np.ndarray, horizons: list[float]) -> list[float]:
    """Times the integrated Brier score integrates over: the valid horizons and follow-up deciles."""
    valid, _ = horizon_check(y, horizons)
    first_event = y["time"][y["event"]].min()
    deciles = np.quantile(y["time"], np.arange(0.1, 0.85, 0.1))
    top = max(valid) if valid else float(np.quantile(y["time"], 0.8))
    grid = [t for t in deciles if first_event <= t <= top]
    return sorted({round(float(t), 4) for t in [*valid, *grid]})


def metric_set(y_ref: np.ndarray, y: np.ndarray, risk: np.ndarray, surv_at: dict[float, np.ndarray],
               horizons: list[float]) -> dict:
    """Harrell's and Uno's C, AUC(t) per valid horizon and the integrated Brier score of one set of
    predictions; ``y_ref`` (the whole cohort) estimates the censoring distribution."""
    from sksurv.metrics import concordance_index_ipcw, cumulative_dynamic_auc, integrated_brier_score

    valid, _ = horizon_check(y, horizons)
    out = {"harrell_c": harrell_c(y, risk), "uno_c": float("nan"), "ibs": float("nan")}
    tau = max(valid) if valid else None
    try:
        out["uno_c"] = float(concordance_index_ipcw(y_ref, y, risk, tau=tau)[0])
    except ValueError:
        pass  # censoring survival reaches 0 inside the range: Uno's C is not estimable, left NaN
    for h in horizons:
        out[f"auc_{h:g}"] = float("nan")
        if h in valid:
            try:
                out[f"auc_{h:g}"] = float(cumulative_dynamic_auc(y_ref, y, risk, [h])[0][0])
            except ValueError:
                pass
    grid = [t for t in sorted(surv_at) if y["time"].min() <= t < y["time"].max()]
    if len(grid) >= 2:
        try:
            out["ibs"] = float(integrated_brier_score(y_ref, y, np.column_stack([surv_at[t] for t in grid]), grid))
        except ValueError:
            pass
    return out


def _from_frame(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, dict[float, np.ndarray]]:
    y = surv(part["event"].to_numpy(), part["time"].to_numpy())
    at = {float(c[5:]): part[c].to_numpy() for c in part.columns if c.startswith("surv_")}
    return y, part["score"].to_numpy(), at


def bootstrap_draws(n: int, resamples: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n, n) for _ in range(resamples)]


def _bootstrap(y_ref, y, risk, at, horizons, draws) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for idx in draws:
        if not y["event"][idx].any():
            continue
        m = metric_set(y_ref, y[idx], risk[idx], {t: s[idx] for t, s in at.items()}, horizons)
        for k, v in m.items():
            values.setdefault(k, []).append(v)
    return values


def _normal_ci(mean: float, draws: list[float]) -> list[float]:
    finite = [d for d in draws if math.isfinite(d)]
    if len(finite) < 2 or not math.isfinite(mean):
        return [float("nan"), float("nan")]
    se = float(np.std(finite, ddof=1))
    # every metric summarised here (C-indices, AUC(t), Brier scores) lies in [0, 1]: so does its interval
    return [max(0.0, mean - 1.96 * se), min(1.0, mean + 1.96 * se)]


def summarise(oof: pd.DataFrame, y_ref: np.ndarray, horizons: list[float], *, resamples: int = BOOTSTRAP,
              seed: int = 0) -> dict[str, dict]:
    """Per model: each metric averaged over repeats (pooled out-of-fold predictions of a repeat), with
    a 95 % CI = mean +- 1.96 bootstrap SE of one repeat's estimate (repeat 1, ``resamples`` draws of
    patients), the analogue of the binary path's per-repeat DeLong variance."""
    summary = {}
    for name, part in oof.groupby("model", sort=False):
        repeats = [_from_frame(r.sort_values(PATIENT_ID)) for _, r in part.groupby("repeat")]
        per_repeat = [metric_set(y_ref, y, risk, at, horizons) for y, risk, at in repeats]
        y0, risk0, at0 = repeats[0]
        draws = _bootstrap(y_ref, y0, risk0, at0, horizons, bootstrap_draws(len(y0), resamples, seed))
        entry = {}
        for key in per_repeat[0]:
            mean = float(np.nanmean([m[key] for m in per_repeat])) if any(
                math.isfinite(m[key]) for m in per_repeat) else float("nan")
            entry[key] = mean
            entry[f"{key}_ci95"] = _normal_ci(mean, draws.get(key, []))
        entry["harrell_c_per_repeat"] = [m["harrell_c"] for m in per_repeat]
        entry["calibration"] = calibration_table(y0, at0, horizons)
        entry["logrank"] = logrank_by_group(y0, risk0, part[part["repeat"] == part["repeat"].min()]
                                            .sort_values(PATIENT_ID)["threshold"].to_numpy())
        summary[str(name)] = entry
    return summary


def compare(oof: pd.DataFrame, pairs: list[tuple[str, str]], *, resamples: int = BOOTSTRAP,
            seed: int = 0) -> list[dict]:
    """Paired bootstrap of the difference in Harrell's C (same patients, same resamples), per pair;
    the difference is averaged over repeats, its SE is that of repeat 1."""
    out = []
    for challenger, single in pairs:
        diffs, boot = [], []
        for _, rep in oof.groupby("repeat"):
            a = rep[rep["model"] == challenger].sort_values(PATIENT_ID)
            b = rep[rep["model"] == single].set_index(PATIENT_ID).loc[a[PATIENT_ID]]
            y = surv(a["event"].to_numpy(), a["time"].to_numpy())
            ra, rb = a["score"].to_numpy(), b["score"].to_numpy()
            diffs.append(harrell_c(y, ra) - harrell_c(y, rb))
            if not boot:
                boot = [harrell_c(y[i], ra[i]) - harrell_c(y[i], rb[i])
                        for i in bootstrap_draws(len(y), resamples, seed) if y["event"][i].any()]
        out.append(paired_result(challenger, single, float(np.mean(diffs)), boot))
    return out


def paired_result(challenger: str, single: str, difference: float, boot: list[float]) -> dict:
    se = float(np.std(boot, ddof=1)) if len(boot) > 1 else float("nan")
    p = float(2 * stats.norm.sf(abs(difference) / se)) if se > 0 else float("nan")
    return {"model": challenger, "versus": single, "c_index_difference": difference,
            "c_index_difference_ci95": [difference - 1.96 * se, difference + 1.96 * se], "p_value": p}


# --- Kaplan-Meier, log-rank, calibration ---------------------------------------------------------------

def kaplan_meier(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Event times and the Kaplan-Meier survival estimate just after each (scikit-survival's)."""
    from sksurv.nonparametric import kaplan_meier_estimator

    times, survival = kaplan_meier_estimator(y["event"], y["time"])
    return np.asarray(times), np.asarray(survival)


def km_at(y: np.ndarray, t: float) -> float:
    times, survival = kaplan_meier(y)
    at = np.searchsorted(times, t, side="right") - 1
    return 1.0 if at < 0 else float(survival[at])


def risk_group_labels(scores: np.ndarray, cutoffs) -> np.ndarray:
    """Group per patient: 0 (low) ... len(cutoffs) (high); ``cutoffs`` may differ per patient (per fold)."""
    cut = np.asarray(cutoffs, dtype=float)
    if cut.ndim == 1 and len(cut) == len(scores):  # one median per patient (the fold's)
        return (np.asarray(scores) > cut).astype(int)
    return np.searchsorted(np.sort(cut), scores, side="right")


def logrank_by_group(y: np.ndarray, risk: np.ndarray, cutoffs) -> dict:
    """Log-rank test between risk groups (scikit-survival's compare_survival); NaN with one group."""
    from sksurv.compare import compare_survival

    groups = risk_group_labels(risk, cutoffs)
    counts = {int(g): int((groups == g).sum()) for g in np.unique(groups)}
    if len(counts) < 2:
        return {"chisq": float("nan"), "p_value": float("nan"), "group_sizes": counts}
    chisq, p = compare_survival(y, groups)
    return {"chisq": float(chisq), "p_value": float(p), "group_sizes": counts}


def calibration_table(y: np.ndarray, surv_at: dict[float, np.ndarray], horizons: list[float],
                      groups: int = 3) -> list[dict]:
    """Per valid horizon and predicted-survival tertile: mean predicted vs Kaplan-Meier observed S(h)."""
    valid, _ = horizon_check(y, horizons)
    rows = []
    for h in valid:
        if h not in surv_at:
            continue
        predicted = surv_at[h]
        edges = np.quantile(predicted, np.linspace(0, 1, groups + 1)[1:-1])
        bins = np.searchsorted(edges, predicted, side="right")
        for g in range(groups):
            members = bins == g
            if members.sum() == 0:
                continue
            rows.append({"horizon": h, "group": g + 1, "patients": int(members.sum()),
                         "predicted_survival": float(predicted[members].mean()),
                         "observed_survival_km": km_at(y[members], h)})
    return rows


# --- in-fold selection relevance (used by selection.py when y is a survival outcome) --------------------

def cox_score_statistic(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per feature, the univariate Cox score-test chi-square at beta = 0 (Breslow ties): the survival
    analogue of the ANOVA F, computed from risk-set sums in one pass over the sorted times."""
    X = np.asarray(X, dtype=float)
    order = np.argsort(y["time"], kind="stable")
    t, e, Xs = y["time"][order], y["event"][order], X[order]
    start = np.searchsorted(t, t, side="left")  # first patient still at risk at each time
    n_at_risk = (len(t) - start).astype(float)[:, None]
    s1 = np.cumsum(Xs[::-1], axis=0)[::-1][start]
    s2 = np.cumsum(Xs[::-1] ** 2, axis=0)[::-1][start]
    mean = s1 / n_at_risk
    u = ((Xs - mean) * e[:, None]).sum(axis=0)
    info = ((s2 / n_at_risk - mean**2) * e[:, None]).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        chi2 = u**2 / info
    return np.nan_to_num(chi2, nan=0.0, posinf=0.0)


def cox_relevance(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Relevance on mRMR's [0, 1] scale: sqrt(score chi-square / n), as |r| ~ sqrt(chi2 / n) for 0/1."""
    return np.minimum(1.0, np.sqrt(cox_score_statistic(X, y) / len(y)))


def cox_lasso_support(X: np.ndarray, y: np.ndarray, k: int | None) -> np.ndarray:
    """Features of a Cox lasso path at its weakest penalty with at most ``k`` non-zero coefficients."""
    from sksurv.linear_model import CoxnetSurvivalAnalysis

    path = CoxnetSurvivalAnalysis(l1_ratio=1.0, n_alphas=30, alpha_min_ratio=0.01, max_iter=100_000).fit(X, y)
    nonzero = np.abs(path.coef_) > 0  # features x alphas, strongest penalty first
    limit = k if k is not None else X.shape[1]
    fits = [j for j in range(nonzero.shape[1]) if 0 < nonzero[:, j].sum() <= limit]
    support = nonzero[:, fits[-1]] if fits else np.zeros(X.shape[1], dtype=bool)
    if not support.any():
        support[int(np.argmax(cox_score_statistic(X, y)))] = True
    return support
