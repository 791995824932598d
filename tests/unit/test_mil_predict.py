"""mil-predict: the saved model predicts held-out patients; weights are read through safetensors only."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from gcmlm.common.errors import GcmlmError
from gcmlm.pathology.core.mil import load_mil_model, predict_mil, roc_auc, save_mil_model
from gcmlm.pathology.mil_predict import predict_files, write_predictions

TOOLS = Path(__file__).resolve().parents[2] / "tools"
TRAIN_DATA = TOOLS / "mil-train" / "tests" / "data"
MODEL = TOOLS / "mil-predict" / "tests" / "data" / "model"


def slide_files(first: int, last: int) -> list[Path]:
    return sorted(p for i in range(first, last + 1) for p in TRAIN_DATA.glob(f"P{i:02d}-*.h5"))


def test_held_out_patients_and_attention_files(tmp_path):
    result = predict_files(MODEL, slide_files(32, 39), slide_map=TRAIN_DATA / "slide_map.csv", device="cpu",
                           threads=1)
    labels = {f"P{i}": i % 2 for i in range(32, 40)}
    risks = np.array([p.risk for p in result.predictions])
    assert roc_auc([labels[p.patient_id] for p in result.predictions], risks) > 0.8
    write_predictions(result, tmp_path / "risk.csv", slide_out=tmp_path / "slides.csv",
                      attention_dir=tmp_path / "att")
    header = (tmp_path / "risk.csv").read_text().splitlines()[0]
    assert header == "patient_id,mil_risk,mil_logit,n_slides,n_patches,n_empty_slides"
    with h5py.File(tmp_path / "att" / "P33-A.h5") as h5, h5py.File(TRAIN_DATA / "P33-A.h5") as src:
        assert np.array_equal(h5["coords"][()], src["coords"][()])
        assert dict(h5["coords"].attrs).keys() == dict(src["coords"].attrs).keys()
        attention = h5["attention"][()]
        assert attention.shape == (36,) and abs(attention.sum() - 1) < 1e-5
        assert src["planted"][()][np.argsort(-attention)[:4]].mean() >= 0.75


def test_two_slide_patient_shares_one_softmax():
    result = predict_files(MODEL, slide_files(0, 1), slide_map=TRAIN_DATA / "slide_map.csv", device="cpu")
    p0 = next(p for p in result.predictions if p.patient_id == "P00")
    assert set(p0.slide_risks) == {"P00-A", "P00-B"}
    assert abs(sum(a.sum() for a in p0.attention.values()) - 1) < 1e-5


def test_save_load_round_trip(tmp_path):
    model = load_mil_model(MODEL)
    save_mil_model(model, tmp_path / "copy")
    again = load_mil_model(tmp_path / "copy")
    bags = predict_files(MODEL, slide_files(32, 33), device="cpu").features.bags
    assert [p.risk for p in predict_mil(model, bags)] == [p.risk for p in predict_mil(again, bags)]


def test_refuses_pickles_and_mismatched_weights(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text((MODEL / "config.json").read_text())
    (folder / "model.pt").write_bytes(b"pickle")
    with pytest.raises(GcmlmError, match="safetensors only"):
        load_mil_model(folder)
    from safetensors.numpy import save_file

    save_file({"embed.0.weight": np.zeros((3, 3), np.float32)}, str(folder / "model.safetensors"))
    with pytest.raises(GcmlmError, match="do not match"):
        load_mil_model(folder)
