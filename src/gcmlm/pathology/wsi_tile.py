"""wsi-tile: segment tissue in a whole-slide image and write CLAM-layout patch coordinates.

Per slide, in ``--out``: ``patches/<id>.h5`` (CLAM's coords file, plus our attrs),
``masks/<id>.png`` (tissue contours green, holes blue, on a thumbnail), ``stitches/<id>.png``
(the patches' pixels on black, like CLAM's stitch) and ``<id>.json`` (counts, tissue area,
parameters, timings). Everything is computed first and then written atomically, so a bad slide
leaves nothing behind. See tools/wsi-tile/README.md for the differences from CLAM.

From Python: ``tile_slide(slide, GridSpec(...), resolve_settings(preset, **params))`` tiles one open
slide in memory and ``write_outputs`` writes it; ``tile_slides`` is the whole command.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Unpack

import cv2
import numpy as np

from gcmlm import __version__
from gcmlm.common.atomic import atomic_file, check_outputs, write_json
from gcmlm.common.errors import GcmlmError
from gcmlm.common.manifest import slide_id as slide_id_of
from gcmlm.pathology.core.clam_h5 import write_coords
from gcmlm.pathology.core.grid import grid_coords, tissue_fraction
from gcmlm.pathology.core.presets import (
    CLAM_DEFAULTS,
    CONTOUR_FNS,
    ClamParams,
    load_preset,
    parse_bool,
    parse_ids,
)
from gcmlm.pathology.core.slide import Slide, claim_slide_id, read_mpp_csv
from gcmlm.pathology.core.slide_identity import identity_attrs
from gcmlm.pathology.core.tissue import SegParams, Tissue, segment_tissue

log = logging.getLogger("gcmlm")

MAX_SEG_PIXELS = 1e8  # CLAM refuses to segment a level larger than this
AUTO_DOWNSAMPLE = 64  # CLAM's seg/vis level: the best level for downsample 64
LEVEL_SNAP = 0.02  # a target downsample within 2 % of a pyramid level reads that level unresized
QA_MAX_SIDE = 2048
QA_MIN_SIDE = 768  # an automatic QA level is never smaller than this on its long side, where a finer level exists
# Defaults of GridSpec, which the command line shows and uses too (CLAM's parameters: CLAM_DEFAULTS).
PATCH_SIZE = 256  # CLAM's
MIN_TISSUE = 0.0  # keep every patch the contour test keeps, as CLAM does

PathLike = str | os.PathLike


def _bool(text: str) -> bool:
    """argparse type of the boolean flags: the preset reader's parse_bool."""
    try:
        return parse_bool(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ids(text: str) -> list[int]:
    """argparse type of --keep-ids/--exclude-ids: the preset reader's parse_ids."""
    try:
        return parse_ids(text)
    except ValueError:
        # argparse's own wording for a type that raises ValueError, as before this wrapper existed
        raise argparse.ArgumentTypeError(f"invalid _ids value: {text!r}") from None


def _default(key: str) -> str:
    """A CLAM default as the help text shows it (100.0 -> 100, True -> true)."""
    value = CLAM_DEFAULTS[key]
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    io = parser.add_argument_group("input and output")
    io.add_argument("--slide", required=True, nargs="+", metavar="PATH", help="whole-slide image(s)")
    io.add_argument("--out", required=True, metavar="DIR", help="output folder (patches/, masks/, stitches/, <id>.json)")
    io.add_argument("--mpp", type=float, metavar="X", help="level-0 microns per pixel (overrides the file's)")
    io.add_argument("--mpp-csv", metavar="CSV", help="per-slide mpp: columns slide_id (or slide) and mpp")

    grid = parser.add_argument_group(f"patch grid (default: CLAM's, {PATCH_SIZE} px at pyramid level 0)")
    grid.add_argument("--patch-size", type=int, default=PATCH_SIZE, metavar="PX", help="patch size in output pixels")
    grid.add_argument("--step-size", type=int, metavar="PX", help="grid step in output pixels (default: patch size)")
    scale = grid.add_mutually_exclusive_group()
    scale.add_argument("--mag", type=float, metavar="X", help="target magnification, e.g. 20 (read the best level and resize)")
    scale.add_argument("--target-mpp", type=float, metavar="X", help="target microns per pixel, e.g. 0.5")
    scale.add_argument("--patch-level", type=int, metavar="N", help="patch at pyramid level N, as CLAM does")
    grid.add_argument("--min-tissue", type=float, default=MIN_TISSUE, metavar="FRACTION",
                      help="drop patches whose tissue-mask coverage is below this (0 = CLAM's behaviour)")

    clam = parser.add_argument_group("CLAM parameters (preset values, overridden by flags)")
    clam.add_argument("--preset", metavar="NAME|CSV", help="bwh_biopsy, bwh_resection, tcga, or a CLAM preset CSV")
    clam.add_argument("--seg-level", type=int, help="pyramid level to segment (-1: best for downsample 64)")
    clam.add_argument("--sthresh", type=int, help=f"saturation threshold (default {_default('sthresh')})")
    clam.add_argument("--mthresh", type=int, help=f"median blur kernel, odd (default {_default('mthresh')})")
    clam.add_argument("--close", type=int, help=f"closing kernel size, 0 = none (default {_default('close')})")
    clam.add_argument("--use-otsu", type=_bool, metavar="BOOL", help="Otsu threshold instead of --sthresh")
    clam.add_argument("--a-t", type=float,
                      help=f"min tissue area, in 512x512 level-0 patches (default {_default('a_t')})")
    clam.add_argument("--a-h", type=float, help=f"min hole area, same unit (default {_default('a_h')})")
    clam.add_argument("--max-n-holes", type=int, help=f"holes kept per contour (default {_default('max_n_holes')})")
    clam.add_argument("--contour-fn", choices=CONTOUR_FNS,
                      help=f"patch-in-tissue test (default {_default('contour_fn')})")
    clam.add_argument("--use-padding", type=_bool, metavar="BOOL",
                      help=f"allow patches past the slide edge (default {_default('use_padding')})")
    clam.add_argument("--keep-ids", type=_ids, metavar="I,J", help="keep only these contour indices")
    clam.add_argument("--exclude-ids", type=_ids, metavar="I,J", help="drop these contour indices")
    clam.add_argument("--vis-level", type=int, help="level of the QA images (-1: best for downsample 64)")
    clam.add_argument("--line-thickness", type=int,
                      help=f"contour line width at level 0 (default {_default('line_thickness')})")


def run(args: argparse.Namespace) -> int:
    preset_file = args.preset if args.preset and Path(args.preset).is_file() else None
    check_tile_outputs(args.slide, args.out, inputs=[args.mpp_csv, preset_file])
    flags = {key: getattr(args, key) for key in CLAM_DEFAULTS}  # None: flag not given
    settings = resolve_settings(args.preset, **flags)
    mpp_table = read_mpp_csv(args.mpp_csv) if args.mpp_csv else None
    grid = GridSpec(patch_size=args.patch_size, step_size=args.step_size, mag=args.mag,
                    target_mpp=args.target_mpp, patch_level=args.patch_level, min_tissue=args.min_tissue)
    tile_slides(args.slide, args.out, grid, settings, mpp=args.mpp, mpp_table=mpp_table)
    return 0


@dataclass
class Settings:
    """CLAM parameters after defaults < preset < flags (``resolve_settings``)."""

    seg_level: int
    seg: SegParams
    vis_level: int
    line_thickness: int
    use_padding: bool
    contour_fn: str
    preset: str | None


def resolve_settings(preset: str | None = None, **params: Unpack[ClamParams]) -> Settings:
    """CLAM's parameters: ``CLAM_DEFAULTS``, then ``preset`` (bwh_biopsy, bwh_resection, tcga or a CLAM
    preset CSV), then ``params`` (see ``ClamParams``; a None value counts as not given), e.g.
    ``resolve_settings("bwh_biopsy", a_t=1.0, contour_fn="four_pt_hard")``.
    """
    unknown = set(params) - set(CLAM_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown CLAM parameter(s): {', '.join(sorted(unknown))}")
    values = dict(CLAM_DEFAULTS)
    if preset:
        values.update(load_preset(preset))
    values.update({key: value for key, value in params.items() if value is not None})
    if values["mthresh"] < 1 or values["mthresh"] % 2 == 0:
        raise GcmlmError(f"must be an odd number >= 1 (median blur kernel), got {values['mthresh']}", "--mthresh")
    check_clam_ranges(values)
    seg = SegParams(sthresh=values["sthresh"], mthresh=values["mthresh"], close=values["close"],
                    use_otsu=values["use_otsu"], a_t=values["a_t"], a_h=values["a_h"],
                    max_n_holes=values["max_n_holes"], keep_ids=list(values["keep_ids"]),
                    exclude_ids=list(values["exclude_ids"]))
    return Settings(seg_level=values["seg_level"], seg=seg, vis_level=values["vis_level"],
                    line_thickness=values["line_thickness"], use_padding=values["use_padding"],
                    contour_fn=values["contour_fn"], preset=preset)


# CLAM parameter -> (lowest, highest) accepted value; NaN is never accepted.
CLAM_RANGES = {"sthresh": (0, 255), "close": (0, math.inf), "a_t": (0, math.inf), "a_h": (0, math.inf),
               "max_n_holes": (0, math.inf), "line_thickness": (1, math.inf), "seg_level": (-1, math.inf),
               "vis_level": (-1, math.inf)}


def check_clam_ranges(values: dict) -> None:
    """Refuse CLAM parameter values that would silently segment nothing (NaN, negative areas, ...)."""
    for key, (low, high) in CLAM_RANGES.items():
        value = values[key]
        if not low <= value <= high:  # False for NaN too
            bound = f"between {low:g} and {high:g}" if high < math.inf else f">= {low:g}"
            raise GcmlmError(f"must be {bound}, got {value}", f"--{key.replace('_', '-')}")


@dataclass(frozen=True)
class GridSpec:
    """The patch grid asked for (``--patch-size`` ... ``--min-tissue``).

    ``patch_size`` output pixels per patch, one every ``step_size`` output pixels (None: the patch
    size), at one of: ``mag`` (target magnification, e.g. 20), ``target_mpp`` (microns per pixel,
    e.g. 0.5) or ``patch_level`` (a pyramid level, as CLAM does; level 0 when none of the three is
    given). Patches whose tissue-mask coverage is below ``min_tissue`` are dropped (0: CLAM's
    behaviour, keep them all).
    """

    patch_size: int = PATCH_SIZE
    step_size: int | None = None
    mag: float | None = None
    target_mpp: float | None = None
    patch_level: int | None = None
    min_tissue: float = MIN_TISSUE

    def __post_init__(self) -> None:
        if sum(value is not None for value in (self.mag, self.target_mpp, self.patch_level)) > 1:
            raise GcmlmError("give at most one of mag, target_mpp and patch_level")
        if not 0 <= self.min_tissue <= 1:  # NaN too
            raise GcmlmError(f"must be within [0, 1], got {self.min_tissue}", "--min-tissue")


@dataclass
class Grid:
    """Where and how big patches are. ``patch_size`` is at ``patch_level`` (CLAM's meaning)."""

    mode: str  # "level" | "mpp" | "magnification"
    patch_level: int
    patch_size: int  # pixels at patch_level: what CLAM's readers read
    target_patch_size: int  # output pixels (patch_size resized to this; equal in level mode)
    patch_size_level0: int
    step_level0: tuple[int, int]
    target_mpp: float
    target_magnification: float

    @property
    def resized(self) -> bool:
        return self.patch_size != self.target_patch_size


def plan_grid(slide: Slide, spec: GridSpec) -> Grid:
    """Where ``spec``'s patches lie on ``slide`` (level-0 sizes and steps, the level they are read at)."""
    mpp = slide.require_mpp()
    level0_mag = slide.magnification
    size = spec.patch_size
    step = spec.step_size or size
    for option, value in (("--patch-size", size), ("--step-size", step)):
        if value < 1:
            raise GcmlmError(f"must be >= 1, got {value}", option)
    if spec.mag is None and spec.target_mpp is None:
        level = spec.patch_level or 0
        if not 0 <= level < slide.level_count:
            raise GcmlmError(f"--patch-level {level} does not exist (levels 0..{slide.level_count - 1})", slide.path)
        # CLAM truncates the level's per-axis downsample to int for the patch and step sizes.
        dx, dy = (int(s) for s in slide.level_scales[level])
        return Grid("level", level, size, size, size * dx, (step * dx, step * dy),
                    target_mpp=mpp * slide.level_scales[level][0],
                    target_magnification=level0_mag / slide.level_scales[level][0])
    if spec.mag is not None:
        if not 0 < spec.mag < math.inf:
            raise GcmlmError(f"must be a number > 0, got {spec.mag}", "--mag")
        # Magnification ratios come from the stated objective power when there is one.
        downsample = level0_mag / spec.mag
        mode, target_mpp, target_mag = "magnification", mpp * downsample, spec.mag
    else:
        if not 0 < spec.target_mpp < math.inf:
            raise GcmlmError(f"must be a number > 0, got {spec.target_mpp}", "--target-mpp")
        downsample = spec.target_mpp / mpp
        mode, target_mpp, target_mag = "mpp", spec.target_mpp, level0_mag / downsample
    if downsample < 1 - LEVEL_SNAP:
        raise GcmlmError(f"the target ({target_mpp:.3g} um/px) is finer than the slide's {mpp:.3g} um/px; "
                         "wsi-tile does not upsample", slide.path)
    snapped = [lv for lv, ds in enumerate(slide.level_downsamples) if abs(ds / downsample - 1) <= LEVEL_SNAP]
    if snapped:
        level = snapped[0]
        dx, dy = (int(round(s)) for s in slide.level_scales[level])
        ref = size * dx
        return Grid(mode, level, size, size, ref, (step * dx, step * dy), target_mpp, target_mag)
    level = slide.best_level_for_downsample(downsample)
    ref = max(1, round(size * downsample))
    step0 = max(1, round(step * downsample))
    at_level = max(1, round(ref / slide.level_downsamples[level]))
    return Grid(mode, level, at_level, size, ref, (step0, step0), target_mpp, target_mag)


def _auto_level(slide: Slide, requested: int) -> int:
    """CLAM's -1 rule: level 0 for single-level slides, else the best level for downsample 64."""
    if requested >= 0:
        if requested >= slide.level_count:
            raise GcmlmError(f"level {requested} does not exist (levels 0..{slide.level_count - 1})", slide.path)
        return requested
    return 0 if slide.level_count == 1 else slide.best_level_for_downsample(AUTO_DOWNSAMPLE)


def _qa_level(slide: Slide, requested: int) -> int:
    """CLAM's vis level, but a small slide's QA images come from a level with >= QA_MIN_SIDE px."""
    level = _auto_level(slide, requested)
    while requested < 0 and level > 0 and max(slide.level_dimensions[level]) < QA_MIN_SIDE:
        level -= 1
    return level


def read_overview(slide: Slide, level: int) -> tuple[np.ndarray, tuple[float, float], str]:
    """The whole slide at ``level``; a level too large to hold (CLAM aborts) is read at downsample 64."""
    w, h = slide.level_dimensions[level]
    if w * h <= MAX_SEG_PIXELS:
        return slide.read_level(level), slide.level_scales[level], f"level {level}"
    image, scale = slide.read_downsampled(AUTO_DOWNSAMPLE)
    log.info("%s: level %d is %dx%d px; segmenting a downsample-%d image instead", slide.slide_id, level,
             w, h, AUTO_DOWNSAMPLE)
    return image, scale, f"downsample {AUTO_DOWNSAMPLE}"


def _to_png(rgb: np.ndarray) -> bytes:
    # Fast zlib level and RLE: QA images are looked at, not archived; this is the quickest PNG here.
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE])
    if not ok:
        raise GcmlmError("could not encode a PNG")
    return data.tobytes()


def _fit(image: np.ndarray, scale: tuple[float, float]) -> tuple[np.ndarray, tuple[float, float]]:
    h, w = image.shape[:2]
    factor = QA_MAX_SIDE / max(h, w)
    if factor >= 1:
        return image, scale
    nw, nh = max(1, round(w * factor)), max(1, round(h * factor))
    return cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA), (scale[0] * w / nw, scale[1] * h / nh)


def mask_image(thumb: np.ndarray, scale, tissue: Tissue, line_thickness: int) -> np.ndarray:
    """CLAM's visWSI: tissue contours green, holes blue, line width scaled from level 0."""
    img = thumb.copy()
    inv = (1 / scale[0], 1 / scale[1])
    thickness = max(1, int(line_thickness * math.sqrt(inv[0] * inv[1])))
    contours = [np.array(c * np.asarray(inv), np.int32) for c in tissue.contours]
    holes = [np.array(h * np.asarray(inv), np.int32) for hs in tissue.holes for h in hs]
    if contours:
        cv2.drawContours(img, contours, -1, (0, 255, 0), thickness, lineType=cv2.LINE_8)
    if holes:
        cv2.drawContours(img, holes, -1, (0, 0, 255), thickness, lineType=cv2.LINE_8)
    return img


def stitch_image(thumb: np.ndarray, scale, coords: np.ndarray, ref: int) -> np.ndarray:
    """CLAM's StitchCoords: each patch's pixels on a black canvas (from the thumbnail, no per-patch reads)."""
    h, w = thumb.shape[:2]
    covered = np.zeros((h, w), np.uint8)
    if len(coords):
        x0 = np.ceil(coords[:, 0] / scale[0]).astype(int)
        y0 = np.ceil(coords[:, 1] / scale[1]).astype(int)
        dx, dy = math.ceil(ref / scale[0]), math.ceil(ref / scale[1])
        for x, y in zip(np.clip(x0, 0, w).tolist(), np.clip(y0, 0, h).tolist(), strict=True):
            covered[y : y + dy, x : x + dx] = 1
    return cv2.bitwise_and(thumb, thumb, mask=covered)


def h5_attrs(slide: Slide, grid: Grid, settings: Settings, min_tissue: float) -> dict:
    level = grid.patch_level
    w, h = slide.level_dimensions[level]
    return {
        # CLAM's create_patches_fp attrs, with its types
        "patch_size": np.int64(grid.patch_size),
        "patch_level": np.int64(level),
        "downsample": np.asarray(slide.level_scales[level], dtype=np.float64),
        "downsampled_level_dim": np.asarray((w, h), dtype=np.int64),
        "level_dim": np.asarray((w, h), dtype=np.int64),
        "name": slide.slide_id,
        # ours (TRIDENT's names where it has one)
        "patch_size_level0": np.int64(grid.patch_size_level0),
        "target_patch_size": np.int64(grid.target_patch_size),
        "target_mpp": float(grid.target_mpp),
        "target_magnification": float(grid.target_magnification),
        "level0_magnification": float(slide.magnification),
        "mpp": float(slide.mpp),
        "level0_width": np.int64(slide.dimensions[0]),
        "level0_height": np.int64(slide.dimensions[1]),
        "step_size_level0": np.asarray(grid.step_level0, dtype=np.int64),
        "overlap": np.int64(max(0, grid.patch_size_level0 - grid.step_level0[0])),
        "grid_mode": grid.mode,
        "contour_fn": settings.contour_fn,
        "min_tissue": float(min_tissue),
        "reader": slide.backend,
        # which slide these coords belong to (patch-embed checks it): file name and content fingerprint
        **identity_attrs(slide),
    }


@dataclass
class SlideResult:
    """One slide's tiling, in memory: what ``write_outputs`` writes."""

    coords: np.ndarray  # (N, 2) int64 level-0 top-left corners, in CLAM's order
    attrs: dict  # the coords dataset's attrs (CLAM's and ours)
    mask_png: bytes  # tissue contours on a thumbnail
    stitch_png: bytes  # the patches' pixels on black
    summary: dict  # <id>.json: counts, tissue area, parameters, timings

    @property
    def slide_id(self) -> str:
        return self.summary["slide_id"]


def tile_slide(slide: Slide, grid_spec: GridSpec, settings: Settings) -> SlideResult:
    """Segment ``slide``'s tissue and lay ``grid_spec``'s patches on it with CLAM's ``settings``
    (see ``resolve_settings``). Everything stays in memory; nothing is written here."""
    timings = {}
    t0 = time.perf_counter()
    grid = plan_grid(slide, grid_spec)
    min_tissue = grid_spec.min_tissue

    seg_level = _auto_level(slide, settings.seg_level)
    seg_rgb, seg_scale, seg_source = read_overview(slide, seg_level)
    timings["read_overview_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    tissue = segment_tissue(seg_rgb, seg_scale, settings.seg)
    timings["segment_s"] = time.perf_counter() - t

    t = time.perf_counter()
    coords = grid_coords(tissue.contours_seg, tissue.contours, tissue.holes_seg, tissue.holes, seg_scale,
                         grid.patch_size_level0, grid.step_level0, slide.dimensions, settings.contour_fn,
                         settings.use_padding)
    n_grid = len(coords)
    mask = None
    if min_tissue > 0 and len(coords):
        mask = tissue.mask()
        coords = coords[tissue_fraction(mask, seg_scale, coords, grid.patch_size_level0) >= min_tissue]
    # Overlapping contour boxes can put the same grid point twice; keep the first (CLAM keeps both).
    _, first = np.unique(coords, axis=0, return_index=True)
    n_duplicates = len(coords) - len(first)
    coords = coords[np.sort(first)].astype(np.int64).reshape(-1, 2)
    timings["patch_s"] = time.perf_counter() - t

    t = time.perf_counter()
    vis_level = _qa_level(slide, settings.vis_level)
    if vis_level == seg_level:
        thumb, thumb_scale = seg_rgb, seg_scale
    else:
        thumb, thumb_scale, _ = read_overview(slide, vis_level)
    thumb, thumb_scale = _fit(thumb, thumb_scale)
    mask_png = _to_png(mask_image(thumb, thumb_scale, tissue, settings.line_thickness))
    stitch_png = _to_png(stitch_image(thumb, thumb_scale, coords, grid.patch_size_level0))
    timings["qa_images_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0

    attrs = h5_attrs(slide, grid, settings, min_tissue)
    area_mm2 = tissue.area_level0_px() * slide.mpp**2 / 1e6
    summary = {
        "slide_id": slide.slide_id,
        "n_patches": len(coords),
        "n_contours": len(tissue.contours_seg),
        "contours_found": tissue.n_found,
        "contours_dropped_by_a_t": tissue.n_below_a_t,
        "n_holes": sum(len(h) for h in tissue.holes_seg),
        "tissue_area_mm2": round(area_mm2, 6),
        "patches_before_min_tissue": n_grid,
        "duplicates_dropped": n_duplicates,
        "slide": slide.describe(),
        "grid": {**asdict(grid), "step_level0": list(grid.step_level0)},
        "segmentation": {"level": seg_level, "image": seg_source, "scale": list(seg_scale),
                         "otsu_threshold": tissue.otsu_threshold, **asdict(settings.seg)},
        "patching": {"contour_fn": settings.contour_fn, "use_padding": settings.use_padding,
                     "min_tissue": min_tissue, "preset": settings.preset},
        "qa": {"vis_level": vis_level, "thumbnail_size": [thumb.shape[1], thumb.shape[0]],
               "line_thickness": settings.line_thickness},
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "gcmlm_version": __version__,
    }
    return SlideResult(coords, attrs, mask_png, stitch_png, summary)


def write_outputs(out: PathLike, result: SlideResult) -> Path:
    """``result`` into the folder ``out`` (patches/, masks/, stitches/, <id>.json), each file
    atomically; returns the coords file, ``out/patches/<id>.h5``."""
    out, sid = Path(out), result.slide_id
    coords_h5 = write_coords(out / "patches" / f"{sid}.h5", result.coords, result.attrs)
    for sub, data in (("masks", result.mask_png), ("stitches", result.stitch_png)):
        with atomic_file(out / sub / f"{sid}.png") as tmp:
            tmp.write_bytes(data)
    write_json(out / f"{sid}.json", result.summary)
    return coords_h5


def output_paths(out: PathLike, sid: str) -> list[Path]:
    """Every file ``write_outputs`` writes for slide ``sid``."""
    out = Path(out)
    return [out / "patches" / f"{sid}.h5", out / "masks" / f"{sid}.png", out / "stitches" / f"{sid}.png",
            out / f"{sid}.json"]


def check_tile_outputs(paths: Iterable[PathLike], out: PathLike, inputs: Iterable[PathLike | None] = ()) -> None:
    """Before any work: refuse repeated slide IDs and any output path of any slide that could not be
    written (``check_outputs``: a folder in a file's place, a name too long, an input in the way)."""
    paths, out = list(paths), Path(out)
    if out.exists() and not out.is_dir():
        raise GcmlmError("exists and is not a folder", out)
    seen: set[str] = set()
    files = []
    for path in paths:
        sid = slide_id_of(path)
        claim_slide_id(sid, seen, path)
        files += output_paths(out, sid)
    dirs = [out, *(out / sub for sub in ("patches", "masks", "stitches"))]
    # The folders are written into, not replaced: inputs may live in them (--out . beside the slides).
    check_outputs(dirs=dirs)  # first, so that a bad --out is named as such
    check_outputs(files=files, inputs=[*paths, *inputs])


def _no_patches_warning(result: SlideResult, settings: Settings) -> None:
    """Say why a slide has no patches: no tissue at all, or tissue that the a_t filter dropped."""
    summary = result.summary
    found, dropped = summary["contours_found"], summary["contours_dropped_by_a_t"]
    if dropped:
        hint = "" if settings.preset == "bwh_biopsy" else "; for small biopsies use --preset bwh_biopsy"
        log.warning("%s: no patches: %d tissue contours found, %d of them dropped as smaller than a_t=%g "
                    "(lower --a-t%s); writing an empty coords file", result.slide_id, found, dropped,
                    settings.seg.a_t, hint)
    else:
        log.warning("%s: no patches (%d tissue contours); writing an empty coords file", result.slide_id,
                    summary["n_contours"])


def open_slides(paths: Iterable[PathLike], mpp: float | None = None,
                mpp_table: dict[str, float] | None = None) -> list[Slide]:
    """Open every slide and check its slide ID is new and its mpp known (``mpp`` wins over
    ``mpp_table``, by slide ID, over the file's own), so a bad file stops a batch before any output."""
    slides, seen = [], set()
    for path in paths:
        slide = Slide(path, mpp=mpp, mpp_table=mpp_table)
        claim_slide_id(slide.slide_id, seen, path)
        slide.require_mpp()
        slides.append(slide)
    return slides


def tile_slides(paths: Iterable[PathLike], out: PathLike, grid_spec: GridSpec, settings: Settings,
                mpp: float | None = None, mpp_table: dict[str, float] | None = None) -> list[dict]:
    """``gcmlm wsi-tile``: tile each slide (``tile_slide``) and write its outputs under ``out``
    (``write_outputs``). ``mpp_table``: slide ID -> mpp (``read_mpp_csv``). Returns the summaries."""
    paths, out = list(paths), Path(out)
    check_tile_outputs(paths, out)
    summaries = []
    for slide in open_slides(paths, mpp, mpp_table):
        with slide:
            result = tile_slide(slide, grid_spec, settings)
        if not len(result.coords):
            _no_patches_warning(result, settings)
        write_outputs(out, result)
        log.info("%s: %d patches, %d contours, %.2f mm2 tissue, %.2f s", slide.slide_id, len(result.coords),
                 result.summary["n_contours"], result.summary["tissue_area_mm2"], result.summary["timings"]["total_s"])
        summaries.append(result.summary)
    return summaries
