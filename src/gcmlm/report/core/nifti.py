"""A small NIfTI-1 reader (numpy and gzip only), so run-report needs no imaging library.

It reads what run-report needs from a label map: the voxel array and the voxel size. Scaling
(scl_slope) is ignored: label maps hold integer labels.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gcmlm.common.errors import GcmlmError, one_line

HEADER_SIZE = 348
# NIfTI datatype code -> numpy type
DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4", 1024: "i8", 1280: "u8"}


@dataclass(frozen=True)
class LabelMap:
    array: np.ndarray  # (x, y, z, ...) as stored
    voxel_mm3: float  # volume of one voxel


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _byte_order(header: bytes, path: Path) -> str:
    for order in ("<", ">"):
        if struct.unpack(order + "i", header[:4])[0] == HEADER_SIZE:
            return order
    raise GcmlmError("not a NIfTI-1 file (header size is not 348)", path)


def read_label_map(path: str | os.PathLike) -> LabelMap:
    """The voxels and voxel volume of a NIfTI-1 file (.nii or .nii.gz)."""
    path = Path(path)
    try:
        with _open(path) as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise GcmlmError(f"not a readable NIfTI file ({one_line(exc)})", path) from None
    if len(data) < HEADER_SIZE:
        raise GcmlmError("not a NIfTI-1 file (shorter than its header)", path)
    order = _byte_order(data, path)
    dims = struct.unpack(order + "8h", data[40:56])
    datatype = struct.unpack(order + "h", data[70:72])[0]
    pixdim = struct.unpack(order + "8f", data[76:108])
    offset = int(struct.unpack(order + "f", data[108:112])[0])
    ndim = dims[0]
    if not 1 <= ndim <= 7 or datatype not in DTYPES:
        raise GcmlmError(f"unsupported NIfTI layout (dims {ndim}, datatype {datatype})", path)
    shape = tuple(int(d) for d in dims[1:ndim + 1])
    dtype = np.dtype(DTYPES[datatype]).newbyteorder(order)
    count = int(np.prod(shape))
    if len(data) < offset + count * dtype.itemsize:
        raise GcmlmError("NIfTI file is truncated", path)
    array = np.frombuffer(data, dtype=dtype, count=count, offset=max(offset, HEADER_SIZE)).reshape(shape, order="F")
    voxel = float(np.prod([abs(p) for p in pixdim[1:min(ndim, 3) + 1]]))
    return LabelMap(array, voxel)
