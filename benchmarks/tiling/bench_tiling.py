"""Tiling benchmark: gcmlm wsi-tile against CLAM's create_patches_fp.py, side by side.

Both tools get the same slides and the same CLAM preset, patch size and step, with QA images on
both sides (CLAM: --seg --patch --stitch, which also writes its mask images). Each tool processes
each batch of slides in one process; the figure is wall time per slide over the batch. Patch-set
agreement per slide: Jaccard of the two coordinate sets and the share of our coords in CLAM's.

    CLAM_DIR=/path/to/CLAM .venv/bin/python benchmarks/tiling/bench_tiling.py \
        --workdir /tmp/bench-tiling --synthetic 3 --generator demo simple --repeat 3

CLAM_DIR is a checkout of https://github.com/mahmoodlab/CLAM (never copied into this repo); it
needs openslide-python, opencv, h5py, pandas, pillow, matplotlib and tqdm, all in our venv.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = Path(os.environ.get("GCMLM_SHARED_DATA", REPO.parent / "shared" / "data"))
REAL_SLIDES = ["wsi/CMU-1-Small-Region.svs"]


def synthetic_slides(workdir: Path, n: int, width: int, height: int, generator: str) -> list[Path]:
    """``demo``: gcmlm.demo.core.wsi (H&E-like, nuclei); ``simple``: synthetic_slide.py here (fast to write)."""
    write = None
    if generator == "demo":
        try:
            from gcmlm.demo.core.wsi import write_synthetic_slide as write
        except ImportError:
            print("gcmlm.demo.core.wsi is not available; using the simple generator", flush=True)
    if write is None:
        sys.path.insert(0, str(HERE))
        from synthetic_slide import write_slide as write
        generator = "simple"
    paths = []
    for seed in range(n):
        path = workdir / f"slides-{generator}" / f"synth-{width}x{height}-{seed}.tiff"
        if not path.is_file():
            print(f"writing {path} ...", flush=True)
            partial = path.with_name(f".partial-{path.name}")  # an interrupted write is never reused
            write(partial, width=width, height=height, seed=seed)
            partial.replace(path)
        paths.append(path)
    return paths


def link_batch(slides: list[Path], folder: Path) -> Path:
    """CLAM tiles every file in a folder: give it one with links to this batch only."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for slide in slides:
        (folder / slide.name).symlink_to(slide.resolve())
    return folder


def warm(slides: list[Path]) -> None:
    """Read every file once so neither tool pays the first cold read."""
    for slide in slides:
        with open(slide, "rb") as f:
            while f.read(1 << 24):
                pass


def run_timed(cmd: list[str], cwd: Path | None = None, log: Path | None = None) -> float:
    start = time.perf_counter()
    with open(log or os.devnull, "w") as out:
        result = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(cmd)}; see {log}")
    return elapsed


def coords_of(path: Path) -> np.ndarray:
    if not path.is_file():  # CLAM writes no file for a slide without patches
        return np.zeros((0, 2), np.int64)
    with h5py.File(path, "r") as h5:
        return h5["coords"][:].reshape(-1, 2)


def agreement(ours: np.ndarray, clam: np.ndarray) -> dict:
    a, b = {tuple(c) for c in ours.tolist()}, {tuple(c) for c in clam.tolist()}
    union = a | b
    return {"ours": len(a), "clam": len(b), "clam_rows": len(clam),
            "jaccard": len(a & b) / len(union) if union else 1.0,
            "ours_in_clam": len(a & b) / len(a) if a else 1.0,
            "clam_in_ours": len(a & b) / len(b) if b else 1.0}


def preset_csv(name_or_path: str) -> Path:
    path = Path(name_or_path)
    return (path if path.suffix == ".csv" else REPO / "inputs" / "presets" / f"{name_or_path}.csv").resolve()


def bench_batch(name: str, slides: list[Path], preset: str, args, clam_dir: Path, workdir: Path) -> dict:
    csv = preset_csv(preset)
    source = link_batch(slides, workdir / f"src-{name}")
    clam_out, our_out = workdir / f"clam-{name}", workdir / f"ours-{name}"
    results = {"batch": name, "preset": preset, "slides": [str(s) for s in slides], "clam_s": [], "ours_s": []}
    warm(slides)
    for rep in range(args.repeat):
        for tool in ("clam", "ours") if rep % 2 == 0 else ("ours", "clam"):
            out = clam_out if tool == "clam" else our_out
            subprocess.run(["rm", "-rf", str(out)], check=True)
            if tool == "clam":
                cmd = [sys.executable, "create_patches_fp.py", "--source", str(source), "--save_dir", str(out),
                       "--patch_size", str(args.patch_size), "--step_size", str(args.patch_size),
                       "--preset", str(csv), "--seg", "--patch", "--stitch"]
                elapsed = run_timed(cmd, cwd=clam_dir, log=workdir / f"clam-{name}.log")
            else:
                cmd = [str(Path(sys.executable).with_name("gcmlm")), "wsi-tile", "--slide", *map(str, slides),
                       "--out", str(out), "--preset", str(csv), "--patch-size", str(args.patch_size)]
                elapsed = run_timed(cmd, log=workdir / f"ours-{name}.log")
            results[f"{tool}_s"].append(elapsed)
    per_slide = []
    for slide in slides:
        sid = slide.stem
        agree = agreement(coords_of(our_out / "patches" / f"{sid}.h5"), coords_of(clam_out / "patches" / f"{sid}.h5"))
        summary = json.loads((our_out / f"{sid}.json").read_text())
        per_slide.append({"slide": sid, "size": summary["slide"]["level_dimensions"][0],
                          "timings": summary["timings"], **agree})
    results["per_slide"] = per_slide
    results["clam_s_per_slide"] = min(results["clam_s"]) / len(slides)
    results["ours_s_per_slide"] = min(results["ours_s"]) / len(slides)
    results["speedup"] = results["clam_s_per_slide"] / results["ours_s_per_slide"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clam-dir", default=os.environ.get("CLAM_DIR"), help="CLAM checkout (or $CLAM_DIR)")
    parser.add_argument("--workdir", default="/tmp/bench-tiling")
    parser.add_argument("--preset", default="tcga", help="preset (name or CLAM CSV) for the synthetic slides, both tools")
    parser.add_argument("--real-preset", default="bwh_biopsy", help="preset for the real (biopsy-sized) slides")
    parser.add_argument("--patch-size", type=int, default=256)
    parser.add_argument("--synthetic", type=int, default=2, help="number of large synthetic slides")
    parser.add_argument("--generator", choices=("demo", "simple"), nargs="+", default=["demo"],
                        help="synthetic slides from gcmlm.demo.core.wsi (H&E-like, default) and/or synthetic_slide.py")
    parser.add_argument("--width", type=int, default=50_000)
    parser.add_argument("--height", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool; the fastest counts")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    if not args.clam_dir or not (Path(args.clam_dir) / "create_patches_fp.py").is_file():
        raise SystemExit("give a CLAM checkout with --clam-dir or CLAM_DIR (it must contain create_patches_fp.py)")
    clam_dir, workdir = Path(args.clam_dir).resolve(), Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    batches = {}
    real = [SHARED / s for s in REAL_SLIDES if (SHARED / s).is_file()]
    if real:
        batches["real"] = real
    for generator in args.generator if args.synthetic else []:
        batches[f"synth-{generator}"] = synthetic_slides(workdir, args.synthetic, args.width, args.height, generator)
    report = [bench_batch(name, slides, args.real_preset if name == "real" else args.preset, args, clam_dir, workdir)
              for name, slides in batches.items()]

    print(f"\npatch {args.patch_size}/{args.patch_size} at level 0, QA images on both sides; "
          f"wall time per slide over each batch, best of {args.repeat}")
    print(f"{'batch':<13} {'preset':<14} {'slides':>6} {'CLAM s/slide':>13} {'ours s/slide':>13} {'CLAM/ours':>10}")
    for r in report:
        print(f"{r['batch']:<13} {Path(r['preset']).stem:<14} {len(r['slides']):>6} {r['clam_s_per_slide']:>13.2f} "
              f"{r['ours_s_per_slide']:>13.2f} {r['speedup']:>9.2f}x")
    print(f"\n{'slide':<32} {'size':>13} {'ours':>7} {'CLAM':>7} {'Jaccard':>8} {'ours in CLAM':>13}")
    for r in report:
        for s in r["per_slide"]:
            size = "x".join(map(str, s["size"]))
            print(f"{s['slide']:<32} {size:>13} {s['ours']:>7} {s['clam']:>7} {s['jaccard']:>8.4f} "
                  f"{s['ours_in_clam']:>13.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
