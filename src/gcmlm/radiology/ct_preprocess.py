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
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from gcmlm.common.atomic import atomic_file, check_outputs
from gcmlm.common.errors import GcmlmError
from gcmlm.radiology.core.images import (
    ImageSource,
    check_orthonormal_direction,
    check_same_grid,
    grid,
    label_values,
    read_image,
    write_image_to,
)

log = logging.getLogger("gcmlm")

INTERPOLATORS = {"bspline": sitk.sitkBSpline, "linear": sitk.sitkLinear}
ZSCORE_REGIONS = ("image", "mask", "body")
# Defaults of preprocess_ct, which the command line shows and uses too.
DEFAULT_INTERPOLATOR = "bspline"
DEFAULT_ZSCORE_REGION = "image"
DEFAULT_BODY_THRESHOLD = -500.0  # HU

PathLike = str | os.PathLike


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", required=True, metavar="PATH|DICOMDIR",
                        help="CT as a DICOM series folder, NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr) or MetaImage (.mha, .mhd)")
    parser.add_argument("--out", required=True, metavar="NIFTI", help="preprocessed image (.nii.gz or .nii)")
    parser.add_argument("--series-uid", metavar="UID", help="the DICOM series to read when the folder holds several")
    parser.add_argument("--spacing", nargs=3, type=float, metavar=("X", "Y", "Z"),
                        help="output voxel spacing in mm (default: keep the input grid)")
    parser.add_argument("--interpolator", choices=sorted(INTERPOLATORS), default=DEFAULT_INTERPOLATOR,
                        help="image interpolator for resampling (label maps always use nearest neighbour)")
    parser.add_argument("--mask", metavar="PATH", help="label map on the image grid, resampled with nearest neighbour")
    parser.add_argument("--mask-out", metavar="NIFTI", help="where to write the resampled label map (needed with --mask)")
    parser.add_argument("--clip", nargs=2, type=float, metavar=("LOW", "HIGH"),
                        help="clip intensities to this window (e.g. -200 300 HU)")
    parser.add_argument("--zscore", action="store_true",
                        help="normalise to zero mean and unit variance (statistics from --zscore-region)")
    parser.add_argument("--zscore-region", choices=ZSCORE_REGIONS, default=DEFAULT_ZSCORE_REGION,
                        help="voxels the z-score statistics come from: the whole image, the mask's labels, "
                             "or the body (voxels above --body-threshold)")
    parser.add_argument("--body-threshold", type=float, default=DEFAULT_BODY_THRESHOLD, metavar="HU",
                        help="intensity above which a voxel counts as body for --zscore-region body")
    parser.add_argument("--report", metavar="JSON", help="what was done: grids, interpolator, clip, normalisation")


def run(args: argparse.Namespace) -> int:
    report = preprocess_ct(args.image, args.out, series_uid=args.series_uid, spacing=args.spacing,
                           interpolator=args.interpolator, mask=args.mask, mask_out=args.mask_out, clip=args.clip,
                           zscore=args.zscore, zscore_region=args.zscore_region, body_threshold=args.body_threshold,
                           report=args.report)
    log.info("%s %s -> %s %s", report["input"]["format"], report["input"]["size"], args.out, report["output"]["size"])
    return 0


def preprocess_ct(image: PathLike, out: PathLike, *, series_uid: str | None = None,
                  spacing: Sequence[float] | None = None, interpolator: str = DEFAULT_INTERPOLATOR,
                  mask: PathLike | None = None, mask_out: PathLike | None = None,
                  clip: Sequence[float] | None = None, zscore: bool = False,
                  zscore_region: str = DEFAULT_ZSCORE_REGION, body_threshold: float = DEFAULT_BODY_THRESHOLD,
                  report: PathLike | None = None) -> dict:
    """Resample, clip and z-score one CT into the NIfTI ``out``; returns the report (also written to ``report``).

    ``image``: a volume file or a DICOM series folder (``series_uid`` picks one series).
    ``spacing``: output voxel spacing in mm (x, y, z); None keeps the input grid.
    ``interpolator``: one of :data:`INTERPOLATORS` for the image; ``mask`` (a label map on the image
    grid) is resampled with nearest neighbour and written to ``mask_out``.
    ``clip``: (low, high) intensity window. ``zscore``: normalise with statistics from
    ``zscore_region`` (``image``, ``mask`` or ``body``: voxels above ``body_threshold``).
    All outputs appear together, or none.
    """
    spacing = list(spacing) if spacing else None
    clip = list(clip) if clip else None
    check_preprocess_options(out, spacing=spacing, interpolator=interpolator, mask=mask, mask_out=mask_out,
                             clip=clip, zscore=zscore, zscore_region=zscore_region, body_threshold=body_threshold)
    check_outputs(files=[out, mask_out, report], inputs=[image, mask])
    ct, source = read_ct(image, series_uid)
    label_map = read_mask_on_grid(ct, mask) if mask else None
    summary: dict = {"input": {"path": Path(source.path).name, "format": source.format, "series_uid": source.series_uid,
                               "n_files": source.n_files, **source.dicom, **grid(ct),
                               "pixel_type": ct.GetPixelIDTypeAsString()}}

    ct = sitk.Cast(ct, sitk.sitkFloat32)
    if spacing:
        ct, label_map = resample_to_spacing(ct, label_map, spacing, interpolator)
    summary["resampling"] = {"spacing": spacing, "interpolator": interpolator if spacing else None,
                             "label_interpolator": "nearest" if spacing and label_map is not None else None}

    array = sitk.GetArrayFromImage(ct)
    summary["intensity_before"] = _range(array)
    if clip:
        array = np.clip(array, *clip)
    summary["clip"] = clip
    summary["zscore"] = None
    if zscore:
        region = zscore_voxels(array, label_map, zscore_region, body_threshold)
        source_name = zscore_region + (f" > {body_threshold:g}" if zscore_region == "body" else "")
        array, summary["zscore"] = zscore_normalise(array, region, source_name)
    summary["intensity_after"] = _range(array)

    out_image = sitk.GetImageFromArray(array.astype(np.float32))
    out_image.CopyInformation(ct)
    summary["output"] = {"path": Path(out).name, **grid(out_image), "pixel_type": out_image.GetPixelIDTypeAsString()}
    if label_map is not None:
        summary["mask"] = {"path": Path(mask).name, "out": Path(mask_out).name,
                           "labels": label_values(label_map),
                           "voxels": {str(v): int(n) for v, n in _label_counts(label_map).items()}}
    write_outputs(out, out_image, mask_out, label_map, report, summary)
    return summary


def check_preprocess_options(out: PathLike, *, spacing: Sequence[float] | None = None,
                             interpolator: str = DEFAULT_INTERPOLATOR, mask: PathLike | None = None,
                             mask_out: PathLike | None = None, clip: Sequence[float] | None = None,
                             zscore: bool = False, zscore_region: str = DEFAULT_ZSCORE_REGION,
                             body_threshold: float = DEFAULT_BODY_THRESHOLD) -> None:
    """Refuse option combinations that cannot work, before any image is read."""
    if bool(mask) != bool(mask_out):
        raise GcmlmError("--mask and --mask-out go together")
    if spacing and (len(spacing) != 3 or not all(0 < s < math.inf for s in spacing)):  # NaN fails too
        raise GcmlmError(f"--spacing must be positive, got {spacing}")
    if clip and (len(clip) != 2 or not all(math.isfinite(c) for c in clip)):
        raise GcmlmError(f"--clip must be two finite numbers, got {clip}")
    if not math.isfinite(body_threshold):
        raise GcmlmError(f"--body-threshold must be a finite number, got {body_threshold}")
    if interpolator not in INTERPOLATORS:  # argparse's choices check this on the command line
        raise GcmlmError(f"--interpolator must be one of {', '.join(sorted(INTERPOLATORS))}, got '{interpolator}'")
    if clip and clip[0] >= clip[1]:
        raise GcmlmError(f"--clip LOW must be below HIGH, got {clip}")
    if zscore_region not in ZSCORE_REGIONS:
        raise GcmlmError(f"--zscore-region must be one of {', '.join(ZSCORE_REGIONS)}, got '{zscore_region}'")
    if zscore and zscore_region == "mask" and not mask:
        raise GcmlmError("--zscore-region mask needs --mask")
    for path in (out, mask_out):
        if path and not str(path).lower().endswith((".nii.gz", ".nii")):
            raise GcmlmError("output must be NIfTI (.nii.gz or .nii)", path)
    if mask_out and Path(mask_out).resolve() == Path(out).resolve():
        raise GcmlmError("--mask-out must differ from --out", mask_out)


def read_ct(path: PathLike, series_uid: str | None = None) -> tuple[sitk.Image, ImageSource]:
    """A single-channel 3D image from a volume file or DICOM series; anything else is an error."""
    image, source = read_image(path, series_uid)
    if image.GetDimension() != 3:
        raise GcmlmError(f"expected a 3D CT, found a {image.GetDimension()}D image", path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise GcmlmError(f"expected a single-channel CT, found {image.GetNumberOfComponentsPerPixel()} components",
                         path)
    check_orthonormal_direction(image, path)
    return image, source


def read_mask_on_grid(image: sitk.Image, path: PathLike) -> sitk.Image:
    """The label map at ``path``, which must lie on ``image``'s grid."""
    mask, _ = read_image(path)
    if mask.GetNumberOfComponentsPerPixel() != 1:
        raise GcmlmError(f"expected a label map, found {mask.GetNumberOfComponentsPerPixel()} components per voxel",
                         path)
    check_same_grid(image, mask, path, "mask",
                    "resample it onto the image first (e.g. with gcmlm radiomics-extract --resample-mask-to-image)")
    return mask


def output_grid(image: sitk.Image, spacing: Sequence[float]) -> tuple[list[int], list[float], list[float]]:
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
    """``image`` on the grid (size, spacing, origin) with its own direction; 0 outside the input."""
    return sitk.Resample(image, size, sitk.Transform(), interpolator, origin, spacing,
                         image.GetDirection(), 0, image.GetPixelID())


def resample_to_spacing(image: sitk.Image, mask: sitk.Image | None, spacing: Sequence[float],
                        interpolator: str = DEFAULT_INTERPOLATOR) -> tuple[sitk.Image, sitk.Image | None]:
    """Image and (optional) label map on one new grid of ``spacing``; the label map by nearest neighbour."""
    size, new_spacing, origin = output_grid(image, spacing)
    image = resample(image, size, new_spacing, origin, INTERPOLATORS[interpolator])
    if mask is not None:
        mask = resample(mask, size, new_spacing, origin, sitk.sitkNearestNeighbor)
    return image, mask


def zscore_voxels(array: np.ndarray, mask: sitk.Image | None, region: str,
                  body_threshold: float = DEFAULT_BODY_THRESHOLD) -> np.ndarray:
    """Boolean array of the voxels the z-score statistics come from (see :data:`ZSCORE_REGIONS`)."""
    if region == "image":
        return np.ones(array.shape, bool)
    if region == "mask":
        return sitk.GetArrayViewFromImage(mask) != 0
    return array > body_threshold


def zscore_normalise(array: np.ndarray, region: np.ndarray, source: str) -> tuple[np.ndarray, dict]:
    """``array`` with zero mean and unit variance over ``region``, and the statistics used."""
    values = array[region]
    if values.size == 0:
        raise GcmlmError(f"the z-score region ({source}) holds no voxels")
    mean, std = float(values.mean()), float(values.std())
    if std == 0:
        raise GcmlmError(f"intensities in the z-score region ({source}) are constant ({mean:g}); cannot normalise")
    return (array - mean) / std, {"region": source, "mean": mean, "std": std, "n_voxels": int(values.size)}


def write_outputs(out: PathLike, image: sitk.Image, mask_out: PathLike | None, mask: sitk.Image | None,
                  report: PathLike | None, summary: dict) -> None:
    """All outputs appear together: each goes to a temporary name and all are renamed at the end."""
    with contextlib.ExitStack() as stack:
        write_image_to(image, stack.enter_context(atomic_file(out)), _compress(out))
        if mask is not None:
            write_image_to(mask, stack.enter_context(atomic_file(mask_out)), _compress(mask_out))
        if report:
            stack.enter_context(atomic_file(report)).write_text(json.dumps(summary, indent=2) + "\n")


def _compress(path: PathLike) -> bool:
    return str(path).lower().endswith(".gz")


def _range(array: np.ndarray) -> dict:
    return {"min": float(array.min()), "max": float(array.max()), "mean": float(array.mean())}


def _label_counts(mask: sitk.Image) -> dict[int, int]:
    values, counts = np.unique(sitk.GetArrayViewFromImage(mask), return_counts=True)
    return {int(v): int(n) for v, n in zip(values, counts, strict=True) if v != 0}
