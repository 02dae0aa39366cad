"""Iso-FLOPs comparison: necks compared at equal compute.

Each neck's main metric is interpolated along its own phi curve (accuracy vs GFLOPs) at budgets
common to the necks of a group (``aggregate.GROUP_KEYS``); nothing is extrapolated.

The interval: given the per-seed rows, each seed's own curve (its runs of the neck across phi) is
interpolated at the budget, and ``ci95`` is the Student-t 95 % half-width over those per-seed values
(:func:`archbench.board.stats.mean_ci`). A neck's GFLOPs do not depend on the seed and linear interpolation
is linear in the values, so when every seed has every phi the per-seed values average to ``value`` exactly;
the interval is then that of the interpolated mean. Chosen over propagating the two bracketing points'
intervals because a seed's runs at neighbouring phi are not independent draws, and the per-seed curve
keeps whatever they share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from archbench.board.aggregate import GROUP_KEYS
from archbench.board.stats import mean_ci
from archbench.train.task_names import main_metric

BUDGET_GAP = 0.02  # default budgets closer than this (relative) are one budget; see _thinned
ISO_COLUMNS = [*GROUP_KEYS, "metric", "gflops", "neck", "value", "ci95", "n_seeds"]


def _neck_curve(sub: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A neck's (gflops, score) points sorted by gflops; points at equal gflops are averaged."""
    pts = sub.dropna(subset=["gflops", "score"]).groupby("gflops")["score"].mean().sort_index()
    return pts.index.to_numpy(dtype=float), pts.to_numpy(dtype=float)


def interpolate(xs: np.ndarray, ys: np.ndarray, at: float) -> float:
    """Linear interpolation of (xs, ys) at ``at``; NaN outside [min xs, max xs] (no extrapolation).

    ``at`` within a relative 1e-9 of an end counts as that end: a budget taken from the board's table is a
    mean over seeds, and the mean of three equal floats can differ from them in the last bit.
    """
    tol = 1e-9 * max(1.0, abs(at))
    if len(xs) == 0 or at < xs[0] - tol or at > xs[-1] + tol:
        return math.nan
    return float(np.interp(min(max(at, xs[0]), xs[-1]), xs, ys))


def _seed_values(seeds: pd.DataFrame, metric: str, at: float) -> list[float]:
    """Each seed's own curve (its (gflops, metric) points of one neck) interpolated at ``at``; seeds whose
    range does not hold ``at`` are left out."""
    out = []
    for _, sub in seeds.dropna(subset=["gflops", metric]).groupby("seed"):
        pts = sub.groupby("gflops")[metric].mean().sort_index()
        v = interpolate(pts.index.to_numpy(dtype=float), pts.to_numpy(dtype=float), at)
        if not math.isnan(v):
            out.append(v)
    return out


def _interval(seeds: pd.DataFrame | None, metric: str, at: float) -> tuple[float, int]:
    """(95 % half-width over seeds, number of seeds) of the per-seed interpolations at ``at``; (NaN, 0) without
    per-seed rows."""
    if seeds is None or seeds.empty or metric not in seeds.columns:
        return math.nan, 0
    values = _seed_values(seeds, metric, at)
    return mean_ci(values)[1], len(values)


def _default_budgets(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """The group's gflops values that lie inside every (multi-point) neck's range, thinned (``_thinned``).

    Single-point necks do not narrow the range, and their own gflops stay budgets (they get a value nowhere
    else). When the ranges share nothing, every gflops value of the group is a budget. When no neck has two
    points (a group of one phi), there is no curve to compare along and no budget: the main table says it all.
    """
    all_x = sorted({float(x) for xs, _ in curves.values() for x in xs})
    spans = [(xs[0], xs[-1]) for xs, _ in curves.values() if len(xs) >= 2]
    if not spans:
        return []
    lo, hi = max(s[0] for s in spans), min(s[1] for s in spans)
    inside = [x for x in all_x if lo <= x <= hi]
    if not inside:
        return all_x
    singles = {float(xs[0]) for xs, _ in curves.values() if len(xs) == 1}
    return sorted(set(_thinned(inside)) | (singles & set(inside)))


def _thinned(budgets: list[float], gap: float = BUDGET_GAP) -> list[float]:
    """``budgets`` (sorted, GFLOPs) without those within a relative ``gap`` of the previous one kept; the
    largest is always kept (it replaces the last one kept when the two are that close), so the thinned
    budgets still span the range. Necks of one phi often differ in GFLOPs only in the third digit, and one
    budget per such cluster says all its rows would.
    """
    kept: list[float] = []
    for b in budgets:
        if not kept or b > kept[-1] * (1 + gap):
            kept.append(b)
    if budgets and kept[-1] != budgets[-1]:
        if len(kept) > 1:
            kept.pop()
        kept.append(budgets[-1])
    return kept


def iso_flops(
    table: pd.DataFrame, budgets: Sequence[float] | None = None, rows: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Each neck's main metric interpolated along its own phi curve at common GFLOPs budgets.

    ``table`` is a leaderboard (``archbench.board.aggregate.build_table``). Long format, one row per
    (group, budget, neck): ``metric``, ``gflops`` (the budget), ``value`` (NaN outside the neck's measured
    range: no extrapolation), and with the per-seed ``rows`` (``aggregate.seed_rows``) ``ci95`` (metric
    units) and ``n_seeds`` (see the module docstring; NaN and 0 without them). ``budgets`` apply to every
    group; by default each group uses its rows' gflops values that lie inside every neck's range (see
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
        for neck, (xs, ys) in curves.items():
            seeds = _neck_seeds(rows, keys, neck)
            for b in points:
                ci, n = _interval(seeds, metric, b)
                value = interpolate(xs, ys, b)
                point = {"metric": metric, "gflops": b, "neck": neck, "value": value, "ci95": ci, "n_seeds": n}
                out.append({**keys, **point})
    frame = pd.DataFrame(out, columns=ISO_COLUMNS)
    return frame.sort_values([*GROUP_KEYS, "gflops", "neck"], kind="stable").reset_index(drop=True)


def _neck_seeds(rows: pd.DataFrame | None, keys: dict[str, Any], neck: str) -> pd.DataFrame | None:
    """The per-seed rows of ``neck`` in the group ``keys`` (None without ``rows``)."""
    if rows is None or rows.empty:
        return None
    keep = rows["neck"] == neck
    for k, v in keys.items():
        keep &= rows[k].isna() if pd.isna(v) else rows[k] == v
    return rows[keep]
