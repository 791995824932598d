"""nnunet-dataset: CT images and label maps -> an nnU-Net v2 raw dataset (DatasetNNN_Name).

Writes ``imagesTr/<case>_0000.nii.gz``, ``labelsTr/<case>.nii.gz``, ``imagesTs/<case>_0000.nii.gz``
and ``dataset.json`` (v2: channel_names, labels, numTraining, file_ending) under
``OUT/DatasetNNN_Name``, the layout nnUNetv2_plan_and_preprocess reads from ``nnUNet_raw``.
Every image/label pair must share size, spacing, origin and direction, and every label value
must be declared; errors name the case. The dataset appears only when complete.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gcmlm.common.atomic import atomic_dir, check_outputs
from gcmlm.common.errors import GcmlmError
from gcmlm.common.manifest import read_manifest, rows_of_kind
from gcmlm.common.progress import track
from gcmlm.radiology.core.images import grid_differences, read_image, write_image_to
from gcmlm.radiology.core.nnunet import CT_SUFFIX, FILE_ENDING, case_id_from_image, dataset_name

log = logging.getLogger("gcmlm")

DEFAULT_LABELS = {"background": 0, "stomach": 1, "tumour": 2}
CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")


@dataclass(frozen=True)
class Case:
    """One image of the dataset; with a label map it is a training case (imagesTr, labelsTr)."""

    case_id: str
    image: Path
    label: Path | None  # None: a test case (imagesTs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("cases (a cohort manifest, or image/label lists)")
    src.add_argument("--manifest", metavar="CSV",
                     help="cohort manifest: kind=ct rows with a label are training cases, without one test cases")
    src.add_argument("--images", nargs="+", metavar="IMG", default=[], help="training CT images")
    src.add_argument("--labels", nargs="+", metavar="SEG", default=[], help="label maps, in the order of --images")
    src.add_argument("--case-ids", nargs="+", metavar="ID",
                     help="case IDs for --images (default: file names without extension and _0000)")
    src.add_argument("--test-images", nargs="+", metavar="IMG", default=[], help="unlabelled images for imagesTs")
    src.add_argument("--test-cases", nargs="+", metavar="ID", default=[],
                     help="manifest patients to hold out: their CT goes to imagesTs, their label is left out")
    parser.add_argument("--dataset-id", required=True, type=int, metavar="NNN", help="nnU-Net dataset ID (1-999)")
    parser.add_argument("--dataset-name", required=True, metavar="NAME", help="e.g. Stomach -> Dataset501_Stomach")
    parser.add_argument("--classes", nargs="+", metavar="NAME=VALUE",
                        help="label names and values for dataset.json (default: background=0 stomach=1 tumour=2)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="nnUNet_raw folder; the dataset is written to DIR/DatasetNNN_Name (replacing it)")


def parse_classes(items: list[str] | None) -> dict[str, int]:
    if not items:
        return dict(DEFAULT_LABELS)
    labels: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value.strip().isdigit():
            raise GcmlmError(f"--classes expects NAME=VALUE with an integer value, got '{item}'")
        labels[name] = int(value)
    if labels.get("background") != 0:
        raise GcmlmError("--classes must declare background=0 (nnU-Net requires it)")
    if sorted(labels.values()) != list(range(len(labels))):
        raise GcmlmError(f"--classes values must be consecutive from 0 (nnU-Net requires it), got {sorted(labels.values())}")
    return labels


def collect_cases(manifest: str | os.PathLike | None = None, test_cases: Sequence[str] = (),
                  images: Sequence[str | os.PathLike] = (), labels: Sequence[str | os.PathLike] = (),
                  case_ids: Sequence[str] | None = None,
                  test_images: Sequence[str | os.PathLike] = ()) -> list[Case]:
    """The dataset's cases from a cohort manifest and/or image lists (see :func:`cases_from_manifest`
    and :func:`cases_from_images`); ``test_cases`` needs a manifest."""
    cases: list[Case] = []
    if manifest:
        cases += cases_from_manifest(manifest, test_cases)
    elif test_cases:
        raise GcmlmError("--test-cases selects manifest patients; give --manifest")
    return cases + cases_from_images(images, labels, case_ids, test_images)


def cases_from_manifest(manifest: str | os.PathLike, test_cases: Sequence[str] = ()) -> list[Case]:
    """kind=ct rows of a cohort manifest: with a label, training cases; without one, or held out
    in ``test_cases`` (patient IDs), test cases."""
    cts = rows_of_kind(read_manifest(manifest), "ct")
    unknown = sorted(set(test_cases) - {row["patient_id"] for row in cts})
    if unknown:
        raise GcmlmError(f"--test-cases {', '.join(unknown)} not among the manifest's CT patients", manifest)
    held_out = set(test_cases)
    cases = []
    for row in cts:
        train = bool(row["label"]) and row["patient_id"] not in held_out
        cases.append(Case(row["patient_id"], Path(row["path"]), Path(row["label"]) if train else None))
    return cases


def cases_from_images(images: Sequence[str | os.PathLike], labels: Sequence[str | os.PathLike],
                      case_ids: Sequence[str] | None = None,
                      test_images: Sequence[str | os.PathLike] = ()) -> list[Case]:
    """Training cases from ``images`` and their ``labels`` (same order), test cases from ``test_images``.

    Case IDs default to the file names without extension and ``_0000``.
    """
    if len(images) != len(labels):
        raise GcmlmError(f"{len(images)} --images but {len(labels)} --labels; give one label per image")
    ids = case_ids or [case_id_from_image(p) for p in images]
    if len(ids) != len(images):
        raise GcmlmError(f"{len(ids)} --case-ids for {len(images)} --images")
    cases = [Case(i, Path(img), Path(lab)) for i, img, lab in zip(ids, images, labels, strict=True)]
    return cases + [Case(case_id_from_image(p), Path(p), None) for p in test_images]


def check_cases(cases: list[Case]) -> None:
    if not any(c.label for c in cases):
        raise GcmlmError("no training case: give --manifest with labelled CT rows or --images with --labels")
    seen: set[tuple[str, bool]] = set()
    for case in cases:
        if not CASE_ID.match(case.case_id):
            raise GcmlmError(f"case ID '{case.case_id}' must be letters, digits, '.', '_' or '-'", case.image)
        key = (case.case_id, case.label is not None)
        if key in seen:
            raise GcmlmError(f"case ID '{case.case_id}' appears twice", case.image)
        seen.add(key)
        for path in (case.image, case.label):
            if path is not None and not path.is_file():
                problem = "is a folder; expected an image file" if path.is_dir() else "no such file"
                raise GcmlmError(f"case {case.case_id}: {problem}", path)


def check_pair(case: Case, declared: set[int]) -> None:
    """Same grid for image and label, label values all declared; errors name the case."""
    import SimpleITK as sitk

    # the whole image, not only its header: a truncated file would otherwise be copied into the dataset
    image = _read_volume(case.image, case.case_id)
    label_img = _read_volume(case.label, case.case_id)
    problems = grid_differences(image, label_img)
    if problems:
        raise GcmlmError(f"case {case.case_id}: label map is not on the image grid ({'; '.join(problems)})",
                         case.label)
    values = np.unique(sitk.GetArrayViewFromImage(label_img))
    if not np.all(np.mod(values, 1) == 0):
        raise GcmlmError(f"case {case.case_id}: label map has non-integer values", case.label)
    undeclared = sorted(int(v) for v in values if int(v) not in declared)
    if undeclared:
        raise GcmlmError(f"case {case.case_id}: label value(s) {undeclared} not declared in the labels "
                         f"{sorted(declared)}", case.label)


def _read_volume(path: Path, case_id: str):
    """A single-channel 3D image (what nnU-Net's CT channel and label maps are); errors name the case."""
    image = _read_image(path, case_id)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise GcmlmError(f"case {case_id}: expected a single-channel 3D image, found a {image.GetDimension()}D "
                         f"image with {image.GetNumberOfComponentsPerPixel()} component(s)", path)
    return image


def _read_image(path: Path, case_id: str):
    try:
        return read_image(path)[0]
    except GcmlmError as exc:
        raise GcmlmError(f"case {case_id}: {exc.problem}", path) from None


def copy_as_nifti(src: Path, dest: Path, case_id: str) -> None:
    """NIfTI inputs are copied byte for byte; other formats are converted to NIfTI."""
    if src.name.lower().endswith(FILE_ENDING):
        shutil.copyfile(src, dest)
        return
    write_image_to(_read_image(src, case_id), dest)


def dataset_json(labels: dict[str, int], num_training: int, name: str) -> dict:
    return {
        "channel_names": {"0": "CT"},  # "CT" selects nnU-Net's CT normalisation
        "labels": labels,
        "numTraining": num_training,
        "file_ending": FILE_ENDING,
        "name": name,
        "description": "written by gcmlm nnunet-dataset",
    }


def build_dataset(cases: list[Case], out_root: str | os.PathLike, name: str,
                  labels: Mapping[str, int] = DEFAULT_LABELS) -> Path:
    """Write the raw dataset ``out_root/name`` (replacing it) and return its path.

    ``name``: ``DatasetNNN_Name`` (see :func:`gcmlm.radiology.core.nnunet.dataset_name`);
    ``labels``: label name -> value for dataset.json, background=0 and consecutive.
    Every training pair is checked (grid, declared labels) before anything is written.
    """
    labels = dict(labels)
    dest = Path(out_root) / name
    check_outputs(dirs=[dest], inputs=[p for c in cases for p in (c.image, c.label)])
    check_cases(cases)
    declared = set(labels.values())
    train = [c for c in cases if c.label is not None]
    test = [c for c in cases if c.label is None]
    for case in track(train, "checking image/label pairs", unit="cases"):
        check_pair(case, declared)
    for case in track(test, "checking test images", unit="cases"):
        _read_volume(case.image, case.case_id)
    with atomic_dir(dest) as tmp:
        for sub in ("imagesTr", "labelsTr") + (("imagesTs",) if test else ()):
            (tmp / sub).mkdir()
        for case in track(train, "writing training cases", unit="cases"):
            copy_as_nifti(case.image, tmp / "imagesTr" / f"{case.case_id}{CT_SUFFIX}{FILE_ENDING}", case.case_id)
            copy_as_nifti(case.label, tmp / "labelsTr" / f"{case.case_id}{FILE_ENDING}", case.case_id)
        for case in test:
            copy_as_nifti(case.image, tmp / "imagesTs" / f"{case.case_id}{CT_SUFFIX}{FILE_ENDING}", case.case_id)
        (tmp / "dataset.json").write_text(json.dumps(dataset_json(labels, len(train), name), indent=2) + "\n")
    log.info("wrote %s: %d training and %d test cases", dest, len(train), len(test))
    return dest


def run(args: argparse.Namespace) -> int:
    name = dataset_name(args.dataset_id, args.dataset_name)
    labels = parse_classes(args.classes)
    cases = collect_cases(args.manifest, args.test_cases, args.images, args.labels, args.case_ids, args.test_images)
    dest = build_dataset(cases, args.out, name, labels)
    print(dest)
    return 0
