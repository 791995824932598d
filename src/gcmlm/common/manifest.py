"""The cohort manifest: which CT and which slides belong to which patient.

A CSV with columns ``patient_id``, ``kind`` (``ct`` or ``slide``), ``path`` and optionally
``label`` (a CT's label map). Relative paths are relative to the manifest's folder. A patient may
have several slides; a slide's ID is its file stem (``TCGA-XX.svs`` -> ``TCGA-XX``).
Read without pandas: stages that only look up their cases start faster.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from gcmlm.common.errors import GcmlmError
from gcmlm.common.tables import PATIENT_ID, read_csv_rows

KINDS = ("ct", "slide")


def slide_id(path: str | os.PathLike) -> str:
    """A slide's ID is its file name without the extension(s) a WSI format adds."""
    name = Path(path).name
    for ext in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return Path(name).stem


def read_manifest(path: str | os.PathLike) -> list[dict[str, str]]:
    """The manifest's rows, ``path`` and ``label`` resolved to absolute paths ('' where no label)."""
    path = Path(path)
    columns, rows = read_csv_rows(path)
    missing = [c for c in (PATIENT_ID, "kind", "path") if c not in columns]
    if missing:
        raise GcmlmError(f"cohort manifest lacks column(s) {', '.join(missing)}", path)
    bad = sorted({row["kind"] for row in rows} - set(KINDS))
    if bad:
        raise GcmlmError(f"unknown kind(s) {', '.join(bad)}; expected one of {', '.join(KINDS)}", path)
    base = path.parent
    for row in rows:
        for column in ("path", "label"):
            value = row.get(column, "")
            row[column] = str((base / value).resolve()) if value else ""
    return rows


def rows_of_kind(rows: list[dict[str, str]], kind: str) -> list[dict[str, str]]:
    return [row for row in rows if row["kind"] == kind]


def slide_patient_map(path: str | os.PathLike) -> dict[str, str]:
    """slide_id -> patient_id, from a cohort manifest or a two-column (patient_id, slide_id) CSV."""
    path = Path(path)
    columns, rows = read_csv_rows(path)
    if {"kind", "path"} <= set(columns):
        pairs = [(slide_id(row["path"]), row[PATIENT_ID]) for row in rows_of_kind(rows, "slide")]
    elif {PATIENT_ID, "slide_id"} <= set(columns):
        pairs = [(row["slide_id"], row[PATIENT_ID]) for row in rows]
    else:
        raise GcmlmError(f"expected a cohort manifest or columns {PATIENT_ID},slide_id", path)
    mapping: dict[str, str] = {}
    for sid, pid in pairs:
        if sid in mapping and mapping[sid] != pid:
            raise GcmlmError(f"slide '{sid}' is mapped to patients {mapping[sid]} and {pid}", path)
        mapping[sid] = pid
    return mapping


def map_slides(feature_files: Sequence[str | os.PathLike], slide_map: str | os.PathLike | None = None) -> dict[str, str]:
    """Slide ID (a feature file's stem) -> patient ID, from ``slide_map`` (a cohort manifest or a
    patient_id,slide_id CSV) or, without one, each slide its own patient."""
    slide_ids = [slide_id(p) for p in feature_files]
    if not slide_map:
        return {s: s for s in slide_ids}
    mapping = slide_patient_map(slide_map)
    unmapped = [p for p, s in zip(feature_files, slide_ids, strict=True) if s not in mapping]
    if unmapped:
        raise GcmlmError(f"slide '{slide_id(unmapped[0])}' is not in the slide map {slide_map}", unmapped[0])
    return mapping
