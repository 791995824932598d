"""fusion-train: what it sets aside from a table, and the output it refuses to replace."""

import dataclasses
import json
import logging

import numpy as np
import pandas as pd
import pytest

from gcmlm.common.errors import GcmlmError
from gcmlm.fusion.fusion_train import TrainSettings, train_models

TRAIN_TABLE = "tools/fusion-train/tests/data/train.csv"
FAST = TrainSettings(models=("rad", "clin"), outer_folds=3, outer_repeats=1, inner_folds=3, tuning="none",
                     k_features=(3,))


def test_unprefixed_and_uninformative_columns_are_warned_about_and_recorded(repo, tmp_path, caplog):
    table = pd.read_csv(repo / TRAIN_TABLE, dtype={"patient_id": str})
    table["age"] = np.arange(len(table))  # numeric, no prefix: never a feature
    table["centre"] = "A"  # text: plainly not a feature, not listed
    table["clin_constant"] = 1.0
    table["rad_empty"] = np.nan
    with caplog.at_level(logging.WARNING, logger="gcmlm"):
        result = train_models(table, "mlm", FAST, tmp_path / "model", source="cohort")
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "age" in warnings and "clin_constant" in warnings and "rad_empty" in warnings
    for name in ("metrics.json", "model_card.json"):
        design = json.loads((tmp_path / "model" / name).read_text())["design"]
        assert design["ignored_columns"] == ["age"]
        assert design["dropped_features"] == {"all_missing": ["rad_empty"], "constant": ["clin_constant"]}
    assert "clin_constant" not in result.models["clin"].features
    assert "rad_empty" not in result.models["rad"].features
    assert "age" in (tmp_path / "model" / "report.html").read_text()


def test_an_existing_file_as_output_folder_is_refused_and_kept(repo, tmp_path):
    out = tmp_path / "results.txt"
    out.write_text("the user's notes\n")
    with pytest.raises(GcmlmError, match="existing file; refusing to replace it"):
        train_models(repo / TRAIN_TABLE, "mlm", FAST, out)
    assert out.read_text() == "the user's notes\n"


@pytest.mark.parametrize(("field", "value", "option"), [("outer_folds", 1, "--outer-folds"),
                                                        ("corr_threshold", float("nan"), "--corr-threshold"),
                                                        ("k_features", (0,), "--k-features")])
def test_settings_out_of_range_name_the_option(field, value, option):
    with pytest.raises(GcmlmError, match=f"^{option}: must be"):
        TrainSettings(**{field: value})


def test_outcome_that_is_a_feature_is_refused(repo):
    with pytest.raises(GcmlmError, match="'clin_signal' is also a feature column"):
        train_models(repo / TRAIN_TABLE, "clin_signal", FAST)


def test_parallel_outer_splits_give_the_serial_run_byte_for_byte(repo, tmp_path):
    """--n-jobs only changes how many outer splits run at once: every output table is identical."""
    settings = TrainSettings(models=("rad", "clin"), outer_folds=3, outer_repeats=1, inner_folds=3, tuning="fast",
                             k_features=(3,))
    for n_jobs in (1, 2):
        train_models(repo / TRAIN_TABLE, "mlm", dataclasses.replace(settings, n_jobs=n_jobs), tmp_path / f"jobs{n_jobs}")
    for name in ("oof_predictions.csv", "selected_features.csv", "metrics.json"):
        assert (tmp_path / "jobs1" / name).read_bytes() == (tmp_path / "jobs2" / name).read_bytes(), name
