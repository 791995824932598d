"""ct-preprocess and the shared image I/O: DICOM series checks, format round trips, resampling geometry."""

from __future__ import annotations

import json
import locale
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from gcmlm.cli import main
from gcmlm.common.errors import GcmlmError
from gcmlm.radiology.core.images import grid_differences, read_image

DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # rotated in-plane: orientation must survive


def ct_volume(size=(24, 20, 10), spacing=(0.8, 0.8, 2.5), origin=(-12.0, 30.0, 100.0), direction=DIRECTION) -> sitk.Image:
    """A CT-like int16 volume: air around a water cylinder with a bright insert."""
    z, y, x = np.mgrid[: size[2], : size[1], : size[0]]
    r = np.hypot(x - size[0] / 2, y - size[1] / 2)
    array = np.where(r < size[1] * 0.4, 40, -1000).astype(np.int16)
    array[(r < 3) & (z > 2) & (z < size[2] - 2)] = 400
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def label_map(image: sitk.Image) -> sitk.Image:
    """Labels 1 (cylinder) and 2 (insert) on the image grid."""
    array = sitk.GetArrayFromImage(image)
    labels = np.zeros(array.shape, np.uint8)
    labels[array > -500] = 1
    labels[array > 200] = 2
    mask = sitk.GetImageFromArray(labels)
    mask.CopyInformation(image)
    return mask


def write_dicom_series(folder: Path, image: sitk.Image, series_uid: str, skip: tuple[int, ...] = (),
                       z_jitter: dict[int, float] | None = None) -> Path:
    """One file per slice with the tags a scanner writes (positions along the slice normal, orientation, UIDs)."""
    saved_locale = locale.setlocale(locale.LC_ALL)  # GDCM's writer switches the process to the C locale
    try:
        _write_slices(folder, image, series_uid, skip, z_jitter)
    finally:
        locale.setlocale(locale.LC_ALL, saved_locale)
    return folder


def _write_slices(folder: Path, image: sitk.Image, series_uid: str, skip: tuple[int, ...],
                  z_jitter: dict[int, float] | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = np.array(image.GetDirection()).reshape(3, 3)
    orientation = "\\".join(f"{v:.6f}" for v in (*direction[:, 0], *direction[:, 1]))
    for k in range(image.GetDepth()):
        if k in skip:
            continue
        slice_ = image[:, :, k]
        position = np.array(image.TransformIndexToPhysicalPoint((0, 0, k)))
        position = position + direction[:, 2] * (z_jitter or {}).get(k, 0.0)
        tags = {
            "0008|0060": "CT", "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0008|0018": f"{series_uid}.{k + 1}", "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": series_uid, "0020|0013": str(k + 1), "0008|103e": "test series",
            "0020|0032": "\\".join(f"{v:.4f}" for v in position), "0020|0037": orientation,
            "0018|0050": f"{image.GetSpacing()[2]:.4f}", "0028|1052": "0", "0028|1053": "1",
        }
        for tag, value in tags.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"s{series_uid.split('.')[-1]}_{k:03d}.dcm"))
        writer.Execute(slice_)


def preprocess(*args) -> int:
    return main(["ct-preprocess", *map(str, args)])


@pytest.fixture
def ct(tmp_path) -> tuple[sitk.Image, Path, Path]:
    image = ct_volume()
    sitk.WriteImage(image, str(tmp_path / "ct.nrrd"))
    sitk.WriteImage(label_map(image), str(tmp_path / "labels.nrrd"))
    return image, tmp_path / "ct.nrrd", tmp_path / "labels.nrrd"


def test_dicom_series_reads_as_volume_with_geometry(tmp_path):
    image = ct_volume()
    folder = write_dicom_series(tmp_path / "dicom", image, "1.2.826.0.1.3680043.2.1125.2")
    out, report = tmp_path / "ct.nii.gz", tmp_path / "report.json"
    assert preprocess("--image", folder, "--out", out, "--report", report) == 0
    result = sitk.ReadImage(str(out))
    assert grid_differences(image, result) == []
    np.testing.assert_array_equal(sitk.GetArrayFromImage(result), sitk.GetArrayFromImage(image))
    info = json.loads(report.read_text())
    assert info["input"]["format"] == "dicom"
    assert info["input"]["series_uid"] == "1.2.826.0.1.3680043.2.1125.2"
    assert info["input"]["n_files"] == image.GetDepth()
    assert info["input"]["modality"] == "CT"


def test_dicom_folder_with_two_series_needs_a_choice(tmp_path, capsys):
    folder = tmp_path / "dicom"
    write_dicom_series(folder, ct_volume(), "1.2.826.0.1.3680043.2.1125.3")
    other = ct_volume(size=(24, 20, 6), origin=(-12.0, 30.0, 300.0))
    write_dicom_series(folder, other, "1.2.826.0.1.3680043.2.1125.4")
    out = tmp_path / "ct.nii.gz"
    assert preprocess("--image", folder, "--out", out) == 2
    err = capsys.readouterr().err.strip()
    assert "2 DICOM series" in err and "1.2.826.0.1.3680043.2.1125.4" in err and "--series-uid" in err
    assert len(err.splitlines()) == 1
    assert not out.exists()
    assert preprocess("--image", folder, "--out", out, "--series-uid", "1.2.826.0.1.3680043.2.1125.4") == 0
    assert sitk.ReadImage(str(out)).GetSize() == (24, 20, 6)
    assert preprocess("--image", folder, "--out", tmp_path / "x.nii.gz", "--series-uid", "9.9") == 2
    assert "series 9.9 is not in this folder" in capsys.readouterr().err


def test_dicom_missing_slice_is_an_error(tmp_path, capsys):
    folder = write_dicom_series(tmp_path / "dicom", ct_volume(), "1.2.826.0.1.3680043.2.1125.5", skip=(4,))
    out = tmp_path / "ct.nii.gz"
    assert preprocess("--image", folder, "--out", out) == 2
    err = capsys.readouterr().err
    assert "1 missing slice(s) between positions" in err and str(folder) in err
    assert not out.exists() and list(tmp_path.iterdir()) == [folder]


def test_dicom_uneven_slice_spacing_is_an_error(tmp_path, capsys):
    folder = write_dicom_series(tmp_path / "dicom", ct_volume(), "1.2.826.0.1.3680043.2.1125.6", z_jitter={5: 0.9})
    assert preprocess("--image", folder, "--out", tmp_path / "ct.nii.gz") == 2
    assert "inconsistent slice spacing" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".nii.gz", ".nii"])
def test_volume_formats_round_trip(tmp_path, suffix):
    image = ct_volume()
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(image, str(path))
    out = tmp_path / "out.nii.gz"
    assert preprocess("--image", path, "--out", out) == 0
    result = sitk.ReadImage(str(out))
    assert grid_differences(image, result) == []
    np.testing.assert_array_equal(sitk.GetArrayFromImage(result), sitk.GetArrayFromImage(image))
    assert read_image(path)[1].format == {".nrrd": "nrrd", ".mha": "metaimage"}.get(suffix, "nifti")


@pytest.mark.parametrize("interpolator", ["bspline", "linear"])
def test_resampling_keeps_origin_direction_extent_and_labels(ct, tmp_path, interpolator):
    image, image_path, labels_path = ct
    out, mask_out, report = tmp_path / "out.nii.gz", tmp_path / "mask.nii.gz", tmp_path / "r.json"
    assert preprocess("--image", image_path, "--mask", labels_path, "--mask-out", mask_out, "--out", out,
                      "--spacing", 1, 1, 1, "--interpolator", interpolator, "--report", report) == 0
    result, mask = sitk.ReadImage(str(out)), sitk.ReadImage(str(mask_out))
    assert result.GetSpacing() == pytest.approx((1, 1, 1))
    assert result.GetDirection() == pytest.approx(image.GetDirection())
    # the field of view keeps its corner (outer edge of the first voxel) and its extent
    corner = image.TransformContinuousIndexToPhysicalPoint((-0.5, -0.5, -0.5))
    assert result.TransformContinuousIndexToPhysicalPoint((-0.5, -0.5, -0.5)) == pytest.approx(corner)
    extent_in = np.array(image.GetSize()) * np.array(image.GetSpacing())
    extent_out = np.array(result.GetSize()) * np.array(result.GetSpacing())
    assert np.all(np.abs(extent_out - extent_in) <= 0.5 + 1e-6)  # within half an output voxel
    # the origin (first voxel centre) moves by half the spacing change, along the image axes
    shift = np.array(image.GetDirection()).reshape(3, 3) @ ((1 - np.array(image.GetSpacing())) / 2)
    assert result.GetOrigin() == pytest.approx(np.array(image.GetOrigin()) + shift)
    assert grid_differences(result, mask) == []  # same output grid for image and labels
    assert mask.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(sitk.GetArrayFromImage(mask))) == {0, 1, 2}  # nearest: no blended labels
    # the physical volume of each label survives resampling within a few percent
    before = np.bincount(sitk.GetArrayFromImage(sitk.ReadImage(str(labels_path))).ravel()) * np.prod(image.GetSpacing())
    after = np.bincount(sitk.GetArrayFromImage(mask).ravel()) * 1.0
    assert after[1] == pytest.approx(before[1], rel=0.05) and after[2] == pytest.approx(before[2], rel=0.15)
    # a physical point deep inside the insert is still labelled 2 and still bright
    centre = image.TransformContinuousIndexToPhysicalPoint((12, 10, 5))
    index = result.TransformPhysicalPointToIndex(centre)
    assert mask[index] == 2 and result[index] == pytest.approx(400, abs=30)
    info = json.loads(report.read_text())
    assert info["resampling"] == {"spacing": [1.0, 1.0, 1.0], "interpolator": interpolator, "label_interpolator": "nearest"}
    assert info["input"]["size"] == [24, 20, 10] and info["output"]["size"] == list(result.GetSize())
    assert info["mask"]["labels"] == [1, 2]


def test_clip_and_zscore_within_mask(ct, tmp_path):
    _, image_path, labels_path = ct
    out, report = tmp_path / "out.nii.gz", tmp_path / "r.json"
    assert preprocess("--image", image_path, "--mask", labels_path, "--mask-out", tmp_path / "m.nii.gz",
                      "--out", out, "--clip", -100, 300, "--zscore", "--zscore-region", "mask", "--report", report) == 0
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(labels_path)))
    clipped = np.clip(sitk.GetArrayFromImage(sitk.ReadImage(str(image_path))).astype(float), -100, 300)
    mean, std = clipped[labels > 0].mean(), clipped[labels > 0].std()
    np.testing.assert_allclose(array, (clipped - mean) / std, rtol=1e-5, atol=1e-5)
    assert array[labels > 0].mean() == pytest.approx(0, abs=1e-5)
    assert array[labels > 0].std() == pytest.approx(1, abs=1e-5)
    info = json.loads(report.read_text())
    assert info["clip"] == [-100, 300] and info["zscore"]["region"] == "mask"
    assert info["zscore"]["mean"] == pytest.approx(mean, rel=1e-5)
    assert info["zscore"]["n_voxels"] == int((labels > 0).sum())


def test_zscore_body_region(ct, tmp_path):
    _, image_path, _ = ct
    out = tmp_path / "out.nii.gz"
    assert preprocess("--image", image_path, "--out", out, "--zscore", "--zscore-region", "body") == 0
    original = sitk.GetArrayFromImage(sitk.ReadImage(str(image_path))).astype(float)
    body = original > -500
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    assert array[body].mean() == pytest.approx(0, abs=1e-4) and array[body].std() == pytest.approx(1, abs=1e-4)


def test_mask_off_grid_is_an_error_and_writes_nothing(ct, tmp_path, capsys):
    image, image_path, _ = ct
    shifted = label_map(image)
    shifted.SetOrigin((0.0, 0.0, 0.0))
    sitk.WriteImage(shifted, str(tmp_path / "shifted.nrrd"))
    out, mask_out = tmp_path / "out.nii.gz", tmp_path / "m.nii.gz"
    assert preprocess("--image", image_path, "--mask", tmp_path / "shifted.nrrd", "--mask-out", mask_out,
                      "--out", out, "--spacing", 1, 1, 1) == 2
    err = capsys.readouterr().err
    assert "shifted.nrrd: mask is not on the image grid (origin" in err
    assert not out.exists() and not mask_out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


@pytest.mark.parametrize("content, problem", [(b"not an image", "cannot read nifti image"), (None, "no such file")])
def test_unreadable_input(tmp_path, capsys, content, problem):
    path = tmp_path / "ct.nii.gz"
    if content is not None:
        path.write_bytes(content)
    assert preprocess("--image", path, "--out", tmp_path / "out.nii.gz") == 2
    err = capsys.readouterr().err
    assert f"{path}: {problem}" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.nii.gz").exists()


def test_2d_image_is_an_error(tmp_path, capsys):
    sitk.WriteImage(ct_volume()[:, :, 0], str(tmp_path / "slice.nrrd"))
    assert preprocess("--image", tmp_path / "slice.nrrd", "--out", tmp_path / "o.nii.gz", "--spacing", 1, 1, 1) == 2
    assert "expected a 3D CT, found a 2D image" in capsys.readouterr().err


def test_bad_arguments_are_errors(ct, tmp_path):
    _, image_path, labels_path = ct
    with pytest.raises(GcmlmError, match="--mask and --mask-out go together"):
        from gcmlm.radiology import ct_preprocess as stage
        stage.check_preprocess_options(tmp_path / "o.nii.gz", mask=labels_path)
    assert preprocess("--image", image_path, "--out", tmp_path / "o.nrrd") == 2
    assert preprocess("--image", image_path, "--out", tmp_path / "o.nii.gz", "--clip", 300, -100) == 2
    assert preprocess("--image", image_path, "--out", tmp_path / "o.nii.gz", "--spacing", 1, 0, 1) == 2
    assert not list(tmp_path.glob("o.*"))

