"""Bad input to the radiology stages and demo-cohort: one line, exit 2, nothing written or changed.

Every case runs in a copy of a small work folder (tiny images made with SimpleITK, fake nnU-Net
dataset, preprocessed and model folders); no case trains or predicts. Refusals of option values,
which name no file, are checked by :func:`assert_option_refused` with the same promise.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from .harness import Case, assert_refused, run_gcmlm, snapshot

LONG = "x" * 300
TRAINER_DIR = "nnUNetTrainer__nnUNetPlans__3d_fullres"


# ---- the work folder -------------------------------------------------------------------------------

def _write(image: sitk.Image, path: Path) -> None:
    sitk.WriteImage(image, str(path), useCompression=path.name.endswith(".gz"))


def _volume(values: np.ndarray, spacing=(1.0, 1.0, 2.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(values)
    image.SetSpacing(spacing[: image.GetDimension()])
    return image


def _sheared_nifti(path: Path) -> None:
    """A NIfTI whose sform is sheared and whose qform is a rotation: ITK silently reads the qform."""
    import nibabel

    affine = np.array([[1, 0.3, 0, 0], [0, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1.0]])
    image = nibabel.Nifti1Image(np.zeros((8, 8, 4), np.int16), affine)
    image.set_sform(affine, 1)
    image.set_qform(affine, 1)
    nibabel.save(image, str(path))


def _images(work: Path) -> None:
    rng = np.random.default_rng(0)
    ct = rng.normal(40, 30, (4, 8, 8)).astype(np.float32)
    seg = np.zeros((4, 8, 8), np.uint8)
    seg[1:3, 2:6, 2:6] = 1
    _write(_volume(ct), work / "ct.nii.gz")
    _write(_volume(seg), work / "seg.nii.gz")
    _write(_volume(np.zeros_like(seg)), work / "seg_empty.nii.gz")
    seg7 = seg.copy()
    seg7[seg7 == 1] = 7
    _write(_volume(seg7), work / "seg7.nii.gz")
    shifted = _volume(seg)
    shifted.SetOrigin((5.0, 0.0, 0.0))
    _write(shifted, work / "seg_shifted.nii.gz")
    with_nan = ct.copy()
    with_nan[1, 3, 3] = with_nan[2, 4, 4] = np.nan
    _write(_volume(with_nan), work / "ct_nan.nrrd")
    _write(_volume(ct[1]), work / "ct2d.nii.gz")
    _write(_volume(seg[1]), work / "seg2d.nii.gz")
    sheared = _volume(ct.astype(np.int16))
    sheared.SetDirection((1, 0.3, 0, 0, 1, 0, 0, 0, 1))
    _write(sheared, work / "ct_sheared.mha")
    _sheared_nifti(work / "ct_sform.nii.gz")
    _write(sitk.Compose(*[_volume(ct)] * 3), work / "ct_rgb.nii.gz")
    data = (work / "ct.nii.gz").read_bytes()
    (work / "ct_truncated.nii.gz").write_bytes(data[: len(data) // 2])
    _write(_volume(ct.astype(np.int16)), work / "ct.mha")
    data = (work / "ct.mha").read_bytes()
    (work / "ct_truncated.mha").write_bytes(data[: len(data) // 2])  # MetaIO prints its reason itself
    (work / "empty.nii.gz").write_bytes(b"")
    (work / "text.nii.gz").write_text("not an image\n")
    (work / "notes.txt").write_text("a user's file\n")
    (work / "dicom_empty").mkdir()


def _params(work: Path) -> None:
    (work / "light.yaml").write_text("imageType:\n  Original: {}\nfeatureClass:\n  firstorder:\n  shape:\n"
                                     "setting:\n  binWidth: 25\n  label: 1\n")
    (work / "evil.yaml").write_text(f"imageType: !!python/object/apply:os.system ['touch {work}/sentinel']\n")
    (work / "list.yaml").write_text("- a\n- b\n")
    (work / "broken.yaml").write_text("imageType: {Original: {}\nfeatureClass: [\n")
    (work / "unknown_setting.yaml").write_text("setting:\n  noSuchSetting: 3\n")
    (work / "table.csv").write_text("patient_id,rad_a\nP1,1.0\n")
    (work / "wrong_columns.csv").write_text("who,what\nP1,ct.nii.gz\n")


def _raw_dataset(work: Path) -> None:
    raw = work / "Dataset998_Bad"
    for sub in ("imagesTr", "labelsTr"):
        (raw / sub).mkdir(parents=True)
    shutil.copy(work / "ct.nii.gz", raw / "imagesTr" / "T1_0000.nii.gz")
    shutil.copy(work / "seg.nii.gz", raw / "labelsTr" / "T1.nii.gz")
    good = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "stomach": 1}, "numTraining": 1,
            "file_ending": ".nii.gz"}
    (raw / "dataset.json").write_text(json.dumps(good)[:40])  # truncated
    other = work / "Dataset997_NoLabels"
    shutil.copytree(raw, other)
    (other / "dataset.json").write_text(json.dumps({k: v for k, v in good.items() if k != "labels"}))
    nojson = work / "Dataset996_NoJson"
    shutil.copytree(raw, nojson)
    (nojson / "dataset.json").unlink()
    fine = work / "Dataset995_Fine"
    shutil.copytree(raw, fine)
    (fine / "dataset.json").write_text(json.dumps(good))


def _preprocessed(work: Path) -> None:
    pre = work / "Dataset998_Pre"
    pre.mkdir()
    (pre / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "stomach": 1}}))
    (pre / "nnUNetPlans.json").write_text(json.dumps({"plans_name": "nnUNetPlans", "configurations": {
        "3d_fullres": {"data_identifier": "nnUNetPlans_3d_fullres"}}}))
    (pre / "broken.json").write_text("{")
    (pre / "nnUNetPlans_3d_fullres").mkdir()  # preprocessed data (empty: nothing trains in these cases)
    unpreprocessed = work / "Dataset994_Unpreprocessed"
    shutil.copytree(pre, unpreprocessed)
    shutil.rmtree(unpreprocessed / "nnUNetPlans_3d_fullres")
    (work / "NotADataset").mkdir()


class _RunsCode:
    """Pickled as a call of os.system: loading it without restriction would create the sentinel."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return os.system, (f"touch {self.sentinel}",)


def _checkpoint(extra=None) -> bytes:
    import torch

    buffer = io.BytesIO()
    data = {"network_weights": {"w": torch.zeros(2)}, "trainer_name": "nnUNetTrainer",
            "init_args": {"configuration": "3d_fullres"}}
    if extra is not None:
        data["extra"] = extra
    torch.save(data, buffer)
    return buffer.getvalue()


def _plans(network_class: str = "dynamic_network_architectures.architectures.unet.PlainConvUNet") -> str:
    return json.dumps({"plans_name": "nnUNetPlans", "configurations": {"3d_fullres": {"architecture": {
        "network_class_name": network_class, "arch_kwargs": {"conv_op": "torch.nn.modules.conv.Conv3d"},
        "_kw_requires_import": ["conv_op"]}}}})


def _model_zip(path: Path, checkpoint: bytes, plans: str | None = None, extra: dict | None = None) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{TRAINER_DIR}/plans.json", plans or _plans())
        archive.writestr(f"{TRAINER_DIR}/dataset.json", json.dumps({"labels": {"background": 0, "stomach": 1}}))
        archive.writestr(f"{TRAINER_DIR}/fold_0/checkpoint_final.pth", checkpoint)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)


def _models(work: Path, sentinel: Path) -> None:
    good = _checkpoint()
    (work / "not_a_zip.zip").write_text("hello\n")
    _model_zip(work / "model.zip", good)
    data = (work / "model.zip").read_bytes()
    (work / "truncated.zip").write_bytes(data[: len(data) // 2])
    with zipfile.ZipFile(work / "no_model.zip", "w") as archive:
        archive.writestr("README.txt", "no model here\n")
    _model_zip(work / "traversal.zip", good, extra={"../escaped.txt": "x"})
    _model_zip(work / "absolute.zip", good, extra={"/tmp/gcmlm-absolute-member.txt": "x"})
    with zipfile.ZipFile(work / "symlink.zip", "w") as archive:
        info = zipfile.ZipInfo(f"{TRAINER_DIR}/fold_0/checkpoint_final.pth")
        info.external_attr = (0o120777 << 16)  # a symbolic link to /etc/passwd
        archive.writestr(info, "/etc/passwd")
        archive.writestr(f"{TRAINER_DIR}/plans.json", _plans())
        archive.writestr(f"{TRAINER_DIR}/dataset.json", "{}")
    _model_zip(work / "pickled_code.zip", _checkpoint(_RunsCode(sentinel)))
    _model_zip(work / "garbage_checkpoint.zip", b"this is not a checkpoint")
    _model_zip(work / "evil_plans.zip", good, plans=_plans("subprocess.Popen"))


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("radiology-bad-inputs")
    _images(work)
    _params(work)
    _raw_dataset(work)
    _preprocessed(work)
    _models(work, work / "sentinel")
    (work / "manifest.csv").write_text("patient_id,kind,path,label\nP1,ct,ct.nii.gz,seg.nii.gz\n")
    (work / "out_file.csv").write_text("existing output\n")
    (work / "a_folder").mkdir()
    return work


@pytest.fixture
def work(template, tmp_path) -> Path:
    dest = tmp_path / "work"
    shutil.copytree(template, dest, symlinks=True)
    # absolute paths baked into the template (the sentinel command) point at the template: fix them
    for name in ("evil.yaml",):
        (dest / name).write_text((template / name).read_text().replace(str(template), str(dest)))
    _models(dest, dest / "sentinel")
    return dest


def assert_option_refused(stage: str, args: list[str], problem: str, work: Path) -> None:
    """The promise for a refusal that names no file: exit 2, one line naming the problem, nothing changed."""
    import re

    before = snapshot(work)
    result = run_gcmlm(stage, args, work)
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"gcmlm {stage}: error: "), lines[0]
    assert re.search(problem, lines[0]), lines[0]
    assert snapshot(work) == before


# ---- ct-preprocess -----------------------------------------------------------------------------------

CT_PREPROCESS = [
    Case("missing-image", ["--image", "nope.nii.gz", "--out", "o.nii.gz"], "nope.nii.gz", "no such"),
    Case("image-folder-no-dicom", ["--image", "dicom_empty", "--out", "o.nii.gz"], "dicom_empty", "no DICOM series"),
    Case("empty-image", ["--image", "empty.nii.gz", "--out", "o.nii.gz"], "empty.nii.gz", "cannot read"),
    Case("truncated-image", ["--image", "ct_truncated.nii.gz", "--out", "o.nii.gz"], "ct_truncated.nii.gz",
         "truncated"),
    Case("text-image", ["--image", "text.nii.gz", "--out", "o.nii.gz"], "text.nii.gz", "cannot read"),
    Case("truncated-mha", ["--image", "ct_truncated.mha", "--out", "o.nii.gz"], "ct_truncated.mha",
         "data not read completely"),
    Case("unsupported-suffix", ["--image", "notes.txt", "--out", "o.nii.gz"], "notes.txt", "unsupported"),
    Case("2d-image", ["--image", "ct2d.nii.gz", "--out", "o.nii.gz"], "ct2d.nii.gz", "expected a 3D CT"),
    Case("vector-image", ["--image", "ct_rgb.nii.gz", "--out", "o.nii.gz"], "ct_rgb.nii.gz", "single-channel"),
    Case("sheared-mha", ["--image", "ct_sheared.mha", "--out", "o.nii.gz"], "ct_sheared.mha", "not orthogonal"),
    Case("sheared-sform", ["--image", "ct_sform.nii.gz", "--out", "o.nii.gz"], "ct_sform.nii.gz",
         "sform axes are not orthogonal"),
    Case("mask-off-grid", ["--image", "ct.nii.gz", "--out", "o.nii.gz", "--mask", "seg_shifted.nii.gz",
                           "--mask-out", "m.nii.gz"], "seg_shifted.nii.gz", "not on the image grid"),
    Case("out-not-nifti", ["--image", "ct.nii.gz", "--out", "o.nrrd"], "o.nrrd", "must be NIfTI"),
    Case("out-is-folder", ["--image", "ct.nii.gz", "--out", "a_folder", "--report", "r.json"], "a_folder",
         "existing folder|must be NIfTI"),
    Case("out-is-input", ["--image", "ct.nii.gz", "--out", "ct.nii.gz"], "ct.nii.gz", "overwrite the input"),
    Case("report-is-input", ["--image", "ct.nii.gz", "--out", "o.nii.gz", "--report", "ct.nii.gz"], "ct.nii.gz",
         "overwrite the input"),
    Case("out-under-file", ["--image", "ct.nii.gz", "--out", "notes.txt/o.nii.gz"], "notes.txt/o.nii.gz",
         "not a folder"),
    Case("report-is-folder", ["--image", "ct.nii.gz", "--out", "o.nii.gz", "--report", "a_folder"], "a_folder",
         "existing folder"),
    Case("name-too-long", ["--image", "ct.nii.gz", "--out", LONG + ".nii.gz"], LONG + ".nii.gz", "too long"),
]


@pytest.mark.parametrize("case", CT_PREPROCESS, ids=lambda c: c.id)
def test_ct_preprocess_refuses(case, work):
    assert_refused("ct-preprocess", case, work)


@pytest.mark.parametrize("args, problem", [
    (["--spacing", "nan", "1", "1"], "--spacing must be positive"),
    (["--spacing", "0", "1", "1"], "--spacing must be positive"),
    (["--clip", "300", "-100"], "LOW must be below HIGH"),
    (["--clip", "nan", "100"], "--clip must be two finite"),
    (["--zscore", "--body-threshold", "nan", "--zscore-region", "body"], "--body-threshold must be a finite"),
    (["--mask", "seg.nii.gz"], "--mask and --mask-out go together"),
], ids=["spacing-nan", "spacing-zero", "clip-reversed", "clip-nan", "body-threshold-nan", "mask-without-out"])
def test_ct_preprocess_refuses_option(args, problem, work):
    assert_option_refused("ct-preprocess", ["--image", "ct.nii.gz", "--out", "o.nii.gz", *args], problem, work)


# ---- radiomics-extract ----------------------------------------------------------------------------------

def _one(image="ct.nii.gz", mask="seg.nii.gz", params="light.yaml", out="rad.csv", *extra):
    return ["--image", image, "--mask", mask, "--patient-id", "P1", "--params", params, "--out", out, *extra]


RADIOMICS = [
    Case("missing-image", _one(image="nope.nii.gz"), "nope.nii.gz", "no such"),
    Case("truncated-mask", _one(mask="ct_truncated.nii.gz"), "ct_truncated.nii.gz", "truncated"),
    Case("empty-mask", _one(mask="seg_empty.nii.gz"), "seg_empty.nii.gz", "mask is empty"),
    Case("absent-label", _one(mask="seg7.nii.gz"), "seg7.nii.gz", "label 1 is absent"),
    Case("mask-off-grid", _one(mask="seg_shifted.nii.gz"), "seg_shifted.nii.gz", "not on the image grid"),
    Case("nan-in-mask", _one(image="ct_nan.nrrd"), "ct_nan.nrrd", r"2 NaN voxel\(s\) inside label 1"),
    Case("2d-loses-shape", _one(image="ct2d.nii.gz", mask="seg2d.nii.gz"), "ct2d.nii.gz",
         "feature class shape.*3D image"),
    Case("params-missing", _one(params="nope.yaml"), "nope.yaml", "no such parameter file"),
    Case("params-python-tag", _one(params="evil.yaml"), "evil.yaml", "invalid PyRadiomics parameter file"),
    Case("params-not-mapping", _one(params="list.yaml"), "list.yaml", "expected a mapping"),
    Case("params-broken-yaml", _one(params="broken.yaml"), "broken.yaml", "invalid PyRadiomics parameter file"),
    Case("params-unknown-setting", _one(params="unknown_setting.yaml"), "unknown_setting.yaml",
         "invalid PyRadiomics parameter file"),
    Case("manifest-wrong-columns", ["--manifest", "wrong_columns.csv", "--params", "light.yaml", "--out", "rad.csv"],
         "wrong_columns.csv", "expected a cohort manifest"),
    Case("out-is-folder", _one(out="a_folder"), "a_folder", "existing folder"),
    Case("out-is-input", _one(out="seg.nii.gz"), "seg.nii.gz", "overwrite the input"),
    Case("out-under-file", _one(out="notes.txt/rad.csv"), "notes.txt/rad.csv", "not a folder"),
    Case("out-name-too-long", _one(out=LONG + ".csv"), LONG + ".csv", "too long"),
    Case("diagnostics-is-folder", _one("ct.nii.gz", "seg.nii.gz", "light.yaml", "rad.csv", "--diagnostics",
                                       "a_folder"), "a_folder", "existing folder"),
    Case("concat-out-is-input", ["--concat", "table.csv", "--out", "table.csv"], "table.csv", "overwrite the input"),
]


@pytest.mark.parametrize("case", RADIOMICS, ids=lambda c: c.id)
def test_radiomics_extract_refuses(case, work):
    assert_refused("radiomics-extract", case, work)
    assert not (work / "sentinel").exists()


def test_radiomics_params_with_a_python_tag_run_nothing(work):
    """The sentinel proves the params' !!python/object/apply never ran (the case above checks the line)."""
    run_gcmlm("radiomics-extract", _one(params="evil.yaml"), work)
    assert not (work / "sentinel").exists()


# ---- nnunet-dataset -------------------------------------------------------------------------------------

def _dataset(*extra, images=("ct.nii.gz",), labels=("seg.nii.gz",), out="raw"):
    return ["--images", *images, "--labels", *labels, "--dataset-id", "501", "--dataset-name", "Stomach",
            "--out", out, *extra]


NNUNET_DATASET = [
    Case("missing-image", _dataset(images=("nope.nii.gz",)), "nope.nii.gz", "no such file"),
    Case("image-is-folder", _dataset(images=("a_folder",)), "a_folder", "is a folder"),
    Case("truncated-image", _dataset(images=("ct_truncated.nii.gz",)), "ct_truncated.nii.gz", "truncated"),
    Case("empty-label", _dataset(labels=("empty.nii.gz",)), "empty.nii.gz", "cannot read"),
    Case("2d-image", _dataset(images=("ct2d.nii.gz",), labels=("seg2d.nii.gz",)), "ct2d.nii.gz", "3D image"),
    Case("label-off-grid", _dataset(labels=("seg_shifted.nii.gz",)), "seg_shifted.nii.gz", "not on the image grid"),
    Case("undeclared-label", _dataset(labels=("seg7.nii.gz",)), "seg7.nii.gz", r"label value\(s\) \[7\]"),
    Case("truncated-test-image", _dataset("--test-images", "ct_truncated.nii.gz"), "ct_truncated.nii.gz",
         "truncated"),
    Case("out-is-file", _dataset(out="notes.txt"), "notes.txt/Dataset501_Stomach", "not a folder"),
    Case("dataset-is-file", _dataset(out="preset"), "preset/Dataset501_Stomach", "existing file"),
    Case("out-holds-input", _dataset(images=("raw/Dataset501_Stomach/ct.nii.gz",), out="raw"),
         "raw/Dataset501_Stomach", "overwrite the input"),
    Case("missing-manifest", ["--manifest", "nope.csv", "--dataset-id", "1", "--dataset-name", "A", "--out", "raw"],
         "nope.csv", "no such"),
]


@pytest.mark.parametrize("case", NNUNET_DATASET, ids=lambda c: c.id)
def test_nnunet_dataset_refuses(case, work):
    (work / "preset").mkdir()
    (work / "preset" / "Dataset501_Stomach").write_text("a user's file where the dataset goes\n")
    if case.id == "out-holds-input":
        (work / "raw" / "Dataset501_Stomach").mkdir(parents=True)
        shutil.copy(work / "ct.nii.gz", work / "raw" / "Dataset501_Stomach" / "ct.nii.gz")
    assert_refused("nnunet-dataset", case, work)


@pytest.mark.parametrize("args, problem", [
    (["--dataset-id", "0"], "dataset ID must be 1-999"),
    (["--dataset-name", "no spaces"], "must be letters"),
    (["--classes", "stomach=1"], "background=0"),
], ids=["dataset-id-zero", "dataset-name-space", "classes-without-background"])
def test_nnunet_dataset_refuses_option(args, problem, work):
    base = _dataset()
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag in base:
            base[base.index(flag) + 1] = value
        else:
            base += [flag, value]
    assert_option_refused("nnunet-dataset", base, problem, work)


# ---- nnunet-plan ------------------------------------------------------------------------------------------

NNUNET_PLAN = [
    Case("missing-raw", ["--raw", "Dataset993_Nope", "--out", "pre"], "Dataset993_Nope", "no such"),
    Case("raw-is-file", ["--raw", "notes.txt", "--out", "pre"], "notes.txt", "expected a raw dataset folder"),
    Case("truncated-dataset-json", ["--raw", "Dataset998_Bad", "--out", "pre"], "Dataset998_Bad/dataset.json",
         "not valid JSON"),
    Case("dataset-json-without-labels", ["--raw", "Dataset997_NoLabels", "--out", "pre"],
         "Dataset997_NoLabels/dataset.json", "lacks labels"),
    Case("no-dataset-json", ["--raw", "Dataset996_NoJson", "--out", "pre"], "Dataset996_NoJson", "no dataset.json"),
    Case("not-a-dataset-name", ["--raw", "a_folder", "--out", "pre"], "a_folder", "not an nnU-Net v2 dataset name"),
    Case("out-is-file", ["--raw", "Dataset995_Fine", "--out", "notes.txt"], "notes.txt", "existing file|not a folder"),
    Case("out-is-raw-parent", ["--raw", "Dataset995_Fine", "--out", "."], "Dataset995_Fine", "overwrite the input"),
]


@pytest.mark.parametrize("case", NNUNET_PLAN, ids=lambda c: c.id)
def test_nnunet_plan_refuses(case, work):
    assert_refused("nnunet-plan", case, work)


@pytest.mark.parametrize("args, problem", [
    (["--num-processes", "0"], "--num-processes must be at least 1"),
    (["--gpu-memory-target", "nan"], "--gpu-memory-target must be positive"),
    (["--planner", "NoSuchPlanner"], "no such nnU-Net experiment planner"),
], ids=["num-processes-zero", "gpu-memory-nan", "unknown-planner"])
def test_nnunet_plan_refuses_option(args, problem, work):
    assert_option_refused("nnunet-plan", ["--raw", "Dataset995_Fine", "--out", "pre", *args], problem, work)


# ---- nnunet-train -----------------------------------------------------------------------------------------

def _train(*extra, pre="Dataset998_Pre", out="model.out.zip"):
    return ["--preprocessed", pre, "--out", out, "--device", "cpu", *extra]


NNUNET_TRAIN = [
    Case("missing-preprocessed", _train(pre="Dataset993_Nope"), "Dataset993_Nope", "no such"),
    Case("preprocessed-is-file", _train(pre="notes.txt"), "notes.txt", "expected a preprocessed dataset folder"),
    Case("not-a-dataset-name", _train(pre="NotADataset"), "NotADataset", "not an nnU-Net v2 dataset name"),
    Case("unknown-plans", _train("--plans", "broken"), "Dataset998_Pre/broken.json", "not valid JSON"),
    Case("missing-plans", _train("--plans", "nnUNetPlans_tiny"), "Dataset998_Pre", "not found"),
    Case("not-preprocessed", _train(pre="Dataset994_Unpreprocessed"), "Dataset994_Unpreprocessed",
         "was not preprocessed"),
    Case("out-is-folder", _train(out="a_folder"), "a_folder", "existing folder"),
    Case("plans-unusable", _train(), "Dataset998_Pre/nnUNetPlans.json", "nnU-Net cannot use these plans"),
    Case("out-under-file", _train(out="notes.txt/m.zip"), "notes.txt/m.zip", "not a folder"),
    Case("summary-is-folder", _train("--validation-summary", "a_folder"), "a_folder", "existing folder"),
    Case("results-is-file", _train("--results", "notes.txt"), "notes.txt", "existing file"),
    Case("out-name-too-long", _train(out=LONG + ".zip"), LONG + ".zip", "too long"),
]


@pytest.mark.parametrize("case", NNUNET_TRAIN, ids=lambda c: c.id)
def test_nnunet_train_refuses(case, work):
    assert_refused("nnunet-train", case, work)


@pytest.mark.parametrize("args, problem", [
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--num-workers", "-1"], "--num-workers must be at least 0"),
    (["--fold", "x"], "--fold must be an integer"),
    (["--trainer", "nnUNetTrainerV2"], "nnU-Net v1's name"),
], ids=["epochs-zero", "workers-negative", "fold-word", "v1-trainer"])
def test_nnunet_train_refuses_option(args, problem, work):
    assert_option_refused("nnunet-train", _train(*args), problem, work)


# ---- nnunet-predict ---------------------------------------------------------------------------------------

def _predict(model="model.zip", *extra, images=("ct.nii.gz",), out="masks"):
    return ["--model", model, "--images", *images, "--out", out, "--device", "cpu", *extra]


NNUNET_PREDICT = [
    Case("missing-model", _predict("nope.zip"), "nope.zip", "no such model"),
    Case("not-a-zip", _predict("not_a_zip.zip"), "not_a_zip.zip", "not a zip file"),
    Case("truncated-zip", _predict("truncated.zip"), "truncated.zip", "zip"),
    Case("zip-without-model", _predict("no_model.zip"), "no_model.zip", "no trained nnU-Net model"),
    Case("zip-traversal", _predict("traversal.zip"), "traversal.zip", "points outside the archive"),
    Case("zip-absolute-member", _predict("absolute.zip"), "absolute.zip", "points outside the archive"),
    Case("zip-symlink", _predict("symlink.zip"), "symlink.zip", "symbolic link"),
    Case("checkpoint-runs-code", _predict("pickled_code.zip"), "gcmlm-nnunet-model-",
         "holds more than weights"),
    Case("missing-image", _predict(images=("nope.nii.gz",)), "nope.nii.gz", "no such image"),
    Case("image-is-folder", _predict(images=("a_folder",)), "a_folder", "is a folder"),
    Case("out-is-file", _predict(out="notes.txt"), "notes.txt", "existing file"),
    Case("mask-is-input", _predict(images=("masks/ct.nii.gz",)), "masks/ct.nii.gz", "overwrite the input"),
    Case("qa-dir-is-file", _predict("model.zip", "--qa-dir", "notes.txt"), "notes.txt", "existing file"),
]


@pytest.mark.parametrize("case", NNUNET_PREDICT, ids=lambda c: c.id)
def test_nnunet_predict_refuses(case, work):
    if case.id == "mask-is-input":
        (work / "masks").mkdir()
        shutil.copy(work / "ct.nii.gz", work / "masks" / "ct.nii.gz")
    if case.id == "checkpoint-runs-code":
        # the model is unpacked to a temporary folder, which the line names: match its start
        result = run_gcmlm("nnunet-predict", case.args, work)
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
        assert "holds more than weights" in result.stderr and "gcmlm-nnunet-model-" in result.stderr
        assert not (work / "sentinel").exists(), "the pickled callable ran"
        assert not (work / "masks").exists()
        return
    assert_refused("nnunet-predict", case, work)
    assert not Path("/tmp/gcmlm-absolute-member.txt").exists()


@pytest.mark.parametrize("model, problem", [
    ("garbage_checkpoint.zip", "not a readable checkpoint"),
    ("evil_plans.zip", "names the class 'subprocess.Popen'"),
], ids=["garbage-checkpoint", "plans-name-other-code"])
def test_nnunet_predict_refuses_model_content(model, problem, work):
    before = snapshot(work)
    result = run_gcmlm("nnunet-predict", _predict(model), work)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert problem in result.stderr
    assert snapshot(work) == before


@pytest.mark.parametrize("args, problem", [
    (["--step-size", "nan"], r"--step-size must be in \(0, 1\]"),
    (["--step-size", "0"], r"--step-size must be in \(0, 1\]"),
    (["--num-processes-export", "0"], "--num-processes-export must be at least 1"),
], ids=["step-nan", "step-zero", "export-processes-zero"])
def test_nnunet_predict_refuses_option(args, problem, work):
    assert_option_refused("nnunet-predict", _predict("model.zip", *args), problem, work)


# ---- demo-cohort ------------------------------------------------------------------------------------------

DEMO_COHORT = [
    Case("out-is-file", ["--out", "notes.txt", "--patients", "1"], "notes.txt", "existing file"),
    Case("out-holds-other-data", ["--out", ".", "--patients", "1"], ".", "holds no demo cohort"),
    Case("out-under-file", ["--out", "notes.txt/cohort", "--patients", "1"], "notes.txt/cohort", "not a folder"),
    Case("out-name-too-long", ["--out", LONG, "--patients", "1"], LONG, "too long"),
]


@pytest.mark.parametrize("case", DEMO_COHORT, ids=lambda c: c.id)
def test_demo_cohort_refuses(case, work):
    assert_refused("demo-cohort", case, work)


@pytest.mark.parametrize("args, problem", [
    (["--patients", "0"], "--patients must be at least 1"),
    (["--seed", "-1"], "--seed must be a non-negative"),
    (["--slide-size", "10", "10"], "--slide-size must be at least 256"),
], ids=["patients-zero", "seed-negative", "slide-size-small"])
def test_demo_cohort_refuses_option(args, problem, work):
    assert_option_refused("demo-cohort", ["--out", "cohort", *args], problem, work)


def test_demo_cohort_killed_run_is_cleaned_by_the_next(tmp_path):
    """kill -9 during a run leaves its hidden temporary folder; the next run removes it and succeeds."""
    out = tmp_path / "cohort"
    args = [sys.executable, "-m", "gcmlm", "demo-cohort", "-q", "--out", str(out), "--patients", "3",
            "--slide-size", "2048", "2048"]
    process = subprocess.Popen(args, cwd=tmp_path, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    leftovers: list[Path] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".cohort.tmp-")]
        if leftovers and any((leftovers[0] / "ct").glob("*.nii.gz")):
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed; make it longer"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert leftovers and leftovers[0].exists() and not out.exists()
    result = run_gcmlm("demo-cohort", ["--out", str(out), "--patients", "1", "--slide-size", "256", "256"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (out / "truth.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort"]
