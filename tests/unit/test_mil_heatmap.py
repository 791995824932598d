"""mil-heatmap: exact polygons from patch grids, QuPath's GeoJSON shape, and the speed goal."""

import json
import time
from pathlib import Path

import cv2
import numpy as np

from gcmlm.pathology.mil_heatmap import geojson, merge_patches, percentile_ranks, render_heatmap, top_patches

TOOLS = Path(__file__).resolve().parents[2] / "tools"
ATTENTION = TOOLS / "mil-heatmap" / "tests" / "data" / "P33-A.h5"
SLIDE = TOOLS / "wsi-tile" / "tests" / "data" / "synthetic-4096x3072.tiff"


def _grid(cells):
    return np.array([(x * 256 + 1000, y * 256 + 500) for x, y in cells], np.int64)


def test_single_patch_is_its_square():
    regions = merge_patches(_grid([(0, 0)]), (256, 256), np.array([True]))
    assert len(regions) == 1
    assert sorted(map(tuple, regions[0].outer.tolist())) == [(1000, 500), (1000, 756), (1256, 500), (1256, 756)]


def test_a_ring_of_patches_is_one_polygon_with_a_hole():
    cells = [(x, y) for x in range(3) for y in range(3) if (x, y) != (1, 1)] + [(5, 5)]
    coords = _grid(cells)
    regions = merge_patches(coords, (256, 256), np.ones(len(cells), bool))
    ring = max(regions, key=lambda r: len(r.patches))
    assert len(regions) == 2 and len(ring.patches) == 8 and len(ring.holes) == 1
    xs, ys = ring.outer[:, 0], ring.outer[:, 1]
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (1000, 1768, 500, 1268)
    hole = ring.holes[0]
    assert (hole[:, 0].min(), hole[:, 0].max(), hole[:, 1].min(), hole[:, 1].max()) == (1256, 1512, 756, 1012)


def test_top_patches_and_ranks():
    attention = np.array([0.1, 0.5, 0.2, 0.2])
    assert top_patches(attention, 0.25).tolist() == [False, True, False, False]
    assert top_patches(attention, 0.01).sum() == 1
    assert percentile_ranks(attention).tolist() == [0.0, 1.0, 0.5, 0.5]


def test_geojson_is_what_qupath_imports():
    coords = _grid([(0, 0), (1, 0)])
    attention = np.array([0.6, 0.4])
    collection = geojson(merge_patches(coords, (256, 256), np.array([True, True])), attention, "S", 1.0)
    feature = collection["features"][0]
    assert collection["type"] == "FeatureCollection" and feature["geometry"]["type"] == "Polygon"
    ring = feature["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 5
    assert feature["properties"]["objectType"] == "annotation"
    assert feature["properties"]["classification"]["name"] == "High attention"
    assert abs(feature["properties"]["attention_sum"] - 1.0) < 1e-12


def test_render_over_the_slide_within_the_time_goal(tmp_path):
    start = time.perf_counter()
    result = render_heatmap(ATTENTION, tmp_path / "h.png", tmp_path / "h.geojson", slide=SLIDE)
    assert time.perf_counter() - start < 10
    image = cv2.imread(str(tmp_path / "h.png"))
    assert image.shape[0] == 1536 and image.shape[1] > 2048  # thumbnail + colour bar
    regions = json.loads((tmp_path / "h.geojson").read_text())["features"]
    assert result.n_regions == len(regions) == 1 and regions[0]["properties"]["n_patches"] == 4
    assert result.top_attention_mass > 0.5  # the planted row holds most of the attention
