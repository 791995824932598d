"""CLAM's HDF5 layouts, read and written in one place.

Patch coordinates (``patches/<slide>.h5``): dataset ``coords`` (N, 2) int64, level-0 top-left
(x, y), with attrs ``patch_size``, ``patch_level``, ``downsample``, ``downsampled_level_dim``,
``level_dim``, ``name`` (as CLAM's create_patches_fp writes them) plus ours.
Features (``h5_files/<slide>.h5``): ``features`` (N, D) float32 and ``coords`` (N, 2).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from gcmlm.common.atomic import atomic_file
from gcmlm.common.errors import GcmlmError


@dataclass
class PatchFeatures:
    features: np.ndarray  # (N, D) float32
    coords: np.ndarray  # (N, 2) int64
    attrs: dict = field(default_factory=dict)


def _open(path: str | os.PathLike) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise GcmlmError("no such file", path)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise GcmlmError(f"not a readable HDF5 file ({exc})", path) from None


def read_coords(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    with _open(path) as h5:
        if "coords" not in h5:
            raise GcmlmError("no 'coords' dataset (not a CLAM patch file)", path)
        coords = h5["coords"][:].astype(np.int64).reshape(-1, 2)
        return coords, dict(h5["coords"].attrs)


def write_coords(path: str | os.PathLike, coords: np.ndarray, attrs: dict) -> Path:
    with atomic_file(path) as tmp, h5py.File(tmp, "w") as h5:
        dset = h5.create_dataset("coords", data=np.asarray(coords, dtype=np.int64).reshape(-1, 2))
        for key, value in attrs.items():
            dset.attrs[key] = value
    return Path(path)


def read_features(path: str | os.PathLike) -> PatchFeatures:
    with _open(path) as h5:
        if "features" not in h5:
            raise GcmlmError("no 'features' dataset (not a CLAM feature file)", path)
        features = h5["features"][:].astype(np.float32)
        if features.ndim != 2:
            raise GcmlmError(f"'features' must be 2-D (N, D), found shape {features.shape}", path)
        coords = h5["coords"][:].astype(np.int64).reshape(-1, 2) if "coords" in h5 else np.zeros((0, 2), np.int64)
        if "coords" in h5 and len(coords) != len(features):
            raise GcmlmError(f"{len(features)} feature rows but {len(coords)} coords", path)
        attrs = dict(h5["features"].attrs)
        return PatchFeatures(features, coords, attrs)


def write_features(path: str | os.PathLike, feats: PatchFeatures, coord_attrs: dict | None = None) -> Path:
    with atomic_file(path) as tmp, h5py.File(tmp, "w") as h5:
        fset = h5.create_dataset("features", data=np.asarray(feats.features, dtype=np.float32))
        for key, value in feats.attrs.items():
            fset.attrs[key] = value
        cset = h5.create_dataset("coords", data=np.asarray(feats.coords, dtype=np.int64).reshape(-1, 2))
        for key, value in (coord_attrs or {}).items():
            cset.attrs[key] = value
    return Path(path)
