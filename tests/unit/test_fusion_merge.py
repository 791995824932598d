"""fusion-merge: join report and the fail / drop / impute policies."""

import argparse
import json

import pandas as pd
import pytest

from gcmlm.common.errors import GcmlmError
from gcmlm.fusion import fusion_merge as merge

DATA = "tools/fusion-merge/tests/data"


def _run(repo, tmp_path, tables, policy):
    args = argparse.Namespace(tables=[str(repo / DATA / t) for t in tables], out=str(tmp_path / "merged.csv"),
                              report=str(tmp_path / "report.json"), policy=policy)
    merge.run(args)
    return pd.read_csv(args.out, dtype={"patient_id": str}), json.loads((tmp_path / "report.json").read_text())


def test_clean_tables_join_with_outcome_passed_through(repo, tmp_path):
    table, report = _run(repo, tmp_path, ["rad.csv", "path.csv", "clin.csv"], "fail")
    assert len(table) == 48 and report["problem_patients"] == {}
    assert table.columns[0] == "patient_id" and "mlm" in table.columns
    assert table["mlm"].isin([0, 1]).all() and table["mlm"].sum() == 19
    clin = pd.read_csv(repo / DATA / "clin.csv", dtype={"patient_id": str}).set_index("patient_id")
    assert table.set_index("patient_id").loc[clin.index, "clin_signal"].tolist() == clin["clin_signal"].tolist()


def test_fail_policy_stops_and_still_reports_every_problem(repo, tmp_path):
    with pytest.raises(GcmlmError, match="3 patient"):
        _run(repo, tmp_path, ["rad.csv", "path_problems.csv", "clin.csv"], "fail")
    assert not (tmp_path / "merged.csv").exists()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["duplicated_ids"] == {"path_problems.csv": ["P000"]}
    assert report["absent_ids"] == {"path_problems.csv": ["P007"]}
    assert report["non_numeric_values"] == [{"table": "path_problems.csv", "patient_id": "P005",
                                             "column": "path_noise0", "value": "n/a?"}]


def test_drop_policy_lists_the_dropped_patients(repo, tmp_path):
    table, report = _run(repo, tmp_path, ["rad.csv", "path_problems.csv", "clin.csv"], "drop")
    assert report["dropped_patients"] == ["P000", "P005", "P007"]
    assert len(table) == 45 and not table["patient_id"].isin(["P000", "P005", "P007"]).any()
    assert report["merged_patients"] + len(report["dropped_patients"]) == report["patients_in_any_table"]


def test_impute_policy_keeps_everyone_with_empty_cells(repo, tmp_path):
    table, report = _run(repo, tmp_path, ["rad.csv", "path_problems.csv", "clin.csv"], "impute")
    assert len(table) == 48 and report["dropped_patients"] == []
    rows = table.set_index("patient_id")
    path_cols = [c for c in table.columns if c.startswith("path_")]
    assert rows.loc["P000", path_cols].isna().all() and rows.loc["P007", path_cols].isna().all()
    assert rows.loc["P005", path_cols].isna().tolist() == [c == "path_noise0" for c in path_cols]
    rad = pd.read_csv(repo / DATA / "rad.csv", dtype={"patient_id": str}).set_index("patient_id")
    assert rows.loc["P000", "rad_signal"] == rad.loc["P000", "rad_signal"]  # other modalities untouched
    assert report["missing_cells_after_merge"] == 6 + 6 + 1


def test_conflicting_pass_through_column_is_an_error(repo, tmp_path):
    clin = pd.read_csv(repo / DATA / "clin.csv", dtype={"patient_id": str})
    rad = pd.read_csv(repo / DATA / "rad.csv", dtype={"patient_id": str})
    rad["mlm"] = 1 - clin["mlm"]
    rad.to_csv(tmp_path / "rad_with_outcome.csv", index=False)
    args = argparse.Namespace(tables=[str(tmp_path / "rad_with_outcome.csv"), str(repo / DATA / "clin.csv")],
                              out=str(tmp_path / "m.csv"), report=str(tmp_path / "r.json"), policy="impute")
    with pytest.raises(GcmlmError, match="'mlm' disagrees"):
        merge.run(args)


def test_same_table_twice_or_a_feature_column_in_two_tables_is_an_error(repo, tmp_path):
    args = argparse.Namespace(tables=[str(repo / DATA / "rad.csv"), str(repo / DATA / "rad.csv")],
                              out=str(tmp_path / "m.csv"), report=str(tmp_path / "r.json"), policy="fail")
    with pytest.raises(GcmlmError, match="given twice"):
        merge.run(args)
    (tmp_path / "rad_copy.csv").write_text((repo / DATA / "rad.csv").read_text())
    args.tables = [str(repo / DATA / "rad.csv"), str(tmp_path / "rad_copy.csv")]
    with pytest.raises(GcmlmError, match="feature column 'rad_signal' is also in"):
        merge.run(args)
    assert not (tmp_path / "m.csv").exists()
