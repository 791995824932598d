"""In-fold feature filters as sklearn transformers, so they are refit on every training fold.

``CorrelationPruner`` and ``MRMRSelector`` are written here: no maintained package offers them
with sklearn's fit/transform (``mrmr-selection`` is a one-shot function on a whole table, which
is exactly the leak a pipeline step must avoid).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_selection import SelectorMixin, f_classif
from sklearn.utils.validation import check_is_fitted, validate_data


def _f_scores(X: np.ndarray, y) -> np.ndarray:
    """ANOVA F with a 0/1 outcome; for a survival outcome the univariate Cox score chi-square."""
    from gcmlm.fusion.core import survival

    if survival.is_survival(y):
        return survival.cox_score_statistic(X, y)
    return f_classif(X, y)[0]


def _abs_corr(X: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.abs(np.corrcoef(X, rowvar=False))
    return np.nan_to_num(np.atleast_2d(c), nan=0.0)


def _greedy_keep(too_close: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Visit features in ``order``; keep one unless it is too close to a feature kept before it.

    Each kept feature blocks its whole column at once, so the loop does vector work only per
    kept feature (not a row look-up per visited one); the result is the same as checking
    ``too_close[j, kept]`` for every visited ``j``.
    """
    keep = np.zeros(too_close.shape[1], dtype=bool)
    blocked = np.zeros(too_close.shape[0], dtype=bool)
    for j in order:
        if not blocked[j]:
            keep[j] = True
            blocked |= too_close[:, j]
    return keep


class CorrelationPruner(SelectorMixin, BaseEstimator):
    """Drop features whose |Pearson r| with an already kept feature exceeds ``threshold``.

    Features are visited in decreasing order of ANOVA F with the outcome, so of two redundant
    features the more informative one stays. ``threshold >= 1`` keeps everything.
    """

    def __init__(self, threshold: float = 0.9):
        self.threshold = threshold

    def fit(self, X, y):
        X = validate_data(self, X, ensure_all_finite="allow-nan")
        keep = np.zeros(X.shape[1], dtype=bool)
        if self.threshold >= 1 or X.shape[1] < 2:
            keep[:] = True
        else:
            too_close = _abs_corr(X) > self.threshold
            order = np.argsort(-np.nan_to_num(_f_scores(X, y), nan=-1.0), kind="stable")
            keep[:] = _greedy_keep(too_close, order)
        self.support_ = keep
        return self

    def _get_support_mask(self):
        check_is_fitted(self, "support_")
        return self.support_


class MRMRSelector(SelectorMixin, BaseEstimator):
    """Minimum redundancy maximum relevance (Ding & Peng 2005), difference ("MID") form.

    Relevance is |Pearson r| with the outcome (for a binary outcome, a monotone function of the
    ANOVA F), redundancy the mean |r| with the features already chosen; each greedy step adds
    the feature maximising relevance - redundancy. Both terms are on the same [0, 1] scale,
    which avoids the quotient form's preference for pure noise (near-zero redundancy).
    """

    def __init__(self, k: int = 10):
        self.k = k

    def fit(self, X, y):
        X = validate_data(self, X)
        from gcmlm.fusion.core import survival

        k = min(self.k, X.shape[1])
        if survival.is_survival(y):  # relevance sqrt(chi2 / n) of the Cox score test, on |r|'s scale
            relevance, corr = survival.cox_relevance(X, y), _abs_corr(X)
        else:
            corr = _abs_corr(np.column_stack([X, y]))
            relevance, corr = corr[:-1, -1], corr[:-1, :-1]
        chosen = [int(np.argmax(relevance))]
        redundancy = corr[chosen[0]].copy()
        while len(chosen) < k:
            score = relevance - redundancy / len(chosen)
            score[chosen] = -np.inf
            nxt = int(np.argmax(score))
            chosen.append(nxt)
            redundancy += corr[nxt]
        self.ranking_ = np.array(chosen)
        self.support_ = np.zeros(X.shape[1], dtype=bool)
        self.support_[chosen] = True
        return self

    def _get_support_mask(self):
        check_is_fitted(self, "support_")
        return self.support_


class KBest(SelectorMixin, BaseEstimator):
    """ANOVA F top-k that caps k at the number of features left after earlier steps."""

    def __init__(self, k: int = 10):
        self.k = k

    def fit(self, X, y):
        X = validate_data(self, X)
        f = np.nan_to_num(_f_scores(X, y), nan=0.0)
        order = np.argsort(-f, kind="stable")[: min(self.k, X.shape[1])]
        self.scores_ = f
        self.support_ = np.zeros(X.shape[1], dtype=bool)
        self.support_[order] = True
        return self

    def _get_support_mask(self):
        check_is_fitted(self, "support_")
        return self.support_


class L1Selector(SelectorMixin, BaseEstimator):
    """Features with non-zero coefficients in an L1 logistic regression (at most ``k``, by |coef|).

    If the penalty zeroes every feature, the one with the largest |coef| at a weaker penalty
    would be arbitrary; we keep the single feature with the largest ANOVA F instead.
    """

    def __init__(self, C: float = 0.1, k: int | None = None, random_state: int = 0):
        self.C, self.k, self.random_state = C, k, random_state

    def fit(self, X, y):
        from sklearn.linear_model import LogisticRegression

        X = validate_data(self, X)
        from gcmlm.fusion.core import survival

        if survival.is_survival(y):  # a Cox lasso path instead of the logistic one
            self.support_ = survival.cox_lasso_support(X, y, self.k)
            return self
        model = LogisticRegression(l1_ratio=1.0, C=self.C, solver="liblinear", class_weight="balanced",
                                   random_state=self.random_state, max_iter=2000)
        coef = np.abs(model.fit(X, y).coef_.ravel())
        self.support_ = coef > 0
        if self.k is not None and self.support_.sum() > self.k:
            self.support_ = np.zeros_like(self.support_)
            self.support_[np.argsort(-coef, kind="stable")[: self.k]] = True
        if not self.support_.any():
            self.support_[int(np.argmax(np.nan_to_num(f_classif(X, y)[0], nan=0.0)))] = True
        return self

    def _get_support_mask(self):
        check_is_fitted(self, "support_")
        return self.support_


class Passthrough(TransformerMixin, BaseEstimator):
    """A named no-op step, so every pipeline has the same step names."""

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        return X

    def get_feature_names_out(self, input_features=None):
        return np.asarray(input_features) if input_features is not None else None


def make_selector(method: str, k: int, random_state: int = 0):
    if method == "none":
        return Passthrough()
    if method == "anova":
        return KBest(k=k)
    if method == "mrmr":
        return MRMRSelector(k=k)
    if method == "l1":
        return L1Selector(k=k, random_state=random_state)
    raise ValueError(f"unknown selection method '{method}'")
