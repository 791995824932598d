"""The slide reader: OpenSlide first, large-image fallback, mpp resolution, worker processes."""

import multiprocessing as mp
import pickle

import numpy as np
import openslide
import pytest
import tifffile

from gcmlm.common.errors import GcmlmError
from gcmlm.pathology.core.slide import open_slide


@pytest.fixture(scope="module")
def wsi(shared_data):
    return shared_data / "wsi"


def test_svs_reads_like_openslide(wsi):
    path = wsi / "CMU-1-Small-Region.svs"
    slide = open_slide(path)
    assert slide.backend == "openslide" and slide.slide_id == "CMU-1-Small-Region"
    assert slide.dimensions == (2220, 2967)
    assert (slide.mpp, slide.mpp_source, slide.magnification) == (0.499, "metadata", 20.0)
    region = slide.read_region((1000, 1200), 0, (300, 200))
    assert region.shape == (200, 300, 3) and region.dtype == np.uint8
    expected = np.asarray(openslide.OpenSlide(str(path)).read_region((1000, 1200), 0, (300, 200)).convert("RGB"))
    np.testing.assert_array_equal(region, expected)


def test_pixels_outside_the_slide_are_white(wsi):
    slide = open_slide(wsi / "CMU-1-Small-Region.svs")
    region = slide.read_region((2100, 2900), 0, (256, 256))
    assert (region[100:, 150:] == 255).all()  # beyond 2220 x 2967
    assert (region[:50, :100] != 255).any()  # the slide's own pixels


def test_multilevel_tiff_levels_and_best_level(wsi):
    slide = open_slide(wsi / "boxes.tiff", mpp=0.5)
    reference = openslide.OpenSlide(str(wsi / "boxes.tiff"))
    assert slide.level_count == 4 and slide.level_dimensions == [tuple(d) for d in reference.level_dimensions]
    for ds in (0.5, 1, 1.9, 2, 3.99, 4.02, 5, 8.1, 100):
        assert slide.best_level_for_downsample(ds) == reference.get_best_level_for_downsample(ds), ds
    # CLAM's per-axis downsamples: level-0 size over level size
    assert slide.level_scales[2] == (300 / 75, 250 / 62)
    assert slide.read_level(3).shape == (31, 37, 3)


def test_72_dpi_tag_is_not_an_mpp(wsi, tmp_path):
    slide = open_slide(wsi / "boxes.tiff")
    assert slide.mpp is None and slide.meta.metadata_mpp == pytest.approx(352.78, abs=0.01)
    with pytest.raises(GcmlmError, match="--mpp") as err:
        slide.require_mpp()
    assert "boxes.tiff" in str(err.value)
    table = tmp_path / "mpp.csv"
    table.write_text("slide_id,mpp\nboxes,0.25\nother,0.5\n")
    by_csv = open_slide(wsi / "boxes.tiff", mpp_csv=table)
    assert (by_csv.mpp, by_csv.mpp_source) == (0.25, "csv")
    by_flag = open_slide(wsi / "boxes.tiff", mpp=0.5, mpp_csv=table)  # the flag wins
    assert (by_flag.mpp, by_flag.mpp_source, by_flag.magnification) == (0.5, "flag", 20.0)


def test_unreadable_file_is_one_clear_error(wsi):
    with pytest.raises(GcmlmError) as err:
        open_slide(wsi / "unopenable.tiff")
    text = str(err.value)
    assert "unopenable.tiff" in text and "not a readable slide" in text and "\n" not in text
    assert "openslide: Unsupported TIFF compression" in text and "large_image:" in text


def test_large_image_fallback_for_an_untiled_tiff(tmp_path):
    """OpenSlide refuses stripped TIFFs; large-image reads them."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (300, 500, 3), dtype=np.uint8)
    path = tmp_path / "stripped.tif"
    tifffile.imwrite(path, image, photometric="rgb", metadata=None)
    with pytest.raises(openslide.OpenSlideError):
        openslide.OpenSlide(str(path))
    slide = open_slide(path, mpp=0.5)
    assert slide.backend == "large_image" and slide.dimensions == (500, 300)
    np.testing.assert_array_equal(slide.read_region((40, 30), 0, (100, 60)), image[30:90, 40:140])
    edge = slide.read_region((450, 250), 0, (100, 100))
    np.testing.assert_array_equal(edge[:50, :50], image[250:, 450:])
    assert (edge[50:, :] == 255).all() and (edge[:, 50:] == 255).all()


def _read_in_worker(args):
    slide, xy = args
    return slide.read_region(xy, 0, (64, 64))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_slides_pickle_to_workers_with_their_own_handle(wsi, method):
    slide = open_slide(wsi / "CMU-1-Small-Region.svs")
    first = slide.read_region((500, 500), 0, (64, 64))  # opens a handle in this process
    clone = pickle.loads(pickle.dumps(slide))
    assert clone._handle is None and clone.mpp == slide.mpp
    points = [(500, 500), (1000, 2000)]
    with mp.get_context(method).Pool(2) as pool:
        results = pool.map(_read_in_worker, [(slide, p) for p in points])
    np.testing.assert_array_equal(results[0], first)
    np.testing.assert_array_equal(results[1], slide.read_region((1000, 2000), 0, (64, 64)))


def test_untiled_ome_tiff_through_large_image_with_its_mpp(tmp_path):
    image = np.full((1024, 1536, 3), 240, np.uint8)
    image[200:800, 300:1200] = (190, 100, 170)
    path = tmp_path / "S-01.ome.tiff"
    tifffile.imwrite(path, image, ome=True, photometric="rgb",
                     metadata={"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    slide = open_slide(path)
    assert slide.backend == "large_image" and slide.slide_id == "S-01"
    assert (slide.mpp, slide.mpp_source, slide.magnification) == (0.5, "metadata", 20.0)
    np.testing.assert_array_equal(slide.read_region((290, 190), 0, (20, 20))[10:, 10:], image[200:210, 300:310])


def test_truncated_tiff_is_refused_naming_the_region(tmp_path):
    """The fallback reader would paint the missing tiles blank without a word: refuse the slide."""
    from gcmlm.demo.core.wsi import write_synthetic_slide

    write_synthetic_slide(tmp_path / "full.tiff", 1024, 768, mpp=0.5, seed=1)
    data = (tmp_path / "full.tiff").read_bytes()
    (tmp_path / "cut.tiff").write_bytes(data[: len(data) * 2 // 3])
    assert open_slide(tmp_path / "full.tiff").backend == "openslide"
    with pytest.raises(GcmlmError, match=r"truncated file: \d+ of \d+ tiles .*level-0 region x=\d+, y=\d+") as err:
        open_slide(tmp_path / "cut.tiff")
    assert err.value.path == str(tmp_path / "cut.tiff")


def test_mpp_csv_saved_with_a_bom_is_read(tmp_path):
    from gcmlm.pathology.core.slide import read_mpp_csv

    path = tmp_path / "mpp.csv"
    path.write_bytes("slide_id,mpp\nCMU-1,0.25\n".encode("utf-8-sig"))
    assert read_mpp_csv(path) == {"CMU-1": 0.25}


def test_coords_for_another_slide_or_outside_it_are_refused(wsi):
    from gcmlm.pathology.core.slide_identity import check_coords_fit_slide, identity_attrs

    slide = open_slide(wsi / "CMU-1-Small-Region.svs")
    mine = {**identity_attrs(slide), "level0_width": 2220, "level0_height": 2967}
    inside = np.array([[0, 0], [2219, 2966]])
    check_coords_fit_slide(inside, mine, slide, "c.h5")
    check_coords_fit_slide(inside, {"patch_size": 256}, slide, "c.h5")  # CLAM's own file: bounds only
    other = identity_attrs(open_slide(wsi / "small.svs"))
    with pytest.raises(GcmlmError, match=r"made for another slide \(small.svs"):
        check_coords_fit_slide(inside, other, slide, "c.h5")
    with pytest.raises(GcmlmError, match="outside the slide"):
        check_coords_fit_slide(np.array([[2220, 0]]), {"patch_size": 256}, slide, "c.h5")


def test_fingerprint_without_quickhash_ignores_name_and_mtime(tmp_path):
    from gcmlm.pathology.core.slide_identity import fingerprint

    image = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", image, photometric="rgb", metadata=None)
    (tmp_path / "b.tif").write_bytes((tmp_path / "a.tif").read_bytes())
    a, b = open_slide(tmp_path / "a.tif", mpp=0.5), open_slide(tmp_path / "b.tif", mpp=0.5)
    assert a.backend == "large_image" and fingerprint(a) == fingerprint(b)
    assert fingerprint(a).startswith("edges-sha256:")
