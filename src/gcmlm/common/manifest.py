"""The cohort manifest: which CT and which slides belong to which patient.

A CSV with columns ``patient_id``, ``kind`` (``ct`` or ``slide``), ``path`` and optionally
``label`` (a CT's label map). Relative paths are relative to the manifest's folder. A patient may
have several slides; a slide's ID is its file stem (``TCGA-XX.svs`` -> ``TCGA-XX``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from gcmlm.common.errors import GcmlmError
from gcmlm.common.tables import PATIENT_ID

if TYPE_CHECKING:  # pandas costs ~0.8 s of start-up; stages that only need slide_id skip it
    import pandas as pd

KINDS = ("ct", "slide")


def slide_id(path: str | os.PathLike) -> str:
    """A slide's ID is its file name without the extension(s) a WSI format adds."""
    name = Path(path).name
    for ext in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return Path(name).stem


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise GcmlmError("no such file", path)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in (PATIENT_ID, "kind", "path") if c not in table.columns]
    if missing:
        raise GcmlmError(f"cohort manifest lacks column(s) {', '.join(missing)}", path)
    bad = sorted(set(table["kind"]) - set(KINDS))
    if bad:
        raise GcmlmError(f"unknown kind(s) {', '.join(bad)}; expected one of {', '.join(KINDS)}", path)
    if "label" not in table.columns:
        table["label"] = ""
    base = path.parent
    for column in ("path", "label"):
        table[column] = [str((base / p).resolve()) if p else "" for p in table[column]]
    return table


def slide_patient_map(path: str | os.PathLike) -> dict[str, str]:
    """slide_id -> patient_id, from a cohort manifest or a two-column (patient_id, slide_id) CSV."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise GcmlmError("no such file", path)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if {"kind", "path"} <= set(table.columns):
        table = table[table["kind"] == "slide"]
        ids = [slide_id(p) for p in table["path"]]
    elif {PATIENT_ID, "slide_id"} <= set(table.columns):
        ids = list(table["slide_id"])
    else:
        raise GcmlmError(f"expected a cohort manifest or columns {PATIENT_ID},slide_id", path)
    mapping: dict[str, str] = {}
    for sid, pid in zip(ids, table[PATIENT_ID], strict=True):
        if sid in mapping and mapping[sid] != pid:
            raise GcmlmError(f"slide '{sid}' is mapped to patients {mapping[sid]} and {pid}", path)
        mapping[sid] = pid
    return mapping
