"""patch-embed: a slide and its CLAM patch coordinates -> one feature vector per patch.

Outputs follow CLAM's extract_features_fp: ``h5_files/<slide_id>.h5`` (``features`` (N, D)
float32, ``coords`` (N, 2) in the input order, with the input coords' attrs) and
``pt_files/<slide_id>.pt`` (the features as a torch tensor). The .pt is written first and the .h5
last, each atomically, so a complete .h5 means a complete output; a rerun skips a slide whose .h5
records the same encoder, checkpoint, precision and coords.

From Python: ``embed_slide(slide_path, coords_h5, encoder, out, ...)`` is the whole command.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gcmlm import __version__
from gcmlm.common.atomic import atomic_file, check_outputs
from gcmlm.common.errors import GcmlmError, require_file
from gcmlm.common.manifest import slide_id
from gcmlm.common.progress import Progress
from gcmlm.pathology.core.clam_h5 import PatchFeatures, read_coords, read_feature_header, write_features
from gcmlm.pathology.core.encoders import RANDOM, Encoder, build_encoder, sha256_file
from gcmlm.pathology.core.patch_loader import PatchBatches, PatchPlan, patch_loader, plan_reads, prepare_batch
from gcmlm.pathology.core.slide import open_slide
from gcmlm.pathology.core.slide_identity import check_coords_fit_slide

log = logging.getLogger("gcmlm")

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEVICES = ("auto", "cpu", "cuda")
# Defaults of embed_slide, which the command line shows and uses too.
BATCH_SIZE = 256
DEVICE = "auto"  # CUDA when PyTorch sees a GPU, else CPU
PRECISION = "auto"  # bf16 (or fp16) autocast on GPU, fp32 on CPU
NUM_WORKERS = min(8, max(0, (os.cpu_count() or 1) - 1))  # reader processes

PathLike = str | os.PathLike


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--slide", required=True, metavar="PATH", help="whole-slide image (any format wsi-tile reads)")
    parser.add_argument("--coords", required=True, metavar="H5", help="CLAM patch file (patches/<slide_id>.h5)")
    parser.add_argument("--out", required=True, metavar="DIR", help="writes DIR/h5_files/ and DIR/pt_files/")
    parser.add_argument("--encoder", required=True, metavar="NAME",
                        help="uni_v1, resnet50_trunc or any timm model name")
    parser.add_argument("--checkpoint", metavar="PATH",
                        help="local weights (.bin/.pth/.pt state_dict or .safetensors), loaded strictly")
    parser.add_argument("--allow-random-weights", action="store_true",
                        help="embed with untrained weights when no checkpoint is given (tests only; recorded)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, metavar="N", help="patches per forward pass")
    parser.add_argument("--device", choices=DEVICES, default=DEVICE,
                        help="auto: the GPU when there is one, else the CPU")
    parser.add_argument("--precision", choices=(PRECISION, *PRECISIONS), default=PRECISION,
                        help="auto: bf16 (or fp16) autocast on GPU, fp32 on CPU")
    parser.add_argument("--num-workers", type=int, default=NUM_WORKERS, metavar="N",
                        help="reader processes, each with its own slide handle (default: min(8, CPUs - 1); 0: read in "
                             "the main process)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU compute threads (default: torch's); fixed per run for determinism")
    parser.add_argument("--force", action="store_true", help="recompute even if a complete output exists")


def run(args: argparse.Namespace) -> int:
    result = embed_slide(args.slide, args.coords, args.encoder, args.out, checkpoint=args.checkpoint,
                         allow_random_weights=args.allow_random_weights, batch_size=args.batch_size,
                         device=args.device, precision=args.precision, num_workers=args.num_workers,
                         threads=args.threads, force=args.force)
    if not result.skipped:
        print(f"{result.slide_id}\t{result.n_patches} patches\t{result.patches_per_second:.1f} patches/s")
    return 0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GcmlmError("--device cuda, but PyTorch sees no CUDA device (use --device auto or cpu)")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    if device.type == "cpu":
        if name in ("bf16", "fp16"):
            raise GcmlmError(f"--precision {name} is for GPUs; CPU runs use fp32 (deterministic)")
        return "fp32"
    if name == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return name


def configure_torch(device: torch.device, threads: int | None = None) -> None:
    """Process-wide torch settings for embedding: deterministic CPU kernels on ``threads`` threads
    (None: torch's default), or cuDNN autotuning on a GPU."""
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
        if threads:
            torch.set_num_threads(threads)
    else:
        torch.backends.cudnn.benchmark = True


def output_paths(out: PathLike, sid: str) -> tuple[Path, Path]:
    out = Path(out)
    return out / "h5_files" / f"{sid}.h5", out / "pt_files" / f"{sid}.pt"


def is_complete(h5_path: Path, pt_path: Path, coords: np.ndarray, expect: dict) -> bool:
    """True when an earlier run left a full output for the same coords, encoder and weights."""
    if not (h5_path.is_file() and pt_path.is_file()):
        return False
    try:
        recorded, done_coords, rows = read_feature_header(h5_path)
    except (GcmlmError, OSError, KeyError):
        return False
    return bool(recorded.get("complete")) and np.array_equal(done_coords, coords) and rows == len(coords) and all(
        str(recorded.get(k)) == str(v) for k, v in expect.items())


@dataclass
class EmbedResult:
    """Where ``embed_slide`` wrote one slide's features, and how fast."""

    slide_id: str
    h5_path: Path  # h5_files/<slide_id>.h5: features, coords
    pt_path: Path  # pt_files/<slide_id>.pt: the features as a torch tensor
    n_patches: int
    seconds: float  # embedding time (0 when skipped)
    skipped: bool  # an earlier run's complete output for the same inputs was kept

    @property
    def patches_per_second(self) -> float:
        return self.n_patches / self.seconds if self.seconds > 0 else 0.0


def _encoder_identity(encoder: str | Encoder, checkpoint: PathLike | None,
                      allow_random_weights: bool) -> tuple[str, str]:
    """(name, checkpoint digest or RANDOM) that an output records, known before any model is built."""
    if isinstance(encoder, Encoder):
        if checkpoint is not None:
            raise TypeError("checkpoint goes with an encoder name; a built Encoder has its weights already")
        return encoder.name, encoder.checkpoint_sha256
    if checkpoint is None and not allow_random_weights:
        build_encoder(encoder)  # raises the clear "needs --checkpoint" error before any work
    digest = sha256_file(checkpoint) if checkpoint and Path(checkpoint).is_file() else RANDOM
    return encoder, digest


def embed_slide(slide_path: PathLike, coords_h5: PathLike, encoder: str | Encoder, out: PathLike, *,
                checkpoint: PathLike | None = None, allow_random_weights: bool = False,
                batch_size: int = BATCH_SIZE, device: str = DEVICE, precision: str = PRECISION,
                num_workers: int = NUM_WORKERS, threads: int | None = None, force: bool = False) -> EmbedResult:
    """``gcmlm patch-embed``: one feature vector per patch of ``coords_h5`` (a CLAM patch file, e.g.
    wsi-tile's patches/<slide_id>.h5) into ``out``/h5_files/<slide_id>.h5 and ``out``/pt_files/<slide_id>.pt.

    ``encoder``: a name (uni_v1, resnet50_trunc or a timm model) built with the local weights
    ``checkpoint`` (or random weights, if ``allow_random_weights``), or an Encoder already built
    with ``build_encoder`` (to embed many slides with one model). ``device``: one of DEVICES;
    ``precision``: ``auto`` or one of PRECISIONS. ``num_workers`` reader processes (0: read in this
    process), ``batch_size`` patches per batch, ``threads`` CPU compute threads (see
    ``configure_torch``). A complete output for the same coords, encoder, weights and precision is
    kept unless ``force``.
    """
    slide_path = require_file(slide_path, "slide file")
    sid = slide_id(slide_path)
    h5_path, pt_path = output_paths(out, sid)
    dirs = [out, h5_path.parent, pt_path.parent]
    # The folders are written into, not replaced: inputs may live in them (--out . beside the slide).
    check_outputs(dirs=dirs)  # first, so that a bad --out is named as such
    check_outputs(files=[h5_path, pt_path], inputs=[slide_path, coords_h5, checkpoint])
    require_file(coords_h5, "coords file")
    if checkpoint is not None:
        require_file(checkpoint, "checkpoint file")
    for option, value, low in (("--batch-size", batch_size, 1), ("--num-workers", num_workers, 0),
                               ("--threads", threads, 1)):
        if value is not None and value < low:
            raise GcmlmError(f"must be >= {low}, got {value}", option)
    coords, coord_attrs = read_coords(coords_h5)
    slide = open_slide(slide_path)  # a bad slide, or coords made for another slide, fail before any model
    check_coords_fit_slide(coords, coord_attrs, slide, coords_h5)
    torch_device = resolve_device(device)
    precision = resolve_precision(precision, torch_device)
    configure_torch(torch_device, threads)

    name, digest = _encoder_identity(encoder, checkpoint, allow_random_weights)
    expect = {"encoder": name, "checkpoint_sha256": digest, "precision": precision}
    if not force and is_complete(h5_path, pt_path, coords, expect):
        log.info("%s: complete output for encoder %s already in %s; skipped", sid, name, h5_path)
        return EmbedResult(sid, h5_path, pt_path, len(coords), 0.0, skipped=True)

    plan = plan_reads(coord_attrs, slide.level_downsamples, coords_h5)
    if not isinstance(encoder, Encoder):
        encoder = build_encoder(name, checkpoint, allow_random_weights,
                                checkpoint_sha256=None if digest == RANDOM else digest)
    dataset = PatchBatches(slide, coords, plan, batch_size)
    log.info("%s: %d patches, %d px at level %d (downsample %.3g, %s reader) -> %s %s on %s (%s), %d workers",
             sid, len(coords), plan.read_size, plan.level, plan.downsample, dataset.reader, encoder.name,
             encoder.transform.input_size or plan.read_size, torch_device, precision, num_workers)
    start = time.perf_counter()
    try:
        features, _ = embed_batches(encoder, dataset, torch_device, precision, num_workers)
    finally:
        dataset.close()
        slide.close()
    elapsed = time.perf_counter() - start
    write_outputs(h5_path, pt_path, features, coords, coord_attrs, encoder, precision, plan, dataset.reader)
    result = EmbedResult(sid, h5_path, pt_path, len(coords), elapsed, skipped=False)
    log.info("%s: %d patches in %.1f s: %.1f patches/s -> %s", sid, len(coords), elapsed,
             result.patches_per_second, h5_path)
    return result


def embed_batches(encoder: Encoder, dataset: PatchBatches, device: torch.device, precision: str,
                  num_workers: int) -> tuple[np.ndarray, Progress]:
    """Features (N, D) float32 in the coords' order."""
    n = len(dataset.coords)
    features = np.zeros((n, encoder.dim), dtype=np.float32)
    progress = Progress(n, "embedded", unit="patches")
    if n == 0:
        return features, progress
    size = encoder.transform.input_size or dataset.plan.patch_size
    model = encoder.model.to(device).to(memory_format=torch.channels_last)
    loader = patch_loader(dataset, num_workers=num_workers, pin_memory=device.type == "cuda")
    autocast = torch.autocast(device.type, dtype=PRECISIONS[precision], enabled=precision != "fp32")
    with torch.inference_mode(), autocast:
        for idx, patches in loader:
            if isinstance(patches, GcmlmError):
                raise patches
            x = prepare_batch(patches, encoder.transform, device, size)
            out = model(x)
            if out.ndim != 2 or out.shape[1] != encoder.dim:
                raise GcmlmError(f"encoder '{encoder.name}' returned shape {tuple(out.shape)}, expected (n, {encoder.dim})")
            features[idx.numpy()] = out.float().cpu().numpy()
            progress.update(len(idx))
    return features, progress


def write_outputs(h5_path: Path, pt_path: Path, features: np.ndarray, coords: np.ndarray, coord_attrs: dict,
                  encoder: Encoder, precision: str, plan: PatchPlan, reader: str) -> None:
    buffer = io.BytesIO()  # saved via a buffer: torch.save names the archive after the (temporary) file
    torch.save(torch.from_numpy(features), buffer)
    with atomic_file(pt_path) as tmp:
        tmp.write_bytes(buffer.getvalue())
    attrs = {**encoder.attrs(), "precision": precision,
             "transform": json.dumps({**encoder.transform.describe(), **plan.describe()}),
             "reader": reader, "gcmlm_version": __version__, "n_patches": len(features), "complete": True}
    write_features(h5_path, PatchFeatures(features, coords, attrs), coord_attrs=coord_attrs)
