"""Figures from a leaderboard table (``archbench.board.aggregate.build_table``), in EfficientDet's style.

Each figure is a function of the table that returns a matplotlib Figure: ``accuracy_vs`` draws one line per
neck across phi against one cost (log x), with the Pareto front and how often each point is on it when given
``equal_cost.pareto_frequency``'s frame; ``learning_curves`` draws the main metric against the training
schedule where the board has several; ``size_ap_bars`` shows APs / APm / APl per neck at each phi.
``write_all`` saves every figure the table has data for. Every comparison group (one value of ``GROUP_KEYS``)
gets its own panels, titled with all its keys as the board's headings are; every error bar is the 95 %
interval the board's tables show (``<metric>_ci95``), none for a single seed; each neck has its own colour
and marker (``archbench.board.neck_styles``).
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

from archbench.board.aggregate import GROUP_KEYS, SIZE_METRICS, UNSCHEDULED_KEYS, pareto_mask
from archbench.board.cells import group_title
from archbench.board.neck_styles import Style, styles
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
#: Columns of the Pareto-front frame ``accuracy_vs`` takes (``equal_cost.pareto_frequency``'s): per group,
#: cost axis (a column of ``X_AXES``), neck and phi, ``FRONT_FREQ``: the fraction of seed resamples in which
#: that (neck, phi) is on the group's (main metric, cost) front.
FRONT_KEYS = [*GROUP_KEYS, "axis", "neck", "phi"]
FRONT_FREQ = "front_freq"
#: Learning curves: neighbouring necks are drawn this far apart along the schedule axis (in log2 epochs).
DODGE = 0.025
#: Front frequencies below this are not drawn (they would only clutter the panel).
MIN_FREQ = 0.05
#: Marker area (points^2) of the ring around a point on the front in every resample.
RING_AREA = 700.0


def _phi_prefix(preset: str) -> str:
    """How a scale is named: D0, D1 .. for the EfficientDet preset, φ0, φ1 .. otherwise."""
    return "D" if preset == EFFICIENTDET.name else "φ"


def _groups(table: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    return list(table.groupby(GROUP_KEYS, sort=True, dropna=False))


def _title(what: str, keys: tuple, names: list[str] = GROUP_KEYS) -> str:
    """A panel's title: what it plots, then every key of its group as the board's heading writes them."""
    return f"{what}\n{group_title(dict(zip(names, keys)))}"


def _interval_label(metric: str) -> str:
    """The y label of a figure whose error bars are the tables' intervals."""
    return f"{metric}\n(mean ± 95 % CI over seeds; one seed: no bar)"


def _errorbar(ax: plt.Axes, xs: np.ndarray, rows: pd.DataFrame, label: str, style: Style) -> None:
    """``rows``' main metric at ``xs`` with the tables' 95 % half-widths as error bars (none where NaN: one seed)."""
    ys = rows["score"].to_numpy(dtype=float)
    err = rows["score_ci95"].to_numpy(dtype=float)
    ax.errorbar(
        xs, ys, yerr=err, marker=style.marker, color=style.colour, capsize=3, linewidth=1.5, markersize=6, label=label
    )


def _legend(ax: plt.Axes) -> None:
    if ax.get_legend_handles_labels()[0]:  # outside the axes: thirteen necks would hide points
        ax.legend(title="neck", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)


def _curve(ax: plt.Axes, sub: pd.DataFrame, x: str, scale: float, label: str, style: Style, prefix: str) -> None:
    """One neck's line across phi, each point annotated with ``prefix`` + phi (D0 for EfficientDet, φ0 otherwise)."""
    sub = sub.dropna(subset=[x, "score"]).sort_values(x)
    if sub.empty:
        return
    xs = sub[x].to_numpy(dtype=float) * scale
    _errorbar(ax, xs, sub, label, style)
    for xv, yv, phi in zip(xs, sub["score"], sub["phi"]):
        ax.annotate(f"{prefix}{phi}", (xv, yv), textcoords="offset points", xytext=(4, -10), fontsize=7)


def _front_frequencies(fronts: pd.DataFrame, group: pd.DataFrame, x: str) -> np.ndarray:
    """``fronts``' ``FRONT_FREQ`` of each row of ``group`` on axis ``x``, in its order (NaN where it has none)."""
    missing = [c for c in [*FRONT_KEYS, FRONT_FREQ] if c not in fronts.columns]
    if missing:
        raise ValueError(f"the Pareto-front frame lacks the columns {', '.join(missing)}")
    keys = [*GROUP_KEYS, "neck", "phi"]
    on_axis = fronts.loc[fronts["axis"] == x, [*keys, FRONT_FREQ]].drop_duplicates(keys)
    return group[keys].merge(on_axis, on=keys, how="left")[FRONT_FREQ].to_numpy(dtype=float)


def _front(ax: plt.Axes, group: pd.DataFrame, x: str, scale: float, freq: np.ndarray) -> None:
    """The front of the group's means as a step line (the best mean at most each cost), and how often each point
    is on the front over seed resamples: a ring of area ``freq`` x ``RING_AREA`` and the share in per cent."""
    points = group.assign(freq=freq).dropna(subset=[x, "score"])
    on = np.asarray(pareto_mask(points["score"], points[x]), dtype=bool)
    front = points[on].sort_values(x)
    ax.step(
        front[x].to_numpy(dtype=float) * scale, front["score"], where="post", color="0.3", linestyle="--",
        linewidth=1.0, zorder=1, label="front of the means",
    )  # fmt: skip
    shown = points[points["freq"] >= MIN_FREQ]
    xs = shown[x].to_numpy(dtype=float) * scale
    ax.scatter(xs, shown["score"], s=shown["freq"] * RING_AREA, facecolors="none", edgecolors="0.3", linewidths=1.0)
    ax.plot([], [], "o", markerfacecolor="none", markeredgecolor="0.3", label="% of seed resamples on the front")
    for xv, yv, f in zip(xs, shown["score"], shown["freq"]):
        ax.annotate(f"{f:.0%}", (xv, yv), textcoords="offset points", xytext=(5, 5), fontsize=7, color="0.2")


def accuracy_vs(table: pd.DataFrame, x: str = "gflops", fronts: pd.DataFrame | None = None) -> plt.Figure:
    """Main metric vs ``x`` (gflops, params_total or latency_ms): a line per neck across phi, a panel per group.

    With ``fronts`` (columns ``FRONT_KEYS`` and ``FRONT_FREQ``, as ``equal_cost.pareto_frequency`` returns) each
    panel also shows the Pareto front of its means on ``x`` and each point's front frequency on that axis;
    without it no front is drawn.
    """
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}, not {x!r}")
    label, scale, _ = X_AXES[x]
    groups = _groups(table)
    style = styles(table["neck"])
    fig, axes = plt.subplots(len(groups), 1, figsize=(10.0, 6.0 * len(groups)), squeeze=False, layout="constrained")
    for ax, (key, group) in zip(axes[:, 0], groups):
        prefix = _phi_prefix(key[2])
        for neck, sub in group.groupby("neck", sort=True):
            _curve(ax, sub, x, scale, str(neck), style[str(neck)], prefix)
        if fronts is not None:
            _front(ax, group, x, scale, _front_frequencies(fronts, group, x))
        if (group[x] > 0).any():
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(_PLAIN)
            positive = group.loc[group[x] > 0, x]
            if positive.max() / positive.min() < 10:  # within a decade: label the minor ticks too
                ax.xaxis.set_minor_formatter(FuncFormatter(_sparse_label))
        metric = group["metric"].iloc[0]
        ax.set_xlabel(label)
        ax.set_ylabel(_interval_label(metric))
        ax.set_title(_title(f"{metric} vs {label.split(' (')[0]}", key), fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        _legend(ax)
    return fig


def learning_panels(table: pd.DataFrame) -> list[tuple[tuple, int, pd.DataFrame]]:
    """(``UNSCHEDULED_KEYS`` values, phi, rows) for each learning-curve panel the table has: groups that differ only in
    ``epochs``, at one phi, with the necks that ran there at two or more schedules; a panel needs two schedules."""
    panels = []
    curves = table.dropna(subset=["epochs", "score"])
    for key, family in curves.groupby(UNSCHEDULED_KEYS + ["phi"], sort=True, dropna=False):
        schedules = family.groupby("neck")["epochs"].transform("nunique")
        rows = family[schedules >= 2]
        if rows["epochs"].nunique() >= 2:
            panels.append((key[:-1], key[-1], rows))
    return panels


def learning_curves(table: pd.DataFrame) -> plt.Figure:
    """Main metric against the training schedule (epochs, log2 x): a line per neck, one panel per
    (``UNSCHEDULED_KEYS``, phi) of :func:`learning_panels`; ``ValueError`` when there is none."""
    panels = learning_panels(table)
    if not panels:
        raise ValueError("learning_curves needs groups that differ only in epochs, with a neck at 2+ schedules")
    style = styles(table["neck"])
    fig, axes = plt.subplots(len(panels), 1, figsize=(9.0, 5.0 * len(panels)), squeeze=False, layout="constrained")
    for ax, (key, phi, rows) in zip(axes[:, 0], panels):
        curves = list(rows.sort_values("epochs").groupby("neck", sort=True))
        for i, (neck, sub) in enumerate(curves):  # each neck a little apart, so its bars stay visible
            dodge = 2.0 ** (DODGE * (i - (len(curves) - 1) / 2))
            _errorbar(ax, sub["epochs"].to_numpy(dtype=float) * dodge, sub, str(neck), style[str(neck)])
        schedules = sorted(rows["epochs"].unique())
        ax.set_xscale("log", base=2)
        ax.set_xticks(schedules, [f"{e:g}" for e in schedules])
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda *_: ""))
        metric = rows["metric"].iloc[0]
        ax.set_xlabel("training schedule (epochs, log2 scale)")
        ax.set_ylabel(_interval_label(metric))
        ax.set_title(_title(f"{metric} vs schedule, {_phi_prefix(key[2])}{phi}", key, UNSCHEDULED_KEYS), fontsize=10)
        ax.grid(True, alpha=0.3)
        _legend(ax)
    return fig


def _bars(ax: plt.Axes, rows: pd.DataFrame, necks: list[str]) -> None:
    """Grouped APs / APm / APl bars for one phi: a group per neck of ``necks`` (none where ``rows`` lacks it)."""
    rows = rows.set_index("neck").reindex(necks)
    pos = np.arange(len(necks))
    width = 0.8 / len(SIZE_METRICS)
    for i, m in enumerate(SIZE_METRICS):
        means = rows[f"{m}_mean"].to_numpy(dtype=float)
        half = rows[f"{m}_ci95"].to_numpy(dtype=float)
        ax.bar(pos + (i - 1) * width, np.nan_to_num(means), width, yerr=half, capsize=2, label=m)


def size_ap_bars(table: pd.DataFrame) -> plt.Figure:
    """APs / APm / APl bars per neck, one row of panels per (det group, phi); error bars = 95 % CI over seeds.

    Panels are stacked so that ten necks fit side by side; within a group every panel has the same
    necks in the same place, named under the bottom panel.
    """
    det = table[table["task"] == "det"] if "task" in table.columns else table
    if det.empty or not all(f"{m}_{s}" in det.columns for m in SIZE_METRICS for s in ("mean", "ci95")):
        raise ValueError("size_ap_bars needs detection rows with APs / APm / APl")
    panels = [(key, group, phi) for key, group in _groups(det) for phi in sorted(group["phi"].unique())]
    n_necks = det["neck"].nunique()
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(max(6.0, 0.6 * n_necks + 2), 2.6 * len(panels)), squeeze=False, sharey=True,
        layout="constrained",
    )  # fmt: skip
    for r, (key, group, phi) in enumerate(panels):
        ax = axes[r, 0]
        necks = sorted(group["neck"].unique())
        _bars(ax, group[group["phi"] == phi], necks)
        last_of_group = r + 1 == len(panels) or panels[r + 1][0] != key
        ax.set_xticks(np.arange(len(necks)), necks if last_of_group else [], rotation=30, ha="right")
        ax.set_title(f"{_phi_prefix(key[2])}{phi} — {group_title(dict(zip(GROUP_KEYS, key)))}", fontsize=9)
        ax.set_ylabel("AP by size\n(mean ± 95 % CI)")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _plan(table: pd.DataFrame, fronts: pd.DataFrame | None = None) -> list[tuple[str, Callable[[], plt.Figure]]]:
    """(file name, drawer) for every figure the table has data for."""
    if table.empty:
        return []
    plan: list[tuple[str, Callable[[], plt.Figure]]] = [
        (f"accuracy_vs_{stem}.png", partial(accuracy_vs, table, x, fronts=fronts))
        for x, (_, _, stem) in X_AXES.items()
        if x in table.columns and table[x].notna().any()
    ]
    if learning_panels(table):
        plan.append(("learning_curves.png", partial(learning_curves, table)))
    if all(f"{m}_mean" in table.columns for m in SIZE_METRICS) and (table["task"] == "det").any():
        plan.append(("size_ap.png", partial(size_ap_bars, table)))
    return plan


def figure_names(table: pd.DataFrame) -> list[str]:
    """File names of the figures ``write_all`` would write for this table, in its order (nothing is drawn)."""
    return [name for name, _ in _plan(table)]


def write_all(table: pd.DataFrame, out_dir: Path, fronts: pd.DataFrame | None = None) -> list[Path]:
    """Every figure the table has data for, as PNG files under ``out_dir``; returns their paths.

    ``fronts``: the Pareto-front frequencies the accuracy-vs-cost figures draw (see :func:`accuracy_vs`).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in _plan(table, fronts):
        fig = draw()
        fig.savefig(out_dir / name, dpi=120, bbox_inches="tight")
        plt.close(fig)
        paths.append(out_dir / name)
    return paths
