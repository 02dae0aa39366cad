"""Figures from a leaderboard table (``archbench.board.aggregate.build_table``), in EfficientDet's style.

``accuracy_vs`` draws one line per neck across phi (markers, error bars = std over seeds, log x);
``size_ap_bars`` shows APs / APm / APl per neck at each phi; ``write_all`` writes every figure
that the table has data for. Each (task, dataset, preset) group gets its own panel.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported: figures are files, never windows
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter

from archbench.board.aggregate import GROUP_KEYS, SIZE_METRICS
from archbench.models.scaling import EFFICIENTDET

#: Plain numbers (2, 3, 0.5) on log axes instead of 2x10^0.
_PLAIN = FuncFormatter(lambda v, _: f"{v:g}")


def _sparse_label(value: float, _pos: int) -> str:
    """Minor-tick label on a log axis, skipping mantissas 7 and 9 (they crowd 8 and the next decade)."""
    if value <= 0:
        return ""
    mantissa = round(value / 10 ** np.floor(np.log10(value)), 6)
    return "" if mantissa in (7.0, 9.0) else f"{value:g}"


#: x axes: column -> (axis label, scale applied to the column, file stem).
X_AXES: dict[str, tuple[str, float, str]] = {
    "gflops": ("GFLOPs (1 multiply-add = 1)", 1.0, "gflops"),
    "params_total": ("Parameters (M)", 1e-6, "params"),
    "latency_ms": ("CPU latency at batch 1 (ms)", 1.0, "latency"),
}
#: One marker per neck (cycled), so that necks at nearly the same point stay apart.
MARKERS = "os^vDPX*h<>p"


def _phi_prefix(preset: str) -> str:
    """How a scale is named: D0, D1 .. for the EfficientDet preset, φ0, φ1 .. otherwise."""
    return "D" if preset == EFFICIENTDET.name else "φ"


def _groups(table: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    return list(table.groupby(GROUP_KEYS, sort=True, dropna=False))


def _save(fig: plt.Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _curve(ax: plt.Axes, sub: pd.DataFrame, x: str, scale: float, label: str, marker: str, prefix: str) -> None:
    """One neck's line across phi, each point annotated with ``prefix`` + phi (D0 for EfficientDet, φ0 otherwise)."""
    sub = sub.dropna(subset=[x, "score"]).sort_values(x)
    if sub.empty:
        return
    xs = sub[x].to_numpy(dtype=float) * scale
    ys = sub["score"].to_numpy(dtype=float)
    err = np.nan_to_num(sub["score_std"].to_numpy(dtype=float))
    ax.errorbar(xs, ys, yerr=err, marker=marker, capsize=3, linewidth=1.5, label=label)
    for xv, yv, phi in zip(xs, ys, sub["phi"]):
        ax.annotate(f"{prefix}{phi}", (xv, yv), textcoords="offset points", xytext=(4, -10), fontsize=7)


def accuracy_vs(table: pd.DataFrame, x: str = "gflops", path: Path = Path("accuracy_vs_gflops.png")) -> Path:
    """Main metric vs ``x`` (gflops, params_total or latency_ms): a line per neck across phi."""
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}, not {x!r}")
    label, scale, _ = X_AXES[x]
    groups = _groups(table)
    fig, axes = plt.subplots(len(groups), 1, figsize=(6.5, 4.5 * len(groups)), squeeze=False)
    for ax, (key, group) in zip(axes[:, 0], groups):
        prefix = _phi_prefix(key[2])
        for i, (neck, sub) in enumerate(group.groupby("neck", sort=True)):
            _curve(ax, sub, x, scale, str(neck), MARKERS[i % len(MARKERS)], prefix)
        if (group[x] > 0).any():
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(_PLAIN)
            positive = group.loc[group[x] > 0, x]
            if positive.max() / positive.min() < 10:  # within a decade: label the minor ticks too
                ax.xaxis.set_minor_formatter(FuncFormatter(_sparse_label))
        metric = group["metric"].iloc[0]
        ax.set_xlabel(label)
        ax.set_ylabel(f"{metric} (mean ± std over seeds)")
        ax.set_title(f"{metric} vs {label.split(' (')[0]} — {key[0]} / {key[1]} / {key[2]}")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # outside the axes: ten necks would hide points
            ax.legend(title="neck", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return _save(fig, path)


def _bars(ax: plt.Axes, rows: pd.DataFrame, necks: list[str]) -> None:
    """Grouped APs / APm / APl bars for one phi: a group per neck of ``necks`` (none where ``rows`` lacks it)."""
    rows = rows.set_index("neck").reindex(necks)
    pos = np.arange(len(necks))
    width = 0.8 / len(SIZE_METRICS)
    for i, m in enumerate(SIZE_METRICS):
        means = rows[f"{m}_mean"].to_numpy(dtype=float)
        stds = np.nan_to_num(rows[f"{m}_std"].to_numpy(dtype=float))
        ax.bar(pos + (i - 1) * width, np.nan_to_num(means), width, yerr=stds, capsize=2, label=m)


def size_ap_bars(table: pd.DataFrame, path: Path = Path("size_ap.png")) -> Path:
    """APs / APm / APl bars per neck, one row of panels per (det group, phi); error bars = std.

    Panels are stacked so that ten necks fit side by side; within a group every panel has the same
    necks in the same place, named under the bottom panel.
    """
    det = table[table["task"] == "det"] if "task" in table.columns else table
    if det.empty or not all(f"{m}_mean" in det.columns for m in SIZE_METRICS):
        raise ValueError("size_ap_bars needs detection rows with APs / APm / APl")
    panels = [(key, group, phi) for key, group in _groups(det) for phi in sorted(group["phi"].unique())]
    n_necks = det["neck"].nunique()
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(max(6.0, 0.6 * n_necks + 2), 2.6 * len(panels)), squeeze=False, sharey=True
    )
    for r, (key, group, phi) in enumerate(panels):
        ax = axes[r, 0]
        necks = sorted(group["neck"].unique())
        _bars(ax, group[group["phi"] == phi], necks)
        last_of_group = r + 1 == len(panels) or panels[r + 1][0] != key
        ax.set_xticks(np.arange(len(necks)), necks if last_of_group else [], rotation=30, ha="right")
        ax.set_title(f"{_phi_prefix(key[2])}{phi} — {key[1]} / {key[2]}", fontsize=9)
        ax.set_ylabel("AP by object size")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def _plan(table: pd.DataFrame) -> list[tuple[str, Callable[[Path], Path]]]:
    """(file name, drawer taking the output path) for every figure the table has data for."""
    if table.empty:
        return []
    plan: list[tuple[str, Callable[[Path], Path]]] = [
        (f"accuracy_vs_{stem}.png", partial(accuracy_vs, table, x))
        for x, (_, _, stem) in X_AXES.items()
        if x in table.columns and table[x].notna().any()
    ]
    if all(f"{m}_mean" in table.columns for m in SIZE_METRICS) and (table["task"] == "det").any():
        plan.append(("size_ap.png", partial(size_ap_bars, table)))
    return plan


def figure_names(table: pd.DataFrame) -> list[str]:
    """File names of the figures ``write_all`` would write for this table, in its order (nothing is drawn)."""
    return [name for name, _ in _plan(table)]


def write_all(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Every figure the table has data for, as PNG files under ``out_dir``; returns their paths."""
    return [draw(Path(out_dir) / name) for name, draw in _plan(table)]
