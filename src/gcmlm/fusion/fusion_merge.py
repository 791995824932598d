"""fusion-merge: join patient tables (radiology, pathology, clinical, ...) on patient_id.

Problems are found and listed in a join report, then the policy decides:
- duplicated patient IDs within a table,
- patients missing from some tables,
- non-numeric (or infinite) values in feature columns (rad_, path_, clin_).
``fail`` (default) stops with an error, ``drop`` leaves those patients out (listed in the report),
``impute`` keeps them with NaN in the affected cells for in-fold imputation during training
(a duplicated ID's rows in that table are discarded). No patient disappears unreported.
Other columns (an outcome, a centre) pass through; if two tables carry the same one, their
values must agree.

From Python: ``merge_tables(paths, policy)`` (then ``write_merge``); ``run(args)`` only turns the
command line into those arguments.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gcmlm.common.atomic import check_outputs, write_json
from gcmlm.common.errors import GcmlmError, one_line, require_file
from gcmlm.common.tables import MODALITIES, PATIENT_ID, feature_columns, write_patient_table

log = logging.getLogger("gcmlm")
POLICIES = ("fail", "drop", "impute")
DEFAULT_POLICY = "fail"
MISSING_TOKENS = {"", "NA", "NaN", "nan", "N/A", "NULL", "null", "None"}


@dataclass
class MergeResult:
    table: pd.DataFrame  # the merged patient table
    report: dict  # the join report


@dataclass
class InputTable:
    """One input table as read: feature columns parsed to numbers, and what was wrong in it."""

    name: str  # the file name, as the report shows it
    table: pd.DataFrame
    duplicated_ids: list[str]
    non_numeric: list[dict]  # cells that are not numbers (table, patient_id, column, value)
    empty_cells: int


class JoinProblems(GcmlmError):
    """Policy ``fail`` met problem patients; ``report`` is the join report to show the user."""

    def __init__(self, problem: str, report: dict):
        super().__init__(problem)
        self.report = report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tables", nargs="+", required=True, metavar="CSV",
                        help="patient tables; modalities are recognised by column prefix (rad_, path_, clin_)")
    parser.add_argument("--out", required=True, metavar="CSV", help="merged patient table")
    parser.add_argument("--report", required=True, metavar="JSON", help="join report")
    parser.add_argument("--policy", choices=POLICIES, default=DEFAULT_POLICY,
                        help="what to do with problem patients: fail (default), drop them, or keep them as NaN")


def run(args: argparse.Namespace) -> int:
    check_outputs(files=[args.out, args.report], inputs=args.tables)  # before any table is read
    try:
        result = merge_tables(args.tables, args.policy)
    except JoinProblems as exc:  # the report says which patients and why: write it, then stop
        write_json(args.report, exc.report)
        raise GcmlmError(exc.problem, args.report) from None
    write_merge(result, args.out, args.report)
    return 0


def merge_tables(paths: Sequence[str | os.PathLike], policy: str = DEFAULT_POLICY) -> MergeResult:
    """Join the tables on patient_id; problem patients are handled by ``policy`` and listed in the
    report. Policy ``fail`` with problems raises ``JoinProblems`` (it carries the report)."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    names = [str(p) for p in paths]
    seen: dict[str, str] = {}
    for name in names:  # the same file under two spellings (./rad.csv, rad.csv) counts as twice
        if seen.setdefault(os.path.realpath(name), name) != name or names.count(name) > 1:
            raise GcmlmError("the same table is given twice", name)
    inputs = {path: read_input(path) for path in names}
    if not any(feature_columns(item.table) for item in inputs.values()):
        raise GcmlmError("no feature columns (prefixes rad_, path_, clin_) in any table", names[0])
    check_feature_clashes(inputs)
    report, problems, all_ids = join_report(list(inputs.values()), policy)
    if problems and policy == "fail":
        first = next(iter(sorted(problems.items())))
        raise JoinProblems(f"{len(problems)} patient(s) with join problems (e.g. {first[0]}: {first[1][0]}); "
                           f"see the join report, or use --policy drop|impute",
                           {**report, "merged_patients": 0, "dropped_patients": []})
    dropped = sorted(problems) if policy == "drop" else []
    merged = join(inputs, [p for p in all_ids if p not in set(dropped)])
    features = feature_columns(merged)
    report.update({"merged_patients": len(merged), "dropped_patients": dropped,
                   "kept_with_missing_values": sorted(problems) if policy == "impute" else [],
                   "missing_cells_after_merge": int(merged[features].isna().to_numpy().sum())})
    return MergeResult(merged, report)


def write_merge(result: MergeResult, out: str | os.PathLike, report_path: str | os.PathLike) -> None:
    write_patient_table(result.table, out)
    write_json(report_path, result.report)
    report = result.report
    passed = [c for c in result.table.columns[1:] if c not in feature_columns(result.table)]
    if passed:  # fusion-train reads prefixed columns only: say which ones are not features
        log.info("passed through, not features (no rad_/path_/clin_ prefix): %s", ", ".join(passed))
    log.info("merged %d tables: %d patients, %d features; %d problem patients (%s)", len(report["tables"]),
             len(result.table), len(feature_columns(result.table)), len(report["problem_patients"]), report["policy"])


# --- read and check ------------------------------------------------------------------------------------

def read_input(path: str) -> InputTable:
    table, bad, empty = parse_features(read_raw(path), path)
    dupes = sorted(set(table.loc[table[PATIENT_ID].duplicated(), PATIENT_ID]))
    return InputTable(Path(path).name, table, dupes, bad, empty)


def read_raw(path: str) -> pd.DataFrame:
    p = require_file(path, "file")
    try:
        table = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise GcmlmError(f"not a readable CSV ({one_line(exc)})", path) from None
    if len(table.columns) == 0 or table.columns[0] != PATIENT_ID:
        raise GcmlmError(f"first column must be '{PATIENT_ID}'", path)
    if (table[PATIENT_ID].str.strip() == "").any():
        raise GcmlmError(f"{int((table[PATIENT_ID].str.strip() == '').sum())} rows have no {PATIENT_ID}", path)
    table[PATIENT_ID] = table[PATIENT_ID].str.strip()
    if len(table) == 0:
        raise GcmlmError("the table has no patients (a header without rows)", path)
    return table


def parse_features(table: pd.DataFrame, name: str) -> tuple[pd.DataFrame, list[dict], int]:
    """Feature columns to float. Returns (table, non-numeric cells, empty cells)."""
    bad, empty = [], 0
    for col in feature_columns(table):
        raw = table[col]
        is_missing = raw.str.strip().isin(MISSING_TOKENS)
        values = pd.to_numeric(raw.where(~is_missing), errors="coerce")
        invalid = (values.isna() & ~is_missing) | np.isinf(values.fillna(0))
        bad += [{"table": Path(name).name, PATIENT_ID: pid, "column": col, "value": v}
                for pid, v in zip(table.loc[invalid, PATIENT_ID], raw[invalid], strict=True)]
        empty += int(is_missing.sum())
        table[col] = values.where(~invalid)
    return table, bad, empty


def check_feature_clashes(inputs: dict[str, InputTable]) -> None:
    """A feature column in two tables is a structural error whatever the policy."""
    seen: dict[str, str] = {}
    for path, item in inputs.items():
        for col in item.table.columns[1:]:
            if col in seen and col in feature_columns(item.table):
                raise GcmlmError(f"feature column '{col}' is also in {seen[col]}", path)
            seen.setdefault(col, path)


def join_report(inputs: list[InputTable], policy: str) -> tuple[dict, dict[str, list[str]], list[str]]:
    """The join report before the merge, the problems per patient and every patient ID seen."""
    all_ids = sorted(set().union(*(set(t.table[PATIENT_ID]) for t in inputs)))
    duplicates = {t.name: t.duplicated_ids for t in inputs if t.duplicated_ids}
    absent = {t.name: sorted(set(all_ids) - set(t.table[PATIENT_ID])) for t in inputs}
    absent = {name: ids for name, ids in absent.items() if ids}
    non_numeric = [cell for t in inputs for cell in t.non_numeric]
    problems: dict[str, list[str]] = {}
    for name, ids in duplicates.items():
        for pid in ids:
            problems.setdefault(pid, []).append(f"duplicated in {name}")
    for name, ids in absent.items():
        for pid in ids:
            problems.setdefault(pid, []).append(f"absent from {name}")
    for cell in non_numeric:
        problems.setdefault(cell[PATIENT_ID], []).append(f"non-numeric {cell['column']}={cell['value']!r} in {cell['table']}")
    summaries = [{"table": t.name, "rows": len(t.table), "patients": int(t.table[PATIENT_ID].nunique()),
                  "modalities": [m for m in MODALITIES if feature_columns(t.table, m)],
                  "feature_columns": len(feature_columns(t.table)), "empty_cells": t.empty_cells} for t in inputs]
    report = {"policy": policy, "tables": summaries, "patients_in_any_table": len(all_ids),
              "duplicated_ids": duplicates, "absent_ids": absent, "non_numeric_values": non_numeric,
              "problem_patients": {pid: why for pid, why in sorted(problems.items())}}
    return report, problems, all_ids


# --- join ----------------------------------------------------------------------------------------------

def join(inputs: dict[str, InputTable], patient_ids: list[str]) -> pd.DataFrame:
    """Left-join every table onto ``patient_ids``; a pass-through column in two tables must agree."""
    merged = pd.DataFrame({PATIENT_ID: patient_ids})
    for path, item in inputs.items():
        table = item.table[~item.table[PATIENT_ID].isin(item.duplicated_ids)]  # a duplicate's rows are unusable
        others = [c for c in table.columns[1:] if c in merged.columns]
        if others:
            check_agreement(merged, table, others, path)
            table = table.drop(columns=others)
        merged = merged.merge(table, on=PATIENT_ID, how="left")
    return _numeric_passthrough(merged)


def check_agreement(merged: pd.DataFrame, table: pd.DataFrame, columns: list[str], path: str) -> None:
    check = merged[[PATIENT_ID] + columns].merge(table[[PATIENT_ID] + columns], on=PATIENT_ID, suffixes=("", "__new"))
    for col in columns:
        a, b = check[col].astype(str), check[f"{col}__new"].astype(str)
        clash = check.loc[(a != b) & (a != "") & (b != ""), PATIENT_ID].tolist()
        if clash:
            raise GcmlmError(f"column '{col}' disagrees with another table for patient(s) {', '.join(clash[:5])}", path)


def _numeric_passthrough(table: pd.DataFrame) -> pd.DataFrame:
    """Pass-through columns that are all numbers become numeric again (an outcome stays 0/1)."""
    for col in table.columns[1:]:
        if col in feature_columns(table) or pd.api.types.is_numeric_dtype(table[col]):
            continue
        converted = pd.to_numeric(table[col].replace("", np.nan), errors="coerce")
        if converted.notna().sum() == (table[col].fillna("") != "").sum():
            table[col] = converted
    return table
