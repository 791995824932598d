"""Medical image I/O for the radiology stages, with one-line errors instead of ITK tracebacks.

Reads NIfTI, NRRD, MetaImage and DICOM series folders through SimpleITK. A DICOM folder must hold
exactly one series (or the caller names one) whose slices are evenly spaced along the slice
normal: a missing slice or uneven spacing would otherwise give a silently distorted volume,
because ITK assumes regular spacing from the first two slices.

The grid helpers (:func:`grid_differences`, :func:`check_same_grid`) are what every stage uses
to decide whether an image and a label map share a voxel grid.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from gcmlm.common.errors import GcmlmError, one_line

# Suffixes SimpleITK reads as one volume file; a folder is read as a DICOM series.
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
# Default grid tolerance, as a fraction of the voxel spacing (origin, spacing) or absolute (direction
# cosines): loose enough for float32 headers, far below anything that moves a voxel.
GRID_TOLERANCE = 1e-3

TAG_POSITION = "0020|0032"  # ImagePositionPatient
TAG_ORIENTATION = "0020|0037"  # ImageOrientationPatient
TAG_MODALITY = "0008|0060"
TAG_SERIES_DESCRIPTION = "0008|103e"


@dataclass
class ImageSource:
    """What was read and how: kept for the stages' JSON reports."""

    path: str
    format: str  # nifti | nrrd | metaimage | dicom
    series_uid: str | None = None
    n_files: int = 1
    dicom: dict = field(default_factory=dict)


def image_format(path: str | os.PathLike) -> str:
    path = Path(path)
    if path.is_dir():
        return "dicom"
    name = path.name.lower()
    for suffix, fmt in ((".nii.gz", "nifti"), (".nii", "nifti"), (".nrrd", "nrrd"), (".nhdr", "nrrd"),
                        (".mha", "metaimage"), (".mhd", "metaimage")):
        if name.endswith(suffix):
            return fmt
    raise GcmlmError(f"unsupported image file type; expected a DICOM folder or one of {', '.join(VOLUME_SUFFIXES)}",
                     path)


def read_image(path: str | os.PathLike, series_uid: str | None = None) -> tuple[sitk.Image, ImageSource]:
    """Read a volume file or a DICOM series folder; errors name the path."""
    path = Path(path)
    if not path.exists():
        raise GcmlmError("no such file or folder", path)
    fmt = image_format(path)
    if fmt == "dicom":
        return read_dicom_series(path, series_uid)
    if series_uid:
        raise GcmlmError("a series UID was given, but this is a volume file, not a DICOM folder", path)
    try:
        image = _quietly(sitk.ReadImage, str(path))  # ITK's warnings would be extra stderr lines
    except RuntimeError as exc:
        raise GcmlmError(f"cannot read {fmt} image ({_itk_reason(exc)})", path) from None
    if fmt == "nifti":
        check_nifti_complete(path, image)
    return image, ImageSource(str(path), fmt)


def check_nifti_complete(path: Path, image: sitk.Image) -> None:
    """Refuse a truncated NIfTI: ITK reads one silently, filling the missing voxels with whatever it finds."""
    try:
        dims = int(image.GetMetaData("dim[0]"))
        voxels = int(np.prod([int(image.GetMetaData(f"dim[{i}]")) for i in range(1, dims + 1)]))
        expected = int(float(image.GetMetaData("vox_offset"))) + voxels * int(image.GetMetaData("bitpix")) // 8
    except (RuntimeError, ValueError):
        return  # no header fields to check against (not expected from ITK's NIfTI reader)
    if path.name.lower().endswith(".gz"):
        found = _gzip_length(path)
    else:
        found = path.stat().st_size
    if found is None or found < expected:
        got = "a damaged or truncated gzip stream" if found is None else f"{found} bytes"
        raise GcmlmError(f"truncated NIfTI image (the header needs {expected} bytes, the file holds {got})", path)


def _gzip_length(path: Path) -> int | None:
    """Uncompressed length of a gzip file (read through once), or None if the stream is damaged."""
    import gzip
    import zlib

    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(1 << 22):
                total += len(chunk)
    except (EOFError, OSError, zlib.error):
        return None
    return total


def check_orthonormal_direction(image: sitk.Image, path: str | os.PathLike, tolerance: float = GRID_TOLERANCE) -> None:
    """Refuse an image whose direction cosines are not orthonormal (a sheared grid).

    ITK keeps a MetaImage's or NRRD's sheared direction as it is (resampling then distorts the
    volume, and the NIfTI writer rotates it), and for a NIfTI whose sform is sheared it silently
    uses the qform, a different, rotated grid. Either way the voxels would land in other places.
    """
    matrices = [("direction", np.array(image.GetDirection()).reshape(image.GetDimension(), -1))]
    if image.HasMetaDataKey("sform_code") and image.GetMetaData("sform_code").strip() not in ("0", ""):
        try:
            rows = [[float(v) for v in image.GetMetaData(f"srow_{axis}").split()[:3]] for axis in "xyz"]
            matrices.append(("NIfTI sform", np.array(rows)))
        except (RuntimeError, ValueError):
            pass  # no readable sform: ITK used the qform, which is orthonormal by construction
    for name, matrix in matrices:
        norms = np.linalg.norm(matrix, axis=0)
        if np.any(norms == 0):
            raise GcmlmError(f"the {name} matrix is singular (a zero axis)", path)
        cosines = matrix / norms
        skew = float(np.max(np.abs(cosines.T @ cosines - np.eye(len(cosines)))))
        if skew > tolerance:
            raise GcmlmError(f"the {name} axes are not orthogonal (sheared grid; largest axis cosine {skew:.3g}); "
                             "resample it onto an orthogonal grid first", path)


def read_dicom_series(folder: str | os.PathLike, series_uid: str | None = None) -> tuple[sitk.Image, ImageSource]:
    """Read one DICOM series from ``folder`` after checking that its slices form a regular volume."""
    folder = Path(folder)
    uids = list(_quietly(sitk.ImageSeriesReader.GetGDCMSeriesIDs, str(folder)))
    if not uids:
        raise GcmlmError("no DICOM series found in this folder", folder)
    if series_uid is None:
        if len(uids) > 1:
            raise GcmlmError(f"{len(uids)} DICOM series in this folder ({', '.join(sorted(uids))}); "
                             "choose one with --series-uid", folder)
        series_uid = uids[0]
    elif series_uid not in uids:
        raise GcmlmError(f"series {series_uid} is not in this folder; it holds {', '.join(sorted(uids))}", folder)
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_uid))
    headers = [_read_header(f) for f in files]
    files = check_slice_geometry(files, headers, folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise GcmlmError(f"cannot read DICOM series {series_uid} ({_itk_reason(exc)})", folder) from None
    first = headers[0]
    info = {key: first.GetMetaData(tag).strip() for key, tag in
            (("modality", TAG_MODALITY), ("series_description", TAG_SERIES_DESCRIPTION)) if first.HasMetaDataKey(tag)}
    return image, ImageSource(str(folder), "dicom", series_uid, len(files), info)


def _quietly(function, *args):
    """Call an ITK function without its warnings on stderr (we report the problem ourselves).

    Some ITK readers (MetaIO's, for a truncated .mha) print the real reason straight to the process's
    stderr and raise with a misleading one ("No such file or directory"): what they print is captured
    at the file-descriptor level and becomes the exception's text.
    """
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            return function(*args)
        except RuntimeError as exc:
            os.dup2(saved, 2)
            captured.seek(0)
            printed = " ".join(captured.read().decode(errors="replace").split())
            if printed:
                raise RuntimeError(printed) from exc
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def _read_header(path: str) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise GcmlmError(f"unreadable DICOM file ({_itk_reason(exc)})", path) from None
    return reader


def _tag_floats(header: sitk.ImageFileReader, tag: str, path: str, name: str, n: int) -> np.ndarray:
    if not header.HasMetaDataKey(tag):
        raise GcmlmError(f"DICOM slice lacks {name} ({tag})", path)
    try:
        values = np.array([float(v) for v in header.GetMetaData(tag).split("\\")])
    except ValueError:
        values = np.array([])
    if values.size != n:
        raise GcmlmError(f"DICOM slice has a malformed {name} ({header.GetMetaData(tag)!r})", path)
    return values


def check_slice_geometry(files: list[str], headers: list[sitk.ImageFileReader], folder: Path,
                         tolerance: float = 0.01) -> list[str]:
    """Slices sorted along the slice normal; an error for mixed orientations, duplicates, gaps or uneven spacing.

    ``tolerance`` is relative to the median slice gap.
    """
    if len(files) == 1:
        return files
    orientations = [_tag_floats(h, TAG_ORIENTATION, f, "ImageOrientationPatient", 6) for f, h in zip(files, headers, strict=True)]
    positions = np.array([_tag_floats(h, TAG_POSITION, f, "ImagePositionPatient", 3) for f, h in zip(files, headers, strict=True)])
    for f, o in zip(files, orientations, strict=True):
        if not np.allclose(o, orientations[0], atol=1e-4):
            raise GcmlmError(f"slices have different orientations ({Path(files[0]).name} vs {Path(f).name})", folder)
    normal = np.cross(orientations[0][:3], orientations[0][3:])
    along = positions @ normal
    order = np.argsort(along)
    along = along[order]
    gaps = np.diff(along)
    step = float(np.median(gaps))
    if step <= 0 or np.any(gaps <= tolerance * max(step, 1e-6)):
        i = int(np.argmin(gaps))
        raise GcmlmError(f"two slices share the position {along[i]:.3f} mm along the slice normal "
                         f"({Path(files[order[i]]).name}, {Path(files[order[i + 1]]).name})", folder)
    uneven = np.abs(gaps - step) > tolerance * step
    if uneven.any():
        i = int(np.argmax(uneven))
        ratio = gaps[i] / step
        if abs(ratio - round(ratio)) <= tolerance and round(ratio) >= 2:
            raise GcmlmError(f"{round(ratio) - 1} missing slice(s) between positions {along[i]:.3f} and "
                             f"{along[i + 1]:.3f} mm (slice spacing {step:.3f} mm)", folder)
        raise GcmlmError(f"inconsistent slice spacing: {gaps[i]:.3f} mm between positions {along[i]:.3f} and "
                         f"{along[i + 1]:.3f} mm, {step:.3f} mm elsewhere", folder)
    return [files[i] for i in order]


def grid(image: sitk.Image) -> dict:
    """The voxel grid of an image as plain lists, for reports."""
    return {"size": list(image.GetSize()), "spacing": list(image.GetSpacing()),
            "origin": list(image.GetOrigin()), "direction": list(image.GetDirection())}


def grid_differences(reference: sitk.Image, other: sitk.Image, tolerance: float = GRID_TOLERANCE,
                     reference_name: str = "image") -> list[str]:
    """How ``other``'s voxel grid differs from ``reference``'s; empty when they share one.

    Spacing and origin may differ by ``tolerance`` times the reference spacing (per axis, and the
    smallest spacing for the origin), direction cosines by ``tolerance``. Each difference reads
    ``"origin [0, 0, 0] vs image [-99.6, 99.6, -78]"`` (``reference_name`` names the reference).
    """
    if reference.GetDimension() != other.GetDimension():
        return [f"dimension {other.GetDimension()} vs {reference_name} {reference.GetDimension()}"]
    diffs = []
    if reference.GetSize() != other.GetSize():
        diffs.append(f"size {list(other.GetSize())} vs {reference_name} {list(reference.GetSize())}")
    ref_spacing = np.array(reference.GetSpacing())
    checks = (
        ("spacing", reference.GetSpacing(), other.GetSpacing(), tolerance * ref_spacing),
        ("origin", reference.GetOrigin(), other.GetOrigin(), tolerance * ref_spacing.min()),
        ("direction", reference.GetDirection(), other.GetDirection(), tolerance),
    )
    for name, ref, oth, tol in checks:
        if np.any(np.abs(np.array(ref) - np.array(oth)) > tol):
            diffs.append(f"{name} {_fmt(oth)} vs {reference_name} {_fmt(ref)}")
    return diffs


def check_same_grid(reference: sitk.Image, other: sitk.Image, other_path: str | os.PathLike, what: str = "mask",
                    hint: str = "", tolerance: float = GRID_TOLERANCE) -> None:
    """Raise a GcmlmError naming ``other_path`` unless ``other`` lies on ``reference``'s grid."""
    diffs = grid_differences(reference, other, tolerance, "image")
    if diffs:
        raise GcmlmError(f"{what} is not on the image grid ({'; '.join(diffs)})" + (f"; {hint}" if hint else ""),
                         other_path)


def resample_like(image: sitk.Image, reference: sitk.Image, label: bool) -> sitk.Image:
    """``image`` on ``reference``'s grid: nearest neighbour for label maps, linear otherwise."""
    interpolator = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    return sitk.Resample(image, reference, sitk.Transform(), interpolator, 0, image.GetPixelID())


def label_values(mask: sitk.Image) -> list[int]:
    """The non-zero label values present in a label map."""
    array = sitk.GetArrayViewFromImage(mask)
    if array.dtype.kind in "ui" and array.size and 0 <= array.min() and array.max() < 65536:
        counts = np.bincount(array.ravel())  # linear time; np.unique sorts
        return [int(v) for v in np.flatnonzero(counts) if v != 0]
    values = np.unique(array)
    return [int(v) for v in values if v != 0]


def write_image_to(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> None:
    """Write ``image`` (format from the suffix) with a one-line error on failure.

    No atomic rename: callers write to a temporary name (``gcmlm.common.atomic.atomic_file``).
    """
    try:
        sitk.WriteImage(image, str(path), useCompression=compress)
    except RuntimeError as exc:
        raise GcmlmError(f"cannot write image ({_itk_reason(exc)})", path) from None


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"


def _itk_reason(exc: RuntimeError) -> str:
    """The useful line of an ITK exception (the others name C++ source files)."""
    reason = one_line(exc, line="last")
    for prefix in ("sitk::ERROR:", "Description:", "itk::ERROR:"):
        reason = reason.removeprefix(prefix).strip()
    return " ".join(reason.split())
