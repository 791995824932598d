"""patch-embed: a slide and its CLAM patch coordinates -> one feature vector per patch.

Outputs follow CLAM's extract_features_fp: ``h5_files/<slide_id>.h5`` (``features`` (N, D)
float32, ``coords`` (N, 2) in the input order, with the input coords' attrs) and
``pt_files/<slide_id>.pt`` (the features as a torch tensor). The .pt is written first and the .h5
last, each atomically, so a complete .h5 means a complete output; a rerun skips a slide whose .h5
records the same encoder, checkpoint, precision and coords.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from gcmlm import __version__
from gcmlm.common.atomic import atomic_file
from gcmlm.common.errors import GcmlmError
from gcmlm.common.manifest import slide_id
from gcmlm.common.progress import Progress
from gcmlm.pathology.core.clam_h5 import PatchFeatures, read_coords, write_features
from gcmlm.pathology.core.encoders import RANDOM, Encoder, build_encoder, sha256_file
from gcmlm.pathology.core.patch_loader import PatchBatches, PatchPlan, patch_loader, plan_reads, prepare_batch
from gcmlm.pathology.core.slide import open_slide

log = logging.getLogger("gcmlm")

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


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
    parser.add_argument("--batch-size", type=int, default=256, metavar="N")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                        help="auto: bf16 (or fp16) autocast on GPU, fp32 on CPU")
    parser.add_argument("--num-workers", type=int, default=min(8, max(0, (os.cpu_count() or 1) - 1)), metavar="N",
                        help="reader processes, each with its own slide handle (default: min(8, CPUs - 1); 0: read in "
                             "the main process)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU compute threads (default: torch's); fixed per run for determinism")
    parser.add_argument("--force", action="store_true", help="recompute even if a complete output exists")


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


def output_paths(out: str | os.PathLike, sid: str) -> tuple[Path, Path]:
    out = Path(out)
    return out / "h5_files" / f"{sid}.h5", out / "pt_files" / f"{sid}.pt"


def is_complete(h5_path: Path, pt_path: Path, coords: np.ndarray, expect: dict) -> bool:
    """True when an earlier run left a full output for the same coords, encoder and weights."""
    if not (h5_path.is_file() and pt_path.is_file()):
        return False
    import h5py

    try:
        with h5py.File(h5_path, "r") as h5:
            attrs = dict(h5["features"].attrs)
            same_coords = np.array_equal(h5["coords"][:].reshape(-1, 2), coords)
            rows = h5["features"].shape[0]
    except (OSError, KeyError):
        return False
    recorded = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}
    return bool(recorded.get("complete")) and same_coords and rows == len(coords) and all(
        str(recorded.get(k)) == str(v) for k, v in expect.items())


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
            x = prepare_batch(patches, encoder.transform, device, size)
            out = model(x)
            if out.ndim != 2 or out.shape[1] != encoder.dim:
                raise GcmlmError(f"encoder '{encoder.name}' returned shape {tuple(out.shape)}, expected (n, {encoder.dim})")
            features[idx.numpy()] = out.float().cpu().numpy()
            progress.update(len(idx))
    return features, progress


def run(args: argparse.Namespace) -> int:
    slide_path = Path(args.slide)
    if not slide_path.is_file():
        raise GcmlmError("no such slide file", slide_path)
    if args.batch_size < 1 or args.num_workers < 0:
        raise GcmlmError("--batch-size must be >= 1 and --num-workers >= 0")
    coords, coord_attrs = read_coords(args.coords)
    sid = slide_id(slide_path)
    h5_path, pt_path = output_paths(args.out, sid)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
        if args.threads:
            torch.set_num_threads(args.threads)
    else:
        torch.backends.cudnn.benchmark = True

    if args.checkpoint is None and not args.allow_random_weights:
        build_encoder(args.encoder)  # raises the clear "needs --checkpoint" error before any work
    digest = sha256_file(args.checkpoint) if args.checkpoint and Path(args.checkpoint).is_file() else RANDOM
    expect = {"encoder": args.encoder, "checkpoint_sha256": digest, "precision": precision}
    if not args.force and is_complete(h5_path, pt_path, coords, expect):
        log.info("%s: complete output for encoder %s already in %s; skipped", sid, args.encoder, h5_path)
        return 0

    slide = open_slide(slide_path)  # a bad slide or coords file fails before the model is built
    plan = plan_reads(coord_attrs, slide.level_downsamples, args.coords)
    dataset = PatchBatches(slide, coords, plan, args.batch_size)
    encoder = build_encoder(args.encoder, args.checkpoint, args.allow_random_weights,
                            checkpoint_sha256=None if digest == RANDOM else digest)
    log.info("%s: %d patches, %d px at level %d (downsample %.3g, %s reader) -> %s %s on %s (%s), %d workers",
             sid, len(coords), plan.read_size, plan.level, plan.downsample, dataset.reader, encoder.name,
             encoder.transform.input_size or plan.read_size, device, precision, args.num_workers)
    start = time.perf_counter()
    features, progress = embed_batches(encoder, dataset, device, precision, args.num_workers)
    elapsed = time.perf_counter() - start
    write_outputs(h5_path, pt_path, features, coords, coord_attrs, encoder, precision, plan, dataset.reader)
    rate = len(coords) / elapsed if elapsed > 0 else 0.0
    log.info("%s: %d patches in %.1f s: %.1f patches/s -> %s", sid, len(coords), elapsed, rate, h5_path)
    print(f"{sid}\t{len(coords)} patches\t{rate:.1f} patches/s")
    return 0


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
