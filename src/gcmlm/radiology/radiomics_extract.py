"""radiomics-extract: PyRadiomics features from CT and label map -> one ``rad_`` row per patient.

Features come from PyRadiomics' ``RadiomicsFeatureExtractor`` with an ordinary PyRadiomics
parameter file; columns are ``rad_`` + PyRadiomics' own names (``rad_original_firstorder_Mean``).
Before PyRadiomics sees a case, its mask is checked so problems are one line naming the case:
an empty mask, the requested label missing (with the labels that are there), a mask off the image
grid (unless ``--resample-mask-to-image``). Diagnostics (versions, settings, hashes) go to a
separate file, never into the feature table.

Three forms: one or more cases from ``--image/--mask/--patient-id`` (equal-length lists), a batch
from ``--manifest`` (one extractor for all cases), and ``--concat`` to join per-patient tables
(the merge step after a scattered workflow).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gcmlm.common.atomic import atomic_file, check_outputs, write_json
from gcmlm.common.errors import GcmlmError, one_line
from gcmlm.common.progress import track
from gcmlm.common.tables import PATIENT_ID, read_csv_rows, write_patient_rows
from gcmlm.radiology.core.images import grid_differences, label_values, read_image, resample_like

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("gcmlm")

PREFIX = "rad_"
DIAGNOSTICS_PREFIX = "diagnostics_"
SHIPPED_PARAMS = Path(__file__).resolve().parent.parent / "data" / "radiomics"
DEFAULT_PARAMS = "ct_default"


@dataclass(frozen=True)
class Case:
    """One patient's CT (a volume file or DICOM folder) and label map."""

    patient_id: str
    image: str | os.PathLike
    mask: str | os.PathLike


def add_arguments(parser: argparse.ArgumentParser) -> None:
    single = parser.add_argument_group("cases on the command line (lists of equal length)")
    single.add_argument("--image", nargs="+", metavar="PATH", help="CT image(s): NIfTI, NRRD, MHA or a DICOM folder")
    single.add_argument("--mask", nargs="+", metavar="PATH", help="label map(s), one per image")
    single.add_argument("--patient-id", nargs="+", metavar="ID", help="patient ID(s), one per image")
    parser.add_argument("--manifest", metavar="CSV",
                        help="batch: a cohort manifest (kind=ct rows with a label path) or a CSV with "
                             "columns patient_id,image,mask (paths relative to the CSV)")
    parser.add_argument("--concat", nargs="+", metavar="CSV",
                        help="join per-patient radiomics tables (same feature columns) into one table")
    parser.add_argument("--out", required=True, metavar="CSV", help="patient table: patient_id, rad_* features")
    parser.add_argument("--params", default=DEFAULT_PARAMS, metavar="YAML",
                        help=f"PyRadiomics parameter file, or a shipped name: {', '.join(shipped_params())} "
                             f"(default: {DEFAULT_PARAMS})")
    parser.add_argument("--label", type=int, metavar="N", help="label value to extract (default: the params' label, else 1)")
    parser.add_argument("--resample-mask-to-image", action="store_true",
                        help="resample a mask that is off the image grid onto it (nearest neighbour) instead of failing")
    parser.add_argument("--diagnostics", metavar="JSON|CSV",
                        help="PyRadiomics' diagnostics per patient (versions, settings, image/mask checks)")


def shipped_params() -> list[str]:
    """Names of the parameter files shipped with gcmlm (usable as ``params``)."""
    return sorted(p.stem for p in SHIPPED_PARAMS.glob("*.yaml"))


def resolve_params(value: str | os.PathLike) -> Path:
    """A params path, or the name of a shipped parameter file (``ct_default``, ``ibsi``)."""
    value = os.fspath(value)
    path = Path(value)
    if path.is_file():
        return path
    shipped = SHIPPED_PARAMS / f"{value}.yaml"
    if os.sep not in value and shipped.is_file():
        return shipped
    raise GcmlmError(f"no such parameter file, and not a shipped name ({', '.join(shipped_params())})", value)


def check_params_safe(params: Path) -> None:
    """Parse the parameter file with YAML's safe loader first: a tag such as ``!!python/object`` is refused
    as an error, never constructed (PyRadiomics' pykwalify also loads safely; this does not rely on it)."""
    import yaml

    try:
        with open(params, encoding="utf-8") as stream:
            data = yaml.safe_load(stream)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise GcmlmError(f"invalid PyRadiomics parameter file ({one_line(exc)})", params) from None
    except OSError as exc:
        raise GcmlmError(f"cannot read the parameter file ({one_line(exc)})", params) from None
    if not isinstance(data, dict):
        raise GcmlmError("invalid PyRadiomics parameter file (expected a mapping of imageType, featureClass, "
                         "setting)", params)


def make_extractor(params: Path):
    """PyRadiomics' extractor; an invalid parameter file is a one-line error naming it."""
    import radiomics
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    # PyRadiomics logs every feature class at INFO and warns about redundant GLCM features; show that
    # only with -v. Its own stderr handler prints, so its records must not reach ours a second time.
    level = logging.INFO if log.isEnabledFor(logging.DEBUG) else logging.ERROR
    radiomics.setVerbosity(level)
    logging.getLogger("radiomics").setLevel(level)
    logging.getLogger("radiomics").propagate = False
    # pykwalify logs each validation error at ERROR; the exception we report carries them all
    logging.getLogger("pykwalify").setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.CRITICAL)
    check_params_safe(params)
    try:
        with warnings.catch_warnings():  # pykwalify loads PyRadiomics' schema functions with load_module()
            warnings.simplefilter("ignore", DeprecationWarning)
            return RadiomicsFeatureExtractor(str(params))
    except Exception as exc:  # pykwalify's SchemaError, yaml errors: report, don't trace
        reason = one_line(ValueError(" ".join(str(exc).split()).strip("<>")))
        raise GcmlmError(f"invalid PyRadiomics parameter file ({reason})", params) from None


def load_case(case: Case, label: int, resample_mask: bool):
    """Image and mask as SimpleITK images, after the checks that give errors naming the case."""
    try:
        image, _ = read_image(case.image)
        mask, _ = read_image(case.mask)
    except GcmlmError as exc:
        raise GcmlmError(f"case {case.patient_id}: {exc.problem}", exc.path) from None
    diffs = grid_differences(image, mask)
    if diffs:
        if not resample_mask:
            raise GcmlmError(f"case {case.patient_id}: mask is not on the image grid ({'; '.join(diffs)}); "
                             "pass --resample-mask-to-image to resample it (nearest neighbour)", case.mask)
        log.warning("case %s: resampling the mask onto the image grid (%s)", case.patient_id, "; ".join(diffs))
        mask = resample_like(mask, image, label=True)
    present = label_values(mask)
    if not present:
        raise GcmlmError(f"case {case.patient_id}: mask is empty" + (" after resampling onto the image grid" if diffs else ""),
                         case.mask)
    if label not in present:
        raise GcmlmError(f"case {case.patient_id}: label {label} is absent from the mask; labels present: "
                         f"{', '.join(map(str, present))}", case.mask)
    check_finite_in_mask(image, mask, label, case)
    return image, mask


def check_finite_in_mask(image, mask, label: int, case: Case) -> None:
    """Refuse NaN or infinite intensities inside the label: PyRadiomics would silently drop NaN voxels
    (changing volume-weighted statistics) and overflow on infinities."""
    import numpy as np
    import SimpleITK as sitk

    values = sitk.GetArrayViewFromImage(image)
    if values.dtype.kind not in "fc" or image.GetNumberOfComponentsPerPixel() != 1:
        return
    inside = values[sitk.GetArrayViewFromImage(mask) == label]
    bad = int(np.count_nonzero(~np.isfinite(inside)))
    if bad:
        n_nan = int(np.count_nonzero(np.isnan(inside)))
        what = f"{n_nan} NaN" + (f" and {bad - n_nan} infinite" if bad > n_nan else "")
        raise GcmlmError(f"case {case.patient_id}: {what} voxel(s) inside label {label} of the mask "
                         f"(of {inside.size}); PyRadiomics would silently drop them", case.image)


def extract_case(extractor, case: Case, label: int, resample_mask: bool) -> tuple[dict, dict]:
    """(features, diagnostics) of one case; feature names are PyRadiomics' own."""
    image, mask = load_case(case, label, resample_mask)
    try:
        result = extractor.execute(image, mask, label=label)
    except (ValueError, RuntimeError, TypeError, IndexError, ZeroDivisionError) as exc:
        raise GcmlmError(f"case {case.patient_id}: PyRadiomics failed ({one_line(exc)})", case.mask) from None
    check_feature_classes(extractor, result, image, case)
    features = {k: float(v) for k, v in result.items() if not k.startswith(DIAGNOSTICS_PREFIX)}
    diagnostics = {k: _plain(v) for k, v in result.items() if k.startswith(DIAGNOSTICS_PREFIX)}
    return features, diagnostics


def check_feature_classes(extractor, result: dict, image, case: Case) -> None:
    """Refuse a result that lacks a requested feature class: PyRadiomics only logs a warning when it
    skips one (``shape`` on a 2D image, ``shape2D`` without ``force2D``), so the table would silently
    have fewer columns than other patients'."""
    names = [k for k in result if not k.startswith(DIAGNOSTICS_PREFIX)]
    for feature_class in extractor.enabledFeatures:
        if not any(f"_{feature_class}_" in name for name in names):
            hint = {"shape": f"it needs a 3D image, this one is {image.GetDimension()}D; use shape2D",
                    "shape2D": "it needs a 2D image, or setting force2D: true with a flat ROI"}.get(
                        feature_class, "PyRadiomics skipped it")
            raise GcmlmError(f"case {case.patient_id}: the parameters request feature class {feature_class}, "
                             f"but PyRadiomics computed none of it ({hint})", case.image)


def extract_features(cases: list[Case], params: str | os.PathLike = DEFAULT_PARAMS, label: int | None = None,
                     resample_mask: bool = False) -> tuple[list[dict], dict[str, dict]]:
    """One row per case ({patient_id, rad_*}) and the diagnostics per patient.

    ``params``: a PyRadiomics parameter file or a shipped name (:func:`shipped_params`); one
    extractor serves every case. ``label``: the mask value to extract (None: the params' label,
    else 1). ``resample_mask``: resample a mask that is off the image grid (nearest neighbour)
    instead of failing. Write the rows with :func:`gcmlm.common.tables.write_patient_rows`.
    """
    extractor = make_extractor(resolve_params(params))
    label = label if label is not None else int(extractor.settings.get("label", 1))
    rows, diagnostics = [], {}
    for case in track(cases, "radiomics", unit="cases"):
        features, diagnostics[case.patient_id] = extract_case(extractor, case, label, resample_mask)
        rows.append({PATIENT_ID: case.patient_id, **{PREFIX + k: v for k, v in features.items()}})
    return rows, diagnostics


def cases_from_lists(images: list[str], masks: list[str], patient_ids: list[str]) -> list[Case]:
    """Cases from three lists of equal length (the command line's --image, --mask, --patient-id)."""
    lists = {"--image": images, "--mask": masks, "--patient-id": patient_ids}
    missing = [flag for flag, values in lists.items() if not values]
    if missing:
        raise GcmlmError(f"give {', '.join(missing)} (or --manifest, or --concat)")
    lengths = {flag: len(values) for flag, values in lists.items()}
    if len(set(lengths.values())) != 1:
        raise GcmlmError("--image, --mask and --patient-id need the same number of values, got "
                         + ", ".join(f"{k} {v}" for k, v in lengths.items()))
    return [Case(p, i, m) for i, m, p in zip(images, masks, patient_ids, strict=True)]


def cases_from_manifest(path: str | os.PathLike) -> list[Case]:
    """Cases from a cohort manifest (kind=ct rows, mask in ``label``) or a patient_id,image,mask CSV."""
    from gcmlm.common.manifest import read_manifest, rows_of_kind

    path = Path(path)
    columns, rows = read_csv_rows(path)
    if {"kind", "path"} <= set(columns):
        cts = rows_of_kind(read_manifest(path), "ct")
        unlabelled = [row[PATIENT_ID] for row in cts if not row["label"]]
        if unlabelled:
            raise GcmlmError(f"ct rows without a label map (mask) for patient(s) {', '.join(unlabelled[:10])}", path)
        cases = [Case(row[PATIENT_ID], row["path"], row["label"]) for row in cts]
    elif {PATIENT_ID, "image", "mask"} <= set(columns):
        cases = [Case(row[PATIENT_ID], str(path.parent / row["image"]), str(path.parent / row["mask"])) for row in rows]
    else:
        raise GcmlmError(f"expected a cohort manifest (patient_id,kind,path,label) or columns {PATIENT_ID},image,mask", path)
    if not cases:
        raise GcmlmError("no CT cases in this manifest", path)
    ids = [c.patient_id for c in cases]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise GcmlmError(f"patient(s) with more than one CT: {', '.join(dupes[:10])}; one row per patient", path)
    return cases


def concat_tables(paths: list[str | os.PathLike]) -> pd.DataFrame:
    """Join per-patient radiomics tables; they must hold the same rad_ columns (same parameters)."""
    import pandas as pd

    from gcmlm.common.tables import feature_columns, read_patient_table
    tables, seen, columns = [], {}, None
    for path in paths:
        table = read_patient_table(path)
        features = feature_columns(table, "rad")
        if not features:
            raise GcmlmError("no rad_ feature columns", path)
        if columns is None:
            columns, first = features, path
        elif set(features) != set(columns):
            extra = sorted(set(features) ^ set(columns))
            raise GcmlmError(f"feature columns differ from {first} (e.g. {extra[0]}); were the same parameters used?",
                             path)
        for pid in table[PATIENT_ID]:
            if pid in seen:
                raise GcmlmError(f"patient {pid} is also in {seen[pid]}", path)
            seen[pid] = path
        tables.append(table[[PATIENT_ID, *columns]])
    return pd.concat(tables, ignore_index=True)


def run(args: argparse.Namespace) -> int:
    modes = [name for name, used in (("--image", args.image or args.mask or args.patient_id),
                                     ("--manifest", args.manifest), ("--concat", args.concat)) if used]
    if len(modes) > 1:
        raise GcmlmError(f"use one of --image/--mask/--patient-id, --manifest or --concat, not {' and '.join(modes)}")
    if args.concat:
        from gcmlm.common.tables import write_patient_table

        check_outputs(files=[args.out], inputs=args.concat)
        table = concat_tables(args.concat)
        write_patient_table(table, args.out)
        log.info("joined %d tables, %d patients -> %s", len(args.concat), len(table), args.out)
        return 0
    params = resolve_params(args.params)
    if args.manifest:
        cases = cases_from_manifest(args.manifest)
    else:
        cases = cases_from_lists(args.image, args.mask, args.patient_id)
    check_outputs(files=[args.out, args.diagnostics],
                  inputs=[args.manifest, params, *(p for c in cases for p in (c.image, c.mask))])
    rows, diagnostics = extract_features(cases, params, args.label, args.resample_mask_to_image)
    write_patient_rows(rows, args.out)  # no pandas: its import costs as much as a small case's extraction
    if args.diagnostics:
        write_diagnostics(diagnostics, args.diagnostics)
    log.info("%d cases, %d features each (%s) -> %s", len(rows), len(rows[0]) - 1, params.name, args.out)
    return 0


def write_diagnostics(diagnostics: dict[str, dict], path: str | os.PathLike) -> None:
    """JSON {patient_id: {name: value}}, or a CSV with one row per patient (values as JSON text)."""
    if str(path).lower().endswith(".csv"):
        import pandas as pd

        rows = [{PATIENT_ID: pid, **{k: v if isinstance(v, str | int | float) else json.dumps(v) for k, v in d.items()}}
                for pid, d in diagnostics.items()]
        with atomic_file(path) as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)
    else:
        write_json(path, diagnostics)


def _plain(value):
    """Diagnostics values (numpy scalars and arrays, tuples, dicts) as JSON-ready Python values."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
