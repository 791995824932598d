"""Saved models: skops round trip, the type allow-list, predict's column check and risk groups."""

import argparse

import numpy as np
import pandas as pd
import pytest

from gcmlm.common.errors import GcmlmError
from gcmlm.fusion import fusion_predict as predict
from gcmlm.fusion.core import inputs
from gcmlm.fusion.core.models import ModelConfig, RiskModel, make_model
from gcmlm.fusion.core.synthetic import merged, planted_tables

MODEL = "tools/fusion-predict/tests/data/fused.skops"
NEW = "tools/fusion-predict/tests/data/new_patients.csv"


@pytest.fixture(scope="module")
def fitted():
    table = merged(planted_tables(60, seed=3))
    cols = {m: [c for c in table.columns if c.startswith(f"{m}_")] for m in ("rad", "clin")}
    config = ModelConfig(selection="mrmr", k_features=[2], tuning="none", inner_folds=3)
    est = make_model("stacked", cols, config).fit(table, table["mlm"].to_numpy())
    return table, RiskModel(name="stacked", estimator=est, features=cols["rad"] + cols["clin"], label="mlm",
                            threshold=0.4, tertiles=[0.3, 0.6], card={"config": config.describe()})


def test_skops_round_trip_gives_identical_scores(fitted, tmp_path):
    table, model = fitted
    inputs.save_model(model, tmp_path / "m.skops")
    loaded = inputs.load_model(tmp_path / "m.skops")
    assert isinstance(loaded, RiskModel) and loaded.features == model.features and loaded.threshold == 0.4
    np.testing.assert_array_equal(loaded.predict_risk(table), model.predict_risk(table))
    assert not list(tmp_path.glob("*.pkl"))


def test_types_outside_the_allow_list_are_refused(tmp_path):
    from collections import Counter

    from skops.io import dump

    dump(RiskModel(name="x", estimator=Counter("abc")), tmp_path / "evil.skops")
    with pytest.raises(GcmlmError, match="allow-list.*collections.Counter"):
        inputs.load_model(tmp_path / "evil.skops")


def test_predict_lists_every_missing_column(repo, tmp_path):
    table = pd.read_csv(repo / NEW).drop(columns=["path_noise2", "clin_signal"])
    table.to_csv(tmp_path / "partial.csv", index=False)
    args = argparse.Namespace(model=str(repo / MODEL), name=None, table=str(tmp_path / "partial.csv"),
                              out=str(tmp_path / "p.csv"), groups="threshold", cutoffs=None)
    with pytest.raises(GcmlmError, match=r"lacks 2 column\(s\) model 'fused' needs: path_noise2, clin_signal$"):
        predict.run(args)
    assert not (tmp_path / "p.csv").exists()


def test_predict_groups_come_from_training(repo, tmp_path):
    model = inputs.load_model(repo / MODEL)
    args = argparse.Namespace(model=str(repo / MODEL), name=None, table=str(repo / NEW), out=str(tmp_path / "p.csv"),
                              groups="tertiles", cutoffs=None)
    predict.run(args)
    out = pd.read_csv(tmp_path / "p.csv")
    low, high = model.tertiles
    expected = np.where(out["risk_score"] < low, "low", np.where(out["risk_score"] < high, "intermediate", "high"))
    assert out["risk_group"].tolist() == expected.tolist()
    assert out["patient_id"].tolist() == [f"X{i:03d}" for i in range(10)]


def test_risk_group_names():
    assert predict.risk_groups(np.array([0.1, 0.5, 0.9]), [0.5]) == ["low", "high", "high"]
    assert predict.risk_groups(np.array([0.1, 0.5, 0.9]), [0.2, 0.8]) == ["low", "intermediate", "high"]
