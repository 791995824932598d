"""Fixtures shared by the unit tests of several stages."""

from __future__ import annotations

import pytest

from gcmlm.cli import main

# A short run of nnU-Net's nnUNetTrainerNoDA (no augmentation: learns the demo CTs in a few hundred
# iterations; nnUNetTrainer needs several times more) that reaches foreground Dice >= 0.8.
TRAINER, EPOCHS, ITERATIONS = "nnUNetTrainerNoDA", 50, 24
TRAIN_CASES = [f"GC{i:03d}" for i in range(1, 9)]
HELD_OUT = [f"GC{i:03d}" for i in range(9, 13)]


def gcmlm(*argv) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="session")
def tiny_model(demo_cohort, tmp_path_factory) -> dict:
    """dataset -> plan (tiny) -> train fold 0 on 8 demo CTs (a few minutes on 2 CPU cores), and its
    predictions of the 4 held-out CTs. Trained once per session: test_nnunet checks its quality and
    its equivalence with nnU-Net's CLI, test_radiology_workflow runs the workflow with it."""
    work = tmp_path_factory.mktemp("nnunet")
    assert gcmlm("nnunet-dataset", "--manifest", demo_cohort / "manifest.csv", "--test-cases", *HELD_OUT,
                 "--dataset-id", 501, "--dataset-name", "Stomach", "--out", work / "raw") == 0
    raw = work / "raw" / "Dataset501_Stomach"
    assert gcmlm("nnunet-plan", "--raw", raw, "--out", work / "preprocessed", "--tiny", "-np", 1) == 0
    pre = work / "preprocessed" / "Dataset501_Stomach"
    assert gcmlm("nnunet-train", "--preprocessed", pre, "--plans", "nnUNetPlans_tiny", "--trainer", TRAINER,
                 "--epochs", EPOCHS, "--iterations-per-epoch", ITERATIONS, "--val-iterations", 1,
                 "--device", "cpu", "--threads", 1, "--num-workers", 1, "--num-processes", 1,
                 "--results", work / "results", "--validation-summary", work / "val.json",
                 "--out", work / "model.zip") == 0
    images = sorted((raw / "imagesTs").glob("*_0000.nii.gz"))
    assert gcmlm("nnunet-predict", "--model", work / "model.zip", "--images", *images, "--out", work / "pred",
                 "--device", "cpu", "-npp", 1, "-nps", 1) == 0
    return {"work": work, "raw": raw, "pre": pre, "zip": work / "model.zip", "images": images,
            "pred": work / "pred", "results": work / "results",
            "train_cases": TRAIN_CASES, "held_out": HELD_OUT, "epochs": EPOCHS}


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`make test` runs `-n 2 --dist loadgroup`), every test that needs the tiny
    nnU-Net runs on one worker, so the model is trained once per run, not once per worker."""
    for item in items:
        if "tiny_model" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("tiny_nnunet"))
