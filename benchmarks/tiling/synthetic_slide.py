"""Large synthetic H&E-like slides for the tiling benchmark (about 50k x 40k px, like a 40x resection).

A pyramidal JPEG-compressed tiled TIFF (levels 1, 4, 16, 64; mpp 0.25 in the resolution tags, so
OpenSlide reads it as a generic TIFF with mpp) with a few tissue pieces, holes and specks drawn
from a seeded low-resolution mask. Tiles are written through tifffile's tile iterator, so the full
image never sits in memory. Used only when gcmlm.demo.core.wsi.write_synthetic_slide is not available.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import tifffile

TILE = 256
MASK_DS = 16  # the mask is drawn at 1/16 of level 0; tile edges are upsampled from it


def tissue_mask(width: int, height: int, seed: int) -> np.ndarray:
    """uint8 0/1 mask at 1/MASK_DS: blobby tissue pieces with holes and a few specks."""
    rng = np.random.default_rng(seed)
    w, h = width // MASK_DS, height // MASK_DS
    mask = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(3, 6)):
        cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
        axes = (int(rng.uniform(0.06, 0.18) * w), int(rng.uniform(0.06, 0.18) * h))
        cv2.ellipse(mask, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    noise = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), sigmaX=w / 60)
    noise = (noise - noise.min()) / (np.ptp(noise) + 1e-9)
    mask &= (noise > 0.35).astype(np.uint8)
    for _ in range(rng.integers(4, 9)):  # holes (vessels, tears)
        cx, cy = rng.integers(0, w), rng.integers(0, h)
        cv2.circle(mask, (int(cx), int(cy)), int(rng.integers(8, 30)), 0, -1)
    for _ in range(20):  # specks CLAM's a_t should drop
        cv2.circle(mask, (int(rng.integers(0, w)), int(rng.integers(0, h))), 2, 1, -1)
    return mask


def texture_tiles(n: int, seed: int) -> np.ndarray:
    """n RGB tiles of pink/purple H&E-like noise."""
    rng = np.random.default_rng(seed + 1)
    base = np.array([[215, 140, 185], [170, 90, 160], [230, 170, 200]], np.float32)
    tiles = np.empty((n, TILE, TILE, 3), np.uint8)
    for i in range(n):
        blend = cv2.GaussianBlur(rng.random((TILE, TILE)).astype(np.float32), (0, 0), 6)
        blend = (blend - blend.min()) / (np.ptp(blend) + 1e-9)
        color = base[0] * (1 - blend[..., None]) + base[1] * blend[..., None]
        nuclei = cv2.GaussianBlur((rng.random((TILE, TILE)) > 0.995).astype(np.float32), (0, 0), 2) * 40
        color -= nuclei[..., None] * np.array([1.2, 1.6, 0.6], np.float32)
        color += rng.normal(0, 6, color.shape)
        tiles[i] = np.clip(color, 0, 255).astype(np.uint8)
    return tiles


def level_tiles(mask: np.ndarray, textures: np.ndarray, width: int, height: int, ds: int):
    """Tiles of one pyramid level, row by row; background tiles are one shared white array."""
    lw, lh = -(-width // ds), -(-height // ds)
    white = np.full((TILE, TILE, 3), 245, np.uint8)
    rng = np.random.default_rng(ds)
    for ty in range(0, lh, TILE):
        for tx in range(0, lw, TILE):
            # the mask pixels under this tile (mask is at 1/MASK_DS of level 0)
            f = ds / MASK_DS
            x0, y0 = int(tx * f), int(ty * f)
            x1, y1 = int(np.ceil((tx + TILE) * f)), int(np.ceil((ty + TILE) * f))
            sub = mask[y0:y1, x0:x1]
            if not sub.any():
                yield white
                continue
            tex = textures[rng.integers(len(textures))]
            if sub.all() and sub.shape == (y1 - y0, x1 - x0):
                yield tex
                continue
            full = np.zeros((y1 - y0, x1 - x0), np.uint8)
            full[: sub.shape[0], : sub.shape[1]] = sub
            up = cv2.resize(full * 255, (TILE, TILE) if f <= 1 else (TILE, TILE), interpolation=cv2.INTER_LINEAR)
            yield np.where(up[..., None] > 127, tex, white)


def write_slide(path: str | Path, width: int = 50_000, height: int = 40_000, seed: int = 0,
                mpp: float = 0.25, quality: int = 80) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = tissue_mask(width, height, seed)
    textures = texture_tiles(16, seed)
    res = (1e4 / mpp, 1e4 / mpp)
    tmp = path.with_suffix(".tmp.tiff")
    with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
        for i, ds in enumerate((1, 4, 16, 64)):
            lw, lh = -(-width // ds), -(-height // ds)
            tif.write(level_tiles(mask, textures, width, height, ds), shape=(lh, lw, 3), dtype=np.uint8,
                      tile=(TILE, TILE), photometric="rgb", compression="jpeg", compressionargs={"level": quality},
                      resolution=(res[0] / ds, res[1] / ds), resolutionunit="CENTIMETER",
                      subfiletype=0 if i == 0 else 1, metadata=None)
    tmp.replace(path)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out")
    parser.add_argument("--width", type=int, default=50_000)
    parser.add_argument("--height", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=0)
    a = parser.parse_args()
    print(write_slide(a.out, a.width, a.height, a.seed))
