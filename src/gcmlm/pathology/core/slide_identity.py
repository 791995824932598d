"""Which slide a coords file was made for, recorded by wsi-tile and checked by patch-embed.

wsi-tile writes into the coords attrs the slide's file name, its level-0 size and a cheap content
fingerprint: OpenSlide's ``openslide.quickhash-1`` property when OpenSlide reads the file, else a
SHA-256 of the file's size and its first and last MiB (both independent of the file's name, path
and mtime, so a copied or renamed slide still matches). patch-embed refuses coords whose
fingerprint or level-0 size is another slide's, and coords outside the slide's bounds. Coords
without these attrs (CLAM's own files, older wsi-tile output) are checked for bounds only.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from gcmlm.common.errors import GcmlmError
from gcmlm.pathology.core.slide import Slide

QUICKHASH = "openslide.quickhash-1"
EDGE_BYTES = 1 << 20
# attrs names in the coords dataset
FILE_ATTR, FINGERPRINT_ATTR = "slide_file", "slide_fingerprint"
WIDTH_ATTR, HEIGHT_ATTR = "level0_width", "level0_height"


def fingerprint(slide: Slide) -> str:
    """``quickhash-1:<hex>`` (OpenSlide's) or ``edges-sha256:<hex>`` (size, first and last MiB)."""
    quick = slide.meta.properties.get(QUICKHASH)
    if quick:
        return f"quickhash-1:{quick}"
    digest = hashlib.sha256()
    size = slide.path.stat().st_size
    digest.update(str(size).encode())
    with open(slide.path, "rb") as fh:
        digest.update(fh.read(EDGE_BYTES))
        fh.seek(max(0, size - EDGE_BYTES))
        digest.update(fh.read(EDGE_BYTES))
    return f"edges-sha256:{digest.hexdigest()}"


def identity_attrs(slide: Slide) -> dict:
    """The coords attrs that tie a coords file to ``slide``."""
    return {FILE_ATTR: slide.path.name, FINGERPRINT_ATTR: fingerprint(slide)}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def check_coords_fit_slide(coords: np.ndarray, attrs: dict, slide: Slide, coords_path: str | os.PathLike) -> None:
    """Refuse coords recorded for another slide, or lying outside ``slide``."""
    width, height = slide.dimensions
    if FINGERPRINT_ATTR in attrs and _text(attrs[FINGERPRINT_ATTR]) != fingerprint(slide):
        made_for = _text(attrs.get(FILE_ATTR, "another file"))
        raise GcmlmError(f"coords were made for another slide ({made_for}; its content fingerprint differs from "
                         f"{slide.path.name}'s)", coords_path)
    if WIDTH_ATTR in attrs and HEIGHT_ATTR in attrs:
        recorded = (int(attrs[WIDTH_ATTR]), int(attrs[HEIGHT_ATTR]))
        if recorded != (width, height):
            raise GcmlmError(f"coords were made for a slide of {recorded[0]} x {recorded[1]} px; "
                             f"{slide.path.name} is {width} x {height} px", coords_path)
    if len(coords):
        outside = (coords[:, 0] < 0) | (coords[:, 1] < 0) | (coords[:, 0] >= width) | (coords[:, 1] >= height)
        if outside.any():
            x, y = coords[np.flatnonzero(outside)[0]]
            raise GcmlmError(f"{int(outside.sum())} of {len(coords)} coords lie outside the slide "
                             f"({width} x {height} px at level 0), e.g. ({x}, {y})", coords_path)
