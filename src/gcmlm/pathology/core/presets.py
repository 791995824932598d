"""CLAM segmentation/patching presets: CSV files in CLAM's column format.

``--preset NAME`` reads ``NAME.csv`` from the shipped presets (bwh_biopsy, bwh_resection, tcga);
``--preset FILE.csv`` reads the user's own file, e.g. one written by CLAM's build_preset.py.
Shipped presets are looked up in $GCMLM_PRESETS_DIR, then the package data folder
(gcmlm/data/presets; inputs/presets links to it).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from gcmlm.common.errors import GcmlmError

# create_patches_fp.py's defaults, used for every key a preset or flag does not set.
CLAM_DEFAULTS = {
    "seg_level": -1, "sthresh": 8, "mthresh": 7, "close": 4, "use_otsu": False,
    "a_t": 100.0, "a_h": 16.0, "max_n_holes": 8,
    "vis_level": -1, "line_thickness": 250,
    "use_padding": True, "contour_fn": "four_pt",
    "keep_ids": [], "exclude_ids": [],
}
CONTOUR_FNS = ("four_pt", "four_pt_hard", "center", "basic")
_INT = ("seg_level", "sthresh", "mthresh", "close", "max_n_holes", "vis_level", "line_thickness")
_FLOAT = ("a_t", "a_h")
_BOOL = ("use_otsu", "use_padding")
_IDS = ("keep_ids", "exclude_ids")


def presets_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("GCMLM_PRESETS_DIR"):
        dirs.append(Path(os.environ["GCMLM_PRESETS_DIR"]))
    dirs.append(Path(__file__).resolve().parents[2] / "data" / "presets")
    return dirs


def available_presets() -> list[str]:
    return sorted({p.stem for d in presets_dirs() if d.is_dir() for p in d.glob("*.csv")})


def preset_path(name_or_csv: str) -> Path:
    candidate = Path(name_or_csv)
    if candidate.suffix.lower() == ".csv" or candidate.is_file():
        if not candidate.is_file():
            raise GcmlmError("no such preset file", candidate)
        return candidate
    for folder in presets_dirs():
        if (folder / f"{name_or_csv}.csv").is_file():
            return folder / f"{name_or_csv}.csv"
    raise GcmlmError(f"unknown preset '{name_or_csv}'; shipped presets: {', '.join(available_presets()) or 'none found'}")


def _parse_bool(value, key, path) -> bool:
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise GcmlmError(f"column {key}: '{value}' is not TRUE or FALSE", path)


def _parse_ids(value) -> list[int]:
    text = str(value).strip().strip('"')
    if text.lower() in ("", "none", "nan"):
        return []
    return [int(v) for v in text.split(",") if v.strip()]


def load_preset(name_or_csv: str) -> dict:
    """The first row of a CLAM preset CSV as typed values (only the columns it has)."""
    path = preset_path(name_or_csv)
    try:
        with open(path, newline="") as f:
            row = next(csv.DictReader(f), None)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise GcmlmError(f"not a readable preset CSV ({exc})", path) from None
    if not row:
        raise GcmlmError("preset CSV has no data row", path)
    values: dict = {}
    try:
        for key, raw in row.items():
            if key is None or raw is None:
                raise GcmlmError("preset CSV rows and header differ in length", path)
            key, raw = key.strip(), raw.strip()
            if key in _INT:
                values[key] = int(float(raw))
            elif key in _FLOAT:
                values[key] = float(raw)
            elif key in _BOOL:
                values[key] = _parse_bool(raw, key, path)
            elif key in _IDS:
                values[key] = _parse_ids(raw)
            elif key == "contour_fn":
                if raw not in CONTOUR_FNS:
                    raise GcmlmError(f"contour_fn '{raw}' is not one of {', '.join(CONTOUR_FNS)}", path)
                values[key] = raw
            # white_thresh / black_thresh only matter to CLAM's legacy image-bag patching: ignored.
    except ValueError as exc:
        raise GcmlmError(f"bad value in preset ({exc})", path) from None
    return values
