"""Patient tables: CSV, first column ``patient_id``, feature columns prefixed by modality.

``rad_`` radiology, ``path_`` pathology, ``clin_`` clinical. Other columns (an outcome, a centre,
a split) may be present; they are never used as features unless named so.
"""

from __future__ import annotations

import csv
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gcmlm.common.atomic import atomic_file
from gcmlm.common.errors import GcmlmError, one_line

PATIENT_ID = "patient_id"
if TYPE_CHECKING:  # imported where used: stages that only need the constants start faster
    import numpy as np
    import pandas as pd

MODALITIES = {"rad": "rad_", "path": "path_", "clin": "clin_"}


def feature_columns(table: pd.DataFrame, modality: str | None = None) -> list[str]:
    """Feature columns of one modality (``rad``, ``path``, ``clin``) or of all of them."""
    prefixes = tuple(MODALITIES.values()) if modality is None else (MODALITIES[modality],)
    return [c for c in table.columns if c.startswith(prefixes)]


def check_patient_table(table: pd.DataFrame, source: str | os.PathLike = "table") -> pd.DataFrame:
    """Raise a GcmlmError naming ``source`` unless ``table`` follows the convention."""
    if len(table.columns) == 0 or table.columns[0] != PATIENT_ID:
        raise GcmlmError(f"first column must be '{PATIENT_ID}', found {list(table.columns[:1])}", source)
    check_patient_ids(table[PATIENT_ID].tolist(), source)
    return table


def check_patient_ids(ids: Sequence[object], source: str | os.PathLike) -> None:
    """Raise a GcmlmError naming ``source`` when an ID is missing (None, NaN, blank) or repeated."""
    blank = sum(1 for i in ids if i is None or (isinstance(i, float) and math.isnan(i)) or str(i).strip() == "")
    if blank:
        raise GcmlmError(f"{blank} rows have no {PATIENT_ID}", source)
    dupes = sorted(i for i, n in Counter(map(str, ids)).items() if n > 1)
    if dupes:
        raise GcmlmError(f"duplicated {PATIENT_ID}: {', '.join(dupes[:10])}", source)


def read_patient_table(path: str | os.PathLike, check: bool = True) -> pd.DataFrame:
    """Read a patient table; IDs stay strings ('007' is not 7)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise GcmlmError("no such file", path)
    try:
        table = pd.read_csv(path, dtype={PATIENT_ID: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise GcmlmError(f"not a readable CSV ({one_line(exc)})", path) from None
    return check_patient_table(table, path) if check else table


def write_patient_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write atomically, ``patient_id`` first, after checking the convention."""
    if PATIENT_ID in table.columns and table.columns[0] != PATIENT_ID:
        table = table[[PATIENT_ID] + [c for c in table.columns if c != PATIENT_ID]]
    check_patient_table(table, path)
    with atomic_file(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.8g")
    return Path(path)


def _cell(value) -> str:
    """One value as pandas' ``to_csv(float_format="%.8g")`` writes it (NaN and None empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.8g}"
    return str(value)


def write_patient_rows(rows: Sequence[Mapping[str, object]], path: str | os.PathLike) -> Path:
    """Write rows (dicts, ``patient_id`` first) atomically without importing pandas.

    Same bytes as ``write_patient_table(pd.DataFrame(rows), path)`` for string IDs and float or int
    features; stages that write one row per run (radiomics-extract) skip pandas' ~0.3 s import.
    """
    columns: dict[str, None] = {PATIENT_ID: None}
    for row in rows:
        columns.update(dict.fromkeys(row))
    check_patient_ids([row.get(PATIENT_ID) for row in rows], path)
    with atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_cell(row.get(name)) for name in columns] for row in rows)
    return Path(path)


def read_csv_rows(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
    """A small CSV's header and rows, every value a string ('' where empty), without pandas.

    For manifests and maps that stages only look up; what pandas' ``read_csv(dtype=str,
    keep_default_na=False)`` gives, minus the ~0.3 s import. A row with more fields than the header
    is an error naming its line; a short row is padded with ''.
    """
    path = Path(path)
    if not path.is_file():
        raise GcmlmError("no such file", path)
    rows = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, restval="")
            for row in reader:
                if None in row:
                    raise GcmlmError(f"line {reader.line_num} has more fields than the header", path)
                rows.append(row)
            columns = list(reader.fieldnames or [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise GcmlmError(f"not a readable CSV ({exc})", path) from None
    return columns, rows


def read_labels(table: pd.DataFrame, column: str, source: str | os.PathLike) -> np.ndarray:
    """The outcome as 0/1; missing or non-binary values are an error naming the patients."""
    import pandas as pd

    if column not in table.columns:
        raise GcmlmError(f"no outcome column '{column}' (columns: {', '.join(map(str, table.columns[:8]))}...)", source)
    values = table[column]
    if values.dtype == bool:
        values = values.astype(int)
    missing = table.loc[values.isna(), PATIENT_ID].astype(str).tolist()
    if missing:
        raise GcmlmError(f"outcome '{column}' is missing for {len(missing)} patient(s): {', '.join(missing[:10])}", source)
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.isna().any() or not set(numeric.unique()) <= {0, 1}:
        bad = sorted(set(values.astype(str)) - {"0", "1", "0.0", "1.0"})
        raise GcmlmError(f"outcome '{column}' must be 0/1, found {', '.join(bad[:5])}", source)
    y = numeric.to_numpy(dtype=int)
    return y
