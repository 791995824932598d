"""Bad input to the MIL stages (mil-train, mil-predict, mil-heatmap): one line, exit 2, nothing changed.

Every case runs a real `gcmlm <stage>` process (see harness.py) in a copy of one small kit: a few of
mil-train's synthetic feature files, its label table and slide map, mil-predict's model folder,
mil-heatmap's attention file and hand-made broken files. Refusals come before any training.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.unit.bad_inputs.harness import Case, assert_refused

TOOLS = Path(__file__).resolve().parents[3] / "tools"
TRAIN_DATA = TOOLS / "mil-train" / "tests" / "data"
SLIDES = ["P00-A", "P00-B", "P01-A", "P02-A", "P03-A", "P04-A", "P05-A", "P33-A"]
LONG = "a" * 250


def _copy_features(kit: Path, name: str, **changes) -> None:
    """A copy of P04-A.h5 named ``name`` with datasets replaced (None removes one)."""
    target = kit / f"{name}.h5"
    shutil.copy(TRAIN_DATA / "P04-A.h5", target)
    with h5py.File(target, "a") as h5:
        for key, value in changes.items():
            attrs = dict(h5[key].attrs) if key in h5 else {}
            if key in h5:
                del h5[key]
            if value is not None:
                h5.create_dataset(key, data=value).attrs.update(attrs)


def _make_kit(kit: Path) -> None:
    for sid in SLIDES:
        shutil.copy(TRAIN_DATA / f"{sid}.h5", kit / f"{sid}.h5")
    extra = "".join(f"P05,{name}\n" for name in ("empty", "junk", "F-nan", "F-dim", "F-text", "F-encoder"))
    (kit / "slide_map.csv").write_text((TRAIN_DATA / "slide_map.csv").read_text() + extra)
    shutil.copy(TRAIN_DATA / "labels.csv", kit / "labels.csv")
    shutil.copytree(TOOLS / "mil-predict" / "tests" / "data" / "model", kit / "model")
    shutil.copy(TOOLS / "mil-heatmap" / "tests" / "data" / "P33-A.h5", kit / "att.h5")
    (kit / "empty.h5").write_bytes(b"")
    (kit / "junk.h5").write_bytes(np.random.default_rng(0).bytes(4096))
    (kit / "afile.txt").write_text("the user's file\n")
    (kit / "adir").mkdir()
    (kit / "sub").mkdir()
    shutil.copy(kit / "P01-A.h5", kit / "sub" / "P01-A.h5")
    rows = np.ones((36, 16), np.float32)
    _copy_features(kit, "F-nan", features=np.where(np.eye(36, 16, dtype=bool), np.nan, rows).astype(np.float32))
    _copy_features(kit, "F-dim", features=np.ones((36, 8), np.float32))
    _copy_features(kit, "F-text", features=np.array([[b"x"] * 16] * 36))
    shutil.copy(TRAIN_DATA / "P04-A.h5", kit / "F-encoder.h5")
    with h5py.File(kit / "F-encoder.h5", "a") as h5:
        h5["features"].attrs["encoder"] = "uni_v1"
    (kit / "only-neg.csv").write_text("patient_id,mlm\n" + "".join(f"P0{i},0\n" for i in range(6)))
    (kit / "no-P05.csv").write_text("patient_id,mlm\n" + "".join(f"P0{i},{i % 2}\n" for i in range(5)))
    # models
    shutil.copytree(kit / "model", kit / "pickled")
    (kit / "pickled" / "model.safetensors").unlink()
    (kit / "pickled" / "model.pt").write_bytes(b"\x80\x04pickle")
    shutil.copytree(kit / "model", kit / "corrupt-model")
    (kit / "corrupt-model" / "model.safetensors").write_bytes(np.random.default_rng(2).bytes(512))
    shutil.copytree(kit / "model", kit / "bad-config")
    (kit / "bad-config" / "config.json").write_text("{not json")
    # attention files
    shutil.copy(kit / "att.h5", kit / "att-short.h5")
    with h5py.File(kit / "att-short.h5", "a") as h5:
        data = h5["attention"][()]
        del h5["attention"]
        h5.create_dataset("attention", data=data[:-1])
    shutil.copy(kit / "att.h5", kit / "att-nan.h5")
    with h5py.File(kit / "att-nan.h5", "a") as h5:
        h5["attention"][0] = np.nan
    shutil.copy(kit / "att.h5", kit / "att-nosize.h5")
    with h5py.File(kit / "att-nosize.h5", "a") as h5:
        del h5["coords"].attrs["patch_size"]


@pytest.fixture(scope="session")
def kit(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mil-kit")
    _make_kit(folder)
    return folder


TRAIN_FILES = ["P00-A.h5", "P00-B.h5", "P01-A.h5", "P02-A.h5", "P03-A.h5", "P04-A.h5", "P05-A.h5"]


def _train(*args: str, features: list[str] | None = None, labels: str = "labels.csv", label: str = "mlm",
           out: str = "model-out") -> list[str]:
    return ["--features", *(features or TRAIN_FILES), "--slide-map", "slide_map.csv", "--labels", labels,
            "--label", label, "--out", out, "--device", "cpu", "--max-epochs", "1", *args]


MIL_TRAIN = [
    Case("missing-features", _train(features=["nope.h5"]), "nope.h5", "no such feature file"),
    Case("features-is-folder", _train(features=["adir"]), "adir", "is a folder; expected a feature file"),
    Case("empty-features", _train(features=[*TRAIN_FILES, "empty.h5"]), "empty.h5", "not a readable HDF5"),
    Case("corrupt-features", _train(features=[*TRAIN_FILES, "junk.h5"]), "junk.h5", "not a readable HDF5"),
    Case("nan-features", _train(features=[*TRAIN_FILES, "F-nan.h5"]), "F-nan.h5", "NaN or infinite"),
    Case("text-features", _train(features=[*TRAIN_FILES, "F-text.h5"]), "F-text.h5", "must be numbers"),
    Case("other-dimension", _train(features=[*TRAIN_FILES, "F-dim.h5"]), "F-dim.h5", "feature dimension 8"),
    Case("other-encoder", _train(features=[*TRAIN_FILES, "F-encoder.h5"]), "F-encoder.h5",
         "features from encoder uni_v1"),
    Case("duplicate-slide", _train(features=[*TRAIN_FILES, "sub/P01-A.h5"]), "sub/P01-A.h5", "appears twice"),
    Case("missing-labels", _train(labels="nope.csv"), "nope.csv", "no such label table"),
    Case("labels-is-folder", _train(labels="adir"), "adir", "is a folder; expected a label table"),
    Case("labels-not-csv", _train(labels="junk.h5"), "junk.h5", "readable CSV|first column"),
    Case("no-label-column", _train(label="grade"), "labels.csv", "no outcome column 'grade'"),
    Case("non-binary-label", _train(label="centre"), "labels.csv", "must be 0/1"),
    Case("patient-without-label", _train(labels="no-P05.csv"), "no-P05.csv", "not in the label table: P05"),
    Case("one-class", _train(labels="only-neg.csv"), "--labels", "no patient with outcome 1"),
    Case("unmapped-slide", _train(features=[*TRAIN_FILES, "att.h5"]), "att.h5", "not in the slide map"),
    Case("zero-lr", _train("--lr", "0"), "--lr", "must be > 0"),
    Case("nan-dropout", _train("--dropout", "nan"), "--dropout", "must be >= 0"),
    Case("dropout-one", _train("--dropout", "1"), "--dropout", "must be < 1"),
    Case("negative-epochs", _train("--max-epochs", "-1"), "--max-epochs", "must be >= 1"),
    Case("big-val-fraction", _train("--val-fraction", "0.9"), "--val-fraction", "must be <= 0.5"),
    Case("val-too-small", _train(features=["P00-A.h5", "P00-B.h5", "P01-A.h5", "P02-A.h5"]), "--val-fraction",
         "1 patient\\(s\\) with outcome 1: too few for a validation split"),
    Case("zero-threads", _train("--threads", "0"), "--threads", "must be >= 1"),
    Case("cuda-without-gpu", _train("--device", "cuda"), "--device cuda", "sees no CUDA device"),
    Case("out-is-file", _train(out="afile.txt"), "afile.txt", "output folder is an existing file"),
    Case("out-holds-input", _train(features=["sub/P01-A.h5", *TRAIN_FILES[:2]], out="sub"), "sub",
         "would overwrite the input"),
    Case("out-under-file", _train(out="afile.txt/x"), "afile.txt/x", "not a folder"),
    Case("out-name-too-long", _train(out=LONG), LONG, "name too long"),
]

PREDICT_FILES = ["P33-A.h5", "P04-A.h5"]


def _predict(*args: str, model: str = "model", features: list[str] | None = None, out: str = "risk.csv") -> list[str]:
    return ["--model", model, "--features", *(features or PREDICT_FILES), "--out", out, "--device", "cpu", *args]


MIL_PREDICT = [
    Case("missing-model", _predict(model="nope"), "nope", "no such mil-train model folder"),
    Case("model-is-file", _predict(model="afile.txt"), "afile.txt", "is a file; expected a mil-train model folder"),
    Case("pickled-model", _predict(model="pickled"), "pickled", "safetensors only"),
    Case("corrupt-weights", _predict(model="corrupt-model"), "corrupt-model/model.safetensors",
         "not a readable safetensors"),
    Case("bad-config", _predict(model="bad-config"), "bad-config/config.json", "not a mil-train config.json"),
    Case("missing-features", _predict(features=["nope.h5"]), "nope.h5", "no such feature file"),
    Case("empty-features", _predict(features=["empty.h5"]), "empty.h5", "not a readable HDF5"),
    Case("other-dimension", _predict(features=["F-dim.h5"]), "F-dim.h5", "differs from the model's"),
    Case("other-encoder", _predict(features=["F-encoder.h5"]), "F-encoder.h5", "features from encoder uni_v1"),
    Case("nan-features", _predict(features=["F-nan.h5"]), "F-nan.h5", "NaN or infinite"),
    Case("out-is-folder", _predict(out="adir"), "adir", "existing folder; expected a file"),
    Case("out-is-input", _predict(out="P33-A.h5"), "P33-A.h5", "would overwrite the input"),
    Case("attention-dir-is-file", _predict("--attention-dir", "afile.txt"), "afile.txt",
         "output folder is an existing file"),
    Case("attention-over-input", _predict("--attention-dir", "."), "P33-A.h5", "would overwrite the input"),
    Case("slide-out-under-file", _predict("--slide-out", "afile.txt/s.csv"), "afile.txt/s.csv", "not a folder"),
    Case("zero-threads", _predict("--threads", "0"), "--threads", "must be >= 1"),
]


def _heatmap(*args: str, attention: str = "att.h5", out: str = "h.png", geojson: str = "h.geojson") -> list[str]:
    return ["--attention", attention, "--out", out, "--geojson", geojson, *args]


MIL_HEATMAP = [
    Case("missing-attention", _heatmap(attention="nope.h5"), "nope.h5", "no such attention file"),
    Case("attention-is-folder", _heatmap(attention="adir"), "adir", "is a folder; expected a attention file"),
    Case("empty-attention", _heatmap(attention="empty.h5"), "empty.h5", "not a readable HDF5"),
    Case("features-not-attention", _heatmap(attention="P04-A.h5"), "P04-A.h5", "no 'attention' dataset"),
    Case("short-attention", _heatmap(attention="att-short.h5"), "att-short.h5", "35 attention values but 36"),
    Case("nan-attention", _heatmap(attention="att-nan.h5"), "att-nan.h5", "NaN or infinite"),
    Case("no-patch-size", _heatmap(attention="att-nosize.h5"), "att-nosize.h5", "no 'patch_size'"),
    Case("zero-fraction", _heatmap("--top-fraction", "0"), "--top-fraction", r"must be in \(0, 1\]"),
    Case("big-fraction", _heatmap("--top-fraction", "1.5"), "--top-fraction", r"must be in \(0, 1\]"),
    Case("nan-fraction", _heatmap("--top-fraction", "nan"), "--top-fraction", r"must be in \(0, 1\]"),
    Case("tiny-side", _heatmap("--max-side", "0"), "--max-side", "must be >= 64"),
    Case("missing-slide", _heatmap("--slide", "nope.svs"), "nope.svs", "no such slide file"),
    Case("corrupt-slide", _heatmap("--slide", "junk.h5"), "junk.h5", "not a readable slide"),
    Case("png-is-folder", _heatmap(out="adir"), "adir", "existing folder; expected a file"),
    Case("geojson-is-input", _heatmap(geojson="att.h5"), "att.h5", "would overwrite the input"),
    Case("png-under-file", _heatmap(out="afile.txt/h.png"), "afile.txt/h.png", "not a folder"),
    Case("same-output-twice", _heatmap(out="h.out", geojson="h.out"), "h.out", "same path is given for two outputs"),
    Case("name-too-long", _heatmap(out=LONG + ".png"), LONG + ".png", "name too long"),
]


@pytest.mark.parametrize("case", MIL_TRAIN, ids=lambda c: c.id)
def test_mil_train_refuses(case, work):
    assert_refused("mil-train", case, work)


@pytest.mark.parametrize("case", MIL_PREDICT, ids=lambda c: c.id)
def test_mil_predict_refuses(case, work):
    assert_refused("mil-predict", case, work)


@pytest.mark.parametrize("case", MIL_HEATMAP, ids=lambda c: c.id)
def test_mil_heatmap_refuses(case, work):
    assert_refused("mil-heatmap", case, work)
