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
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from gcmlm.common.atomic import write_json
from gcmlm.common.errors import GcmlmError, one_line
from gcmlm.common.tables import MODALITIES, PATIENT_ID, feature_columns, write_patient_table

log = logging.getLogger("gcmlm")
POLICIES = ("fail", "drop", "impute")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tables", nargs="+", required=True, metavar="CSV",
                        help="patient tables; modalities are recognised by column prefix (rad_, path_, clin_)")
    parser.add_argument("--out", required=True, metavar="CSV", help="merged patient table")
    parser.add_argument("--report", required=True, metavar="JSON", help="join report")
    parser.add_argument("--policy", choices=POLICIES, default="fail",
                        help="what to do with problem patients: fail (default), drop them, or keep them as NaN")


def read_raw(path: str) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise GcmlmError("no such file", path)
    try:
        table = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise GcmlmError(f"not a readable CSV ({one_line(exc)})", path) from None
    if len(table.columns) == 0 or table.columns[0] != PATIENT_ID:
        raise GcmlmError(f"first column must be '{PATIENT_ID}'", path)
    if (table[PATIENT_ID].str.strip() == "").any():
        raise GcmlmError(f"{int((table[PATIENT_ID].str.strip() == '').sum())} rows have no {PATIENT_ID}", path)
    table[PATIENT_ID] = table[PATIENT_ID].str.strip()
    return table


MISSING_TOKENS = {"", "NA", "NaN", "nan", "N/A", "NULL", "null", "None"}


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


def run(args: argparse.Namespace) -> int:
    names = [str(p) for p in args.tables]
    if len(set(names)) != len(names):
        raise GcmlmError("the same table is given twice", names[0])
    tables, report_tables, duplicates, non_numeric = {}, [], {}, []
    for path in names:
        table = read_raw(path)
        table, bad, empty = parse_features(table, path)
        dupes = sorted(set(table.loc[table[PATIENT_ID].duplicated(), PATIENT_ID]))
        if dupes:
            duplicates[Path(path).name] = dupes
        non_numeric += bad
        report_tables.append({"table": Path(path).name, "rows": len(table), "patients": int(table[PATIENT_ID].nunique()),
                              "modalities": [m for m in MODALITIES if feature_columns(table, m)],
                              "feature_columns": len(feature_columns(table)), "empty_cells": empty})
        tables[path] = table

    # Column clashes are structural errors whatever the policy.
    seen: dict[str, str] = {}
    for path, table in tables.items():
        for col in table.columns[1:]:
            if col in seen and col in feature_columns(table):
                raise GcmlmError(f"feature column '{col}' is also in {seen[col]}", path)
            seen.setdefault(col, path)

    all_ids = sorted(set().union(*(set(t[PATIENT_ID]) for t in tables.values())))
    absent = {Path(path).name: sorted(set(all_ids) - set(t[PATIENT_ID])) for path, t in tables.items()}
    absent = {p: ids for p, ids in absent.items() if ids}
    problems: dict[str, list[str]] = {}
    for path, ids in duplicates.items():
        for pid in ids:
            problems.setdefault(pid, []).append(f"duplicated in {path}")
    for path, ids in absent.items():
        for pid in ids:
            problems.setdefault(pid, []).append(f"absent from {path}")
    for cell in non_numeric:
        problems.setdefault(cell[PATIENT_ID], []).append(f"non-numeric {cell['column']}={cell['value']!r} in {cell['table']}")

    report = {"policy": args.policy, "tables": report_tables, "patients_in_any_table": len(all_ids),
              "duplicated_ids": duplicates, "absent_ids": absent, "non_numeric_values": non_numeric,
              "problem_patients": {pid: why for pid, why in sorted(problems.items())}}
    if problems and args.policy == "fail":
        write_json(args.report, {**report, "merged_patients": 0, "dropped_patients": []})
        first = next(iter(sorted(problems.items())))
        raise GcmlmError(f"{len(problems)} patient(s) with join problems (e.g. {first[0]}: {first[1][0]}); "
                         f"see the join report, or use --policy drop|impute", args.report)

    dropped = sorted(problems) if args.policy == "drop" else []
    merged = pd.DataFrame({PATIENT_ID: [p for p in all_ids if p not in set(dropped)]})
    for path, table in tables.items():
        table = table[~table[PATIENT_ID].isin(duplicates.get(Path(path).name, []))]  # impute: a duplicate's rows are unusable
        others = [c for c in table.columns[1:] if c in merged.columns]
        if others:
            check = merged[[PATIENT_ID] + others].merge(table[[PATIENT_ID] + others], on=PATIENT_ID, suffixes=("", "__new"))
            for col in others:
                a, b = check[col].astype(str), check[f"{col}__new"].astype(str)
                clash = check.loc[(a != b) & (a != "") & (b != ""), PATIENT_ID].tolist()
                if clash:
                    raise GcmlmError(f"column '{col}' disagrees with another table for patient(s) {', '.join(clash[:5])}", path)
            table = table.drop(columns=others)
        merged = merged.merge(table, on=PATIENT_ID, how="left")
    merged = _numeric_passthrough(merged)
    features = feature_columns(merged)
    report.update({"merged_patients": len(merged), "dropped_patients": dropped,
                   "kept_with_missing_values": sorted(problems) if args.policy == "impute" else [],
                   "missing_cells_after_merge": int(merged[features].isna().to_numpy().sum())})
    write_patient_table(merged, args.out)
    write_json(args.report, report)
    log.info("merged %d tables: %d patients, %d features; %d problem patients (%s)", len(tables), len(merged),
             len(features), len(problems), args.policy)
    return 0


def _numeric_passthrough(table: pd.DataFrame) -> pd.DataFrame:
    """Pass-through columns that are all numbers become numeric again (an outcome stays 0/1)."""
    for col in table.columns[1:]:
        if col in feature_columns(table) or pd.api.types.is_numeric_dtype(table[col]):
            continue
        converted = pd.to_numeric(table[col].replace("", np.nan), errors="coerce")
        if converted.notna().sum() == (table[col].fillna("") != "").sum():
            table[col] = converted
    return table
