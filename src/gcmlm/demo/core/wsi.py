"""Synthetic H&E whole-slide images written tile by tile as pyramidal, JPEG-tiled TIFF.

The slide is described at low resolution (tissue mask, cellularity and stain fields, one pixel
per ``FIELD_SCALE`` level-0 pixels) plus a stream of nuclei generated per tile-sized cell from a
seed derived from the cell's coordinates. Any level-0 tile can therefore be rendered on its own,
seamlessly, without the slide in memory: a 50k x 40k slide is written in one pass. Level 0 tiles
are also box-downsampled into level 1 (kept in a temporary memory-mapped file for large slides);
the smaller levels come from level 1. Colour follows Beer-Lambert with Ruifrok's H&E vectors.

The latent ``r_path`` raises nuclear density, nuclear size and hematoxylin darkness, so the slide
gets more and darker purple: visible to colour statistics and to a CNN even with random weights.

A slide may also carry one planted region (``SyntheticSlide.plant_region``): a compact blob inside
the tissue, a few per cent of its area, rendered as a poorly differentiated focus (densely packed,
large, pleomorphic, very dark nuclei; little eosin). It is a low-resolution field like the others,
so tiles stay seamless, and its nuclei come from seeds of their own: tiles away from the region,
and every tile of a slide without one, are the same bytes as without the feature. Its outline is a
polygon in level-0 pixels (``PlantedRegion.polygon``); ``polygon_coverage`` turns it into "which
fraction of this patch lies inside", as a test of attention heatmaps needs.

Pages follow the layout OpenSlide's generic-TIFF reader expects: tiled level pages, largest first,
with XResolution/YResolution in pixels per centimetre so it reports ``openslide.mpp-x``/``-y``.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile

FIELD_SCALE = 32  # level-0 pixels per pixel of the low-resolution fields
TEXTURE_PERIOD = 1024  # level-0 pixels after which the fine stroma texture repeats
H_MAX, E_MAX = 2.5, 1.0  # optical-density ranges of the colour lookup table
DOWNSAMPLE = 4  # between pyramid levels, like Aperio (1, 4, 16, ...)
# Optical density of one unit of stain (Ruifrok & Johnston 2001), unit vectors over R, G, B.
HEMATOXYLIN = np.array([0.650, 0.704, 0.286], dtype=np.float32)
EOSIN = np.array([0.072, 0.990, 0.105], dtype=np.float32)
# The planted region (a poorly differentiated focus): nuclei per mm2 (on top of the usual ones), their
# radius and darkness relative to the slide's, how much eosin it loses and the faint hematoxylin
# of its basophilic cytoplasm.
REGION_NUCLEI_PER_MM2 = 9000.0
REGION_RADIUS = 1.7
REGION_DARKNESS = 1.6
REGION_EOSIN_LOSS = 0.65
REGION_CYTOPLASM_OD = 0.25
REGION_VERTICES = 64


@dataclass
class SlideParams:
    """What makes one slide look the way it does; ``r_path`` drives the nuclear terms."""

    nuclei_per_mm2: float
    nucleus_radius_um: float
    hematoxylin_od: float
    eosin_od: float
    pieces: int


@dataclass
class PlantedRegion:
    """One planted region: its outline (level-0 pixels) and how much of the tissue it covers."""

    polygon: list[list[float]]  # (x, y) vertices in level-0 pixels, closed implicitly
    centre: list[float]
    radius_px: float  # of the circle of equal area
    area_px: float  # level-0 pixels of region (coverage-weighted, from the field)
    tissue_fraction: float  # area_px / the slide's tissue area (coverage of the tissue mask field)

    def truth(self, mpp: float) -> dict:
        return {"polygon_px": self.polygon, "centre_px": self.centre, "radius_px": self.radius_px,
                "area_px": self.area_px, "area_mm2": round(self.area_px * mpp**2 / 1e6, 6),
                "tissue_fraction": self.tissue_fraction, "morphology": "poorly differentiated focus"}


def slide_params(rng: np.random.Generator, r_path: float, pieces: int) -> SlideParams:
    """Nuclear density, size and darkness grow with ``r_path``; eosin strength is lab noise."""
    return SlideParams(
        nuclei_per_mm2=round(3500.0 * math.exp(0.4 * r_path) * rng.uniform(0.92, 1.08), 3),
        nucleus_radius_um=round(2.9 * math.exp(0.12 * r_path), 4),
        hematoxylin_od=round(0.85 * math.exp(0.15 * r_path) * rng.uniform(0.95, 1.05), 4),
        eosin_od=round(rng.uniform(0.30, 0.42), 4),
        pieces=pieces,
    )


class SyntheticSlide:
    """Renders any level-0 tile of a synthetic H&E slide from low-resolution fields and a seed."""

    def __init__(self, width: int, height: int, mpp: float, params: SlideParams, seed: int | tuple, tile: int = 256):
        self.width, self.height, self.mpp, self.params, self.tile = width, height, mpp, params, tile
        self.entropy = list(seed) if isinstance(seed, tuple | list) else [int(seed)]
        rng = np.random.default_rng(self.entropy + [0])
        fw, fh = math.ceil(width / FIELD_SCALE) + 2, math.ceil(height / FIELD_SCALE) + 2
        self.mask = _tissue_mask(rng, fw, fh, params.pieces)
        self.cellularity = np.clip(0.65 + 0.35 * _smooth_field(rng, fw, fh, 6.0 * 0.5 / mpp), 0.15, 1.0)
        shade = np.clip(1.0 + 0.15 * _smooth_field(rng, fw, fh, 3.0 * 0.5 / mpp), 0.6, 1.4)
        fibre_mix = np.clip(0.5 + 0.5 * _smooth_field(rng, fw, fh, 4.0 * 0.5 / mpp), 0.0, 1.0)
        self.fields = cv2.merge([self.mask, shade, fibre_mix])  # upsampled together, one call per tile
        self.noise = rng.standard_normal((4, tile + 64, tile + 64)).astype(np.float32)
        self.background_od = np.float32(rng.uniform(0.02, 0.04))
        # Collagen fibres ~6 um apart in two orientations, blended by a slowly varying field.
        self.fibres = [_periodic_fibres(rng, TEXTURE_PERIOD, 6.0 / mpp, angle) for angle in (0.5, 2.1)]
        self.fibres = [np.pad(f, ((0, tile), (0, tile)), mode="wrap") for f in self.fibres]
        self._cell_nuclei = functools.lru_cache(maxsize=4096)(self._nuclei_in_cell)
        self.lut = _stain_lut(float(self.background_od))
        self.region: np.ndarray | None = None  # coverage 0..1 of the planted region, same grid as the mask
        self.planted: PlantedRegion | None = None
        self._region_nuclei = functools.lru_cache(maxsize=1024)(self._region_nuclei_in_cell)

    # -- the planted region ----------------------------------------------------------------

    def plant_region(self, rng: np.random.Generator, tissue_fraction: float) -> PlantedRegion:
        """Plant one compact region covering about ``tissue_fraction`` of the tissue, placed where
        the tissue (holes excluded) around it is wide enough for it. Uses ``rng`` only, never the
        slide's own streams, so nothing else in the slide moves."""
        if not 0 < tissue_fraction < 1:
            raise ValueError(f"tissue_fraction must be in (0, 1), got {tissue_fraction}")
        tissue = self.mask > 0.5
        tissue_area = float(self.mask.sum())  # field pixels
        radius = math.sqrt(tissue_fraction * tissue_area / math.pi)  # field pixels
        # Room: distance (field pixels) to the nearest non-tissue pixel, slide border included.
        inside = np.pad(tissue, 1).astype(np.uint8)
        room = cv2.distanceTransform(inside, cv2.DIST_L2, 5)[1:-1, 1:-1]
        margin = 1.15 * radius + 1.5  # the outline wobbles by up to ~12 %; the tissue edge is soft
        ys, xs = np.nonzero(room >= margin)
        if not len(xs):  # a small slide: the widest spot there is
            ys, xs = np.nonzero(room >= room.max() - 0.5)
        pick = int(rng.integers(len(xs)))
        cx, cy = xs[pick] + rng.uniform(0.25, 0.75), ys[pick] + rng.uniform(0.25, 0.75)
        phi = np.linspace(0, 2 * np.pi, REGION_VERTICES, endpoint=False)
        wobble = 1 + sum(rng.uniform(0.02, 0.06) * np.sin(k * phi + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
        aspect, rot = rng.uniform(0.8, 1.25), rng.uniform(0, np.pi)
        px, py = wobble * math.sqrt(aspect) * np.cos(phi), wobble / math.sqrt(aspect) * np.sin(phi)
        unit = np.stack([px * np.cos(rot) - py * np.sin(rot), px * np.sin(rot) + py * np.cos(rot)], axis=1)
        for _ in range(4):  # rasterised at field resolution: rescale until the area is the one asked for
            pts = np.array([cx, cy]) + radius * unit
            canvas = np.zeros(self.mask.shape, np.uint8)
            cv2.fillPoly(canvas, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
            self.region = np.minimum(canvas.astype(np.float32) / 255.0, self.mask)
            area = float(self.region.sum())
            if abs(area / tissue_area - tissue_fraction) < 0.02 * tissue_fraction:
                break
            radius *= math.sqrt(tissue_fraction * tissue_area / max(area, 1e-6))
        self.planted = PlantedRegion(
            polygon=[[round(float(x) * FIELD_SCALE, 1), round(float(y) * FIELD_SCALE, 1)] for x, y in pts],
            centre=[round(cx * FIELD_SCALE, 1), round(cy * FIELD_SCALE, 1)],
            radius_px=round(math.sqrt(area / math.pi) * FIELD_SCALE, 1),
            area_px=round(area * FIELD_SCALE**2, 1),
            tissue_fraction=round(area / tissue_area, 5),
        )
        self._region_nuclei.cache_clear()
        return self.planted

    def _region_near(self, x0: int, y0: int) -> bool:
        """Whether the region, or a region nucleus reaching over the edge, may touch this tile."""
        if self.region is None:
            return False
        fx, fy, n = x0 // FIELD_SCALE, y0 // FIELD_SCALE, self.tile // FIELD_SCALE
        return bool(self.region[max(fy - 2, 0):fy + n + 3, max(fx - 2, 0):fx + n + 3].max() > 0)

    # -- low-resolution fields -------------------------------------------------------------

    def _field_tile(self, field: np.ndarray, x0: int, y0: int) -> np.ndarray:
        """Bilinear upsampling of a field over one level-0 tile (continuous across tiles)."""
        s = 1.0 / FIELD_SCALE
        affine = np.array([[s, 0, x0 * s - 0.5 + 0.5 * s], [0, s, y0 * s - 0.5 + 0.5 * s]], dtype=np.float64)
        return cv2.warpAffine(field, affine, (self.tile, self.tile), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)

    def _field_at(self, field: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        ix = np.clip((xs / FIELD_SCALE).astype(np.int64), 0, field.shape[1] - 1)
        iy = np.clip((ys / FIELD_SCALE).astype(np.int64), 0, field.shape[0] - 1)
        return field[iy, ix]

    # -- nuclei ----------------------------------------------------------------------------

    def _nuclei_in_cell(self, cx: int, cy: int) -> np.ndarray:
        """Nuclei (x, y, a, b, angle, darkness) of one tile-sized cell; thinned by tissue and cellularity."""
        rng = np.random.default_rng(self.entropy + [1, cx, cy])
        area_mm2 = (self.tile * self.mpp / 1000.0) ** 2
        n = rng.poisson(self.params.nuclei_per_mm2 * area_mm2)
        xs = (cx + rng.random(n)) * self.tile
        ys = (cy + rng.random(n)) * self.tile
        inside = self._field_at(self.mask, xs, ys) > 0.5  # no stray nuclei on the glass by the edges
        keep = inside & (rng.random(n) < self._field_at(self.cellularity, xs, ys))
        r = self.params.nucleus_radius_um / self.mpp * np.exp(0.18 * rng.standard_normal(n))
        ecc = rng.uniform(0.6, 1.0, n)
        angle = rng.uniform(0, 180, n)
        dark = self.params.hematoxylin_od * rng.uniform(0.8, 1.15, n)
        return np.stack([xs, ys, r, r * ecc, angle, dark], axis=1)[keep]

    def _region_nuclei_in_cell(self, cx: int, cy: int) -> np.ndarray:
        """The planted region's extra nuclei in one tile-sized cell: crowded, large, pleomorphic, dark.

        Seeded by the cell like the usual nuclei, from a stream of their own (purpose 2)."""
        t = self.tile
        window = self.region[max(cy * t // FIELD_SCALE - 1, 0):(cy + 1) * t // FIELD_SCALE + 1,
                             max(cx * t // FIELD_SCALE - 1, 0):(cx + 1) * t // FIELD_SCALE + 1]
        if not window.size or window.max() <= 0.5:
            return np.zeros((0, 6))
        rng = np.random.default_rng(self.entropy + [2, cx, cy])
        n = rng.poisson(REGION_NUCLEI_PER_MM2 * (t * self.mpp / 1000.0) ** 2)
        xs = (cx + rng.random(n)) * t
        ys = (cy + rng.random(n)) * t
        keep = self._field_at(self.region, xs, ys) > 0.5
        pleomorphism = np.exp(np.clip(0.3 * rng.standard_normal(n), -0.6, 0.6))
        r = REGION_RADIUS * self.params.nucleus_radius_um / self.mpp * pleomorphism
        ecc = rng.uniform(0.45, 1.0, n)
        angle = rng.uniform(0, 180, n)
        dark = REGION_DARKNESS * self.params.hematoxylin_od * rng.uniform(0.9, 1.15, n)
        return np.stack([xs, ys, r, r * ecc, angle, dark], axis=1)[keep]

    def _draw_nuclei(self, x0: int, y0: int, region: bool = False) -> np.ndarray:
        """Hematoxylin optical density of the nuclei overlapping one tile (with ``region``, the
        planted region's nuclei too, drawn over the usual ones)."""
        t = self.tile
        layer = np.zeros((t, t), dtype=np.uint8)
        reach = int(math.ceil(self.params.nucleus_radius_um / self.mpp * 2.5))
        sources = [(self._cell_nuclei, reach)]
        if region:
            sources.append((self._region_nuclei, int(math.ceil(reach * REGION_RADIUS * 1.9))))
        cx0, cy0 = x0 // t, y0 // t
        for nuclei_in_cell, reach in sources:
            for cy in range(cy0 - 1, cy0 + 2):
                for cx in range(cx0 - 1, cx0 + 2):
                    if cx < 0 or cy < 0:
                        continue
                    for x, y, a, b, angle, dark in nuclei_in_cell(cx, cy):
                        if -reach < x - x0 < t + reach and -reach < y - y0 < t + reach:
                            # 1/8-pixel precision keeps small nuclei round; anti-aliased edges.
                            centre = (int(round((x - x0) * 8)), int(round((y - y0) * 8)))
                            axes = (max(int(round(a * 8)), 8), max(int(round(b * 8)), 8))
                            cv2.ellipse(layer, centre, axes, float(angle), 0, 360, int(min(dark, 1.6) * 150),
                                        -1, cv2.LINE_AA, 3)
        return layer.astype(np.float32) / 150.0

    # -- tiles -----------------------------------------------------------------------------

    def render_tile(self, x0: int, y0: int) -> np.ndarray:
        """RGB uint8 tile whose top-left corner is level-0 pixel (x0, y0)."""
        t = self.tile
        k = (x0 // t * 7 + y0 // t * 13) % 4
        off = (x0 // t * 17 + y0 // t * 29) % 64
        noise = self.noise[k, off:off + t, (off * 3) % 64:(off * 3) % 64 + t]
        fx, fy = x0 // FIELD_SCALE, y0 // FIELD_SCALE
        if self.mask[max(fy - 1, 0):fy + t // FIELD_SCALE + 2, max(fx - 1, 0):fx + t // FIELD_SCALE + 2].max() < 0.05:
            return self._glass(noise)  # most of a slide is empty glass: skip the tissue model
        mask, shade, mix = cv2.split(self._field_tile(self.fields, x0, y0))
        tx, ty = x0 % TEXTURE_PERIOD, y0 % TEXTURE_PERIOD
        f0, f1 = self.fibres[0][ty:ty + t, tx:tx + t], self.fibres[1][ty:ty + t, tx:tx + t]
        fibres = f1 + mix * (f0 - f1)
        alpha = np.clip((mask - 0.5) * 8.0 + 0.5 + 0.35 * fibres, 0.0, 1.0)  # frayed tissue edge
        eosin = alpha * shade * np.maximum(0.75 + 0.3 * fibres + 0.06 * noise, 0.1) * self.params.eosin_od
        if not self._region_near(x0, y0):
            hema = alpha * (0.06 + self._draw_nuclei(x0, y0) * (0.9 + 0.1 * noise[::-1]))
            return self._colour(hema, eosin, noise)
        # The planted region: its own nuclei, less eosin, basophilic cytoplasm.
        region = self._field_tile(self.region, x0, y0)
        eosin = eosin * (1.0 - REGION_EOSIN_LOSS * region)
        hema = alpha * (0.06 + REGION_CYTOPLASM_OD * region
                        + self._draw_nuclei(x0, y0, region=True) * (0.9 + 0.1 * noise[::-1]))
        return self._colour(hema, eosin, noise)

    def _glass(self, noise: np.ndarray) -> np.ndarray:
        zero = np.zeros_like(noise)
        return self._colour(zero, zero, noise)

    def _colour(self, hema: np.ndarray, eosin: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Beer-Lambert through a lookup table of quantised (hematoxylin, eosin) optical densities."""
        h = np.clip((hema + 0.006 + 0.004 * noise) * (255 / H_MAX), 0, 255).astype(np.uint16)
        e = np.clip(eosin * (255 / E_MAX), 0, 255).astype(np.uint16)
        return np.take(self.lut, (h << 8) | e, axis=0)

    def tiles(self, on_tile=None) -> Iterator[np.ndarray]:
        """Level-0 tiles in row-major order, each passed to ``on_tile(tx, ty, tile)`` too."""
        for ty in range(math.ceil(self.height / self.tile)):
            for tx in range(math.ceil(self.width / self.tile)):
                tile = self.render_tile(tx * self.tile, ty * self.tile)
                if on_tile is not None:
                    on_tile(tx, ty, tile)
                yield tile


def polygon_coverage(polygon: np.ndarray | list, coords: np.ndarray, size: int, resolution: int = 4) -> np.ndarray:
    """Fraction of each square patch (level-0 top-left ``coords`` (N, 2), side ``size``) that lies
    inside ``polygon`` (level-0 (x, y) vertices), from a grid of points every ``resolution`` pixels."""
    coords = np.asarray(coords, np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, np.float64).reshape(-1, 2)
    lo = np.floor(poly.min(axis=0))
    nx, ny = (np.ceil((poly.max(axis=0) - lo) / resolution).astype(np.int64) + 1).tolist()
    xs = lo[0] + (np.arange(nx) + 0.5) * resolution
    ys = lo[1] + (np.arange(ny) + 0.5) * resolution
    # Even-odd rule: a point is inside when a ray to its right crosses the outline an odd number of times.
    (x1, y1), (x2, y2) = poly.T, np.roll(poly, -1, axis=0).T
    spans = (y1[None, :] > ys[:, None]) != (y2[None, :] > ys[:, None])  # (rows, edges)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = x1 + (ys[:, None] - y1) * (x2 - x1) / (y2 - y1)  # where each edge meets each row
    crossings = (spans[:, None, :] & (cross[:, None, :] > xs[None, :, None])).sum(axis=2)
    integral = np.pad((crossings % 2).cumsum(axis=0).cumsum(axis=1), ((1, 0), (1, 0)))
    # grid points in [x, x + size): indices from ceil((x - lo) / resolution - 0.5), clipped to the grid
    first = np.ceil((coords - lo) / resolution - 0.5).astype(np.int64)
    last = np.ceil((coords + size - lo) / resolution - 0.5).astype(np.int64)
    i0, i1 = np.clip(first[:, 0], 0, nx), np.clip(last[:, 0], 0, nx)
    j0, j1 = np.clip(first[:, 1], 0, ny), np.clip(last[:, 1], 0, ny)
    inside = integral[j1, i1] - integral[j0, i1] - integral[j1, i0] + integral[j0, i0]
    return inside * float(resolution) ** 2 / float(size) ** 2


def _stain_lut(background_od: float) -> np.ndarray:
    """RGB for every quantised (hematoxylin, eosin) pair: index (h << 8) | e."""
    h = np.arange(256, dtype=np.float32)[:, None, None] * (H_MAX / 255)
    e = np.arange(256, dtype=np.float32)[None, :, None] * (E_MAX / 255)
    od = h * HEMATOXYLIN + e * EOSIN + background_od
    return np.clip(255.0 * np.exp(-od), 0, 255).astype(np.uint8).reshape(-1, 3)


def _smooth_field(rng: np.random.Generator, w: int, h: int, sigma: float) -> np.ndarray:
    field = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), max(sigma, 0.5))
    return field / max(float(field.std()), 1e-6)


def _periodic_fibres(rng: np.random.Generator, period: int, spacing_px: float, angle: float) -> np.ndarray:
    """Tileable fibrous texture: noise band-passed across ``angle`` at 1/spacing, smooth along it."""
    k = np.fft.fftfreq(period).astype(np.float32)
    ky, kx = np.meshgrid(k, k, indexing="ij")
    along = kx * np.cos(angle) + ky * np.sin(angle)
    across = -kx * np.sin(angle) + ky * np.cos(angle)
    k0 = 1.0 / spacing_px
    gain = np.exp(-0.5 * (along / (k0 / 5)) ** 2) * np.exp(-0.5 * ((np.abs(across) - k0) / (k0 / 2)) ** 2)
    field = np.fft.ifft2(np.fft.fft2(rng.standard_normal((period, period))) * gain).real
    return (field / max(float(field.std()), 1e-9)).astype(np.float32)


def _tissue_mask(rng: np.random.Generator, w: int, h: int, pieces: int) -> np.ndarray:
    """Irregular tissue pieces (float32 0..1 coverage) laid out side by side on the glass."""
    canvas = np.zeros((h, w), dtype=np.uint8)
    for i in range(pieces):
        # Each piece gets its own column of the slide, so pieces rarely merge.
        cx = w * (i + 0.5 + rng.uniform(-0.12, 0.12)) / pieces
        cy = h * rng.uniform(0.42, 0.58)
        rx = w / pieces * rng.uniform(0.30, 0.42)
        ry = h * rng.uniform(0.28, 0.40)
        phi = np.linspace(0, 2 * np.pi, 180, endpoint=False)
        wobble = 1 + sum(rng.uniform(0.03, 0.10) * np.sin(k * phi + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5, 7))
        rot = rng.uniform(-0.4, 0.4)
        px, py = rx * wobble * np.cos(phi), ry * wobble * np.sin(phi)
        pts = np.stack([cx + px * np.cos(rot) - py * np.sin(rot), cy + px * np.sin(rot) + py * np.cos(rot)], axis=1)
        cv2.fillPoly(canvas, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
        # A few holes (vessels, fat, tears) make the tissue mask non-convex.
        for _ in range(rng.integers(1, 4)):
            hx, hy = cx + rng.uniform(-0.5, 0.5) * rx, cy + rng.uniform(-0.5, 0.5) * ry
            cv2.circle(canvas, (int(hx), int(hy)), int(max(1, rng.uniform(0.05, 0.15) * min(rx, ry))), 0, -1, cv2.LINE_AA)
    mask = cv2.GaussianBlur(canvas.astype(np.float32) / 255.0, (0, 0), 1.0)
    return np.clip(mask, 0.0, 1.0)


def _level_sizes(width: int, height: int, min_levels: int = 3, smallest: int = 512) -> list[tuple[int, int]]:
    sizes = [(width, height)]
    while len(sizes) < min_levels or max(sizes[-1]) > smallest:
        w, h = sizes[-1]
        if min(w, h) < DOWNSAMPLE:
            break
        sizes.append((math.ceil(w / DOWNSAMPLE), math.ceil(h / DOWNSAMPLE)))
    return sizes


def _tiles_of(image: np.ndarray, width: int, height: int, tile: int) -> Iterator[np.ndarray]:
    for y in range(0, height, tile):
        for x in range(0, width, tile):
            block = image[y:y + tile, x:x + tile]
            if block.shape[:2] != (tile, tile):
                block = np.pad(block, ((0, tile - block.shape[0]), (0, tile - block.shape[1]), (0, 0)),
                               constant_values=255)
            yield np.ascontiguousarray(block)


def write_slide(path: str | os.PathLike, slide: SyntheticSlide, quality: int = 85,
                description: str | None = None) -> list[tuple[int, int]]:
    """Write ``slide`` as a pyramidal JPEG-tiled TIFF; returns the level sizes (width, height)."""
    path = Path(path)
    t = slide.tile
    sizes = _level_sizes(slide.width, slide.height)
    # Level 1 is collected from level-0 tiles as they stream past (memory-mapped when large).
    small = t // DOWNSAMPLE
    l1_shape = (math.ceil(slide.height / t) * small, math.ceil(slide.width / t) * small, 3)
    options = dict(tile=(t, t), photometric="rgb", compression="jpeg", compressionargs={"level": quality},
                   resolutionunit="CENTIMETER", metadata=None, dtype=np.uint8)
    bigtiff = slide.width * slide.height * 3 > 2**31
    desc = description or f"gcmlm synthetic H&E slide|mpp={slide.mpp}|magnification={10 / slide.mpp:g}x"
    px_per_cm = 1e4 / slide.mpp
    with contextlib.ExitStack() as stack:
        if np.prod(l1_shape) > 256 * 2**20:
            spool = stack.enter_context(tempfile.TemporaryFile(dir=path.parent))
            level1 = np.memmap(spool, dtype=np.uint8, mode="w+", shape=l1_shape)
        else:
            level1 = np.empty(l1_shape, dtype=np.uint8)

        def keep_downsampled(tx, ty, tile):
            level1[ty * small:(ty + 1) * small, tx * small:(tx + 1) * small] = cv2.resize(
                tile, (small, small), interpolation=cv2.INTER_AREA)

        tif = stack.enter_context(tifffile.TiffWriter(path, bigtiff=bigtiff))
        tif.write(slide.tiles(keep_downsampled), shape=(slide.height, slide.width, 3), description=desc,
                  resolution=(px_per_cm, px_per_cm), subfiletype=0, **options)
        image = level1[:sizes[1][1], :sizes[1][0]]
        for level, (w, h) in enumerate(sizes[1:], start=1):
            if level > 1:
                image = cv2.resize(np.asarray(image), (w, h), interpolation=cv2.INTER_AREA)
            scale = px_per_cm / DOWNSAMPLE**level
            tif.write(_tiles_of(image, w, h, t), shape=(h, w, 3), resolution=(scale, scale),
                      subfiletype=1, **options)
    return sizes


def write_synthetic_slide(path: str | os.PathLike, width: int, height: int, mpp: float = 0.25, seed: int = 0,
                          tile: int = 256, r_path: float = 0.0, pieces: int = 2, quality: int = 85) -> dict:
    """Write a synthetic H&E slide of any size tile by tile (e.g. 50k x 40k px for benchmarks).

    Returns what was planted (slide parameters, level sizes).
    """
    rng = np.random.default_rng([int(seed), 7])
    params = slide_params(rng, r_path, pieces)
    slide = SyntheticSlide(width, height, mpp, params, (int(seed), 7), tile)
    sizes = write_slide(path, slide, quality)
    return {"mpp": mpp, "levels": sizes, **asdict(params)}
