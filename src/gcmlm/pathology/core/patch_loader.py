"""The embedding data path: patches from a slide to normalised tensors, fast enough for a GPU.

Where CLAM reads, converts and transforms one patch at a time (Whole_Slide_Bag_FP), this loader
- groups neighbouring patches into blocks and reads each block with one region read, so every
  JPEG tile under a block is decoded once and the per-call overhead is paid once per block;
- returns whole batches as one uint8 NHWC tensor (no per-patch PIL work, 4x less data to move
  than float32);
- resizes and normalises whole batches on the target device (``prepare_batch``);
- reads in parallel worker processes, each with its own slide handle, with prefetching
  (torch DataLoader), so the model does not wait on I/O.

Batches are formed in a fixed spatial order that does not depend on the number of workers, and
each batch carries the indices of its patches in the coords file, so the caller scatters the
features back into the input order.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from gcmlm.common.errors import GcmlmError
from gcmlm.pathology.core.encoders import Transform
from gcmlm.pathology.core.slide import Slide
from gcmlm.pathology.core.tiff_tiles import TiffTileReader, open_tile_reader

log = logging.getLogger("gcmlm")

BLOCK_PX = 2048  # side of a block read, in pixels of the read level
MIN_FILL = 0.5  # read a block at once when patches cover at least this much of its bounding box


@dataclass(frozen=True)
class PatchPlan:
    """Where and how big to read: ``read_size`` px at ``level``, whose downsample is ``downsample``.

    ``patch_size`` is the patch size the grid was made for; when the grid was made at a target
    mpp (or magnification) the read size can differ from it and patches are resized.
    """

    level: int
    read_size: int
    downsample: float
    patch_size: int
    size_level0: float

    def describe(self) -> dict:
        return {"read_level": self.level, "read_size": self.read_size, "patch_size": self.patch_size,
                "patch_size_level0": self.size_level0}


def plan_reads(coord_attrs: dict, level_downsamples: list[float], coords_path: str | os.PathLike) -> PatchPlan:
    """Read level and size from a coords file's attrs.

    CLAM and wsi-tile: ``patch_size`` pixels at ``patch_level`` (wsi-tile adds
    ``target_patch_size``, the size a grid made at a target mpp is resized to). TRIDENT-style files
    without ``patch_level`` give ``patch_size`` (output) and ``patch_size_level0``: read from the
    best level for that downsample.
    """
    if "patch_size" not in coord_attrs:
        raise GcmlmError("coords have no 'patch_size' attribute (not a CLAM patch file)", coords_path)
    patch_size = int(coord_attrs["patch_size"])
    if "patch_level" in coord_attrs:
        level = int(coord_attrs["patch_level"])
        if not 0 <= level < len(level_downsamples):
            raise GcmlmError(f"patch_level {level} does not exist in the slide ({len(level_downsamples)} levels)",
                             coords_path)
        read_size = patch_size
        out_size = int(coord_attrs.get("target_patch_size", patch_size))
    elif "patch_size_level0" in coord_attrs:
        wanted = float(coord_attrs["patch_size_level0"]) / patch_size
        level = max([i for i, d in enumerate(level_downsamples) if d <= wanted * (1 + 1e-3)] or [0])
        read_size = max(1, round(float(coord_attrs["patch_size_level0"]) / level_downsamples[level]))
        out_size = patch_size
    else:
        raise GcmlmError("coords have neither 'patch_level' nor 'patch_size_level0'", coords_path)
    if min(read_size, out_size) < 1:
        raise GcmlmError("patch sizes in the coords attrs must be positive", coords_path)
    downsample = float(level_downsamples[level])
    return PatchPlan(level, read_size, downsample, out_size, read_size * downsample)


def spatial_order(coords: np.ndarray, plan: PatchPlan) -> np.ndarray:
    """Indices sorted by block, then row, then column: neighbours end up in the same batch."""
    if len(coords) == 0:
        return np.zeros(0, dtype=np.int64)
    block_l0 = max(BLOCK_PX, plan.read_size) * plan.downsample
    bx, by = coords[:, 0] // block_l0, coords[:, 1] // block_l0
    return np.lexsort((coords[:, 0], coords[:, 1], bx, by)).astype(np.int64)


def make_batches(coords: np.ndarray, plan: PatchPlan, batch_size: int) -> list[np.ndarray]:
    order = spatial_order(coords, plan)
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def read_patches(slide, coords: np.ndarray, plan: PatchPlan) -> np.ndarray:
    """(n, S, S, 3) uint8 patches for level-0 ``coords``, read block by block."""
    size, ds = plan.read_size, plan.downsample
    out = np.empty((len(coords), size, size, 3), dtype=np.uint8)
    block_l0 = max(BLOCK_PX, size) * ds
    keys = (coords // block_l0).astype(np.int64)
    _, group_of = np.unique(keys, axis=0, return_inverse=True)
    for g in np.unique(group_of):
        members = np.flatnonzero(group_of.reshape(-1) == g)
        xy = coords[members]
        x0, y0 = xy.min(axis=0)
        # Offsets in read-level pixels, to the nearest pixel (exact when coords step by whole pixels).
        offs = np.rint((xy - (x0, y0)) / ds).astype(np.int64)
        width, height = offs.max(axis=0) + size
        if len(members) > 1 and len(members) * size * size >= MIN_FILL * width * height:
            region = slide.read_region((int(x0), int(y0)), plan.level, (int(width), int(height)))
            for row, (ox, oy) in zip(members, offs, strict=True):
                out[row] = region[oy:oy + size, ox:ox + size]
        else:
            for row, (x, y) in zip(members, xy, strict=True):
                out[row] = slide.read_region((int(x), int(y)), plan.level, (size, size))
    return out


class PatchBatches(Dataset):
    """Item i: (indices into the coords file, uint8 (n, S, S, 3) patches). Readers pickle without
    their file handles, so every DataLoader worker opens its own.

    Tiled TIFF slides (generic TIFF, SVS) are read by decoding their tiles directly
    (gcmlm.pathology.core.tiff_tiles) once that is checked to give OpenSlide's pixels; every other
    slide goes through the shared Slide reader. ``direct_tiles=False`` forces the latter.
    """

    def __init__(self, slide: Slide, coords: np.ndarray, plan: PatchPlan, batch_size: int,
                 direct_tiles: bool = True):
        self.slide = (open_tile_reader(slide) if direct_tiles else None) or slide
        self.coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
        self.plan = plan
        self.batches = make_batches(self.coords, plan, batch_size)
        self.order = list(range(len(self.batches)))

    def split_for_workers(self, num_workers: int) -> None:
        """DataLoader hands item i to worker i % num_workers: map items so that each worker walks
        its own contiguous stretch of the slide, keeping its tile cache warm. The batches (and so
        the features) stay the same; only the order they arrive in changes."""
        n, w = len(self.batches), max(1, num_workers)
        q, r = divmod(n, w)  # the first r lanes get one batch more, so the last round is lanes 0..r-1
        starts = np.cumsum([0] + [q + (k < r) for k in range(w)])
        self.order = [int(starts[k] + j) for j in range(q + 1) for k in range(w) if starts[k] + j < starts[k + 1]]

    def __len__(self) -> int:
        return len(self.batches)

    def close(self) -> None:
        """Close this process's file handle (workers' handles close with their processes)."""
        self.slide.close()

    @property
    def reader(self) -> str:
        return "tiff-tiles" if isinstance(self.slide, TiffTileReader) else self.slide.backend

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor | GcmlmError]:
        """The batch's indices and patches; a region that cannot be read gives its GcmlmError in
        place of the patches, for the main process to raise (DataLoader would re-raise an error
        from a worker as a multi-line traceback text)."""
        idx = self.batches[self.order[i]]
        try:
            patches = read_patches(self.slide, self.coords[idx], self.plan)
        except GcmlmError as exc:
            return torch.from_numpy(idx), exc
        return torch.from_numpy(idx), torch.from_numpy(patches)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # readers decode; the main process owns the compute threads


def fit_shared_memory(num_workers: int, prefetch: int, batch_bytes: int, shm: str = "/dev/shm") -> tuple[int, int]:
    """Workers hand batches over in shared memory (/dev/shm), which containers keep small (Docker
    and Podman: 64 MB) and which, when full, kills the workers with a bus error. Trim prefetching,
    then workers, until what can be in flight fits in half of the free space."""
    try:
        budget = shutil.disk_usage(shm).free // 2
    except OSError:
        return num_workers, prefetch
    wanted = (num_workers, prefetch)
    while num_workers > 0 and num_workers * prefetch * batch_bytes > budget:
        if prefetch > 1:
            prefetch -= 1
        else:
            num_workers -= 1
    if (num_workers, prefetch) != wanted:
        log.warning("only %d MB free in %s: %d reader workers with %d batches prefetched each instead of %d x %d "
                    "(give the container more shared memory, e.g. docker --shm-size 8g)", budget * 2 // 2**20,
                    shm, num_workers, prefetch, *wanted)
    return num_workers, prefetch


def _short_socket_dir(limit: int = 60) -> None:
    """Worker processes pass tensors through Unix sockets under TMPDIR. Toil's per-job TMPDIRs can
    push those paths past the 107-byte AF_UNIX limit, and then the workers hang instead of failing:
    use /tmp for them when TMPDIR is long."""
    if len(tempfile.gettempdir()) > limit and os.access("/tmp", os.W_OK):
        log.debug("TMPDIR %s is too long for Unix sockets; worker sockets go to /tmp", tempfile.gettempdir())
        tempfile.tempdir = "/tmp"


def patch_loader(dataset: PatchBatches, num_workers: int, pin_memory: bool = False,
                 prefetch_factor: int = 4) -> DataLoader:
    if num_workers > 0:
        _short_socket_dir()
        batch_bytes = max((len(b) for b in dataset.batches), default=0) * dataset.plan.read_size ** 2 * 3
        num_workers, prefetch_factor = fit_shared_memory(num_workers, prefetch_factor, batch_bytes)
    dataset.split_for_workers(num_workers)
    kwargs = {"num_workers": num_workers, "pin_memory": pin_memory, "batch_size": None, "shuffle": False}
    if num_workers > 0:
        kwargs.update(prefetch_factor=prefetch_factor, worker_init_fn=_worker_init, persistent_workers=False)
    return DataLoader(dataset, **kwargs)


def prepare_batch(patches: torch.Tensor, transform: Transform, device: torch.device | str,
                  size: int) -> torch.Tensor:
    """uint8 NHWC -> normalised float32 NCHW (channels-last) of ``size`` px, computed on ``device``.

    One antialiased resize from the read size, PIL's filter: on CPU in uint8 (torch's PIL-exact
    SIMD path, ~10x faster than float), on GPU in float (uint8 resizing is CPU-only).
    """
    x = patches.to(device, non_blocking=True).permute(0, 3, 1, 2)  # a channels-last view, no copy
    resize = tuple(x.shape[-2:]) != (size, size)
    if resize and x.device.type == "cpu":
        x = F.interpolate(x, size=(size, size), mode=transform.interpolation, align_corners=False, antialias=True)
        resize = False
    x = x.float()
    if resize:
        x = F.interpolate(x, size=(size, size), mode=transform.interpolation, align_corners=False, antialias=True)
        if transform.interpolation == "bicubic":
            x = x.clamp_(0.0, 255.0)
    mean = torch.tensor(transform.mean, device=x.device).view(1, 3, 1, 1) * 255.0
    scale = 1.0 / (torch.tensor(transform.std, device=x.device).view(1, 3, 1, 1) * 255.0)
    return x.sub_(mean).mul_(scale).contiguous(memory_format=torch.channels_last)
