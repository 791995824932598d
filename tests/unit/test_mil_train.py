"""mil-train and the MIL core: training learns a planted signal, deterministically, on inner splits only."""

import json

import cv2
import numpy as np
import pytest
import torch

from gcmlm.common.errors import GcmlmError
from gcmlm.pathology.core.mil import Bag, MILConfig, fit_mil, inner_split, planted_bags, predict_mil, roc_auc
from gcmlm.pathology.mil_train import train_mil
from tests.unit.test_mil_predict import TRAIN_DATA, slide_files

CONFIG = MILConfig(lr=1e-3, max_epochs=15, hidden=32, attention_dim=16)


@pytest.fixture(scope="module")
def synthetic():
    torch.set_num_threads(1)
    patients, labels = planted_bags(48, 40, 16, seed=3, shift=2.0)
    bags = [Bag.from_arrays(f"P{i}", {f"S{i}": p["features"]}) for i, p in enumerate(patients)]
    return patients, labels, bags


def test_learns_the_planted_signal_and_attends_to_it(synthetic):
    patients, labels, bags = synthetic
    model = fit_mil(bags[:32], labels[:32], CONFIG, seed=0, progress=False)
    predictions = predict_mil(model, bags[32:])
    assert roc_auc(labels[32:], np.array([p.risk for p in predictions])) > 0.8
    hits = [patients[32 + i]["planted"][np.argsort(-p.attention[f"S{32 + i}"])[:4]].mean()
            for i, p in enumerate(predictions) if labels[32 + i]]
    assert np.mean(hits) > 0.7  # the top-attention patches are the planted ones
    assert set(model.training["validation_patients"]) <= {b.patient_id for b in bags[:32]}


def test_same_seed_same_model_and_caller_rng_untouched(synthetic):
    _, labels, bags = synthetic
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = fit_mil(bags[:16], labels[:16], MILConfig(max_epochs=3, hidden=8, attention_dim=4), seed=5, progress=False)
    assert torch.equal(torch.rand(1), before)
    b = fit_mil(bags[:16], labels[:16], MILConfig(max_epochs=3, hidden=8, attention_dim=4), seed=5, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(a.network.state_dict().values(), b.network.state_dict().values(), strict=True))


def test_inner_split_is_stratified():
    y = np.array([0] * 10 + [1] * 5)
    train, val = inner_split(y, 0.2, np.random.default_rng(0))
    assert sorted(y[val].tolist()) == [0, 0, 1] and not set(train) & set(val) and len(train) + len(val) == 15
    with pytest.raises(GcmlmError, match="too few"):
        inner_split(np.array([0, 0, 0, 1]), 0.2, np.random.default_rng(0))


def test_config_ranges():
    for bad in (MILConfig(lr=0), MILConfig(dropout=1.0), MILConfig(val_fraction=0.6), MILConfig(hidden=0),
                MILConfig(max_patches=-1), MILConfig(weight_decay=float("nan"))):
        with pytest.raises(GcmlmError):
            bad.check()


def test_roc_auc_matches_the_definition():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5 and roc_auc([1, 1], [0, 1]) is None


def test_train_mil_writes_a_weights_only_model_folder(tmp_path):
    out = tmp_path / "model"
    result = train_mil(slide_files(0, 15), TRAIN_DATA / "labels.csv", "mlm", out,
                       slide_map=TRAIN_DATA / "slide_map.csv",
                       config=MILConfig(max_epochs=2, hidden=8, attention_dim=4), device="cpu", threads=1)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "learning_curve.png", "model.safetensors",
                                                    "training.json"]
    config = json.loads((out / "config.json").read_text())
    assert config["features"] == {"encoder": "synthetic", "checkpoint_sha256": "synthetic-16d"}
    assert config["feature_dim"] == 16 and config["architecture"] == "abmil"
    record = json.loads((out / "training.json").read_text())
    assert record["n_slides"] == 20 and len(record["history"]) == 2 and record["best_epoch"] in (1, 2)
    assert result.n_patients == 16
    assert cv2.imread(str(out / "learning_curve.png")).shape == (400, 640, 3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_cuda_is_refused_without_a_gpu(tmp_path):
    with pytest.raises(GcmlmError, match="no CUDA device"):
        train_mil(slide_files(0, 3), TRAIN_DATA / "labels.csv", "mlm", tmp_path / "m", device="cuda")
