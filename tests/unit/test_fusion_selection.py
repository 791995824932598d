"""In-fold feature filters and ComBat harmonisation."""

import numpy as np
import pandas as pd
import pytest

from gcmlm.fusion.core.harmonize import ComBatHarmonizer
from gcmlm.fusion.core.selection import CorrelationPruner, KBest, L1Selector, MRMRSelector


def _signals(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    strong = y + rng.normal(scale=0.7, size=n)
    copy = strong + rng.normal(scale=0.05, size=n)  # redundant with `strong`
    weak = y + rng.normal(scale=1.5, size=n)  # independent, less relevant
    noise = rng.normal(size=(n, 5))
    return np.column_stack([strong, copy, weak, noise]), y


def test_mrmr_prefers_an_independent_feature_over_a_redundant_copy():
    X, y = _signals()
    anova = KBest(k=2).fit(X, y)
    assert set(np.flatnonzero(anova.get_support())) == {0, 1}  # relevance only: the copy
    mrmr = MRMRSelector(k=2).fit(X, y)
    assert mrmr.ranking_[0] in (0, 1) and mrmr.ranking_[1] == 2  # redundancy penalised: the weak one


def test_correlation_pruner_keeps_the_more_relevant_of_a_pair():
    X, y = _signals()
    pruner = CorrelationPruner(0.9).fit(X, y)
    kept = set(np.flatnonzero(pruner.get_support()))
    assert len(kept & {0, 1}) == 1 and {2, 3, 4, 5, 6, 7} <= kept
    assert CorrelationPruner(1.0).fit(X, y).get_support().all()


def test_l1_selector_finds_the_signal_and_caps_k():
    X, y = _signals()
    sel = L1Selector(C=0.1, k=1).fit(X, y)
    assert np.flatnonzero(sel.get_support()).tolist() in ([0], [1])


def test_selectors_cap_k_at_the_features_left():
    X, y = _signals()
    assert MRMRSelector(k=50).fit(X[:, :3], y).get_support().sum() == 3
    assert KBest(k=50).fit(X[:, :3], y).get_support().sum() == 3


def _centres(seed=0, n=90):
    rng = np.random.default_rng(seed)
    centre = np.array(["A", "B", "C"] * (n // 3))
    offset = {"A": 0.0, "B": 3.0, "C": -2.0}
    scale = {"A": 1.0, "B": 2.0, "C": 0.5}
    X = rng.normal(size=(n, 4))
    X = np.array([x * scale[c] + offset[c] for x, c in zip(X, centre, strict=True)])
    frame = pd.DataFrame(X, columns=[f"rad_{i}" for i in range(4)])
    frame["constant"] = 1.0
    frame["centre"] = centre
    return frame


def test_combat_removes_centre_location_and_scale_and_applies_to_new_patients():
    train, new = _centres(0, n=600), _centres(1, n=900)
    combat = ComBatHarmonizer("centre").fit(train)
    out = pd.DataFrame(combat.transform(train)[:, :4])
    means = out.groupby(train["centre"].to_numpy()).mean()
    sds = out.groupby(train["centre"].to_numpy()).std()
    raw_means = train.iloc[:, :4].groupby(train["centre"]).mean()
    assert (means.max() - means.min()).max() < 0.5 < (raw_means.max() - raw_means.min()).min()
    assert (sds.max() / sds.min()).max() < 1.6
    assert np.all(combat.transform(train)[:, 4] == 1.0)  # constant feature left alone
    new_out = pd.DataFrame(combat.transform(new)[:, :4]).groupby(new["centre"].to_numpy()).mean()
    assert (new_out.max() - new_out.min()).max() < 0.6  # learned estimates carry over to new patients


def test_combat_passes_unseen_centres_through(caplog):
    train, new = _centres(0), _centres(1)
    new["centre"] = "Z"
    combat = ComBatHarmonizer("centre").fit(train)
    assert combat.transform(new) == pytest.approx(new.drop(columns="centre").to_numpy())
    assert "not in the training data" in caplog.text


def _pruned_one_row_at_a_time(X, y, threshold):
    """The pruner's first form: check each visited feature against every kept one."""
    from sklearn.feature_selection import f_classif

    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(np.abs(np.corrcoef(X, rowvar=False)), nan=0.0)
    keep = np.zeros(X.shape[1], dtype=bool)
    for j in np.argsort(-np.nan_to_num(f_classif(X, y)[0], nan=-1.0), kind="stable"):
        if not (corr[j, keep] > threshold).any():
            keep[j] = True
    return keep


@pytest.mark.parametrize("threshold", [0.3, 0.7, 0.9])
def test_correlation_pruner_keeps_what_the_one_row_at_a_time_form_kept(threshold):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    base = rng.normal(size=(60, 8))
    X = np.column_stack([base @ rng.normal(size=(8, 120)) + rng.normal(scale=0.5, size=(60, 120)),
                         np.ones(60)])  # correlated blocks, and a constant column (NaN correlations)
    pruner = CorrelationPruner(threshold).fit(X, y)
    assert np.array_equal(pruner.get_support(), _pruned_one_row_at_a_time(X, y, threshold))
