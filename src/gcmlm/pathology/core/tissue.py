"""Tissue segmentation compatible with CLAM's ``WholeSlideImage.segmentTissue``.

Steps, as CLAM does them: HSV saturation -> median blur (``mthresh``) -> fixed (``sthresh``) or Otsu
threshold -> morphological closing (``close`` x ``close`` ones) -> contours with one level of holes
(RETR_CCOMP) -> keep a tissue contour if its area minus all its holes' areas is > ``a_t``; keep
its ``max_n_holes`` largest holes whose area is > ``a_h``. ``a_t`` and ``a_h`` are in CLAM's
units: multiples of a 512 x 512 level-0 reference patch, i.e. ``int(512**2 / (sx * sy))`` pixels
of the segmentation image whose per-axis scale to level 0 is (sx, sy). Contours are scaled to
level 0 as CLAM does (multiply by the scale, truncate to int32), so patch tests agree with CLAM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

REF_PATCH_SIZE = 512  # CLAM's reference patch for a_t / a_h


@dataclass
class SegParams:
    """Segmentation parameters; the defaults are CLAM's (create_patches_fp.py), which
    ``gcmlm.pathology.core.presets.CLAM_DEFAULTS`` takes from here."""

    sthresh: int = 8
    sthresh_up: int = 255
    mthresh: int = 7
    close: int = 4
    use_otsu: bool = False
    a_t: float = 100.0
    a_h: float = 16.0
    max_n_holes: int = 8
    keep_ids: list[int] = field(default_factory=list)
    exclude_ids: list[int] = field(default_factory=list)


@dataclass
class Tissue:
    """Tissue contours and their holes, at the segmentation image and at level 0."""

    scale: tuple[float, float]  # segmentation image -> level 0, per axis
    shape: tuple[int, int]  # (h, w) of the segmentation image
    contours_seg: list[np.ndarray]  # (K, 1, 2) int32, segmentation-image pixels
    holes_seg: list[list[np.ndarray]]
    otsu_threshold: float | None = None
    n_found: int = 0  # tissue contours the threshold found, before the a_t area filter
    n_below_a_t: int = 0  # of those, dropped as smaller than a_t

    @property
    def contours(self) -> list[np.ndarray]:
        """Level-0 contours (CLAM's ``contours_tissue``)."""
        return [scale_contour(c, self.scale) for c in self.contours_seg]

    @property
    def holes(self) -> list[list[np.ndarray]]:
        """Level-0 holes per contour (CLAM's ``holes_tissue``)."""
        return [[scale_contour(h, self.scale) for h in holes] for holes in self.holes_seg]

    def mask(self) -> np.ndarray:
        """uint8 mask of the segmentation image: 1 inside kept contours and outside kept holes."""
        mask = np.zeros(self.shape, np.uint8)
        if self.contours_seg:
            cv2.drawContours(mask, self.contours_seg, -1, 1, thickness=cv2.FILLED)
        holes = [h for hs in self.holes_seg for h in hs]
        if holes:
            cv2.drawContours(mask, holes, -1, 0, thickness=cv2.FILLED)
        return mask

    def area_level0_px(self) -> float:
        """Tissue area (contours minus kept holes) in level-0 pixels squared."""
        seg_area = sum(cv2.contourArea(c) - sum(cv2.contourArea(h) for h in hs)
                       for c, hs in zip(self.contours_seg, self.holes_seg, strict=True))
        return float(seg_area) * self.scale[0] * self.scale[1]


def scale_contour(contour: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    return np.array(contour * np.asarray(scale), dtype=np.int32)


def tissue_binary(rgb: np.ndarray, params: SegParams) -> tuple[np.ndarray, float | None]:
    """Thresholded, closed saturation image (0/255) and the Otsu threshold if one was used."""
    saturation = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[:, :, 1]
    blurred = cv2.medianBlur(saturation, int(params.mthresh))
    if params.use_otsu:
        threshold, binary = cv2.threshold(blurred, 0, params.sthresh_up, cv2.THRESH_OTSU + cv2.THRESH_BINARY)
    else:
        threshold = None
        _, binary = cv2.threshold(blurred, params.sthresh, params.sthresh_up, cv2.THRESH_BINARY)
    if params.close > 0:
        kernel = np.ones((int(params.close), int(params.close)), np.uint8)
        binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, kernel)
    return binary, threshold


def _filter_contours(contours, hierarchy, a_t: float, a_h: float, max_n_holes: int):
    """CLAM's area filter: foreground = contours without parent; holes = their children."""
    parents = hierarchy[:, 1]
    kept, kept_holes = [], []
    for idx in np.flatnonzero(parents == -1):
        holes = np.flatnonzero(parents == idx)
        area = cv2.contourArea(contours[idx]) - sum(cv2.contourArea(contours[h]) for h in holes)
        if area == 0 or not area > a_t:
            continue
        kept.append(contours[idx])
        largest = sorted((contours[h] for h in holes), key=cv2.contourArea, reverse=True)[:max_n_holes]
        kept_holes.append([h for h in largest if cv2.contourArea(h) > a_h])
    return kept, kept_holes


def segment_tissue(rgb: np.ndarray, scale: tuple[float, float], params: SegParams) -> Tissue:
    """Segment ``rgb`` (a whole slide at per-axis ``scale`` to level 0)."""
    binary, otsu = tissue_binary(rgb, params)
    ref_area = int(REF_PATCH_SIZE**2 / (scale[0] * scale[1]))
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if hierarchy is None or not len(contours):
        kept, holes, found = [], [], 0
    else:
        found = int((hierarchy[0][:, 3] == -1).sum())  # contours without a parent: tissue, not holes
        kept, holes = _filter_contours(list(contours), hierarchy[0][:, 2:], params.a_t * ref_area,
                                       params.a_h * ref_area, int(params.max_n_holes))
    ids = set(params.keep_ids) if params.keep_ids else set(range(len(kept)))
    ids = sorted(i for i in ids - set(params.exclude_ids) if 0 <= i < len(kept))
    return Tissue(scale=tuple(scale), shape=binary.shape[:2], contours_seg=[kept[i] for i in ids],
                  holes_seg=[holes[i] for i in ids], otsu_threshold=otsu, n_found=found,
                  n_below_a_t=found - len(kept))
