"""MIL benchmarks (issue #13): mil-train time per outer fold and peak RSS on precomputed synthetic
features (default 200 patients x 2,000 patches x 1,024-d, bags streamed from h5), and mil-heatmap
seconds per slide. Prints the figures; run on an otherwise idle machine for comparable numbers.

    .venv/bin/python benchmarks/mil/bench_mil.py [--patients 200 --patches 2000 --dim 1024 --threads 2]
"""

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np


def write_cohort(folder: Path, patients: int, patches: int, dim: int) -> tuple[list[Path], Path]:
    from gcmlm.pathology.core.mil import planted_bags

    files, rows = [], ["patient_id,mlm"]
    attrs = {"patch_size": np.int64(256), "patch_level": np.int64(0), "downsample": np.array([1.0, 1.0])}
    for start in range(0, patients, 20):  # 20 patients at a time: the generator stays small in memory
        chunk, labels = planted_bags(min(20, patients - start), patches, dim, seed=start, shift=0.5)
        for i, (patient, label) in enumerate(zip(chunk, labels, strict=True)):
            pid = f"B{start + i:03d}"
            path = folder / f"{pid}.h5"
            with h5py.File(path, "w") as h5:
                h5.create_dataset("features", data=patient["features"]).attrs.update(
                    {"encoder": "synthetic", "checkpoint_sha256": "bench"})
                h5.create_dataset("coords", data=patient["coords"]).attrs.update(attrs)
            files.append(path)
            rows.append(f"{pid},{label}")
    labels_csv = folder / "labels.csv"
    labels_csv.write_text("\n".join(rows) + "\n")
    return files, labels_csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--patches", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--folds", type=int, default=5, help="an outer fold trains on (folds-1)/folds of the patients")
    args = parser.parse_args()
    from gcmlm.pathology.mil_heatmap import render_heatmap
    from gcmlm.pathology.mil_predict import predict_files, write_predictions
    from gcmlm.pathology.mil_train import train_mil

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        files, labels = write_cohort(tmp, args.patients, args.patches, args.dim)
        print(f"cohort: {args.patients} patients x {args.patches} patches x {args.dim}-d written in "
              f"{time.perf_counter() - t:.1f} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        n_train = round(args.patients * (args.folds - 1) / args.folds)
        t = time.perf_counter()
        result = train_mil(files[:n_train], labels, "mlm", tmp / "model", device="cpu", threads=args.threads)
        fold = time.perf_counter() - t
        epochs = len(result.model.training["history"])
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
        print(f"mil-train, one outer fold ({n_train} patients, {args.threads} threads): {fold:.1f} s "
              f"({epochs} epochs, best {result.model.training['best_epoch']}); peak RSS {peak_gb:.2f} GB")
        predicted = predict_files(tmp / "model", files[n_train:], device="cpu", threads=args.threads)
        write_predictions(predicted, tmp / "risk.csv", attention_dir=tmp / "att")
        attention = sorted((tmp / "att").glob("*.h5"))[0]
        t = time.perf_counter()
        render_heatmap(attention, tmp / "h.png", tmp / "h.geojson")
        print(f"mil-heatmap: {time.perf_counter() - t:.2f} s per slide ({args.patches} patches, no slide file)")


if __name__ == "__main__":
    main()
