"""Bad input to the pathology stages (wsi-tile, patch-embed, slide-pool): one line, exit 2, nothing changed.

Every case runs a real `gcmlm <stage>` process (see harness.py) in a copy of one small kit of
inputs: a synthetic slide and a truncated copy of it, the real CMU-1-Small-Region.svs with CLAM
coords, slide-pool's feature fixtures and hand-made broken files. Refusals come before any model
is built, so each case takes about as long as starting Python.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.unit.bad_inputs.harness import Case, assert_refused

TOOLS = Path(__file__).resolve().parents[3] / "tools"
CMU = "CMU-1-Small-Region.svs"
LONG = "a" * 240  # a slide ID whose derived output names (+ temporary suffix) are too long

OLD_ATTRS = {"patch_size": np.int64(256), "patch_level": np.int64(0)}  # CLAM's own files: no slide identity


def _coords(path: Path, coords, attrs=None, dtype=None) -> None:
    with h5py.File(path, "w") as h5:
        dset = h5.create_dataset("coords", data=np.asarray(coords, dtype=dtype))
        for key, value in {**OLD_ATTRS, **(attrs or {})}.items():
            dset.attrs[key] = value


def _features(path: Path, features, attrs=None, coords=None) -> None:
    features = np.asarray(features)
    with h5py.File(path, "w") as h5:
        fset = h5.create_dataset("features", data=features)
        for key, value in (attrs or {}).items():
            fset.attrs[key] = value
        n = len(features) if coords is None else coords
        h5.create_dataset("coords", data=np.stack([np.arange(n) * 256, np.zeros(n)], axis=1).astype(np.int64))


def _make_kit(kit: Path, shared: Path) -> None:
    from gcmlm.demo.core.wsi import write_synthetic_slide

    write_synthetic_slide(kit / "slide.tiff", 2048, 1536, mpp=0.5, seed=1)
    data = (kit / "slide.tiff").read_bytes()
    (kit / "trunc.tiff").write_bytes(data[: len(data) * 2 // 3])  # level-0 tiles cut off: a failed copy
    shutil.copy(shared / "wsi" / CMU, kit / CMU)
    shutil.copy(shared / "wsi" / CMU, kit / f"{LONG}.svs")
    shutil.copy(TOOLS / "wsi-tile" / "tests" / "data" / "no-mpp.tiff", kit / "no-mpp.tiff")
    (kit / "empty.svs").write_bytes(b"")
    (kit / "junk.svs").write_bytes(np.random.default_rng(0).bytes(4096))
    (kit / "afile.txt").write_text("the user's file\n")
    (kit / "adir").mkdir()
    (kit / "sub").mkdir()
    shutil.copy(kit / "slide.tiff", kit / "sub" / "slide.tiff")
    # mpp CSVs
    (kit / "mpp-cols.csv").write_text("name,resolution\nslide,0.5\n")
    (kit / "mpp-text.csv").write_text("slide_id,mpp\nslide,half\n")
    # coords (CMU-1-Small-Region is 2220 x 2967 px)
    inside = [(512, 512), (768, 512)]
    shutil.copy(TOOLS / "patch-embed" / "tests" / "data" / f"{Path(CMU).stem}.h5", kit / "coords.h5")
    (kit / "empty.h5").write_bytes(b"")
    with h5py.File(kit / "no-coords.h5", "w") as h5:
        h5.create_dataset("features", data=np.zeros((2, 3), np.float32))
    _coords(kit / "shape.h5", [(512, 512, 0), (768, 512, 0)])
    _coords(kit / "fraction.h5", [(512.5, 512.0), (768.0, 512.0)])
    _coords(kit / "text.h5", [("a", "b")], dtype="S1")
    _coords(kit / "outside.h5", [(512, 512), (5000, 512)])
    _coords(kit / "negative.h5", [(-256, 512)])
    _coords(kit / "other-slide.h5", inside, {"slide_file": "other.svs", "slide_fingerprint": "quickhash-1:0123",
                                             "level0_width": np.int64(2220), "level0_height": np.int64(2967)})
    _coords(kit / "other-size.h5", inside, {"level0_width": np.int64(4096), "level0_height": np.int64(3072)})
    with h5py.File(kit / "no-size.h5", "w") as h5:
        h5.create_dataset("coords", data=np.asarray(inside, np.int64)).attrs["patch_level"] = 0
    (kit / "junk.pt").write_bytes(np.random.default_rng(1).bytes(2048))
    (kit / "h5_home").mkdir()
    # features (slide-pool)
    for name in ("P1-A", "P1-B", "P2-C", "P3-E"):
        shutil.copy(TOOLS / "slide-pool" / "tests" / "data" / f"{name}.h5", kit / f"{name}.h5")
    shutil.copy(TOOLS / "slide-pool" / "tests" / "data" / "slide_map.csv", kit / "slide_map.csv")
    shutil.copy(kit / "P1-A.h5", kit / "sub" / "P1-A.h5")
    _features(kit / "F-3d.h5", np.zeros((2, 3, 1), np.float32))
    _features(kit / "F-text.h5", np.array([[b"x", b"y"]]))
    _features(kit / "F-nan.h5", np.array([[np.nan, 1.0]], np.float32))
    _features(kit / "F-incomplete.h5", np.ones((2, 2), np.float32), {"complete": False, "n_patches": 2})
    _features(kit / "F-dim.h5", np.ones((2, 5), np.float32))
    _features(kit / "F-rows.h5", np.ones((2, 2), np.float32), coords=3)
    _features(kit / "F-empty.h5", np.zeros((0, 2), np.float32))
    (kit / "no-P3.csv").write_text("patient_id,slide_id\nP1,P1-A\n")


@pytest.fixture(scope="session")
def kit(tmp_path_factory, shared_data) -> Path:
    folder = tmp_path_factory.mktemp("pathology-kit")
    _make_kit(folder, shared_data)
    return folder


def _embed(*args: str, slide: str = CMU, coords: str = "coords.h5", out: str = "out") -> list[str]:
    return ["--slide", slide, "--coords", coords, "--out", out, "--encoder", "test_resnet",
            "--allow-random-weights", "--device", "cpu", "--num-workers", "0", *args]


WSI_TILE = [
    Case("missing-slide", ["--slide", "nope.svs", "--out", "out"], "nope.svs", "no such slide file"),
    Case("slide-is-folder", ["--slide", "adir", "--out", "out"], "adir", "is a folder; expected a slide file"),
    Case("empty-slide", ["--slide", "empty.svs", "--out", "out"], "empty.svs", "not a readable slide"),
    Case("corrupt-slide", ["--slide", "junk.svs", "--out", "out"], "junk.svs", "not a readable slide"),
    Case("truncated-slide", ["--slide", "trunc.tiff", "--out", "out"], "trunc.tiff",
         r"truncated file: \d+ of \d+ tiles lie past its end .*level-0 region x=\d+, y=\d+"),
    Case("no-mpp", ["--slide", "no-mpp.tiff", "--out", "out"], "no-mpp.tiff", "give --mpp"),
    Case("out-is-file", ["--slide", "slide.tiff", "--out", "afile.txt"], "afile.txt", "not a folder"),
    Case("out-is-input", ["--slide", "slide.tiff", "--out", "slide.tiff"], "slide.tiff", "not a folder"),
    Case("out-under-file", ["--slide", "slide.tiff", "--out", "afile.txt/x"], "afile.txt/x", "is not a folder"),
    Case("name-too-long", ["--slide", f"{LONG}.svs", "--out", "out"], f"out/patches/{LONG}.h5", "name too long"),
    Case("same-slide-id-twice", ["--slide", "slide.tiff", "sub/slide.tiff", "--out", "out"], "sub/slide.tiff",
         "appears twice"),
    Case("mpp-csv-missing", ["--slide", "slide.tiff", "--out", "out", "--mpp-csv", "nope.csv"], "nope.csv",
         "no such mpp CSV"),
    Case("mpp-csv-columns", ["--slide", "slide.tiff", "--out", "out", "--mpp-csv", "mpp-cols.csv"],
         "mpp-cols.csv", "needs columns"),
    Case("mpp-csv-not-number", ["--slide", "slide.tiff", "--out", "out", "--mpp-csv", "mpp-text.csv"],
         "mpp-text.csv", "not a number"),
    Case("mpp-csv-is-slide", ["--slide", "slide.tiff", "--out", "out", "--mpp-csv", "slide.tiff"], "slide.tiff",
         "not a readable CSV"),
    Case("mpp-nan", ["--slide", "slide.tiff", "--out", "out", "--mpp", "nan"], "--mpp", "outside"),
    Case("mpp-negative", ["--slide", "slide.tiff", "--out", "out", "--mpp", "-0.5"], "--mpp", "outside"),
    Case("min-tissue-nan", ["--slide", "slide.tiff", "--out", "out", "--min-tissue", "nan"], "--min-tissue",
         r"within \[0, 1\]"),
    Case("a-t-negative", ["--slide", "slide.tiff", "--out", "out", "--a-t", "-1"], "--a-t", ">= 0"),
    Case("a-t-nan", ["--slide", "slide.tiff", "--out", "out", "--a-t", "nan"], "--a-t", ">= 0"),
    Case("sthresh-too-big", ["--slide", "slide.tiff", "--out", "out", "--sthresh", "300"], "--sthresh",
         "between 0 and 255"),
    Case("mthresh-even", ["--slide", "slide.tiff", "--out", "out", "--mthresh", "4"], "--mthresh", "odd"),
    Case("patch-size-zero", ["--slide", "slide.tiff", "--out", "out", "--patch-size", "0"], "--patch-size", ">= 1"),
    Case("mag-zero", ["--slide", "slide.tiff", "--out", "out", "--mag", "0"], "--mag", "> 0"),
    Case("target-mpp-nan", ["--slide", "slide.tiff", "--out", "out", "--target-mpp", "nan"], "--target-mpp", "> 0"),
    Case("patch-level-missing", ["--slide", "slide.tiff", "--out", "out", "--patch-level", "9"], "slide.tiff",
         "does not exist"),
    Case("preset-file-missing", ["--slide", "slide.tiff", "--out", "out", "--preset", "nope.csv"], "nope.csv",
         "no such preset file"),
]

PATCH_EMBED = [
    Case("missing-slide", _embed(slide="nope.svs"), "nope.svs", "no such slide file"),
    Case("slide-is-folder", _embed(slide="adir"), "adir", "is a folder; expected a slide file"),
    Case("corrupt-slide", _embed(slide="junk.svs"), "junk.svs", "not a readable slide"),
    Case("truncated-slide", _embed(slide="trunc.tiff"), "trunc.tiff", "truncated file: .*past its end"),
    Case("missing-coords", _embed(coords="nope.h5"), "nope.h5", "no such coords file"),
    Case("coords-is-folder", _embed(coords="adir"), "adir", "is a folder; expected a coords file"),
    Case("coords-empty-file", _embed(coords="empty.h5"), "empty.h5", "not a readable HDF5 file"),
    Case("coords-is-a-slide", _embed(coords=CMU, out="o2"), CMU, "not a readable HDF5 file"),
    Case("coords-dataset-missing", _embed(coords="no-coords.h5"), "no-coords.h5", "no 'coords' dataset"),
    Case("coords-wrong-shape", _embed(coords="shape.h5"), "shape.h5", r"shape \(N, 2\), found \(2, 3\)"),
    Case("coords-fractional", _embed(coords="fraction.h5"), "fraction.h5", "whole pixel numbers"),
    Case("coords-text", _embed(coords="text.h5"), "text.h5", "must be integers"),
    Case("coords-outside-slide", _embed(coords="outside.h5"), "outside.h5", r"1 of 2 coords lie outside the slide"),
    Case("coords-negative", _embed(coords="negative.h5"), "negative.h5", "outside the slide"),
    Case("coords-of-another-slide", _embed(coords="other-slide.h5"), "other-slide.h5",
         r"made for another slide \(other.svs"),
    Case("coords-of-another-size", _embed(coords="other-size.h5"), "other-size.h5", "4096 x 3072"),
    Case("coords-without-patch-size", _embed(coords="no-size.h5"), "no-size.h5", "no 'patch_size'"),
    Case("checkpoint-random-bytes", _embed("--checkpoint", "junk.pt"), "junk.pt",
         r"^not a loadable weights-only checkpoint \(a PyTorch state dict or a safetensors file\)$"),
    Case("checkpoint-missing", _embed("--checkpoint", "nope.pt"), "nope.pt", "no such checkpoint file"),
    Case("checkpoint-is-folder", _embed("--checkpoint", "adir"), "adir", "is a folder"),
    Case("out-is-file", _embed(out="afile.txt"), "afile.txt", "existing file"),
    Case("out-is-coords", _embed(out="coords.h5"), "coords.h5", "existing file"),
    Case("out-under-file", _embed(out="afile.txt/x"), "afile.txt/x", "is not a folder"),
    Case("h5-output-is-folder", _embed(out="."), f"h5_files/{Path(CMU).stem}.h5", "existing folder"),
    Case("h5-output-is-coords", _embed(coords=f"h5_files/{Path(CMU).stem}.h5", out="."),
         f"h5_files/{Path(CMU).stem}.h5", "overwrite the input"),
    Case("name-too-long", _embed(slide=f"{LONG}.svs"), f"out/h5_files/{LONG}.h5", "name too long"),
    Case("batch-size-zero", _embed("--batch-size", "0"), "--batch-size", ">= 1"),
    Case("num-workers-negative", _embed("--num-workers", "-1"), "--num-workers", ">= 0"),
    Case("threads-zero", _embed("--threads", "0"), "--threads", ">= 1"),
]

SLIDE_POOL = [
    Case("missing-features", ["--features", "P1-A.h5", "nope.h5", "--out", "t.csv"], "nope.h5", "no such file"),
    Case("features-is-folder", ["--features", "adir", "--out", "t.csv"], "adir", "is a folder"),
    Case("features-empty-file", ["--features", "empty.h5", "--out", "t.csv"], "empty.h5", "not a readable HDF5"),
    Case("features-is-a-slide", ["--features", CMU, "--out", "t.csv"], CMU, "not a readable HDF5"),
    Case("features-missing-dataset", ["--features", "coords.h5", "--out", "t.csv"], "coords.h5",
         "no 'features' dataset"),
    Case("features-3d", ["--features", "F-3d.h5", "--out", "t.csv"], "F-3d.h5", "must be 2-D"),
    Case("features-text", ["--features", "F-text.h5", "--out", "t.csv"], "F-text.h5", "must be numbers"),
    Case("features-nan", ["--features", "F-nan.h5", "--out", "t.csv"], "F-nan.h5", "NaN or infinite"),
    Case("features-incomplete", ["--features", "P1-A.h5", "F-incomplete.h5", "--out", "t.csv"], "F-incomplete.h5",
         "marked incomplete"),
    Case("features-other-dim", ["--features", "P1-A.h5", "F-dim.h5", "--out", "t.csv"], "F-dim.h5", "dimension"),
    Case("features-coords-rows", ["--features", "F-rows.h5", "--out", "t.csv"], "F-rows.h5", "2 feature rows but 3"),
    Case("same-slide-id-twice", ["--features", "P1-A.h5", "sub/P1-A.h5", "--out", "t.csv"], "sub/P1-A.h5",
         "appears twice"),
    Case("only-empty-slides", ["--features", "P2-C.h5", "F-empty.h5", "--out", "t.csv"], "P2-C.h5",
         "no usable slide"),
    Case("patient-without-usable-slide", ["--features", "P3-E.h5", "--slide-map", "slide_map.csv", "--out", "t.csv"],
         "P3-E.h5", "patient 'P3' has no usable slide"),
    Case("slide-not-in-map", ["--features", "P1-A.h5", "P3-E.h5", "--slide-map", "no-P3.csv", "--out", "t.csv"],
         "P3-E.h5", "not in the slide map"),
    Case("slide-map-missing", ["--features", "P1-A.h5", "--slide-map", "nope.csv", "--out", "t.csv"], "nope.csv",
         "no such file"),
    Case("out-is-folder", ["--features", "P1-A.h5", "--out", "adir"], "adir", "existing folder"),
    Case("out-is-input", ["--features", "P1-A.h5", "--out", "P1-A.h5"], "P1-A.h5", "overwrite the input"),
    Case("out-under-file", ["--features", "P1-A.h5", "--out", "afile.txt/t.csv"], "afile.txt/t.csv",
         "is not a folder"),
    Case("report-is-out", ["--features", "P1-A.h5", "--out", "t.csv", "--report", "t.csv"], "t.csv", "same path"),
    Case("slide-table-is-map", ["--features", "P1-A.h5", "--slide-map", "slide_map.csv", "--out", "t.csv",
                                "--slide-table", "slide_map.csv"], "slide_map.csv", "overwrite the input"),
    Case("out-name-too-long", ["--features", "P1-A.h5", "--out", f"{LONG}.csv"], f"{LONG}.csv", "name too long"),
]


@pytest.mark.parametrize("case", WSI_TILE, ids=lambda c: c.id)
def test_wsi_tile_refuses(case, work):
    assert_refused("wsi-tile", case, work)


@pytest.mark.parametrize("case", PATCH_EMBED, ids=lambda c: c.id)
def test_patch_embed_refuses(case, work):
    if case.id == "h5-output-is-folder":
        (work / "h5_files" / f"{Path(CMU).stem}.h5").mkdir(parents=True)
    if case.id == "h5-output-is-coords":
        (work / "h5_files").mkdir()
        shutil.copy(work / "coords.h5", work / "h5_files" / f"{Path(CMU).stem}.h5")
    assert_refused("patch-embed", case, work)


@pytest.mark.parametrize("case", SLIDE_POOL, ids=lambda c: c.id)
def test_slide_pool_refuses(case, work):
    assert_refused("slide-pool", case, work)


def test_wsi_tile_output_folder_as_a_derived_file_is_refused(work):
    """A folder where one slide's JSON summary goes, under an --out that already holds a user's
    earlier outputs: refused up front, the earlier outputs untouched."""
    (work / "out" / "patches").mkdir(parents=True)
    (work / "out" / "patches" / "keep.h5").write_text("earlier\n")
    (work / "out" / "slide.json").mkdir()
    assert_refused("wsi-tile", Case("json-is-folder", ["--slide", "slide.tiff", "--out", "out"], "out/slide.json",
                                    "existing folder"), work)
