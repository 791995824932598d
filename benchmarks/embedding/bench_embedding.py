"""Embedding benchmark: gcmlm patch-embed's data path and end-to-end rate against CLAM's, side by side.

1. Data path (read -> decode -> resize -> normalise, batched, no model): CLAM's
   Whole_Slide_Bag_FP + torch DataLoader (CLAM's transforms: Resize(224), ToTensor, Normalize)
   against gcmlm's PatchBatches loader + prepare_batch, same coords, batch size, output size and
   number of worker processes.
2. End to end on CPU with a small encoder: the same model behind each data path.
3. Where CUDA is present: UNI (ViT-L/16, random weights unless --uni-checkpoint) end to end from the
   slide file, gcmlm in bf16 autocast; CLAM's loop (fp32, as its extract_features_fp runs) beside it.

Both sides read the same coords file (the first --patches coords of wsi-tile's output, in file
order) from the same slide; rounds alternate between the tools, and the best round counts.

    CLAM_DIR=/tmp/clam-ref .venv/bin/python benchmarks/embedding/bench_embedding.py \
        --workdir /tmp/bench-embed --workers 0 2

CLAM_DIR is a checkout of https://github.com/mahmoodlab/CLAM (never copied into this repo); its
dataset_modules/dataset_h5.py and utils/transform_utils.py are imported from there at run time.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from gcmlm.pathology.core.clam_h5 import read_coords, write_coords
from gcmlm.pathology.core.encoders import build_encoder
from gcmlm.pathology.core.patch_loader import PatchBatches, patch_loader, plan_reads, prepare_batch
from gcmlm.pathology.core.slide import open_slide

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def load_clam(clam_dir: Path):
    """CLAM's Whole_Slide_Bag_FP and get_eval_transforms, imported from the checkout by path."""
    def load(name, rel):
        spec = importlib.util.spec_from_file_location(name, clam_dir / rel)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    if not (clam_dir / "dataset_modules" / "dataset_h5.py").is_file():
        sys.exit(f"{clam_dir} is not a CLAM checkout (no dataset_modules/dataset_h5.py); set CLAM_DIR")
    return load("clam_dataset_h5", "dataset_modules/dataset_h5.py"), load("clam_transforms", "utils/transform_utils.py")


def prepare_inputs(args) -> tuple[Path, Path]:
    slide = Path(args.slide) if args.slide else args.workdir / "synthetic_50000x40000.tiff"
    if not slide.is_file():
        from gcmlm.demo.core.wsi import write_synthetic_slide

        print(f"writing {slide} (50k x 40k JPEG-tiled TIFF; takes minutes) ...", flush=True)
        slide.parent.mkdir(parents=True, exist_ok=True)
        write_synthetic_slide(slide, 50000, 40000, mpp=0.25, seed=1)
    tiles = args.workdir / "tiles"
    full = tiles / "patches" / f"{slide.stem}.h5"
    if not full.is_file():
        print(f"tiling {slide} with gcmlm wsi-tile ...", flush=True)
        subprocess.run([sys.executable, "-m", "gcmlm", "wsi-tile", "--slide", str(slide), "--out", str(tiles),
                        "-q", *args.tile_args], check=True)
    coords, attrs = read_coords(full)
    if len(coords) < args.patches:
        sys.exit(f"{full} has {len(coords)} patches; fewer than --patches {args.patches}")
    subset = args.workdir / "coords" / f"{slide.stem}.h5"  # the same patches for both tools
    write_coords(subset, coords[: args.patches], attrs)
    return slide, subset


def clam_loader(clam, slide: Path, coords: Path, workers: int, batch: int, size: int, pin: bool = False):
    import openslide

    dataset_h5, transforms = clam
    tf = transforms.get_eval_transforms(mean=IMAGENET[0], std=IMAGENET[1], target_img_size=size)
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # Whole_Slide_Bag_FP prints its attrs
        dataset = dataset_h5.Whole_Slide_Bag_FP(file_path=str(coords), wsi=openslide.open_slide(str(slide)),
                                                img_transforms=tf)
    return torch.utils.data.DataLoader(dataset, batch_size=batch, num_workers=workers, pin_memory=pin)


def gcmlm_loader(slide: Path, coords: Path, workers: int, batch: int, pin: bool = False):
    handle = open_slide(slide)
    xy, attrs = read_coords(coords)
    dataset = PatchBatches(handle, xy, plan_reads(attrs, handle.level_downsamples, coords), batch)
    return patch_loader(dataset, num_workers=workers, pin_memory=pin)


def run_clam(loader, device, model=None) -> int:
    n = 0
    with torch.inference_mode():
        for data in loader:
            x = data["img"].to(device, non_blocking=True)
            if model is not None:
                model(x).cpu()
            n += len(x)
    return n


def run_gcmlm(loader, device, size, transform, model=None, precision=torch.float32) -> int:
    n = 0
    autocast = torch.autocast(device.type, dtype=precision, enabled=precision != torch.float32)
    with torch.inference_mode(), autocast:
        for _, patches in loader:
            x = prepare_batch(patches, transform, device, size)
            if model is not None:
                model(x).float().cpu()
            elif device.type == "cuda":
                torch.cuda.synchronize()
            n += len(x)
    return n


def _cpu_seconds() -> float:
    t = os.times()  # this process and its reaped children (DataLoader workers are joined at the end)
    return t.user + t.system + t.children_user + t.children_system


def timed(fn) -> tuple[float, float, int]:
    """(patches per wall second, patches per CPU second, patches). The CPU-time rate is the
    figure to trust on a shared machine: it does not count time spent waiting for a core."""
    start, cpu = time.perf_counter(), _cpu_seconds()
    n = fn()
    return n / (time.perf_counter() - start), n / max(_cpu_seconds() - cpu, 1e-9), n


def compare(label, make_clam, make_ours, rounds, results, workers):
    best = {"clam": (0.0, 0.0), "gcmlm": (0.0, 0.0)}
    for _ in range(rounds):
        for tool, make in (("clam", make_clam), ("gcmlm", make_ours)):
            wall, cpu, n = timed(make)
            best[tool] = (max(best[tool][0], wall), max(best[tool][1], cpu))
    ratio, cpu_ratio = best["gcmlm"][0] / best["clam"][0], best["gcmlm"][1] / best["clam"][1]
    print(f"{label:<36} workers={workers}  CLAM {best['clam'][0]:7.1f} patches/s ({best['clam'][1]:6.1f}/CPU-s)  "
          f"gcmlm {best['gcmlm'][0]:7.1f} patches/s ({best['gcmlm'][1]:6.1f}/CPU-s)  "
          f"ratio {ratio:5.2f}x (per CPU-s {cpu_ratio:5.2f}x)", flush=True)
    results.append({"what": label, "workers": workers, "patches": n, "clam_per_s": best["clam"][0],
                    "gcmlm_per_s": best["gcmlm"][0], "ratio": ratio, "clam_per_cpu_s": best["clam"][1],
                    "gcmlm_per_cpu_s": best["gcmlm"][1], "cpu_ratio": cpu_ratio})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clam-dir", type=Path, default=os.environ.get("CLAM_DIR"))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-embed"))
    parser.add_argument("--slide", help="slide to use (default: a synthetic 50k x 40k JPEG TIFF in --workdir)")
    parser.add_argument("--tile-args", nargs="*", default=[], help="extra wsi-tile flags")
    parser.add_argument("--patches", type=int, default=2000, help="patches per run (first N coords)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--encoder", default="resnet18", help="small encoder for the CPU end-to-end run (random weights)")
    parser.add_argument("--e2e-patches", type=int, default=512)
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--uni-checkpoint", help="UNI's pytorch_model.bin for the GPU run (default random weights)")
    parser.add_argument("--uni-patches", type=int, default=20000)
    parser.add_argument("--uni-workers", type=int, default=min(16, os.cpu_count() or 1))
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads in the main process, both tools (CLAM's PIL transforms use one)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.clam_dir is None:
        sys.exit("give --clam-dir or CLAM_DIR (a checkout of https://github.com/mahmoodlab/CLAM)")
    clam = load_clam(Path(args.clam_dir))
    args.workdir.mkdir(parents=True, exist_ok=True)
    slide, coords = prepare_inputs(args)
    cpu, size, results = torch.device("cpu"), 224, []
    threads = torch.get_num_threads()
    print(f"slide {slide} ({open_slide(slide).dimensions[0]} x {open_slide(slide).dimensions[1]}), "
          f"{args.patches} patches of 256 px -> {size} px, batch {args.batch_size}, {os.cpu_count()} CPUs, "
          f"torch threads {threads}", flush=True)

    from gcmlm.pathology.core.encoders import Transform

    imagenet = Transform(size, *IMAGENET)
    for w in args.workers:
        compare("data path (no model)",
                lambda w=w: run_clam(clam_loader(clam, slide, coords, w, args.batch_size, size), cpu),
                lambda w=w: run_gcmlm(gcmlm_loader(slide, coords, w, args.batch_size), cpu, size, imagenet),
                args.rounds, results, w)

    if not args.skip_e2e:
        small = args.workdir / "coords-e2e" / coords.name
        xy, attrs = read_coords(coords)
        write_coords(small, xy[: args.e2e_patches], attrs)
        enc = build_encoder(args.encoder, allow_random_weights=True)
        model = enc.model.eval()
        tf = enc.transform
        for w in args.workers:
            compare(f"end to end CPU, {args.encoder} (random)",
                    lambda w=w: run_clam(clam_loader(clam, slide, small, w, 64, size), cpu, model),
                    lambda w=w: run_gcmlm(gcmlm_loader(slide, small, w, 64), cpu, tf.input_size, tf, model),
                    1, results, w)

    if torch.cuda.is_available():
        cuda = torch.device("cuda")
        torch.backends.cudnn.benchmark = True
        big = args.workdir / "coords-uni" / coords.name
        xy, attrs = read_coords(Path(args.workdir / "tiles" / "patches" / f"{slide.stem}.h5"))
        write_coords(big, xy[: args.uni_patches], attrs)
        enc = build_encoder("uni_v1", args.uni_checkpoint, allow_random_weights=args.uni_checkpoint is None)
        model = enc.model.to(cuda).eval()
        w = args.uni_workers
        bf16 = torch.bfloat16
        run_gcmlm(gcmlm_loader(slide, small if not args.skip_e2e else coords, w, 256, True), cuda, 224,
                  enc.transform, model, bf16)  # warm-up (cuDNN autotune, allocator)
        compare("UNI end to end, GPU (gcmlm bf16)",
                lambda: run_clam(clam_loader(clam, slide, big, w, 256, size, True), cuda, model),
                lambda: run_gcmlm(gcmlm_loader(slide, big, w, 256, True), cuda, 224, enc.transform, model, bf16),
                1, results, w)
        with torch.inference_mode(), torch.autocast("cuda", dtype=bf16):
            x = torch.randn(256, 3, 224, 224, device=cuda)
            model(x)
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(10):
                model(x)
            torch.cuda.synchronize()
            model_only = 2560 / (time.perf_counter() - start)
        print(f"UNI model alone (bf16, batch 256, no I/O): {model_only:.0f} patches/s on {torch.cuda.get_device_name()}")
        results.append({"what": "UNI model alone bf16", "gcmlm_per_s": model_only})
    else:
        print("no CUDA device: the UNI (ViT-L/16, bf16) GPU run was not measured")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
