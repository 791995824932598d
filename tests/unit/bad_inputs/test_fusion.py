"""Bad input to the fusion stages (fusion-merge, -train, -evaluate, -predict): one line, exit 2, nothing changed.

Every case runs a real `gcmlm <stage>` process (see harness.py) in a copy of one small kit: the
tools' fixtures (tools/fusion-*/tests/data) and broken variants of them made here. Every refusal
comes before any model is trained, loaded for scoring or written, so a case takes about as long as
starting Python with pandas and scikit-learn.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.unit.bad_inputs.harness import Case, assert_refused

TOOLS = Path(__file__).resolve().parents[3] / "tools"
LONG = "a" * 250  # an output name that, with the temporary suffix, is too long for the file system


def _variant(source: Path, dest: Path, change) -> None:
    table = pd.read_csv(source, dtype={"patient_id": str})
    changed = change(table)  # a new table, or None when ``table`` was changed in place
    (table if changed is None else changed).to_csv(dest, index=False)


def _set(column: str, row: int, value):
    """Change one cell (``None`` for patient_id: row 0's ID again, a duplicate)."""
    def change(table: pd.DataFrame) -> None:
        table[column] = table[column].astype(object)
        table.loc[row, column] = table.loc[0, column] if value is None and column == "patient_id" else value
    return change


def _make_kit(kit: Path) -> None:
    for stage, name in (("fusion-train", "train.csv"), ("fusion-evaluate", "external.csv"),
                        ("fusion-predict", "new_patients.csv"), ("fusion-predict", "missing_columns.csv"),
                        ("fusion-predict", "fused.skops"), ("fusion-merge", "rad.csv"), ("fusion-merge", "path.csv"),
                        ("fusion-merge", "clin.csv")):
        shutil.copy(TOOLS / stage / "tests" / "data" / name, kit / name)
    (kit / "afile.txt").write_text("the user's file\n")
    (kit / "adir").mkdir()
    (kit / "empty.csv").write_bytes(b"")
    model = (kit / "fused.skops").read_bytes()
    (kit / "trunc.skops").write_bytes(model[: len(model) // 2])
    (kit / "empty.skops").write_bytes(b"")
    (kit / "nomodels").mkdir()  # a training folder whose models are gone
    (kit / "nomodels" / "model_card.json").write_text(json.dumps({"default_model": "fused", "models": {"fused": {}}}))
    for source in ("train.csv", "external.csv", "new_patients.csv"):
        stem = Path(source).stem
        _variant(kit / source, kit / f"{stem}-header.csv", lambda t: t.iloc[:0])
        _variant(kit / source, kit / f"{stem}-dup.csv", _set("patient_id", 1, None))
        _variant(kit / source, kit / f"{stem}-inf.csv", _set("rad_noise0", 3, np.inf))
        _variant(kit / source, kit / f"{stem}-text.csv", _set("rad_noise0", 2, "high"))
    for source in ("train.csv", "external.csv"):
        stem = Path(source).stem
        _variant(kit / source, kit / f"{stem}-const.csv", lambda t: t.assign(mlm=0))
        _variant(kit / source, kit / f"{stem}-nolabel.csv", _set("mlm", 4, None))
        _variant(kit / source, kit / f"{stem}-label2.csv", _set("mlm", 4, 2))
    _variant(kit / "external.csv", kit / "external-lacks.csv", lambda t: t.drop(columns=["rad_noise0"]))
    _variant(kit / "train.csv", kit / "train-allconst.csv",
             lambda t: t.assign(**{c: 1.0 for c in t.columns if c.startswith(("rad_", "path_", "clin_"))}))
    _variant(kit / "train.csv", kit / "train-radonly.csv",
             lambda t: t.drop(columns=[c for c in t.columns if c.startswith(("path_", "clin_"))]))
    _variant(kit / "rad.csv", kit / "rad-copy.csv", lambda t: None)
    _variant(kit / "rad.csv", kit / "rad-header.csv", lambda t: t.iloc[:0])
    _variant(kit / "rad.csv", kit / "rad-firstcol.csv", lambda t: t.rename(columns={"patient_id": "id"}))
    (kit / "outcome.csv").write_text("patient_id,mlm\nP000,1\nP001,0\n")
    # patch features for --mil-features: one slide, of patient P000 only
    shutil.copy(TOOLS / "mil-train" / "tests" / "data" / "P00-A.h5", kit / "P000.h5")
    (kit / "other_map.csv").write_text("patient_id,slide_id\nP001,S1\n")
    _variant(kit / "train.csv", kit / "train-mil-logit.csv", lambda t: t.assign(mil_logit=0.0))


@pytest.fixture(scope="session")
def kit(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fusion-kit")
    _make_kit(folder)
    return folder


def _merge(*extra: str, tables=("rad.csv", "path.csv", "clin.csv"), out="m.csv", report="r.json") -> list[str]:
    return ["--tables", *tables, "--out", out, "--report", report, *extra]


def _train(*extra: str, table="train.csv", label="mlm", out="out") -> list[str]:
    return ["--table", table, "--label", label, "--out", out, "--models", "rad", "--outer-folds", "3",
            "--outer-repeats", "1", "--inner-folds", "3", "--tuning", "none", *extra]


def _evaluate(*extra: str, model="fused.skops", table="external.csv", label="mlm", out="ev") -> list[str]:
    return ["--model", model, "--table", table, "--label", label, "--out", out, "--bootstrap", "10", *extra]


def _predict(*extra: str, model="fused.skops", table="new_patients.csv", out="pred.csv") -> list[str]:
    return ["--model", model, "--table", table, "--out", out, *extra]


MERGE = [
    Case("missing-table", _merge(tables=("rad.csv", "nope.csv")), "nope.csv", "^no such file$"),
    Case("table-is-folder", _merge(tables=("rad.csv", "adir")), "adir", "is a folder; expected a file"),
    Case("empty-table", _merge(tables=("rad.csv", "empty.csv")), "empty.csv", "not a readable CSV"),
    Case("header-only-table", _merge(tables=("rad-header.csv", "path.csv")), "rad-header.csv", "no patients"),
    Case("binary-table", _merge(tables=("rad.csv", "fused.skops")), "fused.skops", "not a readable CSV|first column"),
    Case("first-column-not-id", _merge(tables=("rad-firstcol.csv", "path.csv")), "rad-firstcol.csv",
         "first column must be 'patient_id'"),
    Case("same-table-twice", _merge(tables=("rad.csv", "./rad.csv")), "./rad.csv", "same table is given twice"),
    Case("feature-in-two-tables", _merge(tables=("rad.csv", "rad-copy.csv")), "rad-copy.csv",
         "feature column 'rad_signal' is also in"),
    Case("no-feature-columns", _merge(tables=("outcome.csv",)), "outcome.csv", "no feature columns"),
    Case("out-is-folder", _merge(out="adir"), "adir", "existing folder"),
    Case("out-is-input", _merge(out="rad.csv"), "rad.csv", "overwrite the input"),
    Case("report-is-out", _merge(report="m.csv"), "m.csv", "same path"),
    Case("out-under-file", _merge(out="afile.txt/m.csv"), "afile.txt/m.csv", "is not a folder"),
    Case("report-name-too-long", _merge(report=f"{LONG}.json"), f"{LONG}.json", "name too long"),
]

TRAIN = [
    Case("missing-table", _train(table="nope.csv"), "nope.csv", "^no such file$"),
    Case("table-is-folder", _train(table="adir"), "adir", "is a folder; expected a file"),
    Case("empty-table", _train(table="empty.csv"), "empty.csv", "not a readable CSV"),
    Case("header-only-table", _train(table="train-header.csv"), "train-header.csv", "no patients"),
    Case("model-file-as-table", _train(table="fused.skops"), "fused.skops", "not a readable CSV|first column"),
    Case("duplicated-ids", _train(table="train-dup.csv"), "train-dup.csv", "duplicated patient_id: P000"),
    Case("no-label-column", _train(label="outcome"), "train.csv", "no outcome column 'outcome'"),
    Case("label-is-a-feature", _train(label="clin_signal"), "train.csv",
         "outcome column 'clin_signal' is also a feature column"),
    Case("label-constant", _train(table="train-const.csv"), "train-const.csv", "one class only"),
    Case("label-missing-values", _train(table="train-nolabel.csv"), "train-nolabel.csv",
         "missing for 1 patient.*P004"),
    Case("label-not-binary", _train(table="train-label2.csv"), "train-label2.csv", "must be 0/1, found 2"),
    Case("infinite-feature", _train(table="train-inf.csv"), "train-inf.csv",
         r"infinite values in column\(s\) rad_noise0 for patient\(s\) P003"),
    Case("text-feature", _train(table="train-text.csv"), "train-text.csv", "non-numeric feature column.*rad_noise0"),
    Case("all-features-constant", _train(table="train-allconst.csv"), "train-allconst.csv",
         "every feature column is constant"),
    Case("other-modality-only", _train("--models", "path", table="train-radonly.csv"), "train-radonly.csv",
         "no path feature columns"),
    Case("out-is-file", _train(out="afile.txt"), "afile.txt", "existing file; refusing to replace it"),
    Case("out-is-input", _train(out="train.csv"), "train.csv", "existing file"),
    Case("out-under-file", _train(out="afile.txt/out"), "afile.txt/out", "is not a folder"),
    Case("out-name-too-long", _train(out=LONG), LONG, "name too long"),
    Case("outer-folds-one", _train("--outer-folds", "1"), "--outer-folds", ">= 2, got 1"),
    Case("outer-repeats-zero", _train("--outer-repeats", "0"), "--outer-repeats", ">= 1, got 0"),
    Case("k-features-zero", _train("--k-features", "0"), "--k-features", ">= 1, got 0"),
    Case("corr-threshold-nan", _train("--corr-threshold", "nan"), "--corr-threshold", r"within \(0, 1\]"),
    Case("corr-threshold-negative", _train("--corr-threshold", "-0.5"), "--corr-threshold", r"within \(0, 1\]"),
    Case("seed-negative", _train("--seed", "-1"), "--seed", "within"),
    Case("n-jobs-zero", _train("--n-jobs", "0"), "--n-jobs", "got 0"),
    Case("mil-features-missing", _train("--mil-features", "nope.h5"), "nope.h5", "^no such file$"),
    Case("mil-slide-not-in-map", _train("--mil-features", "P000.h5", "--slide-map", "other_map.csv"), "P000.h5",
         "slide 'P000' is not in the slide map"),
    Case("mil-patients-without-slides", _train("--mil-features", "P000.h5"), "train.csv",
         "patient.s. of the table have no slide in --mil-features: P001"),
    Case("mil-logit-in-table", _train("--mil-features", "P000.h5", table="train-mil-logit.csv"),
         "train-mil-logit.csv", "already has a 'mil_logit' column"),
    Case("slide-map-without-features", _train("--slide-map", "other_map.csv"), "--slide-map",
         "only used with --mil-features"),
    Case("out-is-mil-features", _train("--mil-features", "P000.h5", out="P000.h5"), "P000.h5", "existing file"),
]

EVALUATE = [
    Case("missing-model", _evaluate(model="nope.skops"), "nope.skops", "no such model file"),
    Case("csv-as-model", _evaluate(model="train.csv"), "train.csv", "not a readable skops model"),
    Case("truncated-model", _evaluate(model="trunc.skops"), "trunc.skops", "not a readable skops model"),
    Case("empty-model", _evaluate(model="empty.skops"), "empty.skops", "not a readable skops model"),
    Case("folder-without-card", _evaluate(model="adir"), "adir", "not a fusion-train output folder"),
    Case("folder-without-models", _evaluate(model="nomodels"), "nomodels/models/fused.skops", "no such model file"),
    Case("missing-table", _evaluate(table="nope.csv"), "nope.csv", "no such file"),
    Case("table-is-folder", _evaluate(table="adir"), "adir", "is a folder"),
    Case("empty-table", _evaluate(table="empty.csv"), "empty.csv", "not a readable CSV"),
    Case("header-only-table", _evaluate(table="external-header.csv"), "external-header.csv", "no patients"),
    Case("table-lacks-model-columns", _evaluate(table="external-lacks.csv"), "external-lacks.csv",
         "lacks 1 column.*rad_noise0"),
    Case("duplicated-ids", _evaluate(table="external-dup.csv"), "external-dup.csv", "duplicated patient_id"),
    Case("wrong-label-column", _evaluate(label="outcome"), "external.csv", "no outcome column 'outcome'"),
    Case("label-is-a-feature", _evaluate(label="rad_signal"), "external.csv", "also a feature column"),
    Case("label-one-class", _evaluate(table="external-const.csv"), "external-const.csv", "one class only"),
    Case("label-missing-values", _evaluate(table="external-nolabel.csv"), "external-nolabel.csv", "missing for 1"),
    Case("text-in-model-column", _evaluate(table="external-text.csv"), "external-text.csv",
         r"non-numeric values in column\(s\) rad_noise0"),
    Case("infinite-in-model-column", _evaluate(table="external-inf.csv"), "external-inf.csv",
         r"infinite values in column\(s\) rad_noise0 for patient\(s\) X003"),
    Case("out-is-file", _evaluate(out="afile.txt"), "afile.txt", "existing file"),
    Case("out-is-model", _evaluate(out="fused.skops"), "fused.skops", "existing file"),
    Case("out-holds-input", _evaluate(out=".", table="external.csv"), ".", "overwrite the input"),
    Case("out-under-file", _evaluate(out="afile.txt/ev"), "afile.txt/ev", "is not a folder"),
    Case("bootstrap-zero", _evaluate("--bootstrap", "0"), "--bootstrap", ">= 1, got 0"),
    Case("seed-negative", _evaluate("--seed", "-3"), "--seed", "within"),
]

PREDICT = [
    Case("missing-model", _predict(model="nope.skops"), "nope.skops", "no such model file"),
    Case("csv-as-model", _predict(model="train.csv"), "train.csv", "not a readable skops model"),
    Case("truncated-model", _predict(model="trunc.skops"), "trunc.skops", "not a readable skops model"),
    Case("folder-without-card", _predict(model="adir"), "adir", "not a fusion-train output folder"),
    Case("folder-without-models", _predict(model="nomodels"), "nomodels/models/fused.skops", "no such model file"),
    Case("missing-table", _predict(table="nope.csv"), "nope.csv", "no such file"),
    Case("table-is-folder", _predict(table="adir"), "adir", "is a folder"),
    Case("empty-table", _predict(table="empty.csv"), "empty.csv", "not a readable CSV"),
    Case("header-only-table", _predict(table="new_patients-header.csv"), "new_patients-header.csv", "no patients"),
    Case("table-lacks-model-columns", _predict(table="missing_columns.csv"), "missing_columns.csv",
         r"lacks 2 column\(s\)"),
    Case("duplicated-ids", _predict(table="new_patients-dup.csv"), "new_patients-dup.csv", "duplicated patient_id"),
    Case("text-in-model-column", _predict(table="new_patients-text.csv"), "new_patients-text.csv", "non-numeric"),
    Case("infinite-in-model-column", _predict(table="new_patients-inf.csv"), "new_patients-inf.csv",
         r"infinite values .* X003"),
    Case("cutoff-above-one", _predict("--cutoffs", "0.2", "1.5"), "--cutoffs", r"within \(0, 1\), got 1.5"),
    Case("cutoff-zero", _predict("--cutoffs", "0"), "--cutoffs", r"within \(0, 1\)"),
    Case("cutoff-negative", _predict("--cutoffs", "-0.1", "0.5"), "--cutoffs", r"within \(0, 1\)"),
    Case("cutoff-nan", _predict("--cutoffs", "nan"), "--cutoffs", r"within \(0, 1\)"),
    Case("cutoffs-unsorted", _predict("--cutoffs", "0.6", "0.2"), "--cutoffs", "strictly increasing"),
    Case("cutoffs-duplicated", _predict("--cutoffs", "0.3", "0.3"), "--cutoffs", "strictly increasing"),
    Case("out-is-folder", _predict(out="adir"), "adir", "existing folder"),
    Case("out-is-table", _predict(out="new_patients.csv"), "new_patients.csv", "overwrite the input"),
    Case("out-is-model", _predict(out="fused.skops"), "fused.skops", "overwrite the input"),
    Case("out-under-file", _predict(out="afile.txt/p.csv"), "afile.txt/p.csv", "is not a folder"),
    Case("out-name-too-long", _predict(out=f"{LONG}.csv"), f"{LONG}.csv", "name too long"),
]


@pytest.mark.parametrize("case", MERGE, ids=lambda c: c.id)
def test_fusion_merge_refuses(case, work):
    assert_refused("fusion-merge", case, work)


@pytest.mark.parametrize("case", TRAIN, ids=lambda c: c.id)
def test_fusion_train_refuses(case, work):
    assert_refused("fusion-train", case, work)


@pytest.mark.parametrize("case", EVALUATE, ids=lambda c: c.id)
def test_fusion_evaluate_refuses(case, work):
    assert_refused("fusion-evaluate", case, work)


@pytest.mark.parametrize("case", PREDICT, ids=lambda c: c.id)
def test_fusion_predict_refuses(case, work):
    assert_refused("fusion-predict", case, work)
