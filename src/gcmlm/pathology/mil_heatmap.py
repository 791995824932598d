"""mil-heatmap: a slide's stored MIL attention -> a PNG overlay and QuPath GeoJSON regions.

Reads only what mil-predict wrote (``coords`` + ``attention`` in a CLAM-layout h5) and, when given,
the slide for its thumbnail: no patch is embedded again, so a slide takes seconds, not CLAM's hour.

- PNG: each patch coloured by its attention percentile within the slide (turbo colour map, with a
  colour bar), over the slide's thumbnail (or a white canvas without ``--slide``), the tissue
  outline (recomputed from the thumbnail with wsi-tile's threshold; without a slide: the outline
  of the patches) and the top-attention regions outlined in black.
- GeoJSON: the top ``--top-fraction`` of patches by attention, adjacent ones merged into polygons
  (with holes) in level-0 pixel coordinates: a FeatureCollection of Polygon features with
  ``properties: {"objectType": "annotation", "classification": {"name": "High attention"}, ...}``,
  which QuPath opens with File > Import objects.

From Python: ``render_heatmap(attention_h5, out_png, out_geojson, slide=...)``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import h5py
import numpy as np

from gcmlm.common.atomic import atomic_file, check_outputs, write_text
from gcmlm.common.errors import GcmlmError, require_file
from gcmlm.common.manifest import slide_id
from gcmlm.pathology.core.clam_h5 import read_coords

log = logging.getLogger("gcmlm")

PathLike = str | os.PathLike
TOP_FRACTION = 0.1  # top decile
MAX_SIDE = 2048  # thumbnail's longest side, px
ALPHA = 0.5  # colour over the thumbnail
CLASS_NAME = "High attention"
RASTER_STEPS = 4  # raster pixels per patch side when merging patches into polygons
MAX_RASTER_SIDE = 16384


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--attention", required=True, metavar="H5",
                        help="mil-predict's <slide_id>.h5 (coords + attention)")
    parser.add_argument("--slide", metavar="PATH", help="the whole-slide image, for the thumbnail and tissue outline")
    parser.add_argument("--out", required=True, metavar="PNG", help="heatmap overlay to write")
    parser.add_argument("--geojson", required=True, metavar="GEOJSON", help="top-attention regions (QuPath)")
    parser.add_argument("--top-fraction", type=float, default=TOP_FRACTION, metavar="F",
                        help="share of the slide's patches (by attention) in the regions (default: top decile)")
    parser.add_argument("--max-side", type=int, default=MAX_SIDE, metavar="PX", help="thumbnail's longest side")


def run(args: argparse.Namespace) -> int:
    result = render_heatmap(args.attention, args.out, args.geojson, slide=args.slide,
                            top_fraction=args.top_fraction, max_side=args.max_side)
    log.info("%s: %d patches, %d top-attention regions -> %s, %s", result.slide_id, result.n_patches,
             result.n_regions, args.out, args.geojson)
    return 0


@dataclass
class SlideAttention:
    """A slide's patches (level-0 top-left corners), their attention and their level-0 size."""

    slide_id: str
    coords: np.ndarray  # (N, 2) int64
    attention: np.ndarray  # (N,) float64
    patch_extent: tuple[int, int]  # level-0 pixels (x, y) one patch covers
    attrs: dict


def read_attention(path: PathLike) -> SlideAttention:
    """mil-predict's attention file, checked: an attention value per coords row, finite, >= 0."""
    path = require_file(path, "attention file")
    coords, attrs = read_coords(path)
    try:
        with h5py.File(path, "r") as h5:
            node = h5.get("attention")
            if not isinstance(node, h5py.Dataset):
                raise GcmlmError("no 'attention' dataset (not a mil-predict attention file)", path)
            attention = node[()]
    except OSError as exc:  # read_coords opened it already, so this is a damaged dataset
        raise GcmlmError(f"cannot read 'attention' ({exc})", path) from None
    if not isinstance(attention, np.ndarray) or attention.ndim != 1 or attention.dtype.kind not in "fiu":
        raise GcmlmError(f"'attention' must be a 1-D numeric array, found {getattr(attention, 'shape', ())} "
                         f"{getattr(attention, 'dtype', type(attention).__name__)}", path)
    if len(attention) != len(coords):
        raise GcmlmError(f"{len(attention)} attention values but {len(coords)} coords", path)
    if not len(coords):
        raise GcmlmError("no patches: nothing to draw", path)
    attention = attention.astype(np.float64)
    if not np.isfinite(attention).all() or (attention < 0).any():
        raise GcmlmError("'attention' holds negative, NaN or infinite values", path)
    return SlideAttention(slide_id(path), coords, attention, patch_extent(attrs, path), attrs)


def patch_extent(attrs: dict, path: PathLike) -> tuple[int, int]:
    """Level-0 size of a patch: CLAM's ``patch_size`` (at ``patch_level``) times the level's downsample."""
    if "patch_size" not in attrs:
        raise GcmlmError("coords have no 'patch_size' attr: the patch size is needed to draw patches", path)
    size = float(np.asarray(attrs["patch_size"]).reshape(-1)[0])
    down = np.asarray(attrs.get("downsample", (1.0, 1.0)), np.float64).reshape(-1)
    down = np.resize(down, 2) if down.size else np.ones(2)
    extent = (round(size * down[0]), round(size * down[1]))
    if not (np.isfinite(size) and size >= 1 and min(extent) >= 1):
        raise GcmlmError(f"implausible patch size {size} x downsample {down.tolist()}", path)
    return extent


def top_patches(attention: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the ceil(fraction * N) patches with the highest attention (ties by order)."""
    k = max(1, math.ceil(fraction * len(attention) - 1e-9))
    mask = np.zeros(len(attention), bool)
    mask[np.argsort(-attention, kind="stable")[:k]] = True
    return mask


def percentile_ranks(values: np.ndarray) -> np.ndarray:
    """Each value's rank in [0, 1] (ties share their mean rank), for colours that do not depend on scale."""
    if len(values) == 1:
        return np.ones(1)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    _, inverse = np.unique(values, return_inverse=True)
    mean_rank = np.bincount(inverse, weights=ranks) / np.bincount(inverse)
    return mean_rank[inverse] / (len(values) - 1)


# --- regions: patches merged into polygons ------------------------------------------------------------

@dataclass
class Region:
    outer: np.ndarray  # (K, 2) level-0 vertices
    holes: list[np.ndarray]
    patches: np.ndarray  # indices into the slide's patches


def merge_patches(coords: np.ndarray, extent: tuple[int, int], selected: np.ndarray) -> list[Region]:
    """The selected patches as polygons: rasterised (RASTER_STEPS pixels per patch side), merged by
    8-connectivity, and traced exactly along the raster's pixel edges (a 2x nearest upscale makes
    OpenCV's contour points, which lie on pixel centres, map to pixel corners)."""
    idx = np.flatnonzero(selected)
    origin = coords[idx].min(axis=0)
    span = coords[idx].max(axis=0) - origin + np.asarray(extent)
    step = np.maximum(np.asarray(extent, np.float64) / RASTER_STEPS, span / MAX_RASTER_SIDE)
    size = np.ceil(span / step).astype(int) + 1
    raster = np.zeros((size[1], size[0]), np.uint8)
    lo = np.round((coords[idx] - origin) / step).astype(int)
    hi = np.maximum(lo + 1, np.round((coords[idx] + np.asarray(extent) - origin) / step).astype(int))
    for (x0, y0), (x1, y1) in zip(lo.tolist(), hi.tolist(), strict=True):
        raster[y0:y1, x0:x1] = 1
    _, labels = cv2.connectedComponents(raster, connectivity=8)
    patch_label = labels[lo[:, 1], lo[:, 0]]
    doubled = np.repeat(np.repeat(raster, 2, axis=0), 2, axis=1)
    contours, hierarchy = cv2.findContours(doubled, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return []

    def to_level0(contour: np.ndarray) -> np.ndarray:
        corners = (contour.reshape(-1, 2) + 1) // 2
        return np.round(corners * step + origin).astype(np.int64)

    regions = []
    for i, contour in enumerate(contours):
        if hierarchy[0][i][3] != -1:  # a hole: added to its outer contour below
            continue
        first = contour.reshape(-1, 2)[0] // 2
        members = idx[patch_label == labels[first[1], first[0]]]
        holes, child = [], hierarchy[0][i][2]
        while child != -1:
            holes.append(to_level0(contours[child]))
            child = hierarchy[0][child][0]
        regions.append(Region(to_level0(contour), holes, members))
    return regions


def _ring(points: np.ndarray) -> list[list[int]]:
    ring = points.tolist()
    return ring + ring[:1]


def geojson(regions: list[Region], attention: np.ndarray, sid: str, fraction: float) -> dict:
    """A FeatureCollection QuPath imports as annotations, in level-0 pixels."""
    features = []
    for region in sorted(regions, key=lambda r: -attention[r.patches].sum()):
        values = attention[region.patches]
        features.append({
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [_ring(region.outer), *(_ring(h) for h in region.holes)]},
            "properties": {
                "objectType": "annotation",
                "classification": {"name": CLASS_NAME, "color": [255, 0, 0]},
                "attention": float(values.mean()), "attention_sum": float(values.sum()),
                "n_patches": int(len(values)), "slide_id": sid, "top_fraction": fraction,
            },
        })
    return {"type": "FeatureCollection", "features": features}


# --- the overlay ------------------------------------------------------------------------------------

def thumbnail(attn: SlideAttention, slide_path: PathLike | None, max_side: int, source: PathLike):
    """(RGB thumbnail, level-0 px per thumbnail px (x, y), tissue mask or None)."""
    from gcmlm.pathology.core.tissue import SegParams, tissue_binary

    if slide_path is None:
        extent = attn.coords.max(axis=0) + np.asarray(attn.patch_extent)
        factor = max(1.0, float(extent.max()) / max_side)
        w, h = max(1, math.ceil(extent[0] / factor)), max(1, math.ceil(extent[1] / factor))
        return np.full((h, w, 3), 255, np.uint8), (factor, factor), None
    from gcmlm.pathology.core.slide import open_slide
    from gcmlm.pathology.core.slide_identity import check_coords_fit_slide

    with open_slide(slide_path) as slide:
        check_coords_fit_slide(attn.coords, attn.attrs, slide, source)
        image, scale = slide.read_downsampled(max(1.0, max(slide.dimensions) / max_side))
    binary, _ = tissue_binary(image, SegParams())
    return image, scale, binary


def overlay(attn: SlideAttention, image: np.ndarray, scale, tissue: np.ndarray | None,
            regions: list[Region]) -> np.ndarray:
    h, w = image.shape[:2]
    value = np.zeros((h, w), np.float32)
    covered = np.zeros((h, w), bool)
    ranks = percentile_ranks(attn.attention)
    x0 = np.floor(attn.coords[:, 0] / scale[0]).astype(int)
    y0 = np.floor(attn.coords[:, 1] / scale[1]).astype(int)
    x1 = np.maximum(x0 + 1, np.ceil((attn.coords[:, 0] + attn.patch_extent[0]) / scale[0]).astype(int))
    y1 = np.maximum(y0 + 1, np.ceil((attn.coords[:, 1] + attn.patch_extent[1]) / scale[1]).astype(int))
    for a, b, c, d, r in zip(x0.tolist(), y0.tolist(), x1.tolist(), y1.tolist(), ranks.tolist(), strict=True):
        value[b:d, a:c] = r
        covered[b:d, a:c] = True
    colours = cv2.cvtColor(cv2.applyColorMap((value * 255).astype(np.uint8), cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    out = image.copy()
    out[covered] = (image[covered] * (1 - ALPHA) + colours[covered] * ALPHA).astype(np.uint8)
    outline = tissue if tissue is not None else covered.astype(np.uint8) * 255
    contours, _ = cv2.findContours(outline, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    thickness = max(1, round(max(h, w) / 800))
    cv2.drawContours(out, contours, -1, (0, 110, 0), thickness)
    inv = np.array([1 / scale[0], 1 / scale[1]])
    rings = [np.round(ring * inv).astype(np.int32) for r in regions for ring in (r.outer, *r.holes)]
    cv2.polylines(out, rings, True, (0, 0, 0), thickness)
    return np.concatenate([out, colour_bar(h)], axis=1)


def colour_bar(height: int, width: int = 90) -> np.ndarray:
    """A vertical turbo scale, high attention at the top, labelled in percentiles."""
    bar = np.full((height, width, 3), 255, np.uint8)
    top, bottom = min(30, height // 4), max(height - 30, 3 * height // 4)
    ramp = np.linspace(255, 0, max(1, bottom - top)).astype(np.uint8)[:, None]
    colours = cv2.cvtColor(cv2.applyColorMap(ramp, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    bar[top:bottom, 10:30] = colours
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    cv2.putText(bar, "100%", (34, top + 10), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(bar, "0%", (34, bottom), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(bar, "attention", (2, max(12, top - 14)), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(bar, "percentile", (2, min(height - 4, bottom + 18)), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


# --- the command ------------------------------------------------------------------------------------

@dataclass
class HeatmapResult:
    slide_id: str
    n_patches: int
    n_regions: int
    top_attention_mass: float  # share of the slide's attention in the regions' patches


def render_heatmap(attention_h5: PathLike, out_png: PathLike, out_geojson: PathLike, *,
                   slide: PathLike | None = None, top_fraction: float = TOP_FRACTION,
                   max_side: int = MAX_SIDE) -> HeatmapResult:
    """``gcmlm mil-heatmap``: the PNG overlay and the GeoJSON regions of one slide."""
    check_outputs(files=[out_png, out_geojson], inputs=[attention_h5, slide])
    if not (math.isfinite(top_fraction) and 0 < top_fraction <= 1):
        raise GcmlmError(f"must be in (0, 1], got {top_fraction}", "--top-fraction")
    if max_side < 64:
        raise GcmlmError(f"must be >= 64, got {max_side}", "--max-side")
    if slide is not None:
        require_file(slide, "slide file")
    attn = read_attention(attention_h5)
    selected = top_patches(attn.attention, top_fraction)
    regions = merge_patches(attn.coords, attn.patch_extent, selected)
    image, scale, tissue = thumbnail(attn, slide, max_side, attention_h5)
    png = overlay(attn, image, scale, tissue, regions)
    ok, data = cv2.imencode(".png", cv2.cvtColor(png, cv2.COLOR_RGB2BGR))
    if not ok:
        raise GcmlmError("could not encode the heatmap PNG", out_png)
    collection = geojson(regions, attn.attention, attn.slide_id, top_fraction)
    with atomic_file(out_png) as tmp:
        Path(tmp).write_bytes(data.tobytes())
    write_text(out_geojson, json.dumps(collection) + "\n")
    mass = float(attn.attention[selected].sum() / max(attn.attention.sum(), 1e-300))
    return HeatmapResult(attn.slide_id, len(attn.coords), len(regions), mass)
