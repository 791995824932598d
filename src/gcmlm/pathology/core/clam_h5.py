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
from gcmlm.common.errors import GcmlmError, one_line, require_file


@dataclass
class PatchFeatures:
    features: np.ndarray  # (N, D) float32
    coords: np.ndarray  # (N, 2) int64
    attrs: dict = field(default_factory=dict)


def _open(path: str | os.PathLike) -> h5py.File:
    path = require_file(path)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise GcmlmError(f"not a readable HDF5 file ({one_line(exc)})", path) from None


def _dataset(h5: h5py.File, name: str, path: str | os.PathLike) -> np.ndarray:
    """The whole dataset ``name`` as an array (a group or a scalar under that name is refused)."""
    node = h5[name]
    raw = node[()] if isinstance(node, h5py.Dataset) else None
    if not isinstance(raw, np.ndarray) or raw.ndim == 0:
        raise GcmlmError(f"'{name}' is not an array dataset", path)
    return raw


def _coords(h5: h5py.File, path: str | os.PathLike) -> np.ndarray:
    """(N, 2) whole-number coords as int64; any other shape or dtype is refused, never reshaped."""
    raw = _dataset(h5, "coords", path)
    if raw.size == 0 and raw.ndim == 1:  # an empty 1-D dataset: zero patches
        return np.zeros((0, 2), np.int64)
    if raw.ndim != 2 or raw.shape[1] != 2:
        raise GcmlmError(f"'coords' must have shape (N, 2), found {raw.shape}", path)
    if raw.dtype.kind in "iu":
        return raw.astype(np.int64)
    if raw.dtype.kind == "f":
        if np.isfinite(raw).all() and (raw == np.round(raw)).all():
            return raw.astype(np.int64)
        raise GcmlmError("'coords' must be whole pixel numbers; found fractional, NaN or infinite values", path)
    raise GcmlmError(f"'coords' must be integers, found dtype {raw.dtype}", path)


def read_coords(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    with _open(path) as h5:
        if "coords" not in h5:
            raise GcmlmError("no 'coords' dataset (not a CLAM patch file)", path)
        return _coords(h5, path), dict(h5["coords"].attrs)


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
        features = _dataset(h5, "features", path)
        if features.dtype.kind not in "fiu":
            raise GcmlmError(f"'features' must be numbers, found dtype {features.dtype}", path)
        features = features.astype(np.float32)
        if features.size == 0 and features.ndim == 1:  # an empty 1-D dataset: zero patches
            features = features.reshape(0, 0)
        if features.ndim != 2:
            raise GcmlmError(f"'features' must be 2-D (N, D), found shape {features.shape}", path)
        coords = _coords(h5, path) if "coords" in h5 else np.zeros((0, 2), np.int64)
        if "coords" in h5 and len(coords) != len(features):
            raise GcmlmError(f"{len(features)} feature rows but {len(coords)} coords", path)
        attrs = dict(h5["features"].attrs)
        return PatchFeatures(features, coords, attrs)


def read_feature_header(path: str | os.PathLike) -> tuple[dict, np.ndarray, int]:
    """A feature file's ``features`` attrs (bytes decoded to str), its coords and its number of
    feature rows, without reading the features. A missing dataset is a KeyError."""
    with _open(path) as h5:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5["features"].attrs.items()}
        return attrs, _coords(h5, path), h5["features"].shape[0]


def write_features(path: str | os.PathLike, feats: PatchFeatures, coord_attrs: dict | None = None) -> Path:
    with atomic_file(path) as tmp, h5py.File(tmp, "w") as h5:
        fset = h5.create_dataset("features", data=np.asarray(feats.features, dtype=np.float32))
        for key, value in feats.attrs.items():
            fset.attrs[key] = value
        cset = h5.create_dataset("coords", data=np.asarray(feats.coords, dtype=np.int64).reshape(-1, 2))
        for key, value in (coord_attrs or {}).items():
            cset.attrs[key] = value
    return Path(path)


def refuse_incomplete(attrs: dict, path: str | os.PathLike) -> None:
    """patch-embed marks its feature files ``complete``; one marked incomplete (an interrupted or
    failed run) holds only part of the slide. Files without the mark (CLAM's, TRIDENT's) pass."""
    if "complete" in attrs and not bool(attrs["complete"]):
        raise GcmlmError("feature file is marked incomplete (complete=False): an unfinished patch-embed run; "
                         "embed the slide again", path)
