"""Time-to-event figures (PNG + SVG, like plots.py): Kaplan-Meier by risk group with the numbers at
risk under the axes, time-dependent AUC per horizon, and calibration at each horizon."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gcmlm.fusion.core import survival
from gcmlm.fusion.core.plots import _save, plt


def numbers_at_risk(time: np.ndarray, ticks: np.ndarray) -> list[int]:
    return [int((time >= t).sum()) for t in ticks]


def km_by_group(y: np.ndarray, groups: np.ndarray, names: list[str], out_dir: Path, *, stem: str, title: str,
                unit: str, p_value: float | None = None) -> list[Path]:
    """Kaplan-Meier curve per risk group, the log-rank p in the title, numbers at risk underneath."""
    fig, (ax, table_ax) = plt.subplots(2, 1, figsize=(6, 5.5), gridspec_kw={"height_ratios": [4, 1]}, sharex=True)
    ticks = np.linspace(0, float(np.quantile(y["time"], 0.95)), 6)
    rows = []
    for g, name in enumerate(names):
        members = groups == g
        if not members.any():
            continue
        times, surv = survival.kaplan_meier(y[members])
        ax.step(np.concatenate([[0.0], times]), np.concatenate([[1.0], surv]), where="post",
                label=f"{name} (n={int(members.sum())})")
        rows.append((name, numbers_at_risk(y["time"][members], ticks)))
    suffix = f" (log-rank p = {p_value:.3g})" if p_value is not None and np.isfinite(p_value) else ""
    ax.set(ylabel="metastasis-free probability", title=title + suffix, ylim=(0, 1.02), xlim=(0, ticks[-1]))
    ax.legend(loc="lower left", fontsize=8)
    table_ax.axis("off")
    for i, (name, counts) in enumerate(rows):
        yy = 1 - (i + 1) / (len(rows) + 1)
        table_ax.text(-0.02 * ticks[-1], yy, name, ha="right", va="center", fontsize=7)
        for t, n in zip(ticks, counts, strict=True):
            table_ax.text(t, yy, str(n), ha="center", va="center", fontsize=7)
    table_ax.set_title(f"numbers at risk (time in {unit})", fontsize=8)
    return _save(fig, out_dir, stem)


def time_auc(summary: dict[str, dict], horizons: list[float], out_dir: Path, *, unit: str,
             stem: str = "cv_time_auc") -> list[Path]:
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, s in summary.items():
        values = [s.get(f"auc_{h:g}", np.nan) for h in horizons]
        ax.plot(horizons, values, marker="o", label=f"{name} (C {s['harrell_c']:.2f})")
    ax.axhline(0.5, ls="--", c="grey", lw=1)
    ax.set(xlabel=f"horizon ({unit})", ylabel="time-dependent AUC", ylim=(0.3, 1.0), title="AUC(t) by horizon")
    ax.legend(fontsize=8)
    return _save(fig, out_dir, stem)


def calibration_at_horizons(rows: list[dict], out_dir: Path, *, stem: str, title: str) -> list[Path]:
    """Mean predicted vs Kaplan-Meier observed survival per tertile, one colour per horizon."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for h in sorted({r["horizon"] for r in rows}):
        points = [r for r in rows if r["horizon"] == h]
        ax.plot([r["predicted_survival"] for r in points], [r["observed_survival_km"] for r in points],
                marker="o", label=f"t = {h:g}")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="ideal")
    ax.set(xlabel="predicted survival", ylabel="observed survival (Kaplan-Meier)", title=title,
           xlim=(0, 1.02), ylim=(0, 1.02))
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, out_dir, stem)
