"""wsi-tile: segment tissue in a whole-slide image and write CLAM-layout patch coordinates.

Per slide, in ``--out``: ``patches/<id>.h5`` (CLAM's coords file, plus our attrs),
``masks/<id>.png`` (tissue contours green, holes blue, on a thumbnail), ``stitches/<id>.png``
(the patches' pixels on black, like CLAM's stitch) and ``<id>.json`` (counts, tissue area,
parameters, timings). Everything is computed first and then written atomically, so a bad slide
leaves nothing behind. See tools/wsi-tile/README.md for the differences from CLAM.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from gcmlm import __version__
from gcmlm.common.atomic import atomic_file, write_json
from gcmlm.common.errors import GcmlmError
from gcmlm.pathology.core.clam_h5 import write_coords
from gcmlm.pathology.core.grid import grid_coords, tissue_fraction
from gcmlm.pathology.core.presets import CLAM_DEFAULTS, CONTOUR_FNS, load_preset
from gcmlm.pathology.core.slide import Slide, read_mpp_csv
from gcmlm.pathology.core.tissue import SegParams, Tissue, segment_tissue

log = logging.getLogger("gcmlm")

MAX_SEG_PIXELS = 1e8  # CLAM refuses to segment a level larger than this
AUTO_DOWNSAMPLE = 64  # CLAM's seg/vis level: the best level for downsample 64
LEVEL_SNAP = 0.02  # a target downsample within 2 % of a pyramid level reads that level unresized
QA_MAX_SIDE = 2048
QA_MIN_SIDE = 768  # an automatic QA level is never smaller than this on its long side, where a finer level exists


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"'{text}' is not true or false")


def _ids(text: str) -> list[int]:
    return [] if text.lower() == "none" else [int(v) for v in text.split(",") if v]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    io = parser.add_argument_group("input and output")
    io.add_argument("--slide", required=True, nargs="+", metavar="PATH", help="whole-slide image(s)")
    io.add_argument("--out", required=True, metavar="DIR", help="output folder (patches/, masks/, stitches/, <id>.json)")
    io.add_argument("--mpp", type=float, metavar="X", help="level-0 microns per pixel (overrides the file's)")
    io.add_argument("--mpp-csv", metavar="CSV", help="per-slide mpp: columns slide_id (or slide) and mpp")

    grid = parser.add_argument_group("patch grid (default: CLAM's, 256 px at pyramid level 0)")
    grid.add_argument("--patch-size", type=int, default=256, metavar="PX", help="patch size in output pixels")
    grid.add_argument("--step-size", type=int, metavar="PX", help="grid step in output pixels (default: patch size)")
    scale = grid.add_mutually_exclusive_group()
    scale.add_argument("--mag", type=float, metavar="X", help="target magnification, e.g. 20 (read the best level and resize)")
    scale.add_argument("--target-mpp", type=float, metavar="X", help="target microns per pixel, e.g. 0.5")
    scale.add_argument("--patch-level", type=int, metavar="N", help="patch at pyramid level N, as CLAM does")
    grid.add_argument("--min-tissue", type=float, default=0.0, metavar="FRACTION",
                      help="drop patches whose tissue-mask coverage is below this (0 = CLAM's behaviour)")

    clam = parser.add_argument_group("CLAM parameters (preset values, overridden by flags)")
    clam.add_argument("--preset", metavar="NAME|CSV", help="bwh_biopsy, bwh_resection, tcga, or a CLAM preset CSV")
    clam.add_argument("--seg-level", type=int, help="pyramid level to segment (-1: best for downsample 64)")
    clam.add_argument("--sthresh", type=int, help="saturation threshold (default 8)")
    clam.add_argument("--mthresh", type=int, help="median blur kernel, odd (default 7)")
    clam.add_argument("--close", type=int, help="closing kernel size, 0 = none (default 4)")
    clam.add_argument("--use-otsu", type=_bool, metavar="BOOL", help="Otsu threshold instead of --sthresh")
    clam.add_argument("--a-t", type=float, help="min tissue area, in 512x512 level-0 patches (default 100)")
    clam.add_argument("--a-h", type=float, help="min hole area, same unit (default 16)")
    clam.add_argument("--max-n-holes", type=int, help="holes kept per contour (default 8)")
    clam.add_argument("--contour-fn", choices=CONTOUR_FNS, help="patch-in-tissue test (default four_pt)")
    clam.add_argument("--use-padding", type=_bool, metavar="BOOL", help="allow patches past the slide edge (default true)")
    clam.add_argument("--keep-ids", type=_ids, metavar="I,J", help="keep only these contour indices")
    clam.add_argument("--exclude-ids", type=_ids, metavar="I,J", help="drop these contour indices")
    clam.add_argument("--vis-level", type=int, help="level of the QA images (-1: best for downsample 64)")
    clam.add_argument("--line-thickness", type=int, help="contour line width at level 0 (default 250)")


@dataclass
class Settings:
    """CLAM parameters after defaults < preset < flags."""

    seg_level: int
    seg: SegParams
    vis_level: int
    line_thickness: int
    use_padding: bool
    contour_fn: str
    preset: str | None


def resolve_settings(args: argparse.Namespace) -> Settings:
    values = dict(CLAM_DEFAULTS)
    if args.preset:
        values.update(load_preset(args.preset))
    for key in CLAM_DEFAULTS:
        flag = getattr(args, key, None)
        if flag is not None:
            values[key] = flag
    if values["mthresh"] < 1 or values["mthresh"] % 2 == 0:
        raise GcmlmError(f"mthresh must be an odd number >= 1 (median blur kernel), got {values['mthresh']}")
    seg = SegParams(sthresh=values["sthresh"], mthresh=values["mthresh"], close=values["close"],
                    use_otsu=values["use_otsu"], a_t=values["a_t"], a_h=values["a_h"],
                    max_n_holes=values["max_n_holes"], keep_ids=list(values["keep_ids"]),
                    exclude_ids=list(values["exclude_ids"]))
    return Settings(seg_level=values["seg_level"], seg=seg, vis_level=values["vis_level"],
                    line_thickness=values["line_thickness"], use_padding=values["use_padding"],
                    contour_fn=values["contour_fn"], preset=args.preset)


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


def plan_grid(slide: Slide, args: argparse.Namespace) -> Grid:
    mpp = slide.require_mpp()
    level0_mag = slide.magnification
    size = args.patch_size
    step = args.step_size or size
    if size < 1 or step < 1:
        raise GcmlmError(f"--patch-size and --step-size must be >= 1 (got {size}, {step})")
    if args.mag is None and args.target_mpp is None:
        level = args.patch_level or 0
        if not 0 <= level < slide.level_count:
            raise GcmlmError(f"--patch-level {level} does not exist (levels 0..{slide.level_count - 1})", slide.path)
        # CLAM truncates the level's per-axis downsample to int for the patch and step sizes.
        dx, dy = (int(s) for s in slide.level_scales[level])
        return Grid("level", level, size, size, size * dx, (step * dx, step * dy),
                    target_mpp=mpp * slide.level_scales[level][0],
                    target_magnification=level0_mag / slide.level_scales[level][0])
    if args.mag is not None:
        if args.mag <= 0:
            raise GcmlmError(f"--mag must be > 0, got {args.mag}")
        # Magnification ratios come from the stated objective power when there is one.
        downsample = level0_mag / args.mag
        mode, target_mpp, target_mag = "magnification", mpp * downsample, args.mag
    else:
        if args.target_mpp <= 0:
            raise GcmlmError(f"--target-mpp must be > 0, got {args.target_mpp}")
        downsample = args.target_mpp / mpp
        mode, target_mpp, target_mag = "mpp", args.target_mpp, level0_mag / downsample
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
    }


@dataclass
class SlideResult:
    coords: np.ndarray
    attrs: dict
    mask_png: bytes
    stitch_png: bytes
    summary: dict


def tile_slide(slide: Slide, args: argparse.Namespace, settings: Settings) -> SlideResult:
    """Everything for one slide, in memory; nothing is written here."""
    timings = {}
    t0 = time.perf_counter()
    grid = plan_grid(slide, args)

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
    if args.min_tissue > 0 and len(coords):
        mask = tissue.mask()
        coords = coords[tissue_fraction(mask, seg_scale, coords, grid.patch_size_level0) >= args.min_tissue]
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

    attrs = h5_attrs(slide, grid, settings, args.min_tissue)
    area_mm2 = tissue.area_level0_px() * slide.mpp**2 / 1e6
    summary = {
        "slide_id": slide.slide_id,
        "n_patches": len(coords),
        "n_contours": len(tissue.contours_seg),
        "n_holes": sum(len(h) for h in tissue.holes_seg),
        "tissue_area_mm2": round(area_mm2, 6),
        "patches_before_min_tissue": n_grid,
        "duplicates_dropped": n_duplicates,
        "slide": slide.describe(),
        "grid": {**asdict(grid), "step_level0": list(grid.step_level0)},
        "segmentation": {"level": seg_level, "image": seg_source, "scale": list(seg_scale),
                         "otsu_threshold": tissue.otsu_threshold, **asdict(settings.seg)},
        "patching": {"contour_fn": settings.contour_fn, "use_padding": settings.use_padding,
                     "min_tissue": args.min_tissue, "preset": settings.preset},
        "qa": {"vis_level": vis_level, "thumbnail_size": [thumb.shape[1], thumb.shape[0]],
               "line_thickness": settings.line_thickness},
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "gcmlm_version": __version__,
    }
    return SlideResult(coords, attrs, mask_png, stitch_png, summary)


def write_outputs(out: Path, slide_id: str, result: SlideResult) -> None:
    write_coords(out / "patches" / f"{slide_id}.h5", result.coords, result.attrs)
    for sub, data in (("masks", result.mask_png), ("stitches", result.stitch_png)):
        with atomic_file(out / sub / f"{slide_id}.png") as tmp:
            tmp.write_bytes(data)
    write_json(out / f"{slide_id}.json", result.summary)


def run(args: argparse.Namespace) -> int:
    settings = resolve_settings(args)
    mpp_table = read_mpp_csv(args.mpp_csv) if args.mpp_csv else None
    if args.min_tissue < 0 or args.min_tissue > 1:
        raise GcmlmError(f"--min-tissue must be within [0, 1], got {args.min_tissue}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise GcmlmError("exists and is not a folder", out)
    # Open every slide and check its mpp first: a bad file in a batch stops it before any output.
    slides, seen = [], set()
    for path in args.slide:
        slide = Slide(path, mpp=args.mpp, mpp_table=mpp_table)
        if slide.slide_id in seen:
            raise GcmlmError(f"slide ID '{slide.slide_id}' appears twice in the inputs", path)
        seen.add(slide.slide_id)
        slide.require_mpp()
        slides.append(slide)
    for slide in slides:
        with slide:
            result = tile_slide(slide, args, settings)
        if not len(result.coords):
            log.warning("%s: no patches (%d tissue contours); writing an empty coords file",
                        slide.slide_id, result.summary["n_contours"])
        write_outputs(out, slide.slide_id, result)
        log.info("%s: %d patches, %d contours, %.2f mm2 tissue, %.2f s", slide.slide_id, len(result.coords),
                 result.summary["n_contours"], result.summary["tissue_area_mm2"], result.summary["timings"]["total_s"])
    return 0
