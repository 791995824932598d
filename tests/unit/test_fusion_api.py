"""The fusion branch from Python: typed settings and functions give what the CLI gives."""

import argparse
import hashlib

import pandas as pd
import pytest

from gcmlm.common.errors import GcmlmError
from gcmlm.fusion import fusion_evaluate, fusion_merge, fusion_predict, fusion_train

MERGE_DATA = "tools/fusion-merge/tests/data"
TRAIN_TABLE = "tools/fusion-train/tests/data/train.csv"
NEW = "tools/fusion-predict/tests/data/new_patients.csv"


def _sha1(path) -> str:
    return hashlib.sha1(open(path, "rb").read()).hexdigest()


def test_readme_example(repo, tmp_path, monkeypatch):
    """The README's example, as written there (paths relative to the repository)."""
    monkeypatch.chdir(repo)
    # --- README example ---
    from gcmlm.fusion.fusion_merge import merge_tables
    from gcmlm.fusion.fusion_predict import predict_risk
    from gcmlm.fusion.fusion_train import TrainSettings, train_models

    data = "tools/fusion-merge/tests/data"
    merged = merge_tables([f"{data}/rad.csv", f"{data}/path.csv", f"{data}/clin.csv"]).table
    settings = TrainSettings(models=("rad", "clin", "fused"), outer_folds=3, outer_repeats=1, inner_folds=3,
                             tuning="none", selection="anova", k_features=(4,))
    trained = train_models("tools/fusion-train/tests/data/train.csv", "mlm", settings, out_dir=tmp_path / "model")
    print({name: round(s["auc"], 3) for name, s in trained.summary.items()})  # nested-CV AUCs
    risk = predict_risk(trained.models["fused"], "tools/fusion-predict/tests/data/new_patients.csv")
    print(risk.table)  # patient_id, model, risk_score, risk_group (low/high at the training threshold)
    # --- end ---
    assert len(merged) == 48 and set(trained.models) == {"rad", "clin", "fused"}
    assert len(risk.table) == 10 and risk.cutoffs == [trained.models["fused"].threshold]
    # the same out-of-fold scores as `gcmlm fusion-train` (pinned in tools/fusion-train/tests)
    assert _sha1(tmp_path / "model" / "oof_predictions.csv") == "1be2056440a4317512dd9ce92f74bb7641ba0859"


def test_defaults_live_in_the_settings_and_the_command_line_uses_them():
    parser = argparse.ArgumentParser()
    fusion_train.add_arguments(parser)
    args = parser.parse_args(["--table", "t.csv", "--label", "y", "--out", "o"])
    assert fusion_train.TrainSettings.from_args(args) == fusion_train.TrainSettings()
    parser = argparse.ArgumentParser()
    fusion_evaluate.add_arguments(parser)
    args = parser.parse_args(["--model", "m", "--table", "t.csv", "--label", "y", "--out", "o"])
    assert (args.bootstrap, args.seed) == (fusion_evaluate.DEFAULTS.bootstrap, fusion_evaluate.DEFAULTS.seed)


def test_settings_refuse_unknown_choices_and_are_immutable():
    with pytest.raises(ValueError, match="classifier must be one of"):
        fusion_train.TrainSettings(classifier="xgboost")
    with pytest.raises(ValueError, match="unknown model"):
        fusion_train.TrainSettings(models=["rad", "deep"])
    settings = fusion_train.TrainSettings(k_features=[2, 4])
    assert settings.k_features == (2, 4) and settings.model_config().k_features == [2, 4]
    with pytest.raises(AttributeError):
        settings.seed = 1


def test_in_memory_tables_are_checked_like_files(repo):
    table = pd.read_csv(repo / TRAIN_TABLE, dtype={"patient_id": str})
    table["rad_signal"] = table["rad_signal"].astype(str)
    with pytest.raises(GcmlmError, match="^cohort A: non-numeric feature column"):
        fusion_train.train_models(table, "mlm", fusion_train.TrainSettings(outer_folds=3, inner_folds=3),
                                  source="cohort A")


def test_fail_policy_raises_with_the_report(repo):
    with pytest.raises(fusion_merge.JoinProblems, match="3 patient") as caught:
        fusion_merge.merge_tables([repo / MERGE_DATA / t for t in ("rad.csv", "path_problems.csv", "clin.csv")])
    assert caught.value.report["merged_patients"] == 0 and len(caught.value.report["problem_patients"]) == 3


def test_predict_from_a_model_file_with_explicit_cutoffs(repo):
    risk = fusion_predict.predict_risk(repo / "tools/fusion-predict/tests/data/fused.skops", repo / NEW,
                                       cutoffs=[0.01, 0.1])
    assert risk.model.name == "fused" and risk.cutoff_source == "explicit cut-offs"
    groups = dict(zip(risk.table["patient_id"], risk.table["risk_group"], strict=True))
    assert [p for p, g in groups.items() if g == "intermediate"] == ["X004", "X006", "X009"]
