"""fusion-train with its defaults next to a plain nested L1-logistic baseline, at equal outer repeats.

The baseline is what a careful user writes in a few lines of scikit-learn: median imputation,
standardisation and an L1 logistic regression (liblinear, balanced class weights; ``l1_ratio=1``
is sklearn 1.8+'s spelling of ``penalty="l1"``) whose C is chosen
by a 5-fold inner GridSearchCV on AUC, inside the same outer RepeatedStratifiedKFold (same seed,
so the same outer folds) as fusion-train. Both AUCs are computed the same way: per repeat on the
pooled out-of-fold scores, averaged over repeats. fusion-train runs in-process through
``train_models`` (defaults, outputs written to a temporary folder: final refit, model card,
plots and report included); the printed ratio is fusion-train's wall time over the baseline's.

Data: radMLBench's public radiomics tables (``<name>.gz``; see README.md in this folder), from
RADMLBENCH_DIR. Nothing is downloaded.

    RADMLBENCH_DIR=/path/to/radMLBench/datasets .venv/bin/python benchmarks/fusion/bench_baseline.py \
        [--datasets Dai2023 HNSCC ...] [--outer-repeats 2] [--set penalty=l1 ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, RepeatedStratifiedKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from gcmlm.fusion.fusion_train import DEFAULTS, train_models  # noqa: E402

# The tables of issue 16 first (119 x 851, 93 x 105, 207 x 984), then WORC ones.
DATASETS = ("Dai2023", "HNSCC", "Hosny2018B", "WORC-Lipo", "WORC-Desmoid", "Arita2018")
BASELINE_C = np.logspace(-2, 1, 7)  # 0.01 ... 10


def read_table(gz: Path) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """radMLBench's table as fusion-train's patient table, and the plain features and labels."""
    data = pd.read_csv(gz, compression="gzip")
    features = data.drop(columns=["ID", "Target"])
    ids = pd.DataFrame({"patient_id": [f"p{i:04d}" for i in range(len(data))]})  # some tables lack an ID
    table = pd.concat([ids, features.add_prefix("rad_"),
                       data[["Target"]].rename(columns={"Target": "label"})], axis=1)
    return table, features, data["Target"].to_numpy().astype(int)


def mean_repeat_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """AUC of each repeat's pooled out-of-fold scores (one column per repeat), averaged."""
    return float(np.mean([roc_auc_score(y, s) for s in scores.T]))


def baseline(X: np.ndarray, y: np.ndarray, repeats: int, folds: int, inner: int, seed: int) -> float:
    """Nested CV of imputation + scaling + L1 logistic regression with an inner-CV-chosen C.

    ``X`` is a float array, as a careful user would pass it (a wide DataFrame makes every
    split and step pay pandas overhead)."""
    model = GridSearchCV(
        Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler()),
                  ("clf", LogisticRegression(l1_ratio=1.0, solver="liblinear", class_weight="balanced"))]),
        {"clf__C": BASELINE_C}, scoring="roc_auc", cv=StratifiedKFold(inner, shuffle=True, random_state=seed))
    outer = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    scores = np.zeros((len(y), repeats))
    for split, (train, test) in enumerate(outer.split(X, y)):
        scores[test, split // folds] = model.fit(X[train], y[train]).predict_proba(X[test])[:, 1]
    return mean_repeat_auc(y, scores)


def parse_overrides(pairs: list[str]) -> dict:
    """``--set name=value`` pairs as TrainSettings fields (value parsed like the field's default)."""
    out = {}
    for pair in pairs:
        name, value = pair.split("=", 1)
        default = getattr(DEFAULTS, name)
        if isinstance(default, tuple):
            out[name] = tuple(int(v) for v in value.split(","))
        elif isinstance(default, bool) or default is None:
            out[name] = value
        else:
            out[name] = type(default)(value)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--outer-repeats", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="fusion-train settings to change from the defaults (e.g. n_jobs=1)")
    args = parser.parse_args()
    root = os.environ.get("RADMLBENCH_DIR")
    if not root:
        parser.error("set RADMLBENCH_DIR to a folder with radMLBench's <dataset>.gz files")
    settings = dataclasses.replace(DEFAULTS, outer_repeats=args.outer_repeats, **parse_overrides(args.set))
    logging.getLogger("gcmlm").setLevel(logging.ERROR)
    print(f"outer CV {settings.outer_repeats} x {settings.outer_folds}-fold, inner {settings.inner_folds}-fold, "
          f"seed {settings.seed}; fusion-train settings changed from the defaults: {args.set or 'none'}; "
          f"CPUs available: {len(os.sched_getaffinity(0))}")
    print(f"{'dataset':13s} {'n':>4s} {'feat':>5s}  {'fusion s':>8s} {'base s':>7s} {'ratio':>6s}  "
          f"{'fusion AUC':>10s} {'base AUC':>8s} {'diff':>7s}")
    for name in args.datasets:
        gz = Path(root) / f"{name}.gz"
        if not gz.is_file():
            print(f"{name:13s} missing: {gz}")
            continue
        table, X, y = read_table(gz)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = train_models(table, "label", settings, Path(tmp) / "out", source=name)
            ours_s = time.perf_counter() - start
        start = time.perf_counter()
        base_auc = baseline(X.to_numpy(dtype=float), y, settings.outer_repeats, settings.outer_folds, settings.inner_folds, settings.seed)
        base_s = time.perf_counter() - start
        ours_auc = result.summary["rad"]["auc"]
        print(f"{name:13s} {len(y):4d} {X.shape[1]:5d}  {ours_s:8.1f} {base_s:7.1f} {ours_s / base_s:6.2f}  "
              f"{ours_auc:10.3f} {base_auc:8.3f} {ours_auc - base_auc:+7.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
