"""Iso-FLOPs comparison: necks compared at equal compute.

Each neck's main metric is interpolated along its own phi curve (accuracy vs GFLOPs) at budgets
common to the necks of a (task, dataset, preset) group; nothing is extrapolated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from archbench.board.aggregate import GROUP_KEYS
from archbench.train.task_names import main_metric

ISO_COLUMNS = [*GROUP_KEYS, "metric", "gflops", "neck", "value"]


def _neck_curve(sub: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A neck's (gflops, score) points sorted by gflops; points at equal gflops are averaged."""
    pts = sub.dropna(subset=["gflops", "score"]).groupby("gflops")["score"].mean().sort_index()
    return pts.index.to_numpy(dtype=float), pts.to_numpy(dtype=float)


def interpolate(xs: np.ndarray, ys: np.ndarray, at: float) -> float:
    """Linear interpolation of (xs, ys) at ``at``; NaN outside [min xs, max xs] (no extrapolation)."""
    if len(xs) == 0 or at < xs[0] or at > xs[-1]:
        return math.nan
    return float(np.interp(at, xs, ys))


def _default_budgets(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """The group's gflops values that lie inside every (multi-point) neck's range.

    Single-point necks do not narrow the range (they only get a value at their own gflops). When
    the ranges share nothing, every gflops value of the group is a budget.
    """
    all_x = sorted({float(x) for xs, _ in curves.values() for x in xs})
    spans = [(xs[0], xs[-1]) for xs, _ in curves.values() if len(xs) >= 2]
    if not spans:
        return all_x
    lo, hi = max(s[0] for s in spans), min(s[1] for s in spans)
    inside = [x for x in all_x if lo <= x <= hi]
    return inside or all_x


def iso_flops(table: pd.DataFrame, budgets: Sequence[float] | None = None) -> pd.DataFrame:
    """Each neck's main metric interpolated along its own phi curve at common GFLOPs budgets.

    ``table`` is a leaderboard (``archbench.board.aggregate.build_table``). Long format, one row per
    (task, dataset, preset, budget, neck): ``metric``, ``gflops`` (the budget) and ``value`` (NaN
    outside the neck's measured range: no extrapolation). ``budgets`` apply to every group; by
    default each group uses its rows' gflops values that lie inside every neck's range (see
    ``_default_budgets``).
    """
    out: list[dict[str, Any]] = []
    if table.empty:
        return pd.DataFrame(columns=ISO_COLUMNS)
    for key, group in table.groupby(GROUP_KEYS, sort=True, dropna=False):
        keys = dict(zip(GROUP_KEYS, key))
        curves = {neck: _neck_curve(sub) for neck, sub in group.groupby("neck", sort=True)}
        points = sorted({float(b) for b in budgets}) if budgets is not None else _default_budgets(curves)
        metric = main_metric(keys["task"])
        for b in points:
            for neck, (xs, ys) in curves.items():
                out.append({**keys, "metric": metric, "gflops": b, "neck": neck, "value": interpolate(xs, ys, b)})
    return pd.DataFrame(out, columns=ISO_COLUMNS)
