"""fusion-train's time-to-event path against a plain nested CoxNet on public scikit-survival data.

    .venv/bin/python benchmarks/survival/bench_survival.py [--repeats 2] [--folds 5] [--datasets gbsg2 ...]

Each data set (shipped with scikit-survival, no download) becomes a patient table: categorical
columns one-hot encoded, every feature prefixed ``clin_``, follow-up time and event as columns.
Both sides use the same outer folds (RepeatedStratifiedKFold on the event, same seed), the same
5-fold inner CV and the same alpha grid; the C-index is Harrell's on each repeat's pooled
out-of-fold risk scores, averaged over repeats. Pass: ours >= baseline - 0.02 on every data set.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd
from sklearn.model_selection import GridSearchCV, RepeatedStratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sksurv.column import encode_categorical
from sksurv.datasets import load_gbsg2, load_veterans_lung_cancer, load_whas500
from sksurv.linear_model import CoxnetSurvivalAnalysis
from sksurv.metrics import concordance_index_censored

from gcmlm.fusion.core import survival
from gcmlm.fusion.fusion_train import TrainSettings, train_models

LOADERS = {"gbsg2": load_gbsg2, "whas500": load_whas500, "veterans": load_veterans_lung_cancer}
TOLERANCE = 0.02


def patient_table(name: str) -> tuple[pd.DataFrame, np.ndarray]:
    X, y = LOADERS[name]()
    X = encode_categorical(X).astype(float)
    event_field, time_field = y.dtype.names
    table = pd.DataFrame({"patient_id": [f"{name}{i:04d}" for i in range(len(X))]})
    for column in X.columns:
        table["clin_" + "".join(ch if ch.isalnum() else "_" for ch in column)] = X[column].to_numpy()
    table["time"], table["event"] = y[time_field].astype(float), y[event_field].astype(int)
    return table, survival.surv(table["event"], table["time"])


def baseline_c(table: pd.DataFrame, y: np.ndarray, folds: int, repeats: int, seed: int) -> float:
    """Plain nested CoxNet: scaling + Coxnet, alpha tuned by 5-fold inner CV on Harrell's C."""
    X = table.filter(like="clin_").to_numpy()
    outer = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    risk = np.zeros((repeats, len(y)))
    for split, (train, test) in enumerate(outer.split(X, y["event"])):
        model = GridSearchCV(make_pipeline(StandardScaler(), CoxnetSurvivalAnalysis(l1_ratio=0.5, max_iter=100_000)),
                             {"coxnetsurvivalanalysis__alphas": [[a] for a in survival.ALPHAS["full"]]},
                             cv=survival.EventStratifiedKFold(5, shuffle=True, random_state=seed))
        risk[split // folds, test] = model.fit(X[train], y[train]).predict(X[test])
    return float(np.mean([concordance_index_censored(y["event"], y["time"], r)[0] for r in risk]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=list(LOADERS), default=list(LOADERS))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    settings = TrainSettings(outer_folds=args.folds, outer_repeats=args.repeats, penalty="elasticnet",
                             selection="none", corr_threshold=1.0, seed=args.seed)
    ok = True
    print(f"{'data set':10} {'n':>5} {'events':>6} {'ours C':>7} {'base C':>7} {'diff':>7} {'t ours':>7} "
          f"{'t base':>7} {'ratio':>6}")
    for name in args.datasets:
        table, y = patient_table(name)
        start = time.perf_counter()
        result = train_models(table, survival.SurvivalOutcome("time", "event", "days"), settings, source=name)
        t_ours = time.perf_counter() - start
        ours = result.summary["clin"]["harrell_c"]
        start = time.perf_counter()
        base = baseline_c(table, y, args.folds, args.repeats, args.seed)
        t_base = time.perf_counter() - start
        ok &= ours >= base - TOLERANCE
        print(f"{name:10} {len(y):5d} {int(y['event'].sum()):6d} {ours:7.4f} {base:7.4f} {ours - base:+7.4f} "
              f"{t_ours:6.1f}s {t_base:6.1f}s {t_ours / t_base:6.1f}", flush=True)
    print("PASS" if ok else f"FAIL: ours < baseline - {TOLERANCE} on a data set")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
