"""Read a gc-mlm results tree into per-patient and per-slide facts for the run report.

The tree is the grouped layout of workflows/gc-mlm.cwl (README, "Results"):
``radiology/{masks,qa,features}/``, ``pathology/{coords,features,qa}/`` (with ``slide_model: abmil``
also ``pathology/mil/``: mil_risk.csv, mil_slide_risk.csv, the model, ``attention/`` and
``heatmaps/``), ``fusion/`` (``model/``, ``external/``). Files are recognised by name and content, so a partial tree (one branch only,
a cohort run by hand) gives a partial report rather than an error.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gcmlm.common.errors import GcmlmError, one_line
from gcmlm.common.manifest import read_manifest, rows_of_kind, slide_patient_map
from gcmlm.common.tables import PATIENT_ID
from gcmlm.report.core.nifti import read_label_map

PathLike = str | os.PathLike
NIFTI = ".nii.gz"
# Radiomics shape features that carry the tumour volume in mm^3 (used when the mask is not readable).
VOLUME_COLUMNS = ("rad_original_shape_VoxelVolume", "rad_original_shape_MeshVolume")
CT_JSON_SUFFIXES = ("_ct_preprocess", "_radiomics_diagnostics")
SLIDE_IMAGE_SUFFIXES = {"_tissue": "tissue", "_patches": "patches", "_heatmap": "heatmap"}


@dataclass
class Image:
    path: Path  # the PNG in the results tree
    caption: str
    kind: str  # ct | tissue | patches | heatmap
    mil_risk: float | None = None  # heatmaps: the slide's MIL risk (the gallery's order)


@dataclass
class Slide:
    slide_id: str
    patient_id: str | None = None
    n_patches: int | None = None
    tissue_mm2: float | None = None
    used: bool | None = None  # slide-pool's verdict (False: no patches, left out)
    mil_risk: float | None = None  # mil-predict's risk of the slide alone (mil_slide_risk.csv)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Patient:
    patient_id: str
    has_ct: bool = False
    tumour_ml: float | None = None
    mask_voxels: int | None = None  # voxels of any label > 0
    dice: float | None = None  # mask vs label, tumour label
    slides: list[Slide] = field(default_factory=list)
    in_fusion: bool | None = None  # None: no join report
    mil_risk: float | None = None  # mil-predict's patient risk (mil_risk.csv), in-sample
    drop_reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def n_patches(self) -> int | None:
        counts = [s.n_patches for s in self.slides if s.n_patches is not None]
        return sum(counts) if counts else None

    @property
    def tissue_mm2(self) -> float | None:
        areas = [s.tissue_mm2 for s in self.slides if s.tissue_mm2 is not None]
        return round(sum(areas), 3) if areas else None


@dataclass
class RunFacts:
    patients: dict[str, Patient]
    images: list[Image]
    cohort_warnings: list[str]
    produced: dict[str, dict[str, int]]  # branch -> what -> count
    expected: dict[str, int]  # from the manifest: patients, cts, slides (empty without one)
    join: dict | None
    model_aucs: dict[str, float]
    model_report: Path | None
    external_report: Path | None


def read_json(path: Path) -> dict | list | None:
    """A JSON file's content; None (and no error) for one that is not valid JSON: the report shows
    what it can, and says which summary it could not read."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def gather_warnings(value) -> Iterator[str]:
    """Every string under a ``warnings`` (list) or ``warning`` (string) key, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("warnings", "warning") and isinstance(item, str):
                yield item
            elif key == "warnings" and isinstance(item, list):
                yield from (w if isinstance(w, str) else json.dumps(w, sort_keys=True) for w in item)
            else:
                yield from gather_warnings(item)
    elif isinstance(value, list):
        for item in value:
            yield from gather_warnings(item)


def files(root: Path | None, pattern: str) -> list[Path]:
    """Files matching ``pattern`` under ``root``, following symbolic links: workflow engines stage
    folders as links (rglob would not enter them)."""
    if not root or not root.is_dir():
        return []
    found = [Path(folder) / name for folder, _, names in os.walk(root, followlinks=True)
             for name in fnmatch.filter(names, pattern)]
    return sorted(p for p in found if p.is_file())


def strip_suffix(name: str, suffixes: Iterable[str]) -> tuple[str, str] | None:
    for suffix in suffixes:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], suffix
    return None


def read_patient_csv(path: Path, first: str = PATIENT_ID) -> list[dict[str, str]]:
    """The rows of a CSV whose first column is ``first`` (patient_id: a patient table)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or reader.fieldnames[0] != first:
            return []
        return list(reader)


def number(text: str | None) -> float | None:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


class Collector:
    """Fills ``RunFacts`` from one results tree, branch by branch."""

    def __init__(self, results: Path, tumour_label: int, labels: dict[str, Path]):
        self.root = results
        self.tumour_label = tumour_label
        self.labels = labels
        self.patients: dict[str, Patient] = {}
        self.slides: dict[str, Slide] = {}
        self.images: list[Image] = []
        self.cohort_warnings: list[str] = []
        self.produced: dict[str, dict[str, int]] = {}

    def patient(self, pid: str) -> Patient:
        return self.patients.setdefault(pid, Patient(pid))

    def slide(self, sid: str) -> Slide:
        return self.slides.setdefault(sid, Slide(sid))

    def where(self, path: Path) -> str:
        """A path as the page shows it: relative to the results root, the same on every engine."""
        return Path(os.path.relpath(path, self.root)).as_posix()

    def branch(self, name: str) -> Path | None:
        path = self.root / name
        return path if path.is_dir() else None

    # --- radiology -------------------------------------------------------------------------------------

    def radiology(self) -> None:
        root = self.branch("radiology")
        masks = files(root, f"*{NIFTI}")
        for mask in masks:
            self.mask(mask.name[: -len(NIFTI)], mask)
        qa = files(root, "*.png")
        for png in qa:
            self.images.append(Image(png, png.stem, "ct"))
            self.patient(png.stem).has_ct = True
        for summary in files(root, "*.json"):
            found = strip_suffix(summary.stem, CT_JSON_SUFFIXES)
            self.warnings_of(summary, self.patient(found[0]) if found else None)
        rows = [row for table in files(root, "*.csv") for row in read_patient_csv(table)]
        for row in rows:
            self.volume_from_radiomics(self.patient(row[PATIENT_ID]), row)
        self.produced["radiology"] = {"masks": len(masks), "CT overlays": len(qa), "radiomics rows": len(rows)}

    def mask(self, pid: str, path: Path) -> None:
        patient = self.patient(pid)
        patient.has_ct = True
        try:
            mask = read_label_map(path)
        except GcmlmError as exc:
            patient.warnings.append(f"mask not readable: {self.where(path)}: {exc.problem}")
            return
        tumour = mask.array == self.tumour_label
        patient.mask_voxels = int(np.count_nonzero(mask.array))
        patient.tumour_ml = round(int(tumour.sum()) * mask.voxel_mm3 / 1000.0, 3)
        if pid in self.labels:
            patient.dice = self.agreement(tumour, self.labels[pid], patient)

    def agreement(self, tumour: np.ndarray, label_path: Path, patient: Patient) -> float | None:
        """Dice of the tumour label between the mask and the reference label map (same grid only)."""
        try:
            label = read_label_map(label_path).array == self.tumour_label
        except GcmlmError as exc:
            patient.warnings.append(f"label not readable: {label_path.name}: {exc.problem}")
            return None
        if label.shape != tumour.shape:
            patient.warnings.append(f"label grid {label.shape} differs from the mask's {tumour.shape}: no agreement")
            return None
        total = int(label.sum()) + int(tumour.sum())
        return round(2.0 * int((label & tumour).sum()) / total, 4) if total else None

    def volume_from_radiomics(self, patient: Patient, row: dict[str, str]) -> None:
        patient.has_ct = True
        if patient.tumour_ml is not None:
            return
        for column in VOLUME_COLUMNS:
            try:
                patient.tumour_ml = round(float(row[column]) / 1000.0, 3)
                return
            except (KeyError, ValueError):
                continue

    # --- pathology -------------------------------------------------------------------------------------

    def pathology(self) -> None:
        root = self.branch("pathology")
        tiled = 0
        for summary in files(root, "*.json"):
            content = read_json(summary)
            if isinstance(content, dict) and "slide_id" in content and "n_patches" in content:
                tiled += 1
                self.tiling_summary(content)
            elif isinstance(content, dict) and isinstance(content.get("slides"), list):
                self.pool_report(content)
            self.warnings_of(summary, None, content)
        tables = files(root, "*.csv")
        self.mil_risks(tables)
        images = heatmaps = 0
        for png in files(root, "*.png"):
            found = strip_suffix(png.stem, SLIDE_IMAGE_SUFFIXES)
            if found:
                kind = SLIDE_IMAGE_SUFFIXES[found[1]]
                slide = self.slide(found[0])
                caption = f"{found[0]} {kind}"
                if kind == "heatmap":
                    heatmaps += 1
                    caption = f"{found[0]} attention" + (f", MIL risk {slide.mil_risk:.3f}"
                                                         if slide.mil_risk is not None else "")
                else:
                    images += 1
                self.images.append(Image(png, caption, kind, slide.mil_risk if kind == "heatmap" else None))
        rows = [row for table in tables for row in read_patient_csv(table)
                if any(k.startswith("path_") for k in row)]
        self.produced["pathology"] = {"slides tiled": tiled, "slide images": images,
                                      "slides with patches": sum(1 for s in self.slides.values() if s.n_patches),
                                      "patient rows": len({r[PATIENT_ID] for r in rows if "path_n_slides" in r})}
        if heatmaps or any(p.mil_risk is not None for p in self.patients.values()):
            self.produced["pathology"]["MIL heatmaps"] = heatmaps

    def mil_risks(self, tables: list[Path]) -> None:
        """mil-predict's tables (slide_model abmil): mil_risk.csv per patient, mil_slide_risk.csv per slide."""
        for table in tables:
            for row in read_patient_csv(table):
                if "mil_risk" in row:
                    self.patient(row[PATIENT_ID]).mil_risk = number(row["mil_risk"])
            for row in read_patient_csv(table, "slide_id"):
                if "mil_risk" in row:
                    slide = self.slide(row["slide_id"])
                    slide.mil_risk = number(row["mil_risk"])
                    slide.patient_id = slide.patient_id or row.get(PATIENT_ID) or None

    def tiling_summary(self, content: dict) -> None:
        slide = self.slide(str(content["slide_id"]))
        slide.n_patches = int(content["n_patches"])
        area = content.get("tissue_area_mm2")
        slide.tissue_mm2 = float(area) if isinstance(area, (int, float)) else None

    def pool_report(self, content: dict) -> None:
        for entry in content["slides"]:
            if isinstance(entry, dict) and "slide_id" in entry:
                slide = self.slide(str(entry["slide_id"]))
                slide.patient_id = str(entry.get("patient_id") or slide.patient_id or "") or None
                slide.used = bool(entry.get("used", True))
                if slide.n_patches is None and isinstance(entry.get("n_patches"), int):
                    slide.n_patches = entry["n_patches"]

    # --- fusion ----------------------------------------------------------------------------------------

    def fusion(self) -> tuple[dict | None, dict[str, float], Path | None, Path | None]:
        root = self.branch("fusion")
        join, aucs = None, {}
        for summary in files(root, "*.json"):
            content = read_json(summary)
            if isinstance(content, dict) and "problem_patients" in content:
                join = content
            elif isinstance(content, dict) and isinstance(content.get("models"), dict) and not aucs:
                aucs = {name: float(m["auc"]) for name, m in content["models"].items()
                        if isinstance(m, dict) and isinstance(m.get("auc"), (int, float))}
            self.warnings_of(summary, None, content)
        reports = files(root, "report.html")
        # fusion/model/ (fusion-train), fusion/external/ (fusion-evaluate); fusion/survival/ is neither
        model = next((r for r in reports if not {"external", "survival"} & set(r.relative_to(root).parts[:-1])), None)
        external = next((r for r in reports if "external" in r.relative_to(root).parts[:-1]), None)
        if join is not None:
            self.join(join)
        self.produced["fusion"] = {"merged patients": int(join.get("merged_patients", 0)) if join else 0,
                                   "dropped patients": len(join.get("dropped_patients", [])) if join else 0,
                                   "models": len(aucs)}
        return join, aucs, model, external

    def join(self, report: dict) -> None:
        problems = report.get("problem_patients") or {}
        dropped = set(report.get("dropped_patients") or [])
        failed = report.get("merged_patients") == 0 and problems  # policy fail: nobody merged
        for pid, reasons in problems.items():
            self.patient(pid).drop_reasons = [str(r) for r in reasons]
        for pid in self.patients.keys() | set(problems):
            self.patient(pid).in_fusion = not (pid in dropped or failed)

    # --- every stage -----------------------------------------------------------------------------------

    def warnings_of(self, path: Path, patient: Patient | None, content=None) -> None:
        content = read_json(path) if content is None else content
        if content is None:
            self.cohort_warnings.append(f"{self.where(path)}: not valid JSON")
            return
        for warning in gather_warnings(content):
            if patient is not None:
                patient.warnings.append(warning)
            elif isinstance(content, dict) and "slide_id" in content:
                self.slide(str(content["slide_id"])).warnings.append(warning)
            else:
                self.cohort_warnings.append(f"{self.where(path)}: {warning}")

    def attach_slides(self, slide_map: dict[str, str]) -> None:
        """Each slide to its patient (pool report first, then the manifest, else its own ID)."""
        for slide in self.slides.values():
            pid = slide.patient_id or slide_map.get(slide.slide_id) or slide.slide_id
            slide.patient_id = pid
            patient = self.patient(pid)
            patient.slides.append(slide)
            patient.warnings += [f"{slide.slide_id}: {w}" for w in slide.warnings]


def read_cohort(manifest: Path | None) -> tuple[dict[str, int], dict[str, str], dict[str, Path], set[str]]:
    """Expected counts, slide -> patient, CT labels that exist, and patient IDs, from the manifest
    (a cohort manifest, or a patient_id,slide_id CSV, which has slides only)."""
    if manifest is None:
        return {}, {}, {}, set()
    slide_map = slide_patient_map(manifest)
    try:
        rows = read_manifest(manifest)
    except GcmlmError:  # a patient_id,slide_id map: slides only
        pids = set(slide_map.values())
        return {"patients": len(pids), "slides": len(slide_map)}, slide_map, {}, pids
    cts = rows_of_kind(rows, "ct")
    labels = {r[PATIENT_ID]: Path(r["label"]) for r in cts if r.get("label") and Path(r["label"]).is_file()}
    pids = {r[PATIENT_ID] for r in rows}
    expected = {"patients": len(pids), "CTs": len(cts), "slides": len(rows_of_kind(rows, "slide"))}
    return expected, slide_map, labels, pids


def label_files(paths: Iterable[PathLike]) -> dict[str, Path]:
    """CT label maps named <patient_id>.nii.gz (as the masks are)."""
    labels = {}
    for path in map(Path, paths):
        if not path.name.endswith(NIFTI):
            raise GcmlmError(f"a label map must be named <patient_id>{NIFTI}", path)
        labels[path.name[: -len(NIFTI)]] = path
    return labels


def collect(results: PathLike, manifest: PathLike | None = None, labels: Iterable[PathLike] = (),
            tumour_label: int = 2) -> RunFacts:
    """Everything the run report shows, read from the results tree."""
    root = Path(results)
    if not root.is_dir():
        raise GcmlmError("no such results folder", root)
    expected, slide_map, manifest_labels, pids = read_cohort(Path(manifest) if manifest else None)
    collector = Collector(root, tumour_label, {**manifest_labels, **label_files(labels)})
    for pid in pids:
        collector.patient(pid)
    try:
        collector.radiology()
        collector.pathology()
        collector.attach_slides(slide_map)
        join, aucs, model_report, external_report = collector.fusion()
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise GcmlmError(f"results tree not readable ({one_line(exc)})", root) from None
    return RunFacts(dict(sorted(collector.patients.items())), collector.images, collector.cohort_warnings,
                    collector.produced, expected, join, aucs, model_report, external_report)


def flag_outliers(patients: Iterable[Patient], min_patches: int, min_dice: float) -> None:
    """Flags shown in the table and the outlier list: what a reviewer should look at first."""
    for p in patients:
        if p.has_ct and p.mask_voxels == 0:
            p.flags.append("empty mask")
        elif p.has_ct and p.tumour_ml == 0:
            p.flags.append("no tumour in mask")
        if p.dice is not None and p.dice < min_dice:
            p.flags.append(f"mask/label Dice {p.dice:.2f}")
        for s in p.slides:
            if s.n_patches is not None and s.n_patches < min_patches:
                p.flags.append(f"{s.slide_id}: {s.n_patches} patches")
        if p.in_fusion is False:
            p.flags.append("dropped at the join")
