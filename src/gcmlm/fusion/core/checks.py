"""Checks of patient tables and options that more than one fusion stage makes before any work.

Each refusal is a GcmlmError naming the table (or the option) and, where cells are at fault, the
columns and patients, so the user can find them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from gcmlm.common.errors import GcmlmError
from gcmlm.common.tables import MODALITIES, PATIENT_ID, feature_columns

SHOWN = 5  # columns or patients named in one message


def _listed(items: Sequence[str]) -> str:
    more = f" ... ({len(items)} in all)" if len(items) > SHOWN else ""
    return ", ".join(map(str, items[:SHOWN])) + more


def require_patients(table: pd.DataFrame, source: str | os.PathLike) -> None:
    """A table with a header and no rows has nobody to train on, score or evaluate."""
    if len(table) == 0:
        raise GcmlmError("the table has no patients (a header without rows)", source)


def require_numeric(table: pd.DataFrame, columns: Iterable[str], source: str | os.PathLike, hint: str = "") -> None:
    """Text in a feature column would silently become a missing value; refuse it, naming a patient."""
    bad = [c for c in columns if not pd.api.types.is_numeric_dtype(table[c])]
    if bad:
        column = bad[0]
        values = pd.to_numeric(table[column], errors="coerce")
        rows = table.loc[values.isna() & table[column].notna()]
        example = f" (e.g. {rows[PATIENT_ID].iloc[0]}: {str(rows[column].iloc[0])[:40]!r})" if len(rows) else ""
        raise GcmlmError(f"non-numeric values in column(s) {_listed(bad)}{example}{hint}", source)


def require_finite(table: pd.DataFrame, columns: Iterable[str], source: str | os.PathLike) -> None:
    """Infinite values reach no model (sklearn refuses them deep inside a fit); name where they are.

    Missing values (NaN) are allowed: the models impute them inside each training fold."""
    columns = [c for c in columns if pd.api.types.is_numeric_dtype(table[c])]
    if not columns:
        return
    infinite = np.isinf(table[columns].to_numpy(dtype=float))
    if infinite.any():
        bad_columns = [c for c, hit in zip(columns, infinite.any(axis=0), strict=True) if hit]
        patients = table.loc[infinite.any(axis=1), PATIENT_ID].astype(str).tolist()
        raise GcmlmError(f"infinite values in column(s) {_listed(bad_columns)} for patient(s) {_listed(patients)}",
                         source)


def require_label_not_feature(label: str, features: Iterable[str], source: str | os.PathLike) -> None:
    """An outcome that is also a model input predicts itself (AUC 1.0 that means nothing)."""
    prefixes = tuple(MODALITIES.values())
    if label in set(features) or label.startswith(prefixes):
        raise GcmlmError(f"the outcome column '{label}' is also a feature column (prefix rad_, path_ or clin_): "
                         "the label must not be a model input; name the outcome without a feature prefix", source)


def require_two_classes(y: np.ndarray, label: str, source: str | os.PathLike) -> None:
    if len(y) and len(set(y.tolist())) < 2:
        raise GcmlmError(f"outcome '{label}' has one class only (every patient is {int(y[0])})", source)


def unprefixed_numeric_columns(table: pd.DataFrame, known: Iterable[str | None]) -> list[str]:
    """Numeric columns that are no feature (no rad_/path_/clin_ prefix) and none of ``known``
    (patient_id, the outcome, the centre column): the models never read them."""
    skip = {PATIENT_ID, *(k for k in known if k)}
    features = set(feature_columns(table))
    return [c for c in table.columns if c not in skip and c not in features
            and pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])]


def uninformative_features(table: pd.DataFrame) -> dict[str, list[str]]:
    """Feature columns no model can learn from: every value missing, or one value for everybody."""
    empty, constant = [], []
    for column in feature_columns(table):
        values = table[column].dropna()
        if values.empty:
            empty.append(column)
        elif values.nunique() == 1:
            constant.append(column)
    return {"all_missing": empty, "constant": constant}


def require_option(option: str, value: float, low: float | None = None, high: float | None = None, *,
                   low_open: bool = False, high_open: bool = False) -> None:
    """An option's value inside its range (NaN is never inside), or a GcmlmError naming the option."""
    number = float(value)
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and (number >= high if high_open else number > high)
    if math.isnan(number) or too_low or too_high:
        left = "" if low is None else f"{'(' if low_open else '['}{low:g}, "
        right = "" if high is None else f"{high:g}{')' if high_open else ']'}"
        where = (f"within {left}{right}" if low is not None and high is not None
                 else f"{'>' if low_open else '>='} {low:g}" if low is not None
                 else f"{'<' if high_open else '<='} {high:g}")
        raise GcmlmError(f"must be {where}, got {value}", option)


def require_cutoffs(cutoffs: Sequence[float], option: str = "--cutoffs") -> list[float]:
    """Risk cut-offs are probabilities strictly inside (0, 1), given in increasing order, each once."""
    values = [float(c) for c in cutoffs]
    for value in values:
        require_option(option, value, 0, 1, low_open=True, high_open=True)
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise GcmlmError(f"cut-offs must be strictly increasing, each given once; got {' '.join(map(str, cutoffs))}",
                         option)
    return values


def require_model_inputs(model, table: pd.DataFrame, source: str | os.PathLike) -> None:
    """Every column ``model`` reads is present, numeric (text would be imputed without a word) and
    finite; the centre column of a ComBat model is a label and may be text."""
    from gcmlm.fusion.core.inputs import check_columns

    check_columns(model, table, source)
    combat = model.card.get("config", {}).get("combat_column")
    numeric = [c for c in model.features if c != combat]
    require_numeric(table, numeric, source)
    require_finite(table, numeric, source)
