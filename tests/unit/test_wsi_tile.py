"""wsi-tile end to end on real slides, the demo cohort and the CWL tool."""

import json
import shutil
import subprocess

import h5py
import numpy as np
import openslide
import pytest

from gcmlm.cli import main
from gcmlm.pathology.core.presets import CLAM_DEFAULTS, load_preset


@pytest.fixture(scope="module")
def wsi(shared_data):
    return shared_data / "wsi"


def tile(*args) -> int:
    return main(["wsi-tile", "-q", *map(str, args)])


def outputs(out, sid):
    with h5py.File(out / "patches" / f"{sid}.h5", "r") as h5:
        coords, attrs = h5["coords"][:], dict(h5["coords"].attrs)
    return coords, attrs, json.loads((out / f"{sid}.json").read_text())


def independent_tissue(path, ds=8):
    """Tissue by another criterion than CLAM's: coloured or dark pixels of an OpenSlide thumbnail."""
    osr = openslide.OpenSlide(str(path))
    w, h = osr.dimensions
    thumb = np.asarray(osr.get_thumbnail((w // ds, h // ds)).convert("RGB")).astype(int)
    tissue = ((thumb.max(2) - thumb.min(2)) > 20) | (thumb.max(2) < 180)
    return tissue, (w / thumb.shape[1], h / thumb.shape[0])


def patch_tissue(tissue, scale, coords, size):
    return np.array([tissue[int(y / scale[1]):int((y + size) / scale[1]), int(x / scale[0]):int((x + size) / scale[0])].mean()
                     for x, y in coords])


@pytest.fixture(scope="module")
def cmu(wsi, tmp_path_factory):
    out = tmp_path_factory.mktemp("cmu")
    assert tile("--slide", wsi / "CMU-1-Small-Region.svs", "--out", out, "--preset", "bwh_biopsy") == 0
    return out


def test_cmu_tissue_found_and_every_patch_on_tissue(cmu, wsi):
    coords, attrs, summary = outputs(cmu, "CMU-1-Small-Region")
    assert summary["n_patches"] == len(coords) == 50 and summary["n_contours"] == 1
    assert 0.5 < summary["tissue_area_mm2"] < 0.8  # ~35 % of 1.1 x 1.5 mm
    assert summary["slide"]["mpp"] == 0.499 and summary["slide"]["reader"] == "openslide"
    tissue, scale = independent_tissue(wsi / "CMU-1-Small-Region.svs")
    per_patch = patch_tissue(tissue, scale, coords, 256)
    assert per_patch.min() > 0.1, "a patch without tissue"
    covered = np.zeros_like(tissue)
    for x, y in coords:
        covered[int(y / scale[1]):int((y + 256) / scale[1]), int(x / scale[0]):int((x + 256) / scale[0])] = True
    assert (tissue & covered).sum() / tissue.sum() > 0.9, "tissue left without patches"
    for sub in ("masks", "stitches"):
        png = (cmu / sub / "CMU-1-Small-Region.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_h5_reads_like_clams_whole_slide_bag_fp(cmu, wsi):
    """What CLAM's dataset_h5.Whole_Slide_Bag_FP and TRIDENT's readers take from the file."""
    path = cmu / "patches" / "CMU-1-Small-Region.h5"
    with h5py.File(path, "r") as f:
        dset = f["coords"]
        patch_level = f["coords"].attrs["patch_level"]
        patch_size = f["coords"].attrs["patch_size"]
        length = len(dset)
        coord = f["coords"][7]
        assert dset.dtype == np.int64 and dset.shape == (50, 2)
        assert f["coords"].attrs["name"] == "CMU-1-Small-Region"
        assert list(f["coords"].attrs["downsample"]) == [1.0, 1.0]
        assert list(f["coords"].attrs["level_dim"]) == list(f["coords"].attrs["downsampled_level_dim"]) == [2220, 2967]
        assert f["coords"].attrs["patch_size_level0"] == 256 and f["coords"].attrs["target_mpp"] == 0.499
    wsi_handle = openslide.open_slide(str(wsi / "CMU-1-Small-Region.svs"))
    img = wsi_handle.read_region(tuple(coord), int(patch_level), (int(patch_size), int(patch_size))).convert("RGB")
    assert length == 50 and img.size == (256, 256)


def test_clam_defaults_find_no_tissue_on_a_biopsy_and_write_a_valid_empty_file(wsi, tmp_path, caplog):
    """CLAM's default a_t (100 reference patches = 26 Mpx) is larger than this whole 6.6 Mpx slide."""
    assert main(["wsi-tile", "--slide", str(wsi / "CMU-1-Small-Region.svs"), "--out", str(tmp_path)]) == 0
    coords, attrs, summary = outputs(tmp_path, "CMU-1-Small-Region")
    assert coords.shape == (0, 2) and summary["n_patches"] == 0 and attrs["patch_size"] == 256
    assert "no patches" in caplog.text


def test_small_svs_tiny_slide_gives_valid_empty_output(wsi, tmp_path):
    assert tile("--slide", wsi / "small.svs", "--out", tmp_path, "--preset", "bwh_biopsy") == 0
    coords, attrs, summary = outputs(tmp_path, "small")
    assert coords.shape == (0, 2) and coords.dtype == np.int64
    assert list(attrs["level_dim"]) == [16, 16] and attrs["name"] == "small"
    assert summary["n_patches"] == 0 and summary["tissue_area_mm2"] == 0.0


def test_multilevel_tiff_needs_mpp(wsi, tmp_path, capsys):
    out = tmp_path / "out"
    assert tile("--slide", wsi / "boxes.tiff", "--out", out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "boxes.tiff" in err and "--mpp" in err
    assert not out.exists()


def test_multilevel_tiff_with_mpp(wsi, tmp_path):
    # boxes.tiff: pure red, green and blue boxes on white, 300 x 250 px, 4 levels
    assert tile("--slide", wsi / "boxes.tiff", "--out", tmp_path, "--mpp", "0.5", "--a-t", "0.01",
                "--patch-size", "16", "--patch-level", "1") == 0
    coords, attrs, summary = outputs(tmp_path, "boxes")
    assert summary["segmentation"]["level"] == 3  # CLAM's rule: best level for downsample 64
    assert summary["slide"]["mpp_source"] == "flag" and summary["n_contours"] >= 1
    assert attrs["patch_level"] == 1 and list(attrs["downsample"]) == [2.0, 2.0]
    assert attrs["patch_size"] == 16 and attrs["patch_size_level0"] == 32
    assert len(coords) > 0
    osr = openslide.OpenSlide(str(wsi / "boxes.tiff"))
    for x, y in coords:  # every patch shows some of a box
        patch = np.asarray(osr.read_region((int(x), int(y)), 1, (16, 16)).convert("RGB")).astype(int)
        assert ((patch.max(2) - patch.min(2)) > 100).any()


def test_unopenable_file_is_an_error_and_leaves_nothing(wsi, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    assert tile("--slide", wsi / "unopenable.tiff", "--out", out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unopenable.tiff" in err and "not a readable slide" in err
    assert list(out.iterdir()) == []


def test_target_mpp_and_magnification_grids(wsi, tmp_path):
    slide = wsi / "CMU-1-Small-Region.svs"
    assert tile("--slide", slide, "--out", tmp_path / "mag", "--preset", "bwh_biopsy", "--mag", "10", "--patch-size", "128") == 0
    coords, attrs, summary = outputs(tmp_path / "mag", "CMU-1-Small-Region")
    # 10x from a 20x slide: 128 output px = 256 level-0 px, read at level 0 (CLAM's patch_size) and resized
    assert (attrs["patch_level"], attrs["patch_size"], attrs["target_patch_size"], attrs["patch_size_level0"]) == (0, 256, 128, 256)
    assert attrs["target_magnification"] == 10.0 and attrs["target_mpp"] == pytest.approx(0.998)
    assert summary["grid"]["mode"] == "magnification" and len(coords) == 50  # the level-0 256 px grid again

    assert tile("--slide", slide, "--out", tmp_path / "mpp", "--preset", "bwh_biopsy", "--target-mpp", "1.0",
                "--patch-size", "128") == 0
    coords, attrs, _ = outputs(tmp_path / "mpp", "CMU-1-Small-Region")
    assert attrs["patch_size_level0"] == round(128 * 1.0 / 0.499) == attrs["patch_size"]
    assert set(np.diff(np.unique(coords[:, 0]))) == {257}

    # 0.5 um/px on a 0.499 um/px slide: within 2 % of level 0, read unresized
    assert tile("--slide", slide, "--out", tmp_path / "snap", "--preset", "bwh_biopsy", "--target-mpp", "0.5") == 0
    coords, attrs, _ = outputs(tmp_path / "snap", "CMU-1-Small-Region")
    assert (attrs["patch_size"], attrs["patch_size_level0"], len(coords)) == (256, 256, 50)


def test_no_upsampling(wsi, tmp_path, capsys):
    assert tile("--slide", wsi / "CMU-1-Small-Region.svs", "--out", tmp_path / "x", "--mag", "40") == 2
    assert "finer than the slide" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_min_tissue_keeps_patches_with_more_tissue(wsi, cmu, tmp_path):
    all_coords, _, _ = outputs(cmu, "CMU-1-Small-Region")
    assert tile("--slide", wsi / "CMU-1-Small-Region.svs", "--out", tmp_path, "--preset", "bwh_biopsy",
                "--min-tissue", "0.75") == 0
    coords, attrs, summary = outputs(tmp_path, "CMU-1-Small-Region")
    assert 0 < len(coords) < len(all_coords) and summary["patches_before_min_tissue"] == len(all_coords)
    assert {tuple(c) for c in coords} < {tuple(c) for c in all_coords} and attrs["min_tissue"] == 0.75
    tissue, scale = independent_tissue(wsi / "CMU-1-Small-Region.svs")
    dropped = np.array([c for c in all_coords.tolist() if tuple(c) not in {tuple(k) for k in coords.tolist()}])
    assert patch_tissue(tissue, scale, coords, 256).mean() > patch_tissue(tissue, scale, dropped, 256).mean()


def test_presets_and_flag_overrides(tmp_path, wsi):
    assert load_preset("bwh_biopsy") == {
        "seg_level": -1, "sthresh": 15, "mthresh": 11, "close": 2, "use_otsu": False, "a_t": 1.0, "a_h": 1.0,
        "max_n_holes": 2, "vis_level": -1, "line_thickness": 50, "use_padding": True, "contour_fn": "four_pt",
        "keep_ids": [], "exclude_ids": []}
    assert load_preset("tcga")["a_t"] == 16 and load_preset("bwh_resection")["a_t"] == 100
    assert set(load_preset("tcga")) == set(CLAM_DEFAULTS)
    assert tile("--slide", wsi / "CMU-1-Small-Region.svs", "--out", tmp_path, "--preset", "tcga", "--a-t", "1",
                "--contour-fn", "four_pt_hard") == 0
    _, attrs, summary = outputs(tmp_path, "CMU-1-Small-Region")
    seg = summary["segmentation"]
    assert (seg["sthresh"], seg["mthresh"], seg["a_t"]) == (8, 7, 1.0) and attrs["contour_fn"] == "four_pt_hard"
    assert 0 < summary["n_patches"] < 50  # all four points in tissue: fewer than four_pt's 50


def test_unknown_preset(tmp_path, wsi, capsys):
    assert tile("--slide", wsi / "small.svs", "--out", tmp_path / "o", "--preset", "nope") == 2
    assert "bwh_biopsy, bwh_resection, tcga" in capsys.readouterr().err


def test_cwl_tool_patch_counts(repo, tmp_path):
    """The CWL tests' coords checksums pin these counts; check them here by reading the outputs."""
    if shutil.which("cwltool") is None:
        pytest.fail("cwltool is not on PATH (put .venv/bin first)")
    tests = repo / "tools" / "wsi-tile" / "tests"
    result = subprocess.run(["cwltool", "--quiet", "--no-container", "--outdir", str(tmp_path),
                             str(repo / "tools" / "wsi-tile" / "wsi-tile.cwl"), str(tests / "wsi-tile-mpp.job.yml")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    summary = json.loads(open(out["summary"]["path"]).read())
    with h5py.File(out["coords"]["path"], "r") as h5:
        assert len(h5["coords"]) == summary["n_patches"] == 9
        assert (h5["coords"].attrs["patch_size"], h5["coords"].attrs["target_patch_size"]) == (512, 256)
    # the other two jobs, straight through the CLI
    assert tile("--slide", tests / "data" / "synthetic-4096x3072.tiff", "--out", tmp_path / "a", "--preset", "bwh_biopsy") == 0
    assert outputs(tmp_path / "a", "synthetic-4096x3072")[2]["n_patches"] == 41
    assert tile("--slide", tests / "data" / "no-mpp.tiff", "--out", tmp_path / "b", "--mpp", "0.5", "--a-t", "0.1",
                "--patch-size", "128") == 0
    coords = outputs(tmp_path / "b", "no-mpp")[0]
    # the square spans 256..767; CLAM's 4 x 4 closing kernel (even size) moves its contour 1 px inwards
    assert sorted(map(tuple, coords.tolist())) == [(x, y) for x in range(257, 769, 128) for y in range(257, 769, 128)]


@pytest.mark.slow
def test_demo_cohort_slides(demo_cohort, tmp_path):
    truth = json.loads((demo_cohort / "truth.json").read_text())
    slides = [s for p in truth["per_patient"] for s in p["slides"]][:3]
    paths = [demo_cohort / "slides" / f"{s['slide_id']}.tiff" for s in slides]
    assert tile("--slide", *paths, "--out", tmp_path, "--preset", "bwh_biopsy") == 0
    for s in slides:
        coords, attrs, summary = outputs(tmp_path, s["slide_id"])
        assert summary["slide"]["mpp"] == s["mpp"] and summary["slide"]["mpp_source"] == "metadata"
        assert summary["n_contours"] == s["pieces"], s["slide_id"]
        assert len(coords) > 0 and attrs["mpp"] == s["mpp"]


def test_level_too_large_to_segment_is_read_downsampled_in_strips(wsi, cmu, tmp_path, monkeypatch):
    """CLAM aborts above 1e8 px at the segmentation level; we segment a downsample-64 image read in strips."""
    import gcmlm.pathology.core.slide as slide_module
    import gcmlm.pathology.wsi_tile as tiling

    monkeypatch.setattr(tiling, "MAX_SEG_PIXELS", 1e6)  # CMU-1-Small-Region has 6.6 Mpx at level 0
    monkeypatch.setattr(slide_module, "WHOLE_LEVEL_PIXELS", 1e6)
    monkeypatch.setattr(slide_module, "STRIP_PIXELS", 2e5)
    assert tile("--slide", wsi / "CMU-1-Small-Region.svs", "--out", tmp_path, "--preset", "bwh_biopsy", "--mthresh", "3") == 0
    coords, _, summary = outputs(tmp_path, "CMU-1-Small-Region")
    assert summary["segmentation"]["image"] == "downsample 64" and summary["n_contours"] >= 1
    # the grid starts at the (coarser) contour's corner, so compare tissue, not coordinates
    full, _, _ = outputs(cmu, "CMU-1-Small-Region")
    tissue, scale = independent_tissue(wsi / "CMU-1-Small-Region.svs")
    assert 0.8 * len(full) <= len(coords) <= 1.3 * len(full)
    assert patch_tissue(tissue, scale, coords, 256).mean() > 0.5


def test_ome_tiff_fallback_end_to_end(tmp_path):
    import tifffile

    image = np.full((2048, 3072, 3), 240, np.uint8)
    image[512:1536, 768:2304] = (190, 100, 170)  # 1024 x 1536 px of tissue = 0.393 mm2 at 0.5 um/px
    path = tmp_path / "S-02.ome.tiff"
    tifffile.imwrite(path, image, ome=True, photometric="rgb",
                     metadata={"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    assert tile("--slide", path, "--out", tmp_path / "out", "--a-t", "1", "--close", "0") == 0
    coords, attrs, summary = outputs(tmp_path / "out", "S-02")
    assert attrs["reader"] == "large_image" and summary["slide"]["mpp_source"] == "metadata"
    assert summary["tissue_area_mm2"] == pytest.approx(0.393, rel=0.02)
    assert len(coords) == 4 * 6  # 256 px patches over the 1024 x 1536 px block


def test_a_bad_slide_in_a_batch_stops_it_before_any_output(wsi, tmp_path, capsys):
    out = tmp_path / "out"
    assert tile("--slide", wsi / "CMU-1-Small-Region.svs", wsi / "unopenable.tiff", "--out", out) == 2
    assert "unopenable.tiff" in capsys.readouterr().err and not out.exists()
    assert tile("--slide", wsi / "small.svs", wsi / "small.svs", "--out", out) == 2
    assert "appears twice" in capsys.readouterr().err and not out.exists()


def test_one_parser_for_preset_cells_and_flags(tmp_path, capsys):
    from gcmlm.common.errors import GcmlmError
    from gcmlm.pathology.core.presets import parse_bool, parse_ids

    assert parse_bool("TRUE") is True and parse_bool("no") is False and parse_bool("1") is True
    assert parse_ids("none") == parse_ids('"nan"') == parse_ids("") == [] and parse_ids("1, 2,") == [1, 2]
    with pytest.raises(ValueError, match="'maybe' is not true or false"):
        parse_bool("maybe")
    preset = tmp_path / "p.csv"
    preset.write_text("use_otsu,keep_ids\nmaybe,\n")
    with pytest.raises(GcmlmError, match="column use_otsu: 'maybe' is not TRUE or FALSE"):
        load_preset(str(preset))
    preset.write_text("use_otsu,keep_ids\nYes,\"0,2\"\n")
    assert load_preset(str(preset)) == {"use_otsu": True, "keep_ids": [0, 2]}
    with pytest.raises(SystemExit):
        main(["wsi-tile", "--slide", "x.svs", "--out", str(tmp_path), "--use-otsu", "maybe"])
    assert "argument --use-otsu: 'maybe' is not true or false" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["wsi-tile", "--slide", "x.svs", "--out", str(tmp_path), "--keep-ids", "a"])
    assert "argument --keep-ids: invalid _ids value: 'a'" in capsys.readouterr().err


def test_tissue_dropped_by_a_t_is_reported_with_the_preset_to_use(wsi, tmp_path, caplog):
    """CLAM's defaults on a small biopsy: the contour found and then dropped by a_t is said, not "0 contours"."""
    assert main(["wsi-tile", "--slide", str(wsi / "CMU-1-Small-Region.svs"), "--out", str(tmp_path)]) == 0
    _, _, summary = outputs(tmp_path, "CMU-1-Small-Region")
    assert summary["n_contours"] == 0 and summary["contours_found"] >= 1
    assert summary["contours_dropped_by_a_t"] == summary["contours_found"]
    assert f"{summary['contours_found']} tissue contours found" in caplog.text
    assert "smaller than a_t=100" in caplog.text and "--preset bwh_biopsy" in caplog.text


def test_coords_record_which_slide_they_belong_to(cmu):
    """patch-embed checks these: file name, level-0 size and OpenSlide's quickhash-1 content fingerprint."""
    _, attrs, _ = outputs(cmu, "CMU-1-Small-Region")
    assert attrs["slide_file"] == "CMU-1-Small-Region.svs"
    assert attrs["slide_fingerprint"].startswith("quickhash-1:")
    assert (attrs["level0_width"], attrs["level0_height"]) == (2220, 2967)


def test_every_output_path_is_checked_before_any_work(wsi, tmp_path, capsys):
    """A folder where a later slide's coords file goes stops the batch before the first slide is tiled."""
    (tmp_path / "patches" / "small.h5").mkdir(parents=True)
    code = main(["wsi-tile", "--slide", str(wsi / "CMU-1-Small-Region.svs"), str(wsi / "small.svs"),
                 "--out", str(tmp_path), "--mpp", "0.5"])
    assert code == 2 and "existing folder" in capsys.readouterr().err
    assert not (tmp_path / "CMU-1-Small-Region.json").exists()
