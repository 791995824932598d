"""ComBat harmonisation by centre as an sklearn transformer, refit on every training fold.

Estimation uses neuroCombat (Fortin et al. 2017/2018, the reference Python port of Johnson's
ComBat used in imaging): design matrix, location/scale model and empirical-Bayes batch effects.
Applying learned estimates to new patients is the ComBat adjustment
``((x - mean) / sd - gamma*_b) / sqrt(delta*_b) * sd + mean``, written here because
neuroCombatFromTraining fails on NumPy >= 2 and neuroHarmonize pins numpy < 2 and pandas < 3.
A centre not seen in training (or with fewer than 2 training patients) cannot be harmonised:
its patients pass through unchanged and a warning is logged.
"""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

log = logging.getLogger("gcmlm")


class ComBatHarmonizer(TransformerMixin, BaseEstimator):
    """Takes a DataFrame with the feature columns and ``batch_column``; returns the features."""

    def __init__(self, batch_column: str, min_batch_size: int = 2):
        self.batch_column, self.min_batch_size = batch_column, min_batch_size

    def _split(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(X, pd.DataFrame) or self.batch_column not in X.columns:
            raise ValueError(f"ComBat needs the centre column '{self.batch_column}'")
        batch = X[self.batch_column].astype(str).to_numpy()
        feats = X.drop(columns=[self.batch_column]).to_numpy(dtype=float)
        return feats, batch

    def fit(self, X, y=None):
        from neuroCombat import neuroCombat

        feats, batch = self._split(X)
        self.feature_names_in_ = np.array([c for c in X.columns if c != self.batch_column], dtype=object)
        self.n_features_in_ = X.shape[1]
        levels, counts = np.unique(batch, return_counts=True)
        usable = levels[counts >= self.min_batch_size]
        rows = np.isin(batch, usable)
        sd = feats[rows].std(axis=0)
        self.varying_ = sd > 0  # ComBat divides by the pooled SD: constant features stay as they are
        self.batches_ = usable
        if len(usable) < 2 or not self.varying_.any():
            self.gamma_star_ = self.delta_star_ = None
            return self
        with contextlib.redirect_stdout(io.StringIO()):  # neuroCombat prints its progress
            est = neuroCombat(dat=feats[rows][:, self.varying_].T,
                              covars=pd.DataFrame({"batch": batch[rows]}), batch_col="batch")["estimates"]
        self.batches_ = np.array(est["batches"], dtype=str)
        self.var_pooled_ = np.asarray(est["var.pooled"], dtype=float).ravel()
        self.stand_mean_ = (np.asarray(est["stand.mean"])[:, 0] + np.asarray(est["mod.mean"]).mean(axis=1))
        self.gamma_star_ = np.asarray(est["gamma.star"], dtype=float)
        self.delta_star_ = np.asarray(est["delta.star"], dtype=float)
        return self

    def transform(self, X):
        check_is_fitted(self, "varying_")
        feats, batch = self._split(X)
        out = feats.copy()
        if self.gamma_star_ is None:
            return out
        unseen = sorted(set(batch) - set(self.batches_))
        if unseen:
            log.warning("ComBat: centre(s) %s not in the training data; their features are not harmonised",
                        ", ".join(unseen))
        sd = np.sqrt(self.var_pooled_)
        block = feats[:, self.varying_]
        for i, b in enumerate(self.batches_):
            rows = batch == b
            z = (block[rows] - self.stand_mean_) / sd
            block[rows] = (z - self.gamma_star_[i]) / np.sqrt(self.delta_star_[i]) * sd + self.stand_mean_
        out[:, self.varying_] = block
        return out

    def get_feature_names_out(self, input_features=None):
        return self.feature_names_in_
