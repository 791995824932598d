"""ct-preprocess: one CT (DICOM series, NIfTI, NRRD, MHA) -> resampled, optionally clipped and normalised NIfTI.

Resampling keeps the direction and the corner of the field of view (the outer edge of the first
voxel; the origin, a voxel centre, moves by half the spacing change) and rounds the output size, so
the physical extent changes by at most half an output voxel. A label map given with
``--mask`` is resampled onto exactly the same output grid with nearest-neighbour interpolation,
so label values are never blended. Order of operations: resample, clip, z-score (clipping after
B-spline resampling also removes its overshoot at sharp edges).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from gcmlm.common.atomic import atomic_file
from gcmlm.common.errors import GcmlmError
from gcmlm.radiology.core.images import check_same_grid, grid, label_values, read_image, write_image_to

log = logging.getLogger("gcmlm")

INTERPOLATORS = {"bspline": sitk.sitkBSpline, "linear": sitk.sitkLinear}
ZSCORE_REGIONS = ("image", "mask", "body")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", required=True, metavar="PATH|DICOMDIR",
                        help="CT as a DICOM series folder, NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr) or MetaImage (.mha, .mhd)")
    parser.add_argument("--out", required=True, metavar="NIFTI", help="preprocessed image (.nii.gz or .nii)")
    parser.add_argument("--series-uid", metavar="UID", help="the DICOM series to read when the folder holds several")
    parser.add_argument("--spacing", nargs=3, type=float, metavar=("X", "Y", "Z"),
                        help="output voxel spacing in mm (default: keep the input grid)")
    parser.add_argument("--interpolator", choices=sorted(INTERPOLATORS), default="bspline",
                        help="image interpolator for resampling (label maps always use nearest neighbour)")
    parser.add_argument("--mask", metavar="PATH", help="label map on the image grid, resampled with nearest neighbour")
    parser.add_argument("--mask-out", metavar="NIFTI", help="where to write the resampled label map (needed with --mask)")
    parser.add_argument("--clip", nargs=2, type=float, metavar=("LOW", "HIGH"),
                        help="clip intensities to this window (e.g. -200 300 HU)")
    parser.add_argument("--zscore", action="store_true",
                        help="normalise to zero mean and unit variance (statistics from --zscore-region)")
    parser.add_argument("--zscore-region", choices=ZSCORE_REGIONS, default="image",
                        help="voxels the z-score statistics come from: the whole image, the mask's labels, "
                             "or the body (voxels above --body-threshold)")
    parser.add_argument("--body-threshold", type=float, default=-500.0, metavar="HU",
                        help="intensity above which a voxel counts as body for --zscore-region body")
    parser.add_argument("--report", metavar="JSON", help="what was done: grids, interpolator, clip, normalisation")


def output_grid(image: sitk.Image, spacing: list[float]) -> tuple[list[int], list[float], list[float]]:
    """Size, spacing and origin of the resampled grid.

    The field of view keeps its corner (the outer edge of the first voxel) and direction, so the
    new voxel centres are shifted by half the spacing change; the size is rounded, so the far edge
    moves by at most half an output voxel. This is how PyRadiomics and TorchIO resample too.
    """
    old_size = np.array(image.GetSize(), dtype=float)
    old_spacing = np.array(image.GetSpacing(), dtype=float)
    new_spacing = np.array(spacing, dtype=float)
    size = np.maximum(1, np.round(old_size * old_spacing / new_spacing)).astype(int)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    origin = np.array(image.GetOrigin()) + direction @ ((new_spacing - old_spacing) / 2)
    return [int(s) for s in size], [float(s) for s in new_spacing], [float(o) for o in origin]


def resample(image: sitk.Image, size: list[int], spacing: list[float], origin: list[float], interpolator: int) -> sitk.Image:
    return sitk.Resample(image, size, sitk.Transform(), interpolator, origin, spacing,
                         image.GetDirection(), 0, image.GetPixelID())


def zscore(array: np.ndarray, region: np.ndarray, source: str) -> tuple[np.ndarray, dict]:
    values = array[region]
    if values.size == 0:
        raise GcmlmError(f"the z-score region ({source}) holds no voxels")
    mean, std = float(values.mean()), float(values.std())
    if std == 0:
        raise GcmlmError(f"intensities in the z-score region ({source}) are constant ({mean:g}); cannot normalise")
    return (array - mean) / std, {"region": source, "mean": mean, "std": std, "n_voxels": int(values.size)}


def _check_args(args: argparse.Namespace) -> None:
    if bool(args.mask) != bool(args.mask_out):
        raise GcmlmError("--mask and --mask-out go together")
    if args.spacing and min(args.spacing) <= 0:
        raise GcmlmError(f"--spacing must be positive, got {args.spacing}")
    if args.clip and args.clip[0] >= args.clip[1]:
        raise GcmlmError(f"--clip LOW must be below HIGH, got {args.clip}")
    if args.zscore and args.zscore_region == "mask" and not args.mask:
        raise GcmlmError("--zscore-region mask needs --mask")
    for out in (args.out, args.mask_out):
        if out and not str(out).lower().endswith((".nii.gz", ".nii")):
            raise GcmlmError("output must be NIfTI (.nii.gz or .nii)", out)
    if args.mask_out and Path(args.mask_out).resolve() == Path(args.out).resolve():
        raise GcmlmError("--mask-out must differ from --out", args.mask_out)


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    image, source = read_image(args.image, args.series_uid)
    if image.GetDimension() != 3:
        raise GcmlmError(f"expected a 3D CT, found a {image.GetDimension()}D image", args.image)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise GcmlmError(f"expected a single-channel CT, found {image.GetNumberOfComponentsPerPixel()} components",
                         args.image)
    mask = None
    if args.mask:
        mask, _ = read_image(args.mask)
        check_same_grid(image, mask, args.mask, "mask",
                        "resample it onto the image first (e.g. with gcmlm radiomics-extract --resample-mask-to-image)")
    report: dict = {"input": {"path": Path(source.path).name, "format": source.format, "series_uid": source.series_uid,
                              "n_files": source.n_files, **source.dicom, **grid(image),
                              "pixel_type": image.GetPixelIDTypeAsString()}}

    image = sitk.Cast(image, sitk.sitkFloat32)
    if args.spacing:
        size, spacing, origin = output_grid(image, args.spacing)
        image = resample(image, size, spacing, origin, INTERPOLATORS[args.interpolator])
        if mask is not None:
            mask = resample(mask, size, spacing, origin, sitk.sitkNearestNeighbor)
    report["resampling"] = {"spacing": args.spacing, "interpolator": args.interpolator if args.spacing else None,
                            "label_interpolator": "nearest" if args.spacing and mask is not None else None}

    array = sitk.GetArrayFromImage(image)
    report["intensity_before"] = _range(array)
    if args.clip:
        array = np.clip(array, *args.clip)
    report["clip"] = args.clip
    report["zscore"] = None
    if args.zscore:
        if args.zscore_region == "image":
            region = np.ones(array.shape, bool)
        elif args.zscore_region == "mask":
            region = sitk.GetArrayViewFromImage(mask) != 0
        else:
            region = array > args.body_threshold
        source_name = args.zscore_region + (f" > {args.body_threshold:g}" if args.zscore_region == "body" else "")
        array, report["zscore"] = zscore(array, region, source_name)
    report["intensity_after"] = _range(array)

    out_image = sitk.GetImageFromArray(array.astype(np.float32))
    out_image.CopyInformation(image)
    report["output"] = {"path": Path(args.out).name, **grid(out_image), "pixel_type": out_image.GetPixelIDTypeAsString()}
    if mask is not None:
        report["mask"] = {"path": Path(args.mask).name, "out": Path(args.mask_out).name,
                          "labels": label_values(mask),
                          "voxels": {str(v): int(n) for v, n in _label_counts(mask).items()}}
    _write_outputs(args, out_image, mask, report)
    log.info("%s %s -> %s %s", source.format, list(report["input"]["size"]), args.out, list(out_image.GetSize()))
    return 0


def _write_outputs(args: argparse.Namespace, image: sitk.Image, mask: sitk.Image | None, report: dict) -> None:
    """All outputs appear together: each goes to a temporary name and all are renamed at the end."""
    with contextlib.ExitStack() as stack:
        write_image_to(image, stack.enter_context(atomic_file(args.out)), _compress(args.out))
        if mask is not None:
            write_image_to(mask, stack.enter_context(atomic_file(args.mask_out)), _compress(args.mask_out))
        if args.report:
            stack.enter_context(atomic_file(args.report)).write_text(json.dumps(report, indent=2) + "\n")


def _compress(path: str) -> bool:
    return str(path).lower().endswith(".gz")


def _range(array: np.ndarray) -> dict:
    return {"min": float(array.min()), "max": float(array.max()), "mean": float(array.mean())}


def _label_counts(mask: sitk.Image) -> dict[int, int]:
    values, counts = np.unique(sitk.GetArrayViewFromImage(mask), return_counts=True)
    return {int(v): int(n) for v, n in zip(values, counts, strict=True) if v != 0}
