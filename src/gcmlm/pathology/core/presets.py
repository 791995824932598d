"""CLAM segmentation/patching presets: CSV files in CLAM's column format.

``--preset NAME`` reads ``NAME.csv`` from the shipped presets (bwh_biopsy, bwh_resection, tcga);
``--preset FILE.csv`` reads the user's own file, e.g. one written by CLAM's build_preset.py.
Shipped presets are looked up in $GCMLM_PRESETS_DIR, then the package data folder
(gcmlm/data/presets; inputs/presets links to it).
"""

from __future__ import annotations

import csv
import os
from dataclasses import asdict
from pathlib import Path
from typing import TypedDict, get_type_hints

from gcmlm.common.errors import GcmlmError
from gcmlm.pathology.core.tissue import SegParams

CONTOUR_FNS = ("four_pt", "four_pt_hard", "center", "basic")


class ClamParams(TypedDict, total=False):
    """CLAM's segmentation, patching and QA parameters by name, as presets and wsi-tile's flags set them."""

    seg_level: int  # pyramid level to segment (-1: the best level for downsample 64)
    sthresh: int  # saturation threshold
    mthresh: int  # median blur kernel (odd)
    close: int  # closing kernel size (0: none)
    use_otsu: bool  # Otsu threshold instead of sthresh
    a_t: float  # min tissue area, in 512 x 512 level-0 reference patches
    a_h: float  # min hole area, same unit
    max_n_holes: int  # holes kept per contour
    vis_level: int  # level of the QA images (-1: the best level for downsample 64)
    line_thickness: int  # contour line width at level 0
    use_padding: bool  # allow patches past the slide edge
    contour_fn: str  # patch-in-tissue test, one of CONTOUR_FNS
    keep_ids: list[int]  # keep only these contour indices
    exclude_ids: list[int]  # drop these contour indices


_KINDS = get_type_hints(ClamParams)  # parameter name -> type: how a preset cell is read

# create_patches_fp.py's defaults, used for every key a preset or flag does not set; the
# segmentation ones are SegParams' defaults (its sthresh_up is not a preset column).
CLAM_DEFAULTS: ClamParams = {
    "seg_level": -1,
    **{k: v for k, v in asdict(SegParams()).items() if k in _KINDS},
    "vis_level": -1, "line_thickness": 250,
    "use_padding": True, "contour_fn": "four_pt",
}


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


def parse_bool(text: str) -> bool:
    """``true``/``1``/``yes`` or ``false``/``0``/``no`` in any case; anything else is a ValueError.
    One reader for preset cells and command-line values."""
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise ValueError(f"'{text}' is not true or false")


def parse_ids(text: str) -> list[int]:
    """Contour indices ``I,J,...``; empty, ``none`` or ``nan`` (pandas' blank cell in CLAM's preset
    CSVs), optionally in double quotes, is no index. A non-integer item is a ValueError."""
    text = text.strip().strip('"')
    if text.lower() in ("", "none", "nan"):
        return []
    return [int(v) for v in text.split(",") if v.strip()]


def _preset_bool(raw: str, key: str, path: Path) -> bool:
    try:
        return parse_bool(raw)
    except ValueError:
        raise GcmlmError(f"column {key}: '{raw}' is not TRUE or FALSE", path) from None


def _preset_cell(key: str, raw: str, path: Path):
    """One cell as the type ``ClamParams`` gives its column; a bad number is a ValueError."""
    kind = _KINDS[key]
    if kind is bool:
        return _preset_bool(raw, key, path)
    if kind is int:
        return int(float(raw))  # CLAM's CSVs may write integers as 8.0
    if kind is float:
        return float(raw)
    if key == "contour_fn":
        if raw not in CONTOUR_FNS:
            raise GcmlmError(f"contour_fn '{raw}' is not one of {', '.join(CONTOUR_FNS)}", path)
        return raw
    return parse_ids(raw)


def load_preset(name_or_csv: str) -> ClamParams:
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
            # white_thresh / black_thresh only matter to CLAM's legacy image-bag patching: ignored.
            if key in _KINDS:
                values[key] = _preset_cell(key, raw, path)
    except ValueError as exc:
        raise GcmlmError(f"bad value in preset ({exc})", path) from None
    return values
