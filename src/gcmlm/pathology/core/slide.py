"""Open any whole-slide image through one small reader interface.

OpenSlide is tried first (SVS, NDPI, MRXS, SCN, generic tiled TIFF, DICOM, ...); files it refuses
fall back to large-image (untiled TIFF, OME-TIFF, plain images). A file neither can decode is a
GcmlmError naming the file and both reasons.

The interface every pathology stage uses (wsi-tile segments and grids, patch-embed reads patches):

- ``level_dimensions``  [(w, h)] per pyramid level, level 0 = full resolution
- ``level_downsamples`` [float] per level (OpenSlide's values)
- ``level_scales``      [(sx, sy)] per level, level-0 size / level size per axis (CLAM's
  ``WholeSlideImage.level_downsamples``; CLAM scales contours and areas with these)
- ``mpp``               level-0 microns per pixel, or None; ``mpp_source`` says where it came from
- ``read_region((x, y), level, (w, h))`` -> (h, w, 3) uint8 RGB; (x, y) are level-0 pixels, the
  size is in pixels of ``level``, exactly like OpenSlide. Transparent or out-of-slide pixels are
  white (OpenSlide returns them transparent; CLAM's ``.convert('RGB')`` makes them black).
- ``read_level(level)``, ``read_downsampled(downsample)``: a whole level / a thumbnail at any
  downsample (best level read, then area-resized).
- ``best_level_for_downsample(ds)``: OpenSlide's rule (the highest level whose downsample <= ds).

Worker processes: a Slide is cheap to pickle (path and resolved metadata only) and opens its own
file handle lazily in each process (also after fork), so pass the Slide object itself to
DataLoader workers or a multiprocessing pool; never share one handle between processes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gcmlm.common.errors import GcmlmError, one_line, require_file
from gcmlm.common.manifest import slide_id as slide_id_of

log = logging.getLogger("gcmlm")

# Microscope scans lie between ~0.1 and ~16 um/px (1.25x). A value outside is a default resolution
# tag (e.g. 72 dpi = 352.8 um/px on a generic TIFF), not a measurement.
PLAUSIBLE_MPP = (0.01, 20.0)
WHOLE_LEVEL_PIXELS = 64e6  # read_downsampled reads a level this size at once, larger ones in strips
STRIP_PIXELS = 32e6


@dataclass
class SlideMeta:
    """What both backends report; resolved once, carried to worker processes by pickling."""

    backend: str  # "openslide" | "large_image"
    level_dimensions: list[tuple[int, int]]
    level_downsamples: list[float]
    metadata_mpp: float | None = None  # as the file states it (before plausibility checks)
    objective_power: float | None = None
    vendor: str | None = None
    properties: dict = field(default_factory=dict)


def _rgba_to_rgb_on_white(rgba: np.ndarray) -> np.ndarray:
    """Composite non-premultiplied RGBA over white; cheap when everything is opaque."""
    rgb = rgba[..., :3]
    alpha = rgba[..., 3]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    a = alpha[..., None].astype(np.uint16)
    out = (rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _as_rgb(array: np.ndarray) -> np.ndarray:
    """Any uint8 image array (gray, gray+alpha, RGB, RGBA) -> RGB."""
    if array.dtype != np.uint8:
        scale = 255.0 / max(float(np.iinfo(array.dtype).max) if array.dtype.kind in "ui" else 1.0, 1.0)
        array = np.clip(array.astype(np.float32) * scale, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = array[..., None]
    bands = array.shape[2]
    if bands == 1:
        return np.repeat(array, 3, axis=2)
    if bands == 2:
        gray = np.repeat(array[..., :1], 3, axis=2)
        return _rgba_to_rgb_on_white(np.concatenate([gray, array[..., 1:2]], axis=2))
    if bands == 4:
        return _rgba_to_rgb_on_white(array)
    return np.ascontiguousarray(array[..., :3])


class _OpenSlideBackend:
    name = "openslide"

    def __init__(self, path: Path):
        import openslide

        self.handle = openslide.OpenSlide(str(path))

    @staticmethod
    def meta(path: Path) -> SlideMeta:
        import openslide

        with openslide.OpenSlide(str(path)) as osr:
            props = dict(osr.properties)
            mpp = props.get(openslide.PROPERTY_NAME_MPP_X)
            power = props.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER)
            return SlideMeta(
                backend="openslide",
                level_dimensions=[tuple(map(int, d)) for d in osr.level_dimensions],
                level_downsamples=[float(d) for d in osr.level_downsamples],
                metadata_mpp=float(mpp) if mpp else None,
                objective_power=float(power) if power else None,
                vendor=props.get(openslide.PROPERTY_NAME_VENDOR),
                properties=props,
            )

    def read_region(self, x: int, y: int, level: int, w: int, h: int) -> np.ndarray:
        rgba = np.asarray(self.handle.read_region((int(x), int(y)), int(level), (int(w), int(h))))
        return _rgba_to_rgb_on_white(rgba)

    def close(self) -> None:
        self.handle.close()


class _LargeImageBackend:
    """large-image tile source; its levels are mapped onto power-of-two downsamples."""

    name = "large_image"

    def __init__(self, path: Path):
        import large_image

        self.source = large_image.open(str(path))
        self.size = (int(self.source.sizeX), int(self.source.sizeY))

    @staticmethod
    def meta(path: Path) -> SlideMeta:
        import large_image

        source = large_image.open(str(path))
        info = source.getMetadata()
        width, height, levels = int(info["sizeX"]), int(info["sizeY"]), max(int(info.get("levels") or 1), 1)
        dims, downs = [], []
        for k in range(levels):
            dims.append((max(1, math.ceil(width / 2**k)), max(1, math.ceil(height / 2**k))))
            downs.append(float(2**k))
        mm_x = info.get("mm_x")
        power = info.get("magnification")
        return SlideMeta(
            backend="large_image",
            level_dimensions=dims,
            level_downsamples=downs,
            metadata_mpp=float(mm_x) * 1000.0 if mm_x else _tiff_mpp(path),
            objective_power=float(power) if power else None,
            vendor=type(source).__name__,
        )

    def read_region(self, x: int, y: int, level: int, w: int, h: int) -> np.ndarray:
        import large_image

        ds = 2.0**level
        width, height = self.size
        # large-image clips regions to the image; the part inside is read, the rest stays white.
        left, top = max(int(x), 0), max(int(y), 0)
        right, bottom = min(int(x + w * ds), width), min(int(y + h * ds), height)
        out = np.full((h, w, 3), 255, np.uint8)
        if right <= left or bottom <= top:
            return out
        ow, oh = max(1, round((right - left) / ds)), max(1, round((bottom - top) / ds))
        array, _ = self.source.getRegion(
            region={"left": left, "top": top, "right": right, "bottom": bottom, "units": "base_pixels"},
            output={"maxWidth": ow, "maxHeight": oh},
            format=large_image.constants.TILE_FORMAT_NUMPY,
        )
        rgb = _as_rgb(np.asarray(array))
        if rgb.shape[:2] != (oh, ow):
            import cv2

            rgb = cv2.resize(rgb, (ow, oh), interpolation=cv2.INTER_AREA)
        ox, oy = round((left - x) / ds), round((top - y) / ds)
        ph, pw = min(oh, h - oy), min(ow, w - ox)
        out[oy : oy + ph, ox : ox + pw] = rgb[:ph, :pw]
        return out

    def close(self) -> None:
        self.source = None


def _tiff_mpp(path: Path) -> float | None:
    """mpp of a TIFF that large-image reads without one: OME PhysicalSizeX, else a cm/um resolution tag."""
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            if tif.is_ome and tif.ome_metadata:
                import xml.etree.ElementTree as ET

                for node in ET.fromstring(tif.ome_metadata).iter():
                    if node.tag.endswith("}Pixels") and node.get("PhysicalSizeX"):
                        unit = node.get("PhysicalSizeXUnit", "µm")
                        factor = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3}.get(unit)
                        return float(node.get("PhysicalSizeX")) * factor if factor else None
            page = tif.pages[0]
            unit = page.tags.get("ResolutionUnit")
            res = page.tags.get("XResolution")
            if res and unit and int(unit.value) == 3:  # pixels per centimetre
                num, den = res.value
                return 1e4 * den / num if num else None
    except Exception:  # not a TIFF, or unreadable tags: no mpp, the caller asks for --mpp
        return None
    return None


_BACKENDS = {"openslide": _OpenSlideBackend, "large_image": _LargeImageBackend}


def truncated_tiles(path: Path) -> tuple[int, int, str] | None:
    """For a TIFF whose tile (or strip) data runs past the end of the file: (unreadable, total,
    where the first one lies, as "level-0 region x=..., y=..., W x H px"); None for a complete
    TIFF or a file that is not a TIFF. Cheap: reads only the tile tables."""
    try:
        import tifffile

        size = path.stat().st_size
        with warnings.catch_warnings(), _quiet_reader_logs():  # tifffile logs what the error below says
            warnings.simplefilter("ignore")
            with tifffile.TiffFile(path) as tif:
                width0 = tif.pages[0].imagewidth
                bad, total, first = 0, 0, None
                for page in tif.pages:
                    ends = np.asarray(page.dataoffsets, np.int64) + np.asarray(page.databytecounts, np.int64)
                    past = np.flatnonzero(ends > size)
                    bad, total = bad + len(past), total + len(ends)
                    if len(past) and first is None:
                        first = _tile_region(page, int(past[0]), width0)
    except Exception:  # not a TIFF (or no tile tables): nothing to say here
        return None
    return (bad, total, first) if bad else None


def _tile_region(page, index: int, width0: int) -> str:
    """Where tile (or strip) ``index`` of a TIFF ``page`` lies, in level-0 pixels."""
    scale = width0 / max(page.imagewidth, 1)
    tw = page.tilewidth if page.is_tiled else page.imagewidth
    th = page.tilelength if page.is_tiled else page.rowsperstrip
    across = max(1, -(-page.imagewidth // tw))
    x, y = index % across * tw, index // across * th
    return (f"level-0 region x={round(x * scale)}, y={round(y * scale)}, "
            f"{round(tw * scale)} x {round(th * scale)} px")


def _refuse_truncated(path: Path) -> None:
    """The fallback reader paints tiles it cannot read (data past the end of a truncated file) as
    blank pixels without a word; such a slide would give silently wrong patches, so refuse it."""
    found = truncated_tiles(path)
    if found:
        bad, total, first = found
        raise GcmlmError(f"truncated file: {bad} of {total} tiles lie past its end and cannot be read "
                         f"(the first: {first})", path)


# Readers' own loggers: they chat on first use (large-image: "Cannot use memcached for caching") and
# describe what they cannot read, which _probe reports in its own one line.
READER_LOGGERS = ("large_image", "tifftools", "tifffile")


@contextlib.contextmanager
def _quiet_reader_logs() -> Iterator[None]:
    with contextlib.suppress(ImportError):
        import large_image  # noqa: F401  (it sets its logger's level on import: import first, then quieten)
    loggers = [logging.getLogger(name) for name in READER_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _probe(path: Path) -> SlideMeta:
    """Metadata from the first backend that can open *and decode* the file."""
    reasons = []
    for name, backend in _BACKENDS.items():
        if name == "large_image":
            _refuse_truncated(path)
        try:
            quiet = _quiet_reader_logs() if name == "large_image" else contextlib.nullcontext()
            with warnings.catch_warnings(), quiet:
                warnings.simplefilter("ignore")
                meta = backend.meta(path)
                probe = backend(path)
                # large-image opens some files it cannot decode; read the smallest level to be sure.
                w, h = meta.level_dimensions[-1]
                probe.read_region(0, 0, len(meta.level_dimensions) - 1, min(w, 64), min(h, 64))
                probe.close()
            return meta
        except GcmlmError:
            raise
        except Exception as exc:  # each library raises its own types; all mean "cannot read"
            reasons.append(f"{name}: {one_line(exc)}")
    raise GcmlmError("not a readable slide (" + "; ".join(reasons) + ")", path)


def read_mpp_csv(path: str | os.PathLike) -> dict[str, float]:
    """Per-slide mpp table: columns ``slide_id`` (or ``slide``: a file name) and ``mpp``."""
    import csv

    path = require_file(path, "mpp CSV")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # a spreadsheet's BOM is not part of a name
            rows = list(csv.DictReader(f))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise GcmlmError(f"not a readable CSV ({exc})", path) from None
    columns = set(rows[0]) if rows else set()
    key = "slide_id" if "slide_id" in columns else "slide" if "slide" in columns else None
    if key is None or "mpp" not in columns:
        raise GcmlmError("an mpp CSV needs columns slide_id (or slide) and mpp", path)
    out = {}
    for sid, value in ((r[key] or "", r["mpp"] or "") for r in rows):
        try:
            mpp = float(value)
        except ValueError:
            raise GcmlmError(f"mpp '{value}' of slide '{sid}' is not a number", path) from None
        if not PLAUSIBLE_MPP[0] < mpp <= PLAUSIBLE_MPP[1]:
            raise GcmlmError(f"mpp {mpp} of slide '{sid}' is outside {PLAUSIBLE_MPP} um/px", path)
        out[slide_id_of(sid)] = mpp
    return out


def claim_slide_id(sid: str, seen: set[str], path: str | os.PathLike) -> None:
    """Add ``sid`` to the IDs ``seen`` so far in a batch; an ID seen before is an error, since
    outputs are named after slide IDs."""
    if sid in seen:
        raise GcmlmError(f"slide ID '{sid}' appears twice in the inputs", path)
    seen.add(sid)


class Slide:
    """A whole-slide image behind the reader interface described in the module docstring."""

    def __init__(self, path: str | os.PathLike, mpp: float | None = None,
                 mpp_table: dict[str, float] | None = None, _meta: SlideMeta | None = None):
        self.path = require_file(path, "slide file")
        self.slide_id = slide_id_of(self.path)
        self.meta = _meta or _probe(self.path)
        self.backend = self.meta.backend
        self.level_dimensions = list(self.meta.level_dimensions)
        self.level_downsamples = list(self.meta.level_downsamples)
        w0, h0 = self.level_dimensions[0]
        self.level_scales = [(w0 / w, h0 / h) for w, h in self.level_dimensions]
        self._mpp_override, self._mpp_table = mpp, mpp_table
        self.mpp, self.mpp_source = self._resolve_mpp(mpp, mpp_table)
        self._handle = None
        self._pid = None

    # -- metadata -------------------------------------------------------------------------------
    def _resolve_mpp(self, override, table) -> tuple[float | None, str | None]:
        if override is not None:
            if not PLAUSIBLE_MPP[0] < override <= PLAUSIBLE_MPP[1]:
                raise GcmlmError(f"{override} is outside {PLAUSIBLE_MPP} um/px", "--mpp")
            return float(override), "flag"
        if table and self.slide_id in table:
            return table[self.slide_id], "csv"
        found = self.meta.metadata_mpp
        if found is not None and PLAUSIBLE_MPP[0] < found <= PLAUSIBLE_MPP[1]:
            return found, "metadata"
        if found is not None:
            log.debug("%s: metadata mpp %.4g is implausible (a default resolution tag); ignored", self.path, found)
        return None, None

    @property
    def dimensions(self) -> tuple[int, int]:
        return self.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    @property
    def magnification(self) -> float | None:
        """Level-0 magnification: the objective power stated in the file, else 10 / mpp."""
        if self.meta.objective_power:
            return self.meta.objective_power
        return round(10.0 / self.mpp, 2) if self.mpp else None

    def require_mpp(self) -> float:
        if self.mpp is None:
            stated = self.meta.metadata_mpp
            why = (f"its resolution tag ({stated:.4g} um/px) is not a microscope resolution"
                   if stated else "it states no microns per pixel")
            raise GcmlmError(f"{why}; give --mpp or a per-slide --mpp-csv", self.path)
        return self.mpp

    def best_level_for_downsample(self, downsample: float) -> int:
        """OpenSlide's rule: the highest level whose downsample is <= the requested one."""
        best = 0
        for level, ds in enumerate(self.level_downsamples):
            if ds <= downsample:
                best = level
        return best

    def describe(self) -> dict:
        return {
            "path": str(self.path), "reader": self.backend, "vendor": self.meta.vendor,
            "level_dimensions": [list(d) for d in self.level_dimensions],
            "level_downsamples": self.level_downsamples,
            "mpp": self.mpp, "mpp_source": self.mpp_source, "metadata_mpp": self.meta.metadata_mpp,
            "objective_power": self.meta.objective_power, "magnification": self.magnification,
        }

    # -- pixels ---------------------------------------------------------------------------------
    def _backend(self):
        pid = os.getpid()
        if self._handle is None or self._pid != pid:  # first use, or a forked worker
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._handle = _BACKENDS[self.backend](self.path)
            self._pid = pid
        return self._handle

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int] | int) -> np.ndarray:
        """(h, w, 3) uint8 RGB of ``size`` level pixels whose top-left is level-0 ``location``."""
        w, h = (size, size) if isinstance(size, int | np.integer) else size
        try:
            return self._backend().read_region(location[0], location[1], level, int(w), int(h))
        except Exception as exc:
            raise GcmlmError(f"cannot read region {tuple(location)} level {level}: {one_line(exc)}",
                             self.path) from None

    def read_level(self, level: int) -> np.ndarray:
        return self.read_region((0, 0), level, self.level_dimensions[level])

    def read_downsampled(self, downsample: float) -> tuple[np.ndarray, tuple[float, float]]:
        """A whole-slide image at ~``downsample``; returns it and its per-axis scale to level 0."""
        import cv2

        level = self.best_level_for_downsample(downsample)
        w0, h0 = self.dimensions
        w, h = max(1, round(w0 / downsample)), max(1, round(h0 / downsample))
        lw, lh = self.level_dimensions[level]
        if lw * lh <= WHOLE_LEVEL_PIXELS:
            image = self.read_level(level)
            if (w, h) != (lw, lh):
                image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
            return image, (w0 / w, h0 / h)
        # A big level (e.g. an unpyramided 50k x 40k TIFF) is read in strips of rows, so memory stays small.
        image = np.empty((h, w, 3), np.uint8)
        factor = lh / h  # level rows per output row
        rows = max(1, int(STRIP_PIXELS / lw / factor))
        level_ds = self.level_downsamples[level]
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            y0, y1 = round(r0 * factor), min(lh, max(round(r1 * factor), round(r0 * factor) + 1))
            strip = self.read_region((0, round(y0 * level_ds)), level, (lw, y1 - y0))
            image[r0:r1] = cv2.resize(strip, (w, r1 - r0), interpolation=cv2.INTER_AREA)
        return image, (w0 / w, h0 / h)

    def close(self) -> None:
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Pickle path and metadata only: each process opens its own handle on first read.
    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_handle=None, _pid=None)
        return state


def open_slide(path: str | os.PathLike, mpp: float | None = None,
               mpp_csv: str | os.PathLike | None = None) -> Slide:
    """Open a slide; ``mpp`` (flag) wins over ``mpp_csv`` (per slide) over the file's metadata."""
    table = read_mpp_csv(mpp_csv) if mpp_csv else None
    return Slide(path, mpp=mpp, mpp_table=table)
