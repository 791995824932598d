"""ROC, calibration and decision curves, each written as PNG and SVG (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from gcmlm.common.atomic import atomic_file  # noqa: E402
from gcmlm.fusion.core import metrics  # noqa: E402

# Every file is rendered with the same metadata, and SVG element IDs are hashed with a fixed salt
# (matplotlib's default is a random one per process), so reruns give byte-identical files.
_META = {"svg": {"Date": None, "Creator": None}, "png": {"Software": None}}
_RC = {"svg.hashsalt": "gcmlm"}


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    paths = []
    for ext in ("png", "svg"):
        path = out_dir / f"{stem}.{ext}"
        with atomic_file(path) as tmp, matplotlib.rc_context(_RC):
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight", metadata=_META[ext])
        paths.append(path)
    plt.close(fig)
    return paths


def auc_label(auc: float, ci95: list[float]) -> str:
    """A model's legend entry on ROC plots: its AUC and 95 % CI to two decimals."""
    return f"AUC {auc:.2f} [{ci95[0]:.2f}, {ci95[1]:.2f}]"


def roc(curves: dict[str, list[tuple[np.ndarray, np.ndarray]]], aucs: dict[str, str], out_dir: Path,
        stem: str = "roc", title: str = "ROC") -> list[Path]:
    """``curves``: per model, one (y, score) pair per repeat; repeats are averaged on a common FPR grid."""
    fig, ax = plt.subplots(figsize=(5, 5))
    grid = np.linspace(0, 1, 201)
    for name, pairs in curves.items():
        tprs = []
        for y, s in pairs:
            fpr, tpr, _ = roc_curve(y, s)
            tprs.append(np.interp(grid, fpr, tpr))
        ax.plot(grid, np.mean(tprs, axis=0), label=f"{name} ({aucs[name]})")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, out_dir, stem)


def calibration(preds: dict[str, tuple[np.ndarray, np.ndarray]], out_dir: Path, stem: str = "calibration",
                title: str = "Calibration", bins: int = 5) -> list[Path]:
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (y, p) in preds.items():
        frac, mean_p = calibration_curve(y, p, n_bins=bins, strategy="quantile")
        ax.plot(mean_p, frac, marker="o", label=name)
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="ideal")
    ax.set(xlabel="predicted risk", ylabel="observed frequency", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, out_dir, stem)


def decision_curve(preds: dict[str, tuple[np.ndarray, np.ndarray]], out_dir: Path, stem: str = "decision_curve",
                   thresholds: np.ndarray | None = None) -> list[Path]:
    thresholds = metrics.decision_thresholds() if thresholds is None else thresholds
    fig, ax = plt.subplots(figsize=(6, 4.5))
    nb, top = None, 0.05
    for name, (y, p) in preds.items():
        nb = metrics.net_benefit(y, p, thresholds)
        ax.plot(thresholds, nb["model"], label=name)
        top = max(top, max(nb["model"]), nb["treat_all"][0])
    if nb is not None:
        ax.plot(thresholds, nb["treat_all"], c="grey", ls="--", label="treat all")
        ax.plot(thresholds, nb["treat_none"], c="black", lw=1, label="treat none")
    ax.set_ylim(-0.05, top + 0.05)
    ax.set(xlabel="threshold probability", ylabel="net benefit", title="Decision curve")
    ax.legend(fontsize=8)
    return _save(fig, out_dir, stem)
