"""CLAM-compatible tissue segmentation and the vectorised contour tests."""

import cv2
import numpy as np
import pytest

from gcmlm.pathology.core.grid import contour_test, points_in_polygon, tissue_fraction
from gcmlm.pathology.core.tissue import SegParams, segment_tissue

PINK = (200, 120, 180)
SCALE = (16.0, 16.0)  # segmentation image at downsample 16: one CLAM area unit = 512^2 / 16^2 = 1024 px


def overview() -> np.ndarray:
    """White background; a 100x100 tissue square with a 30x30 hole, a 40x20 piece, a 4x4 speck."""
    img = np.full((200, 300, 3), 240, np.uint8)
    img[20:120, 20:120] = PINK  # 10000 px = 9.77 units (minus the hole: 9.1 units)
    img[50:80, 50:80] = 240  # hole: its contour runs on the tissue pixels around it, area 959 px = 0.94 units
    img[150:170, 200:240] = PINK  # contour area 39 * 19 = 741 px = 0.72 units
    img[10:14, 250:254] = PINK  # speck
    return img


def params(**kw) -> SegParams:
    base = dict(sthresh=20, mthresh=1, close=0, a_t=0.5, a_h=0.5, max_n_holes=8)
    return SegParams(**{**base, **kw})


def test_area_filters_in_clam_units():
    tissue = segment_tissue(overview(), SCALE, params())
    assert len(tissue.contours_seg) == 2  # the speck (16 px = 0.016 units) is dropped
    assert [cv2.contourArea(c) for c in tissue.contours_seg] == [741, 99 * 99]  # OpenCV's order, as in CLAM
    assert [[cv2.contourArea(h) for h in hs] for hs in tissue.holes_seg] == [[], [959]]
    # a_t = 0.8 units keeps the square only (9801 - 959 px = 8.6 units); a_h = 0.95 drops its hole
    tissue = segment_tissue(overview(), SCALE, params(a_t=0.8, a_h=0.95))
    assert len(tissue.contours_seg) == 1 and tissue.holes_seg == [[]]
    # the same image at downsample 8 covers 4x less tissue: a unit is 4096 px, the square 2.16 units
    assert len(segment_tissue(overview(), (8.0, 8.0), params(a_t=0.17)).contours_seg) == 2
    assert len(segment_tissue(overview(), (8.0, 8.0), params(a_t=0.19)).contours_seg) == 1
    assert len(segment_tissue(overview(), (8.0, 8.0), params(a_t=2.1)).contours_seg) == 1
    assert len(segment_tissue(overview(), (8.0, 8.0), params(a_t=2.2)).contours_seg) == 0


def test_level0_contours_and_area():
    tissue = segment_tissue(overview(), SCALE, params(a_t=0.8))
    (contour,) = tissue.contours
    x, y, w, h = cv2.boundingRect(contour)
    assert (x, y) == (20 * 16, 20 * 16) and (w, h) == (99 * 16 + 1, 99 * 16 + 1)
    # contour area (99^2) minus hole area (959), times 16^2 level-0 px per segmentation px
    assert tissue.area_level0_px() == (99**2 - 959) * 256
    mask = tissue.mask()
    assert mask[30, 30] == 1 and mask[65, 65] == 0 and mask[160, 220] == 0


def test_max_n_holes_keeps_the_largest():
    img = overview()
    img[90:95, 90:95] = 240  # a second, smaller hole
    tissue = segment_tissue(img, SCALE, params(a_t=0.8, a_h=0.001, max_n_holes=1))
    (holes,) = tissue.holes_seg
    assert len(holes) == 1 and cv2.contourArea(holes[0]) == 959


def test_otsu_and_closing():
    img = overview()
    img[20:120, 70] = 240  # a 1 px gap splits the square
    split = segment_tissue(img, SCALE, params(a_t=0.1))
    closed = segment_tissue(img, SCALE, params(a_t=0.1, close=3))
    assert len(split.contours_seg) == len(closed.contours_seg) + 1
    otsu = segment_tissue(img, SCALE, params(use_otsu=True, a_t=0.1))
    assert otsu.otsu_threshold is not None and 0 <= otsu.otsu_threshold < 102  # pink's saturation is 102
    assert len(otsu.contours_seg) == len(split.contours_seg)


def test_keep_and_exclude_ids():
    both = segment_tissue(overview(), SCALE, params())
    only_first = segment_tissue(overview(), SCALE, params(keep_ids=[0]))
    without_first = segment_tissue(overview(), SCALE, params(exclude_ids=[0]))
    np.testing.assert_array_equal(only_first.contours_seg[0], both.contours_seg[0])
    np.testing.assert_array_equal(without_first.contours_seg[0], both.contours_seg[1])


def test_no_tissue():
    tissue = segment_tissue(np.full((64, 64, 3), 250, np.uint8), SCALE, params())
    assert tissue.contours_seg == [] and tissue.area_level0_px() == 0 and not tissue.mask().any()


@pytest.mark.parametrize("strict", [False, True])
def test_points_in_polygon_equals_point_polygon_test(strict):
    """The raster shortcut gives pointPolygonTest's answer for every point, edges included."""
    rng = np.random.default_rng(1)
    blob = np.zeros((120, 160), np.uint8)
    for _ in range(6):
        cv2.circle(blob, tuple(int(v) for v in rng.integers(30, 110, 2)), int(rng.integers(10, 30)), 1, -1)
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    poly_seg = max(contours, key=cv2.contourArea)
    scale = (4.02, 3.97)
    poly_l0 = np.array(poly_seg * np.asarray(scale), np.int32)
    points = np.stack([rng.integers(0, 660, 20000), rng.integers(0, 500, 20000)], axis=1).astype(float)
    points = np.concatenate([points, poly_l0.reshape(-1, 2)[::7].astype(float)])  # exactly on the edge
    got = points_in_polygon(poly_seg, poly_l0, points, scale, strict)
    d = np.array([cv2.pointPolygonTest(poly_l0, (float(x), float(y)), False) for x, y in points])
    np.testing.assert_array_equal(got, d > 0 if strict else d >= 0)


def test_four_pt_is_any_and_four_pt_hard_is_all():
    square_seg = np.array([[[0, 0]], [[0, 99]], [[99, 99]], [[99, 0]]], np.int32)
    square = square_seg * 10  # level 0: 0..990
    # a 256 px patch at (800, 100): centre (928, 228), four points at x 864 / 992: only the left two inside
    cand = np.array([[800, 100], [100, 100], [2000, 2000]])
    easy = contour_test("four_pt", square_seg, square, cand, 256, (10.0, 10.0))
    hard = contour_test("four_pt_hard", square_seg, square, cand, 256, (10.0, 10.0))
    assert easy.tolist() == [True, True, False] and hard.tolist() == [False, True, False]


def test_tissue_fraction():
    mask = np.zeros((100, 100), np.uint8)
    mask[:, :50] = 1
    coords = np.array([[0, 0], [200, 0], [400, 0], [760, 760]])  # scale 10: patches of 20x20 mask px
    frac = tissue_fraction(mask, (10.0, 10.0), coords, 200)
    np.testing.assert_allclose(frac, [1.0, 1.0, 0.5, 0.0])
