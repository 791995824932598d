"""Nested-CV AUCs of `gcmlm fusion-train` on public radiomics tables vs the published AUCs.

Data: the six WORC datasets (Starmans et al., arXiv 2108.08618) as redistributed by radMLBench
(Demircioglu, MIT licence; https://github.com/aydindemircioglu/radMLBench, `datasets/<name>.gz`).
Nothing is downloaded here and no data are committed: point RADMLBENCH_DIR at a folder holding
the .gz files (a radMLBench checkout's `datasets/`, or the cache that
`radMLBench.loadData(name, local_cache_dir=...)` fills).

    RADMLBENCH_DIR=/path/to/radMLBench/datasets .venv/bin/python benchmarks/fusion/radmlbench_worc.py \
        [--datasets WORC-Lipo ...] [--outer-repeats 2] [-- extra fusion-train flags]

Each dataset becomes a patient table (ID -> patient_id, features prefixed rad_, Target -> label)
and runs through the real CLI in a subprocess. Printed: our nested-CV AUC [DeLong-based 95 % CI],
the paper's AUC and how the paper validated.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

# Published WORC AUCs (mean over 100 random 80/20 train/test splits; the whole workflow
# optimisation, i.e. model selection and tuning, ran inside each training split: nested).
PUBLISHED = {
    "WORC-Lipo": 0.83, "WORC-Desmoid": 0.82, "WORC-Liver": 0.81,
    "WORC-GIST": 0.77, "WORC-CRLM": 0.68, "WORC-Melanoma": 0.51,
}
DESIGN = "WORC: 100x random 80/20 splits, AutoML (random search + ensembling) nested in each training split"


def to_patient_table(gz: Path, dest: Path) -> tuple[int, int, float]:
    data = pd.read_csv(gz, compression="gzip")
    features = [c for c in data.columns if c not in ("ID", "Target")]
    table = pd.DataFrame({"patient_id": data["ID"].astype(str)})
    table = pd.concat([table, data[features].add_prefix("rad_"), data[["Target"]].rename(columns={"Target": "label"})],
                      axis=1)
    table.to_csv(dest, index=False)
    return len(table), len(features), float(table["label"].mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(PUBLISHED))
    parser.add_argument("--outer-repeats", type=int, default=2)
    parser.add_argument("--outer-folds", type=int, default=5)
    parser.add_argument("--inner-folds", type=int, default=5)
    parser.add_argument("extra", nargs="*", help="more fusion-train flags (after --)")
    args = parser.parse_args()
    root = os.environ.get("RADMLBENCH_DIR")
    if not root:
        parser.error("set RADMLBENCH_DIR to a folder with radMLBench's <dataset>.gz files")
    flags = ["--outer-folds", str(args.outer_folds), "--outer-repeats", str(args.outer_repeats),
             "--inner-folds", str(args.inner_folds), "--models", "rad", *args.extra]
    print(f"fusion-train flags: {' '.join(flags)}")
    print(f"{'dataset':15s} {'n':>4s} {'feat':>5s} {'prev':>5s}  {'gcmlm nested-CV AUC [95% CI]':30s} {'published':>9s}  {'time':>6s}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            gz = Path(root) / f"{name}.gz"
            if not gz.is_file():
                print(f"{name:15s} missing: {gz}")
                continue
            table = Path(tmp) / f"{name}.csv"
            n, p, prev = to_patient_table(gz, table)
            out = Path(tmp) / name
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "gcmlm", "fusion-train", "--table", str(table), "--label", "label",
                            "--out", str(out), "-q", *flags], check=True, stdout=subprocess.DEVNULL)
            took = time.perf_counter() - start
            m = json.loads((out / "metrics.json").read_text())["models"]["rad"]
            ours = f"{m['auc']:.3f} [{m['auc_ci95'][0]:.3f}, {m['auc_ci95'][1]:.3f}]"
            print(f"{name:15s} {n:4d} {p:5d} {prev:5.2f}  {ours:30s} {PUBLISHED.get(name, float('nan')):9.2f}  {took:5.0f}s",
                  flush=True)
            rows.append({"dataset": name, "auc": m["auc"], "ci": m["auc_ci95"], "published": PUBLISHED.get(name)})
    print(f"published design: {DESIGN}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
