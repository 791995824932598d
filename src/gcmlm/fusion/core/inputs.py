"""Reading what the fusion stages consume: patient tables, outcome labels and saved models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from gcmlm.common.errors import GcmlmError
from gcmlm.common.tables import MODALITIES, PATIENT_ID, feature_columns, read_patient_table

MODEL_SUFFIX = ".skops"
CARD = "model_card.json"


def modality_columns(table: pd.DataFrame) -> dict[str, list[str]]:
    """Feature columns per modality present in the table (rad, path, clin order)."""
    return {m: cols for m in MODALITIES if (cols := feature_columns(table, m))}


def read_labels(table: pd.DataFrame, column: str, source: str | os.PathLike) -> np.ndarray:
    """The outcome as 0/1; missing or non-binary values are an error naming the patients."""
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


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    table = read_patient_table(path)
    bad = [c for c in feature_columns(table) if not pd.api.types.is_numeric_dtype(table[c])]
    if bad:
        raise GcmlmError(f"non-numeric feature column(s) {', '.join(bad[:5])}; run fusion-merge first", path)
    return table


# --- saved models -------------------------------------------------------------------------------------

ALLOWED_PREFIXES = ("sklearn.", "gcmlm.fusion.", "numpy.", "scipy.")
ALLOWED_EXACT = {"builtins.dict", "builtins.list", "builtins.tuple", "builtins.slice", "builtins.float",
                 "builtins.int", "builtins.str", "builtins.bool", "builtins.object", "builtins.type"}


def trusted_types(path: Path) -> list[str]:
    """Types the file needs, each checked against our allow-list (never trust a file blindly)."""
    from skops.io import get_untrusted_types

    types = get_untrusted_types(file=path)
    refused = [t for t in types if not (t.startswith(ALLOWED_PREFIXES) or t in ALLOWED_EXACT)]
    if refused:
        raise GcmlmError(f"model file needs types outside the allow-list: {', '.join(refused[:5])}", path)
    return types


def load_model(path: str | os.PathLike):
    from skops.io import load

    from gcmlm.fusion.core.models import RiskModel

    path = Path(path)
    if not path.is_file():
        raise GcmlmError("no such model file", path)
    try:
        model = load(path, trusted=trusted_types(path))
    except GcmlmError:
        raise
    except Exception as exc:  # skops raises many types for a corrupt or foreign file
        raise GcmlmError(f"not a readable skops model ({type(exc).__name__}: {str(exc)[:120]})", path) from None
    if not isinstance(model, RiskModel):
        raise GcmlmError(f"not a gcmlm risk model (found {type(model).__name__})", path)
    return model


def save_model(model, path: str | os.PathLike) -> None:
    from skops.io import dump

    from gcmlm.common.atomic import atomic_file

    with atomic_file(path) as tmp:
        dump(model, tmp)


def load_models(path: str | os.PathLike, names: list[str] | None = None) -> dict:
    """A training output folder (all models, or ``names``) or one .skops file."""
    path = Path(path)
    if path.is_dir():
        card_path = path / CARD
        if not card_path.is_file():
            raise GcmlmError(f"not a fusion-train output folder (no {CARD})", path)
        card = json.loads(card_path.read_text())
        available = list(card["models"])
        wanted = names or available
        unknown = [n for n in wanted if n not in available]
        if unknown:
            raise GcmlmError(f"no model(s) {', '.join(unknown)}; available: {', '.join(available)}", path)
        return {n: load_model(path / "models" / f"{n}{MODEL_SUFFIX}") for n in wanted}
    model = load_model(path)
    if names and model.name not in names:
        raise GcmlmError(f"the file holds model '{model.name}', not {', '.join(names)}", path)
    return {model.name: model}


def check_columns(model, table: pd.DataFrame, source: str | os.PathLike) -> None:
    missing = model.missing_columns(table)
    if missing:
        shown = ", ".join(missing[:20]) + (f" ... ({len(missing)} in all)" if len(missing) > 20 else "")
        raise GcmlmError(f"table lacks {len(missing)} column(s) model '{model.name}' needs: {shown}", source)
