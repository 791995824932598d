"""A fast region reader for tiled TIFF slides (generic tiled TIFF, Aperio SVS): tifffile + imagecodecs.

OpenSlide decodes a JPEG tile into premultiplied ARGB, paints it through cairo and converts it
again for Python: about 5x the CPU of the JPEG decode itself. For the TIFF families whose pyramid
levels are plain tiled pages (OpenSlide's generic-tiff and aperio vendors), this reader decodes the
tiles that a region covers with libjpeg-turbo (imagecodecs, the same decoder OpenSlide bundles),
each tile once, keeps recently decoded tiles in a small cache, and copies them into the region.

It is only used after ``open_tile_reader`` has checked that every OpenSlide level is such a page
and that a tile decodes to exactly OpenSlide's pixels; anything else uses the shared Slide reader.
Regions are placed at whole pixels of the level (OpenSlide shifts by a sub-pixel fraction when a
level-0 coordinate is not a multiple of the level's downsample); pixels outside the image, or in
tiles the file leaves out, are white like the shared reader's.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict

import numpy as np

from gcmlm.common.errors import GcmlmError, one_line

log = logging.getLogger("gcmlm")

VENDORS = ("generic-tiff", "aperio")
# TIFF compressions whose decoding is unambiguous: none, LZW, JPEG, Adobe deflate, deflate.
COMPRESSIONS = (1, 5, 7, 8, 32946)
CACHE_BYTES = 64 * 2**20


class TiffTileReader:
    """``read_region((x, y), level, (w, h))`` -> (h, w, 3) uint8, like gcmlm.pathology.core.slide.Slide."""

    def __init__(self, path: str | os.PathLike, pages: list[int], level_downsamples: list[float]):
        self.path = os.fspath(path)
        self.pages = pages  # TIFF page index per OpenSlide level
        self.level_downsamples = list(level_downsamples)
        self._tif = None
        self._pid = None
        self._cache: OrderedDict = OrderedDict()
        self._cached_bytes = 0

    def __getstate__(self):  # each process opens its own file handle
        state = dict(self.__dict__)
        state.update(_tif=None, _pid=None, _cache=OrderedDict(), _cached_bytes=0)
        return state

    def close(self) -> None:
        if self._tif is not None and self._pid == os.getpid():
            self._tif.close()
        self._tif, self._pid = None, None
        self._cache.clear()
        self._cached_bytes = 0

    def _page(self, level: int):
        import tifffile

        if self._tif is None or self._pid != os.getpid():
            self._tif, self._pid = tifffile.TiffFile(self.path), os.getpid()
            self._cache.clear()
            self._cached_bytes = 0
        return self._tif.pages[self.pages[level]]

    def _tile(self, page, level: int, index: int) -> np.ndarray | None:
        key = (level, index)
        tile = self._cache.get(key)
        if tile is not None:
            self._cache.move_to_end(key)
            return tile
        count = page.databytecounts[index]
        if count == 0:
            return None
        fh = self._tif.filehandle
        fh.seek(page.dataoffsets[index])
        data = fh.read(count)
        segment, _, _ = page.decode(data, index, jpegtables=page.jpegtables)
        tile = segment.reshape(page.tilelength, page.tilewidth, -1)[..., :3]
        self._cache[key] = tile
        self._cached_bytes += tile.nbytes
        while self._cached_bytes > CACHE_BYTES:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.nbytes
        return tile

    def _read_tile(self, page, level: int, index: int, location: tuple[int, int]) -> np.ndarray | None:
        """``_tile``, with a tile that cannot be decoded as an error naming the slide and the region."""
        try:
            return self._tile(page, level, index)
        except Exception as exc:  # imagecodecs and tifffile raise their own types; all mean "unreadable"
            raise GcmlmError(f"cannot read region {tuple(int(v) for v in location)} level {level}: "
                             f"{one_line(exc)}", self.path) from None

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int] | int) -> np.ndarray:
        w, h = (size, size) if isinstance(size, int | np.integer) else size
        page = self._page(level)
        ds = self.level_downsamples[level]
        x0, y0 = round(location[0] / ds), round(location[1] / ds)
        tw, th = page.tilewidth, page.tilelength
        width, height = page.imagewidth, page.imagelength
        across = -(-width // tw)
        out = np.full((h, w, 3), 255, np.uint8)
        for ty in range(max(y0, 0) // th, min(y0 + h, height) // th + 1):
            for tx in range(max(x0, 0) // tw, min(x0 + w, width) // tw + 1):
                if ty * th >= height or tx * tw >= width:
                    continue
                # overlap of the tile (clipped to the image) with the region, in level pixels
                left, top = max(tx * tw, x0), max(ty * th, y0)
                right, bottom = min((tx + 1) * tw, x0 + w, width), min((ty + 1) * th, y0 + h, height)
                if right <= left or bottom <= top:
                    continue
                tile = self._read_tile(page, level, ty * across + tx, location)
                if tile is None:
                    continue
                out[top - y0:bottom - y0, left - x0:right - x0] = \
                    tile[top - ty * th:bottom - ty * th, left - tx * tw:right - tx * tw]
        return out


def open_tile_reader(slide) -> TiffTileReader | None:
    """A TiffTileReader for ``slide`` (a gcmlm Slide) when it is safe, else None."""
    if slide.backend != "openslide" or slide.meta.vendor not in VENDORS:
        return None
    try:
        import tifffile

        with tifffile.TiffFile(slide.path) as tif:
            usable = {}
            for i, page in enumerate(tif.pages):
                if (page.is_tiled and page.compression in COMPRESSIONS and page.samplesperpixel == 3
                        and page.dtype == np.uint8 and page.planarconfig == 1 and page.photometric in (2, 6)):
                    usable.setdefault((page.imagewidth, page.imagelength), i)
        pages = [usable.get(tuple(dims)) for dims in slide.level_dimensions]
        if any(p is None for p in pages):
            return None
        reader = TiffTileReader(slide.path, pages, slide.level_downsamples)
        # The decoder must give OpenSlide's pixels: compare the level-0 tile at the centre.
        page = reader._page(0)
        tw, th = min(page.tilewidth, page.imagewidth), min(page.tilelength, page.imagelength)
        x, y = page.imagewidth // 2 // tw * tw, page.imagelength // 2 // th * th
        w, h = min(tw, page.imagewidth - x), min(th, page.imagelength - y)
        same = np.array_equal(reader.read_region((x, y), 0, (w, h)), slide.read_region((x, y), 0, (w, h)))
    except Exception as exc:  # any surprise in the file means: use OpenSlide
        log.debug("%s: no direct TIFF tile reading (%s)", slide.path, exc)
        return None
    if not same:
        log.debug("%s: TIFF tiles decode differently from OpenSlide; using OpenSlide", slide.path)
        return None
    return reader
