"""slide-pool: patch-weighted patient means, empty slides, errors; CLI and cwltool give the same table."""

import json
import shutil
import subprocess

import h5py
import numpy as np
import pandas as pd
import pytest

from gcmlm.cli import main
from gcmlm.pathology.core.clam_h5 import PatchFeatures, write_features


def _slide(path, feats):
    feats = np.asarray(feats, dtype=np.float32).reshape(-1, 3)
    coords = np.stack([np.arange(len(feats)) * 256, np.zeros(len(feats))], axis=1)
    write_features(path, PatchFeatures(feats, coords.astype(np.int64)), {"patch_size": 256, "patch_level": 0})
    return path


@pytest.fixture()
def cohort(tmp_path):
    rng = np.random.default_rng(1)
    slides = {
        "GC1-A": rng.normal(size=(5, 3)),
        "GC1-B": rng.normal(size=(2, 3)),
        "GC2-A": rng.normal(size=(7, 3)),
        "GC2-B": np.zeros((0, 3)),  # no tissue found: must not turn the patient into NaN
    }
    files = [_slide(tmp_path / f"{sid}.h5", f) for sid, f in slides.items()]
    (tmp_path / "map.csv").write_text(
        "patient_id,kind,path\nGC1,slide,GC1-A.tiff\nGC1,slide,GC1-B.tiff\nGC2,slide,GC2-A.svs\nGC2,slide,GC2-B.svs\n"
    )
    return tmp_path, slides, files


def test_patient_mean_equals_mean_over_all_patches(cohort):
    tmp, slides, files = cohort
    out = tmp / "table.csv"
    assert main(["slide-pool", "--features", *map(str, files), "--slide-map", str(tmp / "map.csv"),
                 "--out", str(out), "--report", str(tmp / "r.json")]) == 0
    table = pd.read_csv(out, dtype={"patient_id": str}).set_index("patient_id")
    assert list(table.columns) == ["path_n_slides", "path_n_patches", "path_0000", "path_0001", "path_0002"]
    gc1 = np.concatenate([slides["GC1-A"], slides["GC1-B"]]).mean(axis=0)
    np.testing.assert_allclose(table.loc["GC1", ["path_0000", "path_0001", "path_0002"]], gc1, rtol=1e-6)
    np.testing.assert_allclose(table.loc["GC2", ["path_0000", "path_0001", "path_0002"]],
                               slides["GC2-A"].mean(axis=0), rtol=1e-6)
    assert table.loc["GC1", "path_n_patches"] == 7 and table.loc["GC2", "path_n_slides"] == 1
    assert not table.isna().any().any()
    report = json.loads((tmp / "r.json").read_text())
    assert report["empty_slides"] == ["GC2-B"]


def test_patient_without_usable_slide_is_named(cohort, capsys):
    tmp, _, files = cohort
    code = main(["slide-pool", "--features", str(files[3]), "--slide-map", str(tmp / "map.csv"),
                 "--out", str(tmp / "t.csv")])
    assert code == 2
    assert "patient 'GC2' has no usable slide" in capsys.readouterr().err
    assert not (tmp / "t.csv").exists()


def test_unmapped_slide_and_bad_h5_are_errors(cohort, capsys):
    tmp, _, files = cohort
    (tmp / "other.csv").write_text("patient_id,slide_id\nGC1,GC1-A\n")
    assert main(["slide-pool", "--features", str(files[1]), "--slide-map", str(tmp / "other.csv"),
                 "--out", str(tmp / "t.csv")]) == 2
    assert "slide 'GC1-B' is not in the slide map" in capsys.readouterr().err
    (tmp / "broken.h5").write_bytes(b"not hdf5")
    assert main(["slide-pool", "--features", str(tmp / "broken.h5"), "--out", str(tmp / "t.csv")]) == 2
    assert "broken.h5: not a readable HDF5 file" in capsys.readouterr().err
    with h5py.File(tmp / "coords_only.h5", "w") as h5:
        h5["coords"] = np.zeros((1, 2))
    assert main(["slide-pool", "--features", str(tmp / "coords_only.h5"), "--out", str(tmp / "t.csv")]) == 2
    assert "no 'features' dataset" in capsys.readouterr().err


def test_cwltool_runs_the_tool_and_gives_the_cli_table(cohort, repo):
    if shutil.which("cwltool") is None:
        pytest.fail("cwltool must be on PATH (make test puts .venv/bin first)")
    tmp, _, files = cohort
    job = tmp / "job.json"
    job.write_text(json.dumps({
        "features": [{"class": "File", "path": str(f)} for f in files],
        "slide_map": {"class": "File", "path": str(tmp / "map.csv")},
    }))
    outdir = tmp / "cwl-out"
    result = subprocess.run(["cwltool", "--no-container", "--quiet", "--outdir", str(outdir),
                             str(repo / "tools/slide-pool/slide-pool.cwl"), str(job)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout)
    assert main(["slide-pool", "--features", *map(str, files), "--slide-map", str(tmp / "map.csv"),
                 "--out", str(tmp / "cli.csv")]) == 0
    assert (outdir / "pathology_features.csv").read_bytes() == (tmp / "cli.csv").read_bytes()
    assert outputs["patient_table"]["format"] == "http://edamontology.org/format_3752"


def test_zero_patch_slide_without_slide_map_is_left_out_and_reported(cohort, caplog):
    """Each slide its own patient: the empty slide is left out of the table, warned about and reported."""
    tmp, _, files = cohort
    assert main(["slide-pool", "--features", *map(str, files), "--out", str(tmp / "t.csv"),
                 "--report", str(tmp / "r.json")]) == 0
    table = pd.read_csv(tmp / "t.csv")
    assert sorted(table["patient_id"]) == ["GC1-A", "GC1-B", "GC2-A"]
    report = json.loads((tmp / "r.json").read_text())
    assert report["empty_slides"] == ["GC2-B"] and report["n_patients"] == 3
    assert "slide GC2-B has no patches" in caplog.text and "GC2-B.h5" in caplog.text


def test_feature_file_marked_incomplete_is_refused(tmp_path, capsys):
    path = tmp_path / "S1.h5"
    write_features(path, PatchFeatures(np.ones((2, 3), np.float32), np.zeros((2, 2), np.int64),
                                       {"complete": False}))
    assert main(["slide-pool", "--features", str(path), "--out", str(tmp_path / "t.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"gcmlm slide-pool: error: {path}: feature file is marked incomplete (complete=False): "
                   "an unfinished patch-embed run; embed the slide again"]
    assert not (tmp_path / "t.csv").exists()
