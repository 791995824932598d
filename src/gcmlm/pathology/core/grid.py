"""CLAM's patch grid and contour tests, vectorised.

Per tissue contour, CLAM lays a grid from the contour's level-0 bounding box and keeps a grid
point when its contour test passes and the patch centre is not strictly inside one of the
contour's holes. CLAM calls ``cv2.pointPolygonTest`` once per point and per hole in a process
pool. Here each polygon is rasterised at segmentation resolution once; points clearly inside or
outside are decided from that raster with numpy, and only points within two raster pixels of the
polygon's edge get the exact ``cv2.pointPolygonTest`` on the level-0 polygon, so the result is
CLAM's, point for point.
"""

from __future__ import annotations

import cv2
import numpy as np

_MARGIN = 2  # raster pixels; level-0 contours differ from scaled raster ones by < 1 pixel
_KERNEL = np.ones((2 * _MARGIN + 1, 2 * _MARGIN + 1), np.uint8)


def points_in_polygon(poly_seg: np.ndarray, poly_l0: np.ndarray, points: np.ndarray,
                      scale: tuple[float, float], strict: bool) -> np.ndarray:
    """Which level-0 ``points`` (M, 2) lie in ``poly_l0`` (>= 0 by pointPolygonTest, > 0 if strict).

    ``poly_seg`` is the same polygon in segmentation pixels (``poly_l0`` = trunc(poly_seg * scale)).
    """
    result = np.zeros(len(points), bool)
    if not len(points):
        return result
    bx, by, bw, bh = cv2.boundingRect(poly_seg)
    ox, oy = bx - _MARGIN - 1, by - _MARGIN - 1
    raster = np.zeros((bh + 2 * _MARGIN + 3, bw + 2 * _MARGIN + 3), np.uint8)
    cv2.drawContours(raster, [poly_seg - np.array([ox, oy], np.int32)], -1, 1, thickness=cv2.FILLED)
    sure_in = cv2.erode(raster, _KERNEL, borderValue=0)
    maybe_in = cv2.dilate(raster, _KERNEL, borderValue=0)
    col = np.rint(points[:, 0] / scale[0]).astype(np.int64) - ox
    row = np.rint(points[:, 1] / scale[1]).astype(np.int64) - oy
    within = (col >= 0) & (row >= 0) & (col < raster.shape[1]) & (row < raster.shape[0])
    idx = np.flatnonzero(within)
    c, r = col[idx], row[idx]
    result[idx[sure_in[r, c] == 1]] = True
    edge = idx[(sure_in[r, c] == 0) & (maybe_in[r, c] == 1)]
    poly = poly_l0.reshape(-1, 1, 2).astype(np.int32)
    for i in edge:
        d = cv2.pointPolygonTest(poly, (float(points[i, 0]), float(points[i, 1])), False)
        result[i] = d > 0 if strict else d >= 0
    return result


def contour_test(contour_fn: str, poly_seg, poly_l0, candidates: np.ndarray, ref: int, scale) -> np.ndarray:
    """CLAM's contour checking functions (wsi_core/util_classes.py), on all candidates at once."""
    half = ref // 2
    center = candidates + half
    if contour_fn == "basic":
        return points_in_polygon(poly_seg, poly_l0, candidates.astype(float), scale, strict=False)
    if contour_fn == "center":
        return points_in_polygon(poly_seg, poly_l0, center.astype(float), scale, strict=False)
    shift = int(half * 0.5)
    if shift == 0:
        corners = [center]
    else:
        corners = [center + np.array(d) * shift for d in ((-1, -1), (1, 1), (1, -1), (-1, 1))]
    tests = [points_in_polygon(poly_seg, poly_l0, p.astype(float), scale, strict=False) for p in corners]
    if contour_fn == "four_pt":  # CLAM's isInContourV3_Easy: ANY of the four points
        return np.logical_or.reduce(tests)
    if contour_fn == "four_pt_hard":  # isInContourV3_Hard: all four points
        return np.logical_and.reduce(tests)
    raise ValueError(f"unknown contour_fn {contour_fn}")


def contour_candidates(poly_l0: np.ndarray, ref: int, step: tuple[int, int], slide_size: tuple[int, int],
                       use_padding: bool) -> np.ndarray:
    """CLAM's per-contour grid (process_contour): x-major order, from the bounding box's corner."""
    start_x, start_y, w, h = cv2.boundingRect(poly_l0)
    stop_x, stop_y = start_x + w, start_y + h
    if not use_padding:
        stop_x = min(stop_x, slide_size[0] - ref + 1)
        stop_y = min(stop_y, slide_size[1] - ref + 1)
    xs = np.arange(start_x, stop_x, step[0], dtype=np.int64)
    ys = np.arange(start_y, stop_y, step[1], dtype=np.int64)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def tissue_fraction(mask: np.ndarray, scale: tuple[float, float], coords: np.ndarray, ref: int) -> np.ndarray:
    """Fraction of each level-0 patch [x, x+ref) x [y, y+ref) covered by ``mask`` (0/1, seg pixels).

    Out-of-slide parts count as background. Patches smaller than a mask pixel take their centre pixel.
    """
    if not len(coords):
        return np.zeros(0)
    integral = cv2.integral(mask.astype(np.uint8), sdepth=cv2.CV_64F)
    h, w = mask.shape
    x0 = coords[:, 0] / scale[0]
    y0 = coords[:, 1] / scale[1]
    x1 = (coords[:, 0] + ref) / scale[0]
    y1 = (coords[:, 1] + ref) / scale[1]
    area = (np.rint(x1) - np.rint(x0)) * (np.rint(y1) - np.rint(y0))
    cx0, cx1 = np.clip(np.rint(x0), 0, w).astype(int), np.clip(np.rint(x1), 0, w).astype(int)
    cy0, cy1 = np.clip(np.rint(y0), 0, h).astype(int), np.clip(np.rint(y1), 0, h).astype(int)
    inside = integral[cy1, cx1] - integral[cy0, cx1] - integral[cy1, cx0] + integral[cy0, cx0]
    frac = np.divide(inside, area, out=np.zeros(len(coords)), where=area > 0)
    tiny = area <= 0
    if tiny.any():
        cx = np.clip(((x0 + x1) / 2).astype(int), 0, w - 1)[tiny]
        cy = np.clip(((y0 + y1) / 2).astype(int), 0, h - 1)[tiny]
        frac[tiny] = mask[cy, cx]
    return frac


def grid_coords(contours_seg, contours_l0, holes_seg, holes_l0, scale, ref: int, step: tuple[int, int],
                slide_size: tuple[int, int], contour_fn: str, use_padding: bool) -> np.ndarray:
    """All kept level-0 top-left coords, contour by contour, in CLAM's order."""
    kept = []
    for cs, c0, hs, h0 in zip(contours_seg, contours_l0, holes_seg, holes_l0, strict=True):
        cand = contour_candidates(c0, ref, step, slide_size, use_padding)
        if not len(cand):
            continue
        ok = contour_test(contour_fn, cs, c0, cand, ref, scale)
        cand = cand[ok]
        # CLAM's isInHoles: centre (float, pt + ref/2) strictly inside any hole rejects the patch.
        centre = cand + ref / 2
        in_hole = np.zeros(len(cand), bool)
        for hole_seg, hole_l0 in zip(hs, h0, strict=True):
            in_hole |= points_in_polygon(hole_seg, hole_l0, centre, scale, strict=True)
        kept.append(cand[~in_hole])
    return np.concatenate(kept) if kept else np.zeros((0, 2), np.int64)
