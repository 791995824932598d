"""GPU benchmark in one call: patch-embed end to end, the model alone, nnU-Net predict, CUDA/CPU agreement.

Runs the product's own stage functions (``gcmlm.pathology.wsi_tile.tile_slides``,
``gcmlm.pathology.patch_embed.embed_slide``, ``gcmlm.radiology.nnunet_predict.predict_cases``), so what
is measured is what users run, and writes one JSON of results (``--out``). Nothing is downloaded: the
slide and the CTs are synthetic, the encoder has random weights unless ``--checkpoint`` is given, and
the nnU-Net model is trained here for a few iterations on CPU unless ``--nnunet-model`` is given.

    .venv/bin/python benchmarks/gpu/gpu_bench.py --out results.json            # on a GPU machine
    .venv/bin/python benchmarks/gpu/gpu_bench.py --dry-run --out dry.json      # the same code paths, CPU, tiny

Sections of the JSON: ``environment``; ``patch_embed`` (1, end to end from the slide file);
``model_alone`` (2, random tensors already on the device); ``nnunet_predict`` (3); ``agreement`` (4,
device features against CPU fp32 features of the same patches); ``mil_train`` (5, the MIL core's
``fit_mil``/``predict_mil`` on synthetic in-memory bags: seconds per epoch and per fit, on the device).
Every figure is a {"value", "unit"} pair.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

log = logging.getLogger("gcmlm.gpu_bench")
SCHEMA_VERSION = 1
TILING_PRESET = "tcga"
PATCH_PX = 256  # level-0 patch size, resized to the encoder's 224 px (as CLAM and the embedding benchmark)


@dataclass(frozen=True)
class Sizes:
    """How big each part runs: the full GPU run, or the CPU dry run that keeps the script honest in CI."""

    slide: tuple[int, int]  # width, height in level-0 px at 0.25 um/px
    encoder: str
    batch_size: int
    max_patches: int | None  # None: every patch wsi-tile finds
    repeats: int  # measured end-to-end passes (best and all are reported)
    model_alone_batches: int
    agreement_patches: int
    ct_train_cases: int
    ct_predict_cases: int
    nnunet_epochs: int
    nnunet_iterations: int


FULL = Sizes(slide=(50000, 40000), encoder="uni_v1", batch_size=256, max_patches=None, repeats=2,
             model_alone_batches=40, agreement_patches=256, ct_train_cases=4, ct_predict_cases=4,
             nnunet_epochs=2, nnunet_iterations=5)
DRY_RUN = Sizes(slide=(6144, 4096), encoder="vit_tiny_patch16_224", batch_size=32, max_patches=64, repeats=1,
                model_alone_batches=2, agreement_patches=16, ct_train_cases=2, ct_predict_cases=2,
                nnunet_epochs=1, nnunet_iterations=1)


def figure(value: float | int, unit: str) -> dict:
    return {"value": round(float(value), 4) if isinstance(value, float) else value, "unit": unit}


# ---- environment --------------------------------------------------------------------------------


def nvidia_smi(*query: str) -> list[str]:
    """nvidia-smi's answer lines, or [] where there is no driver."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        done = subprocess.run(["nvidia-smi", *query], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def environment(device: str) -> dict:
    import timm
    import torch

    env = {"device": device, "torch": torch.__version__, "torch_cuda": torch.version.cuda, "timm": timm.__version__,
           "python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
           "gpu_name": None, "gpu_driver": None, "gpu_memory_mib": None, "bf16_supported": None}
    if device == "cuda":
        env["gpu_name"] = torch.cuda.get_device_name(0)
        env["bf16_supported"] = torch.cuda.is_bf16_supported()
        answer = nvidia_smi("--query-gpu=driver_version,memory.total", "--format=csv,noheader,nounits")
        if answer:
            driver, memory = (part.strip() for part in answer[0].split(",")[:2])
            env["gpu_driver"], env["gpu_memory_mib"] = driver, int(float(memory))
    return env


# ---- GPU utilisation ------------------------------------------------------------------------------


class GpuSampler:
    """Samples GPU utilisation and memory every 200 ms with nvidia-smi in a background process
    while a block runs; ``summary()`` gives mean/median utilisation and peak memory."""

    QUERY = ["--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-lms", "200"]

    def __init__(self, enabled: bool):
        self.enabled = enabled and shutil.which("nvidia-smi") is not None
        self.lines: list[str] = []

    @contextmanager
    def sampling(self):
        if not self.enabled:
            yield self
            return
        with tempfile.TemporaryFile("w+") as sink:
            proc = subprocess.Popen(["nvidia-smi", *self.QUERY], stdout=sink, stderr=subprocess.DEVNULL, text=True)
            try:
                yield self
            finally:
                proc.terminate()
                proc.wait(timeout=10)
                sink.seek(0)
                self.lines = [line for line in sink.read().splitlines() if line.strip()]

    def summary(self) -> dict:
        if not self.enabled:
            return {"sampled": False, "why": "no nvidia-smi (CPU run)"}
        samples = []
        for line in self.lines:
            try:
                util, memory = (float(x) for x in line.split(",")[:2])
            except ValueError:
                continue
            samples.append((util, memory))
        if not samples:
            return {"sampled": False, "why": "nvidia-smi gave no samples"}
        utils = [u for u, _ in samples]
        return {"sampled": True, "samples": len(samples), "interval_ms": 200,
                "utilization_mean": figure(statistics.fmean(utils), "%"),
                "utilization_median": figure(statistics.median(utils), "%"),
                "memory_used_max": figure(max(m for _, m in samples), "MiB")}


def synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


# ---- (1) the slide, tiled ---------------------------------------------------------------------------


def start_slide(workdir: Path, size: tuple[int, int], pool: ProcessPoolExecutor) -> tuple[Path, Future | None]:
    """The cached synthetic slide, or a background job writing it (generation is never timed as embedding)."""
    from gcmlm.demo.core.wsi import write_synthetic_slide

    slide = workdir / f"synthetic_{size[0]}x{size[1]}.tiff"
    if slide.is_file():
        return slide, None
    workdir.mkdir(parents=True, exist_ok=True)
    partial = slide.with_name(slide.name + ".partial.tiff")
    return slide, pool.submit(write_synthetic_slide, partial, size[0], size[1], 0.25, 1)


def finish_slide(slide: Path, job: Future | None, started: float) -> dict:
    if job is None:
        return {"cached": True, "path": str(slide)}
    job.result()
    slide.with_name(slide.name + ".partial.tiff").replace(slide)  # only a whole slide is ever cached
    return {"cached": False, "path": str(slide), "generation": figure(time.perf_counter() - started, "s")}


def tile(slide: Path, workdir: Path, max_patches: int | None) -> tuple[Path, int, float]:
    """wsi-tile's coords for ``slide`` (the first ``max_patches`` of them); returns (coords file, n, seconds)."""
    from gcmlm.pathology.core.clam_h5 import read_coords, write_coords
    from gcmlm.pathology.wsi_tile import GridSpec, resolve_settings, tile_slides

    out = workdir / "tiles"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    tile_slides([slide], out, GridSpec(patch_size=PATCH_PX), resolve_settings(TILING_PRESET))
    seconds = time.perf_counter() - start
    coords_h5 = out / "patches" / f"{slide.stem}.h5"
    coords, attrs = read_coords(coords_h5)
    if max_patches is not None and len(coords) > max_patches:
        coords_h5 = write_coords(workdir / "coords" / f"{slide.stem}.h5", coords[:max_patches], attrs)
    return coords_h5, min(len(coords), max_patches or len(coords)), seconds


def subset_coords(coords_h5: Path, n: int, dest: Path) -> Path:
    from gcmlm.pathology.core.clam_h5 import read_coords, write_coords

    coords, attrs = read_coords(coords_h5)
    return write_coords(dest / coords_h5.name, coords[:n], attrs)


# ---- (1) patch-embed end to end, (2) the model alone ---------------------------------------------


def embed_end_to_end(slide: Path, coords_h5: Path, encoder, workdir: Path, device: str, sizes: Sizes,
                     workers: int, sampler: GpuSampler) -> dict:
    """``embed_slide`` from the slide file, after one small warm-up pass (model to the device, cuDNN)."""
    from gcmlm.pathology.patch_embed import embed_slide

    def embed(coords: Path, out: Path):
        return embed_slide(slide, coords, encoder, out, batch_size=sizes.batch_size, device=device,
                           num_workers=workers, force=True)

    warm = embed(subset_coords(coords_h5, 2 * sizes.batch_size, workdir / "warmup-coords"), workdir / "warmup")
    runs = []
    with sampler.sampling():
        for _ in range(sizes.repeats):
            result = embed(coords_h5, workdir / "features")
            runs.append(result)
    best = max(runs, key=lambda r: r.patches_per_second)
    return {"encoder": encoder.name, "weights": encoder.weights, "batch_size": sizes.batch_size,
            "reader_workers": workers, "n_patches": best.n_patches, "warmup_patches": warm.n_patches,
            "patches_per_second": figure(best.patches_per_second, "patches/s"),
            "patches_per_second_runs": [round(r.patches_per_second, 2) for r in runs],
            "seconds": figure(best.seconds, "s"), "gpu": sampler.summary(),
            "goal": figure(3000, "patches/s (ViT-L/16 at 224 px on one H100/H200)")}


def model_alone(encoder, device: str, sizes: Sizes, sampler: GpuSampler) -> dict:
    """The encoder on random uint8-range inputs already on the device, same batch size and precision:
    the ceiling the data path is measured against."""
    import torch

    from gcmlm.pathology.patch_embed import PRECISIONS, resolve_precision

    torch_device = torch.device(device)
    precision = resolve_precision("auto", torch_device)
    size = encoder.transform.input_size or PATCH_PX
    model = encoder.model.to(torch_device).to(memory_format=torch.channels_last)
    generator = torch.Generator(device=torch_device).manual_seed(0)
    x = torch.randn(sizes.batch_size, 3, size, size, device=torch_device, generator=generator)
    x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(torch_device.type, dtype=PRECISIONS[precision], enabled=precision != "fp32")
    with torch.inference_mode(), autocast:
        for _ in range(2):
            model(x)
        synchronize(device)
        with sampler.sampling():
            start = time.perf_counter()
            for _ in range(sizes.model_alone_batches):
                model(x)
            synchronize(device)
            seconds = time.perf_counter() - start
    n = sizes.model_alone_batches * sizes.batch_size
    return {"precision": precision, "batch_size": sizes.batch_size, "batches": sizes.model_alone_batches,
            "input_px": size, "patches_per_second": figure(n / seconds, "patches/s"), "seconds": figure(seconds, "s"),
            "gpu": sampler.summary()}


# ---- (4) agreement ------------------------------------------------------------------------------------


def agreement(slide: Path, coords_h5: Path, encoder, workdir: Path, device: str, n: int, workers: int) -> dict:
    """The same patches embedded on ``device`` (auto precision: bf16 on CUDA) and on CPU in fp32:
    cosine similarity per patch and the largest absolute difference."""
    import numpy as np

    from gcmlm.pathology.core.clam_h5 import read_features
    from gcmlm.pathology.patch_embed import embed_slide

    coords = subset_coords(coords_h5, n, workdir / "agreement-coords")
    features = {}
    for where in (device, "cpu"):
        result = embed_slide(slide, coords, encoder, workdir / f"agreement-{where}", batch_size=min(64, n),
                             device=where, num_workers=min(workers, 4), force=True)
        features[where] = read_features(result.h5_path).features.astype(np.float64)
    a, b = features[device], features["cpu"]
    cosine = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    threshold = 0.99
    return {"compared": f"{device} (auto precision) vs cpu fp32", "n_patches": len(a),
            "cosine_min": figure(float(cosine.min()), "cosine"), "cosine_mean": figure(float(cosine.mean()), "cosine"),
            "max_abs_diff": figure(float(np.abs(a - b).max()), "feature units"),
            "threshold": threshold, "passed": bool(cosine.min() > threshold)}


# ---- (3) nnU-Net predict -------------------------------------------------------------------------------


def demo_cts(dest: Path, n: int) -> tuple[list[Path], list[Path]]:
    """``n`` synthetic demo CTs and their label maps (gcmlm.demo.core.ct)."""
    import numpy as np

    from gcmlm.demo.core.ct import make_ct, write_nifti

    images, labels = [], []
    for sub in ("ct", "labels"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image, label, _ = make_ct(np.random.default_rng([0, i]), r_ct=float(i % 3) - 1.0)
        case = f"GPU{i:03d}"
        images.append(dest / "ct" / f"{case}.nii.gz")
        labels.append(dest / "labels" / f"{case}.nii.gz")
        write_nifti(image, images[-1])
        write_nifti(label, labels[-1])
    return images, labels


def train_tiny_nnunet(images: list[Path], labels: list[Path], workdir: Path, sizes: Sizes) -> tuple[Path, float]:
    """dataset -> tiny plans -> a few CPU iterations of fold 'all' -> model zip; returns (zip, seconds)."""
    from gcmlm.radiology.nnunet_dataset import build_dataset, cases_from_images
    from gcmlm.radiology.nnunet_plan import plan_and_preprocess
    from gcmlm.radiology.nnunet_train import train_fold

    start = time.perf_counter()
    raw = build_dataset(cases_from_images(images, labels), workdir / "raw", "Dataset990_GpuBench",
                        {"background": 0, "stomach": 1, "tumour": 2})
    pre, plans = plan_and_preprocess(raw, workdir / "preprocessed", tiny=True, num_processes=2)
    model = train_fold(pre, workdir / "model.zip", fold="all", trainer="nnUNetTrainerNoDA", plans=plans,
                       epochs=sizes.nnunet_epochs, iterations_per_epoch=sizes.nnunet_iterations, val_iterations=1,
                       device="cpu", num_workers=1, num_processes=1)
    return model, time.perf_counter() - start


def nnunet_predict(workdir: Path, device: str, sizes: Sizes, model: Path | None, images: list[Path]) -> dict:
    """predict_cases on ``device`` (and on CPU for reference) for the same CTs; voxel agreement of the masks."""
    import numpy as np
    import SimpleITK as sitk

    from gcmlm.radiology.nnunet_predict import predict_cases

    record: dict = {}
    if model is None:
        cts, labels = demo_cts(workdir / "cohort", max(sizes.ct_train_cases, sizes.ct_predict_cases))
        model, seconds = train_tiny_nnunet(cts[:sizes.ct_train_cases], labels[:sizes.ct_train_cases], workdir, sizes)
        images = images or cts[:sizes.ct_predict_cases]
        record["model"] = {"trained_here": True, "device": "cpu", "epochs": sizes.nnunet_epochs,
                           "iterations_per_epoch": sizes.nnunet_iterations, "seconds": figure(seconds, "s")}
    else:
        record["model"] = {"trained_here": False, "path": str(model)}
    masks = {}
    for where in dict.fromkeys((device, "cpu")):
        out = workdir / f"masks-{where}"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        masks[where] = predict_cases(model, images, out, device=where, num_processes_preprocessing=2,
                                     num_processes_export=2)
        seconds = time.perf_counter() - start
        record[where] = {"cases": len(images), "seconds": figure(seconds, "s"),
                         "seconds_per_case": figure(seconds / len(images), "s/case")}
    same = [np.mean(sitk.GetArrayFromImage(sitk.ReadImage(str(a))) == sitk.GetArrayFromImage(sitk.ReadImage(str(b))))
            for a, b in zip(masks[device], masks["cpu"], strict=True)]
    record["mask_voxel_agreement_min"] = figure(float(min(same)), "fraction of voxels equal to the CPU mask")
    return record


# ---- the run -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="results JSON to write")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: the same code paths in a minute or two")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "gcmlm-gpu-bench",
                        help="cache for the slide (kept between runs) and scratch outputs")
    parser.add_argument("--checkpoint", type=Path, help="encoder weights (e.g. UNI's pytorch_model.bin); random if absent")
    parser.add_argument("--encoder", help="encoder name (default: uni_v1; dry run: vit_tiny_patch16_224)")
    parser.add_argument("--workers", type=int, help="reader processes (default: CPUs - 1)")
    parser.add_argument("--batch-size", type=int, help="patches per batch (default: 256; dry run: 32)")
    parser.add_argument("--max-patches", type=int, help="embed at most this many of the slide's patches")
    parser.add_argument("--slide-size", type=int, nargs=2, metavar=("W", "H"), help="synthetic slide size in px")
    parser.add_argument("--nnunet-model", type=Path, help="nnU-Net model zip (default: train a tiny one here on CPU)")
    parser.add_argument("--ct-images", type=Path, nargs="+", default=[], help="CTs for --nnunet-model")
    parser.add_argument("--skip", nargs="+", default=[], choices=("patch_embed", "model_alone", "nnunet_predict",
                                                                  "agreement", "mil_train"), help="leave sections out")
    return parser.parse_args(argv)


def choose_sizes(args: argparse.Namespace) -> Sizes:
    base = DRY_RUN if args.dry_run else FULL
    changes = {key: value for key, value in (("encoder", args.encoder), ("batch_size", args.batch_size),
                                             ("max_patches", args.max_patches),
                                             ("slide", tuple(args.slide_size) if args.slide_size else None))
               if value is not None}
    return Sizes(**{**base.__dict__, **changes})


def choose_device(dry_run: bool) -> str:
    import torch

    if dry_run:
        return "cpu"
    if not torch.cuda.is_available():
        sys.exit("gpu_bench: PyTorch sees no CUDA device; use --dry-run on a CPU machine")
    return "cuda"


def timed_section(results: dict, name: str, skip: list[str], run) -> None:
    """Run one section into ``results[name]``; a failing section is recorded, not fatal, so one call
    on a rented GPU still returns every other figure."""
    if name in skip:
        results[name] = {"skipped": True}
        return
    start = time.perf_counter()
    try:
        results[name] = run()
    except Exception as exc:  # noqa: BLE001 - reported in the JSON; the other sections still run
        log.exception("%s failed", name)
        results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    results[name]["section_seconds"] = figure(time.perf_counter() - start, "s")
    log.info("%s done in %.1f s", name, time.perf_counter() - start)


def run(args: argparse.Namespace) -> dict:
    sizes = choose_sizes(args)
    workdir = args.workdir / ("dry-run" if args.dry_run else "full")
    workers = args.workers if args.workers is not None else max(1, (os.cpu_count() or 2) - 1)
    began = time.perf_counter()
    # The slide is written in a spawned process (before CUDA starts here) while the model and nnU-Net run.
    pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
    slide, slide_job = start_slide(args.workdir / "slides", sizes.slide, pool)
    device = choose_device(args.dry_run)
    from gcmlm.pathology.core.encoders import build_encoder

    encoder = build_encoder(sizes.encoder, args.checkpoint, allow_random_weights=args.checkpoint is None)
    sampler = GpuSampler(enabled=device == "cuda")
    results: dict = {"schema_version": SCHEMA_VERSION, "dry_run": args.dry_run, "device": device,
                     "environment": environment(device), "sizes": {**sizes.__dict__, "slide": list(sizes.slide)}}
    timed_section(results, "model_alone", args.skip, lambda: model_alone(encoder, device, sizes, sampler))
    nnunet_dir = workdir / "nnunet"
    shutil.rmtree(nnunet_dir, ignore_errors=True)
    timed_section(results, "nnunet_predict", args.skip,
                  lambda: nnunet_predict(nnunet_dir, device, sizes, args.nnunet_model, list(args.ct_images)))
    try:
        results["slide"] = finish_slide(slide, slide_job, began)
        coords_h5, n_patches, tile_seconds = tile(slide, workdir, sizes.max_patches)
    except Exception as exc:  # noqa: BLE001 - recorded; the figures already taken still reach the JSON
        log.exception("slide preparation failed")
        results["slide"] = {"error": f"{type(exc).__name__}: {exc}"}
        args.skip = [*args.skip, "patch_embed", "agreement"]
    else:
        results["slide"].update(size=list(sizes.slide), mpp=0.25, tiling_preset=TILING_PRESET, patch_px=PATCH_PX,
                                patches=n_patches, tiling=figure(tile_seconds, "s"))
    pool.shutdown()
    timed_section(results, "patch_embed", args.skip,
                  lambda: embed_end_to_end(slide, coords_h5, encoder, workdir, device, sizes, workers, sampler))
    # Last: its CPU pass makes torch deterministic process-wide (patch_embed.configure_torch).
    timed_section(results, "agreement", args.skip,
                  lambda: agreement(slide, coords_h5, encoder, workdir, device, sizes.agreement_patches, workers))
    pe, alone = results["patch_embed"], results["model_alone"]
    if "patches_per_second" in pe and "patches_per_second" in alone:
        results["io_vs_ceiling"] = figure(pe["patches_per_second"]["value"] / alone["patches_per_second"]["value"],
                                          "end-to-end rate / model-alone rate")
    timed_section(results, "mil_train", args.skip, lambda: mil_train(device, args.dry_run))
    results["total_seconds"] = figure(time.perf_counter() - began, "s")
    return results


MIL_FULL = {"patients": 200, "patches": 2000, "dim": 1024, "max_epochs": 10}  # issue #13's benchmark size
MIL_DRY = {"patients": 16, "patches": 64, "dim": 32, "max_epochs": 2}


def mil_train(device: str, dry_run: bool) -> dict:
    """One outer fold of mil-train (80 % of the patients; fixed epochs, no early stop) on the device,
    and prediction of the other 20 %: the figures a MIL run on a GPU node is sized by."""
    import numpy as np

    from gcmlm.pathology.core.mil import Bag, MILConfig, fit_mil, planted_bags, predict_mil, roc_auc

    size = MIL_DRY if dry_run else MIL_FULL
    bags, labels = [], []
    for start in range(0, size["patients"], 20):  # 20 patients at a time: the generator stays small
        chunk, y = planted_bags(min(20, size["patients"] - start), size["patches"], size["dim"], seed=start, shift=0.5)
        bags += [Bag.from_arrays(f"B{start + i:03d}", {f"B{start + i:03d}": p["features"]}) for i, p in enumerate(chunk)]
        labels += y.tolist()
    labels = np.array(labels)
    n_train = round(0.8 * len(bags))
    config = MILConfig(max_epochs=size["max_epochs"], patience=size["max_epochs"])
    start = time.perf_counter()
    model = fit_mil(bags[:n_train], labels[:n_train], config, seed=0, device=device, progress=False)
    fit_seconds = time.perf_counter() - start
    epochs = len(model.training["history"])
    start = time.perf_counter()
    predictions = predict_mil(model, bags[n_train:], device)
    predict_seconds = time.perf_counter() - start
    auc = roc_auc(labels[n_train:], np.array([p.risk for p in predictions]))
    return {"patients": size["patients"], "patches_per_bag": size["patches"], "dim": size["dim"], "epochs": epochs,
            "fit": figure(fit_seconds, "s"), "seconds_per_epoch": figure(fit_seconds / epochs, "s"),
            "predict_bags_per_second": figure(len(predictions) / predict_seconds, "bags/s"),
            "held_out_auc": figure(float(auc) if auc is not None else float("nan"), "AUC (planted signal)")}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    results = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    failed = [name for name, value in results.items() if isinstance(value, dict) and "error" in value]
    agreement_failed = results.get("agreement", {}).get("passed") is False
    print(summary_table(results))
    return 1 if failed or agreement_failed else 0


def summary_table(results: dict) -> str:
    """A few lines for the end of the log (the device tool returns only the output's tail)."""
    def value(section: str, key: str) -> str:
        item = results.get(section, {}).get(key)
        return f"{item['value']} {item['unit']}" if isinstance(item, dict) and "value" in item else "-"

    env = results["environment"]
    lines = [f"device {results['device']} ({env.get('gpu_name') or 'no GPU'}), torch {env['torch']}, "
             f"{env['cpu_count']} CPUs, dry run: {results['dry_run']}",
             f"patch-embed end to end: {value('patch_embed', 'patches_per_second')}",
             f"model alone:            {value('model_alone', 'patches_per_second')}",
             f"GPU utilisation (e2e):  {results.get('patch_embed', {}).get('gpu', {}).get('utilization_mean', '-')}",
             f"nnU-Net predict:        {results.get('nnunet_predict', {}).get(results['device'], {}).get('seconds_per_case', '-')}",
             f"agreement: cosine min {value('agreement', 'cosine_min')}, max |diff| {value('agreement', 'max_abs_diff')}, "
             f"passed {results.get('agreement', {}).get('passed')}",
             f"mil-train (one outer fold): {value('mil_train', 'fit')}, {value('mil_train', 'seconds_per_epoch')} per epoch",
             f"total {results['total_seconds']['value']} s"]
    errors = [f"{name}: {v['error']}" for name, v in results.items() if isinstance(v, dict) and "error" in v]
    return "\n".join(lines + errors)


if __name__ == "__main__":
    sys.exit(main())
