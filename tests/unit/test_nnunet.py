"""nnU-Net stages: dataset checks, tiny plans, trainer lookup, and a tiny model trained here.

The slow part is the session's tiny model (tests/unit/conftest.py: eight demo-cohort CTs packaged,
planned with the tiny plans, fold 0 trained on CPU); the prediction, zip, CLI-equivalence and CWL
tests here and the radiology workflow tests reuse it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from gcmlm.cli import main
from gcmlm.radiology.core import nnunet as common
from gcmlm.radiology.nnunet_plan import TINY_FEATURES, TINY_PATCH, tiny_plans

TOOL_DATA = Path(__file__).resolve().parents[2] / "tools" / "nnunet-dataset" / "tests" / "data"
# The tiny model (tests/unit/conftest.py) is a short run of this trainer on GC001-GC008.
SHORT_TRAINER = "nnUNetTrainerNoDA_gcmlmShort"
MODEL_DIR = f"{SHORT_TRAINER}__nnUNetPlans_tiny__3d_fullres"
CPU_FLAGS = ["--device", "cpu", "--threads", "1"]


def gcmlm(*argv: str) -> int:
    return main([str(a) for a in argv])


def read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum())


# ---- fast tests --------------------------------------------------------------------------------

def test_dataset_layout_from_images(tmp_path):
    images = [TOOL_DATA / f"T{i}.nii.gz" for i in (1, 2, 3)]
    labels = [TOOL_DATA / f"T{i}_seg.nii.gz" for i in (1, 2, 3)]
    assert gcmlm("nnunet-dataset", "--images", *images, "--labels", *labels, "--test-images",
                 TOOL_DATA / "T5.nii.gz", "--dataset-id", 7, "--dataset-name", "Tiny", "--out", tmp_path) == 0
    ds = tmp_path / "Dataset007_Tiny"
    meta = json.loads((ds / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "CT"}
    assert meta["labels"] == {"background": 0, "stomach": 1, "tumour": 2}
    assert meta["numTraining"] == 3 and meta["file_ending"] == ".nii.gz"
    assert sorted(p.name for p in (ds / "imagesTr").iterdir()) == ["T1_0000.nii.gz", "T2_0000.nii.gz", "T3_0000.nii.gz"]
    assert sorted(p.name for p in (ds / "labelsTr").iterdir()) == ["T1.nii.gz", "T2.nii.gz", "T3.nii.gz"]
    assert [p.name for p in (ds / "imagesTs").iterdir()] == ["T5_0000.nii.gz"]
    assert (ds / "labelsTr" / "T2.nii.gz").read_bytes() == labels[1].read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["Dataset007_Tiny"]  # no temporary left over


def test_dataset_from_manifest_holds_out_test_cases(tmp_path):
    rows = ["patient_id,kind,path,label"] + [f"P{i},ct,T{i}.nii.gz,T{i}_seg.nii.gz" for i in (1, 2, 3, 4)]
    rows += ["P5,ct,T5.nii.gz,", "P1,slide,slide.tiff,"]
    for f in TOOL_DATA.glob("T[1-5]*.nii.gz"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "raw"
    assert gcmlm("nnunet-dataset", "--manifest", tmp_path / "manifest.csv", "--test-cases", "P4",
                 "--dataset-id", 501, "--dataset-name", "Stomach", "--classes", "background=0", "wall=1", "tumour=2",
                 "--out", out) == 0
    ds = out / "Dataset501_Stomach"
    assert sorted(p.name for p in (ds / "labelsTr").iterdir()) == ["P1.nii.gz", "P2.nii.gz", "P3.nii.gz"]
    assert sorted(p.name for p in (ds / "imagesTs").iterdir()) == ["P4_0000.nii.gz", "P5_0000.nii.gz"]
    assert json.loads((ds / "dataset.json").read_text())["labels"] == {"background": 0, "wall": 1, "tumour": 2}


def test_dataset_grid_mismatch_names_the_case(tmp_path, capsys):
    rc = gcmlm("nnunet-dataset", "--images", TOOL_DATA / "T1.nii.gz", "--labels", TOOL_DATA / "T1_seg_shifted.nii.gz",
               "--case-ids", "case42", "--dataset-id", 9, "--dataset-name", "X", "--out", tmp_path / "raw")
    err = capsys.readouterr().err
    assert rc == 2
    assert "case case42: label map is not on the image grid (origin" in err
    assert "T1_seg_shifted.nii.gz" in err
    assert not (tmp_path / "raw" / "Dataset009_X").exists()


def test_dataset_undeclared_label_names_the_case(tmp_path, capsys):
    rc = gcmlm("nnunet-dataset", "--images", TOOL_DATA / "T2.nii.gz", "--labels", TOOL_DATA / "T2_seg_value7.nii.gz",
               "--dataset-id", 9, "--dataset-name", "X", "--out", tmp_path)
    err = capsys.readouterr().err
    assert rc == 2 and "case T2: label value(s) [7] not declared in the labels [0, 1, 2]" in err


@pytest.mark.parametrize("classes, message", [
    (["stomach=1"], "must declare background=0"),
    (["background=0", "tumour=2"], "consecutive from 0"),
    (["background"], "NAME=VALUE"),
])
def test_dataset_bad_classes(tmp_path, capsys, classes, message):
    rc = gcmlm("nnunet-dataset", "--images", TOOL_DATA / "T1.nii.gz", "--labels", TOOL_DATA / "T1_seg.nii.gz",
               "--classes", *classes, "--dataset-id", 9, "--dataset-name", "X", "--out", tmp_path)
    assert rc == 2 and message in capsys.readouterr().err


def test_v1_trainer_name_gets_v2_hint(tmp_path, capsys):
    rc = gcmlm("nnunet-train", "--preprocessed", tmp_path / "Dataset001_X", "--trainer", "nnUNetTrainerV2",
               "--out", tmp_path / "m.zip")
    assert rc == 2
    assert "nnUNetTrainerV2 is nnU-Net v1's name; in v2 use nnUNetTrainer" in capsys.readouterr().err


def test_short_run_needs_a_shortenable_trainer(tmp_path, capsys):
    rc = gcmlm("nnunet-train", "--preprocessed", tmp_path / "Dataset001_X", "--trainer", "nnUNetTrainerNoMirroring",
               "--epochs", 2, "--out", tmp_path / "m.zip")
    assert rc == 2 and "nnUNetTrainerNoMirroring cannot be shortened" in capsys.readouterr().err


def test_train_missing_plans_lists_available(tmp_path, capsys):
    folder = tmp_path / "Dataset001_X"
    folder.mkdir()
    (folder / "nnUNetPlans.json").write_text("{}")
    rc = gcmlm("nnunet-train", "--preprocessed", folder, "--plans", "nnUNetPlans_tiny", "--out", tmp_path / "m.zip")
    assert rc == 2 and "plans 'nnUNetPlans_tiny' not found (available: nnUNetPlans)" in capsys.readouterr().err
    assert not (tmp_path / "m.zip").exists()


def test_predict_missing_or_bad_model(tmp_path, capsys):
    image = TOOL_DATA / "T1.nii.gz"
    assert gcmlm("nnunet-predict", "--model", tmp_path / "missing.zip", "--images", image, "--out", tmp_path / "o") == 2
    assert "missing.zip: no such model zip or results folder" in capsys.readouterr().err
    (tmp_path / "bad.zip").write_text("not a zip")
    assert gcmlm("nnunet-predict", "--model", tmp_path / "bad.zip", "--images", image, "--out", tmp_path / "o") == 2
    assert "bad.zip: not a zip file" in capsys.readouterr().err
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("readme.txt", "x")
    assert gcmlm("nnunet-predict", "--model", empty, "--images", image, "--out", tmp_path / "o") == 2
    assert "no trained nnU-Net model" in capsys.readouterr().err


def test_nnunet_env_is_scoped(monkeypatch, tmp_path):
    monkeypatch.setenv("nnUNet_raw", "/users/own/raw")
    monkeypatch.delenv("nnUNet_results", raising=False)
    monkeypatch.setenv("nnUNet_extTrainer", "/users/own/trainers")
    with common.nnunet_env(preprocessed=tmp_path):
        assert "nnUNet_raw" not in os.environ  # never the user's folders by accident
        assert os.environ["nnUNet_preprocessed"] == str(tmp_path)
        assert os.environ["nnUNet_extTrainer"].split(os.pathsep) == [str(common.EXT_TRAINER_DIR), "/users/own/trainers"]
    assert os.environ["nnUNet_raw"] == "/users/own/raw"
    assert "nnUNet_preprocessed" not in os.environ and "nnUNet_results" not in os.environ
    assert os.environ["nnUNet_extTrainer"] == "/users/own/trainers"


def test_ext_trainer_found_as_nnunet_does():
    """nnU-Net's own lookup (used by training and inference) finds gcmlm's trainer under its real module."""
    with common.nnunet_env():
        from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

        cls = recursive_find_trainer_class_by_name("nnUNetTrainer_gcmlmShort")
    assert cls.__module__ == "gcmlm.radiology.core.nnunet_trainers"
    assert sorted(p.name for p in common.EXT_TRAINER_DIR.glob("*.py")) == ["__init__.py", "gcmlm_nnunet_trainers.py"]


def test_dataset_names():
    assert common.dataset_name(7, "Stomach") == "Dataset007_Stomach"
    assert common.parse_dataset_name("Dataset501_Stomach_CT") == (501, "Stomach_CT")
    assert common.case_id_from_image("/x/GC001_0000.nii.gz") == "GC001"
    assert common.case_id_from_image("GC001.nrrd") == "GC001"
    for bad in (lambda: common.dataset_name(1000, "X"), lambda: common.dataset_name(1, "a b"),
                lambda: common.parse_dataset_name("Task501_Stomach")):
        with pytest.raises(common.GcmlmError):
            bad()


def test_tiny_plans_shrink_network_and_coarsen_spacing():
    plans = {"plans_name": "nnUNetPlans", "configurations": {"3d_fullres": {
        "data_identifier": "nnUNetPlans_3d_fullres", "patch_size": [32, 96, 96], "batch_size": 2,
        "spacing": [2.5, 0.8, 0.8], "median_image_size_in_voxels": [32, 96, 96],
        "architecture": {"arch_kwargs": {"n_stages": 5, "features_per_stage": [32, 64, 128, 256, 320]}}}}}
    tiny = tiny_plans(plans, ["3d_fullres"])
    config = tiny["configurations"]["3d_fullres"]
    assert tiny["plans_name"] == "nnUNetPlans_tiny" and plans["plans_name"] == "nnUNetPlans"
    assert config["patch_size"] == [TINY_PATCH] * 3 and config["batch_size"] == 2
    assert config["architecture"]["arch_kwargs"]["features_per_stage"] == list(TINY_FEATURES)
    assert config["spacing"] == pytest.approx([2.5, 1.6, 1.6])  # 76.8 mm / (1.5 * 32)
    assert config["median_image_size_in_voxels"] == [32, 48, 48]
    assert config["data_identifier"] == "nnUNetPlans_tiny_3d_fullres"


# ---- the session's tiny model (slow; trained in tests/unit/conftest.py) ------------------------

@pytest.mark.slow
def test_plan_writes_tiny_plans_and_data(tiny_model):
    pre = tiny_model["pre"]
    plans = json.loads((pre / "nnUNetPlans_tiny.json").read_text())
    config = plans["configurations"]["3d_fullres"]
    assert config["patch_size"] == [32, 32, 32]
    assert {p.name for p in pre.iterdir()} >= {"dataset.json", "dataset_fingerprint.json", "nnUNetPlans.json",
                                               "nnUNetPlans_tiny.json", "gt_segmentations", "nnUNetPlans_tiny_3d_fullres"}
    assert len(list((pre / "nnUNetPlans_tiny_3d_fullres").glob("*.b2nd"))) == 2 * len(tiny_model["train_cases"])  # data + seg
    assert not (pre / "splits_final.json").exists()  # training never writes into its input


@pytest.mark.slow
def test_tiny_model_segments_held_out_cases(tiny_model, demo_cohort):
    scores = {}
    for case in tiny_model["held_out"]:
        truth, pred = read(demo_cohort / "labels" / f"{case}.nii.gz"), read(tiny_model["pred"] / f"{case}.nii.gz")
        scores[case] = {"foreground": dice(truth > 0, pred > 0), "stomach": dice(truth == 1, pred == 1),
                        "tumour": dice(truth == 2, pred == 2)}
    print("held-out Dice:", json.dumps(scores, indent=1))
    assert all(s["foreground"] >= 0.8 for s in scores.values()), scores


@pytest.mark.slow
def test_masks_lie_on_the_input_grid(tiny_model):
    from gcmlm.radiology.core.images import grid_differences

    for image in tiny_model["images"]:
        mask = tiny_model["pred"] / image.name.replace("_0000", "")
        assert grid_differences(sitk.ReadImage(str(image)), sitk.ReadImage(str(mask))) == []


@pytest.mark.slow
def test_model_zip_has_nnunet_export_layout(tiny_model):
    import torch

    prefix = f"Dataset501_Stomach/{MODEL_DIR}/"
    with zipfile.ZipFile(tiny_model["zip"]) as z:
        names = set(z.namelist())
        checkpoint = torch.load(z.open(prefix + "fold_0/checkpoint_final.pth"), map_location="cpu", weights_only=False)
        summary = json.loads(z.read(prefix + "fold_0/validation/summary.json"))
    assert {prefix + n for n in ("plans.json", "dataset.json", "dataset_fingerprint.json", "fold_0/checkpoint_final.pth",
                                 "fold_0/validation/summary.json", "fold_0/progress.png")} <= names
    assert checkpoint["trainer_name"] == SHORT_TRAINER
    assert checkpoint["current_epoch"] == tiny_model["epochs"]
    assert set(summary["mean"]) == {"1", "2"}
    assert json.loads((tiny_model["work"] / "val.json").read_text()) == summary


@pytest.mark.slow
def test_masks_identical_to_nnunetv2_predict(tiny_model, tmp_path):
    """nnUNetv2_install_pretrained_model_from_zip + nnUNetv2_predict (same folds, TTA, step) give the same voxels.

    (A NoDA model allows no mirroring, so TTA is moot here; benchmarks/nnunet compares with TTA on.)
    """
    env = {**os.environ, "nnUNet_results": str(tmp_path / "results"), "nnUNet_raw": str(tmp_path / "raw"),
           "nnUNet_preprocessed": str(tmp_path / "pre"), "nnUNet_extTrainer": str(common.EXT_TRAINER_DIR)}
    bin_dir = Path(sys.executable).parent
    subprocess.run([bin_dir / "nnUNetv2_install_pretrained_model_from_zip", tiny_model["zip"]], env=env, check=True,
                   capture_output=True)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for image in tiny_model["images"]:
        (inputs / image.name).symlink_to(image)
    subprocess.run([bin_dir / "nnUNetv2_predict", "-i", inputs, "-o", tmp_path / "cli", "-d", "501", "-c", "3d_fullres",
                    "-p", "nnUNetPlans_tiny", "-tr", SHORT_TRAINER, "-f", "0", "-step_size", "0.5",
                    "-chk", "checkpoint_final.pth", "-device", "cpu", "-npp", "1", "-nps", "1",
                    "--disable_progress_bar"], env=env, check=True, capture_output=True)
    for case in tiny_model["held_out"]:
        ours, theirs = read(tiny_model["pred"] / f"{case}.nii.gz"), read(tmp_path / "cli" / f"{case}.nii.gz")
        assert ours.shape == theirs.shape and np.array_equal(ours, theirs), case


@pytest.mark.slow
def test_results_folder_predicts_like_zip_with_postprocessing_and_qa(tiny_model, tmp_path):
    from scipy import ndimage

    image = tiny_model["images"][0]
    case = image.name.replace("_0000.nii.gz", "")
    results = next(tiny_model["results"].rglob(MODEL_DIR))
    common_flags = ["--images", image, "--device", "cpu", "--disable-tta", "-npp", 1, "-nps", 1]
    assert gcmlm("nnunet-predict", "--model", tiny_model["zip"], *common_flags, "--out", tmp_path / "zip") == 0
    assert gcmlm("nnunet-predict", "--model", results, *common_flags, "--out", tmp_path / "dir",
                 "--largest-component", "--qa-dir", tmp_path / "qa") == 0
    plain, lcc = read(tmp_path / "zip" / f"{case}.nii.gz"), read(tmp_path / "dir" / f"{case}.nii.gz")
    for label in (1, 2):
        n = ndimage.label(lcc == label, structure=np.ones((3, 3, 3)))[1]
        assert n <= 1, f"label {label}: {n} components after --largest-component"
        assert np.all((lcc == label) <= (plain == label))
    assert (tmp_path / "qa" / f"{case}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "dir").iterdir()) == [f"{case}.nii.gz"]


@pytest.mark.slow
def test_cwl_predict_tool(tiny_model, tmp_path):
    """tools/nnunet-predict/nnunet-predict.cwl with the tiny model zip gives the stage's masks and QA PNGs."""
    image = tiny_model["images"][1]
    case = image.name.replace("_0000.nii.gz", "")
    job = {"model": {"class": "File", "path": str(tiny_model["zip"])},
           "images": [{"class": "File", "path": str(image)}], "device": "cpu"}
    (tmp_path / "job.json").write_text(json.dumps(job))
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    tool = Path(__file__).resolve().parents[2] / "tools" / "nnunet-predict" / "nnunet-predict.cwl"
    result = subprocess.run([bin_dir / "cwltool", "--no-container", "--quiet", "--outdir", tmp_path / "out", tool,
                             tmp_path / "job.json"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout)
    assert [m["basename"] for m in outputs["masks"]] == [f"{case}.nii.gz"]
    assert [q["basename"] for q in outputs["qa_images"]] == [f"{case}.png"]
    assert np.array_equal(read(Path(outputs["masks"][0]["path"])), read(tiny_model["pred"] / f"{case}.nii.gz"))


@pytest.mark.slow
def test_radiology_branch_from_python_equals_the_command_line(tiny_model, demo_cohort, repo, tmp_path, monkeypatch):
    """The README's Python example (preprocess a CT, segment it with a model zip, extract radiomics)
    gives the bytes of the same three stages run from the command line."""
    from gcmlm.common.tables import write_patient_rows
    from gcmlm.radiology.ct_preprocess import preprocess_ct
    from gcmlm.radiology.nnunet_predict import predict_cases
    from gcmlm.radiology.radiomics_extract import Case, extract_features

    monkeypatch.chdir(tmp_path)
    ct, model = demo_cohort / "ct" / "GC009.nii.gz", tiny_model["zip"]  # GC009: held out from training
    params = repo / "tools" / "radiomics-extract" / "tests" / "data" / "light_params.yaml"
    # --- the example ---
    preprocess_ct(ct, "out/GC009_0000.nii.gz", spacing=(1.6, 1.6, 2.5))
    [mask] = predict_cases(model, ["out/GC009_0000.nii.gz"], "out/masks", device="cpu", tta=False)
    rows, diagnostics = extract_features([Case("GC009", "out/GC009_0000.nii.gz", mask)], params, label=1)
    write_patient_rows(rows, "out/radiomics.csv")
    # --- the same from the command line ---
    assert gcmlm("ct-preprocess", "--image", ct, "--out", "cli/GC009_0000.nii.gz", "--spacing", 1.6, 1.6, 2.5) == 0
    assert gcmlm("nnunet-predict", "--model", model, "--images", "cli/GC009_0000.nii.gz", "--out", "cli/masks",
                 "--device", "cpu", "--disable-tta", "-npp", 1, "-nps", 1) == 0
    assert gcmlm("radiomics-extract", "--image", "cli/GC009_0000.nii.gz", "--mask", "cli/masks/GC009.nii.gz",
                 "--patient-id", "GC009", "--params", params, "--label", 1, "--out", "cli/radiomics.csv") == 0
    api, cli = tmp_path / "out", tmp_path / "cli"
    assert mask == Path("out/masks/GC009.nii.gz") and rows[0]["patient_id"] == "GC009" and "GC009" in diagnostics
    assert (api / "GC009_0000.nii.gz").read_bytes() == (cli / "GC009_0000.nii.gz").read_bytes()
    assert np.array_equal(read(api / "masks" / "GC009.nii.gz"), read(cli / "masks" / "GC009.nii.gz"))
    assert (api / "radiomics.csv").read_bytes() == (cli / "radiomics.csv").read_bytes()
