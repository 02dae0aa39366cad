"""Iso-FLOPs comparison: necks compared at equal compute, the board's table of it.

Each neck's main metric is interpolated linearly in GFLOPs along its own phi curve at budgets common to the necks
of a group (``aggregate.GROUP_KEYS``); nothing is extrapolated. The curves, budgets and interpolation are those of
:mod:`archbench.board.equal_cost` (their one home), which compares necks per seed on every cost axis.

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

import pandas as pd

from archbench.board.aggregate import GROUP_KEYS
from archbench.board.equal_cost import common_budgets, curve, interpolate, seed_curves
from archbench.board.stats import mean_ci
from archbench.train.task_names import main_metric

ISO_COLUMNS = [*GROUP_KEYS, "metric", "gflops", "neck", "value", "ci95", "n_seeds"]


def _interval(seeds: pd.DataFrame | None, metric: str, at: float) -> tuple[float, int]:
    """(95 % half-width over seeds, number of seeds) of the per-seed interpolations at ``at``; (NaN, 0) without
    per-seed rows. Seeds whose curve does not span ``at`` are left out."""
    if seeds is None or seeds.empty or metric not in seeds.columns:
        return math.nan, 0
    values = [interpolate(xs, ys, at) for xs, ys in seed_curves(seeds, "gflops", metric).values()]
    values = [v for v in values if not math.isnan(v)]
    return mean_ci(values)[1], len(values)


def iso_flops(
    table: pd.DataFrame, budgets: Sequence[float] | None = None, rows: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Each neck's main metric interpolated along its own phi curve at common GFLOPs budgets.

    ``table`` is a leaderboard (``archbench.board.aggregate.build_table``). Long format, one row per
    (group, budget, neck): ``metric``, ``gflops`` (the budget), ``value`` (NaN outside the neck's measured
    range: no extrapolation), and with the per-seed ``rows`` (``aggregate.seed_rows``) ``ci95`` (metric
    units) and ``n_seeds`` (see the module docstring; NaN and 0 without them). ``budgets`` apply to every
    group; by default each group uses its rows' gflops values that lie inside every neck's range (see
    ``equal_cost.common_budgets``).
    """
    out: list[dict[str, Any]] = []
    if table.empty:
        return pd.DataFrame(columns=ISO_COLUMNS)
    for key, group in table.groupby(GROUP_KEYS, sort=True, dropna=False):
        keys = dict(zip(GROUP_KEYS, key))
        curves = {neck: curve(sub["gflops"], sub["score"]) for neck, sub in group.groupby("neck", sort=True)}
        points = (
            sorted({float(b) for b in budgets})
            if budgets is not None
            else common_budgets({neck: xs for neck, (xs, _) in curves.items()})
        )
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
