"""Necks compared at equal cost: per-seed metrics at common budgets on each cost axis, the interpolation's fit,
and how often each (neck, phi) is on the accuracy-cost front when the seeds are resampled.

Everything starts from per-seed rows (``aggregate.seed_rows``: ``GROUP_KEYS``, ``neck``, ``phi``, ``seed``, metric
and cost columns), one comparison group (one value of ``GROUP_KEYS``, every phi together) at a time. A neck's
cost at a phi is the mean over its seeds' rows (GFLOPs and parameters do not depend on the seed; latency may, when
the runs were timed under different conditions); a seed's curve is its metric at each phi it ran, placed at those
costs. Nothing is extrapolated: a seed's value at a budget outside its curve's cost range is missing.

Interpolation is piecewise linear in log cost (``LOG_COST``): the scaling literature finds accuracy about linear
in the log of compute and of model size, so the chord in log cost is what that law predicts between two measured
phi. :func:`fit_check` measures either choice against measured points; on the 8-epoch equal-terms board log cost
has the smaller error on all three axes, though both under-read the middle phi (the curves bend above their
chords).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from archbench.board.aggregate import GROUP_KEYS, pareto_mask


@dataclass(frozen=True)
class CostAxis:
    """One cost axis: the per-seed rows' ``column``, how it is named on a board (``label``) and its display unit
    (``unit``; displayed value = column value x ``scale``)."""

    column: str
    label: str
    unit: str
    scale: float = 1.0


#: The cost axes necks are compared on, by column: GFLOPs (fvcore: 1 multiply-add = 1), parameters (shown in
#: millions) and CPU latency of one image (ms).
COST_AXES: dict[str, CostAxis] = {
    axis.column: axis
    for axis in (
        CostAxis("gflops", "GFLOPs", "GFLOPs"),
        CostAxis("params_total", "Parameters", "M", 1e-6),
        CostAxis("latency_ms", "Latency", "ms"),
    )
}
#: Interpolate in log cost (see the module docstring); :func:`fit_check` can measure the linear alternative.
LOG_COST = True
#: Default budgets closer than this (relative) are one budget; see :func:`thinned`.
BUDGET_GAP = 0.02
#: The columns of :func:`fit_check`'s rows besides ``GROUP_KEYS``; errors in metric units.
FIT_COLUMNS = ["axis", "n_points", "n_necks", "error_mean", "error_sd", "error_mae", "error_max"]

Curve = tuple[np.ndarray, np.ndarray]


def cost_axis(column: str) -> CostAxis:
    """The axis of ``column``; ``ValueError`` naming the axes for any other column."""
    if column not in COST_AXES:
        raise ValueError(f"unknown cost axis {column!r}; choose one of {', '.join(COST_AXES)}")
    return COST_AXES[column]


# ---------------------------------------------------------------------------------------------- interpolation


def interpolate(xs: np.ndarray, ys: np.ndarray, at: float, log: bool = False) -> float:
    """Piecewise-linear interpolation of (xs, ys) at ``at`` (``xs`` ascending), in log x when ``log`` (xs > 0);
    NaN outside [min xs, max xs] (no extrapolation).

    ``at`` within a relative 1e-9 of an end counts as that end: a budget taken from a table is a mean over seeds,
    and the mean of three equal floats can differ from them in the last bit.
    """
    tol = 1e-9 * max(1.0, abs(at))
    if len(xs) == 0 or at < xs[0] - tol or at > xs[-1] + tol:
        return math.nan
    at = min(max(at, xs[0]), xs[-1])
    if log:
        return float(np.interp(math.log(at), np.log(xs), ys))
    return float(np.interp(at, xs, ys))


def curve(costs: Iterable[float], values: Iterable[float]) -> Curve:
    """(costs, values) as a curve: NaN pairs dropped, sorted by cost, values at equal costs averaged."""
    pts = pd.DataFrame({"x": list(costs), "y": list(values)}).dropna()
    means = pts.groupby("x")["y"].mean().sort_index()
    return means.index.to_numpy(dtype=float), means.to_numpy(dtype=float)


def thinned(budgets: Sequence[float], gap: float = BUDGET_GAP) -> list[float]:
    """``budgets`` (sorted) without those within a relative ``gap`` of the previous one kept; the largest is always
    kept (it replaces the last one kept when the two are that close), so the thinned budgets still span the range.
    Necks of one phi often differ in cost only in the third digit, and one budget per such cluster says all its
    rows would.
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


def common_budgets(costs: Mapping[Any, np.ndarray]) -> list[float]:
    """A group's budgets from each neck's costs (ascending): the costs that lie inside every multi-point neck's
    range, thinned (:func:`thinned`).

    Single-point necks do not narrow the range, and their own costs stay budgets (they get a value nowhere else).
    When the ranges share nothing, every cost of the group is a budget. When no neck has two points (a group of
    one phi), there is no curve to compare along and no budget.
    """
    all_x = sorted({float(x) for xs in costs.values() for x in xs})
    spans = [(xs[0], xs[-1]) for xs in costs.values() if len(xs) >= 2]
    if not spans:
        return []
    lo, hi = max(s[0] for s in spans), min(s[1] for s in spans)
    inside = [x for x in all_x if lo <= x <= hi]
    if not inside:
        return all_x
    singles = {float(xs[0]) for xs in costs.values() if len(xs) == 1}
    return sorted(set(thinned(inside)) | (singles & set(inside)))


# ---------------------------------------------------------------------------------------------- per-seed curves


def point_costs(group: pd.DataFrame, axis: str) -> pd.Series:
    """Each (neck, phi)'s cost on ``axis`` in one group's rows: the mean over its seeds (NaN where none has one)."""
    return group.groupby(["neck", "phi"], sort=True)[axis].mean()


def seed_curves(group: pd.DataFrame, axis: str, metric: str) -> dict[tuple[Any, Any], Curve]:
    """Each (neck, seed)'s curve in one group's rows: its ``metric`` at each phi it ran, at that (neck, phi)'s
    cost (:func:`point_costs`)."""
    costs = point_costs(group, axis)
    out = {}
    for (neck, seed), sub in group.groupby(["neck", "seed"], sort=True):
        xs = [costs.get((neck, phi), math.nan) for phi in sub["phi"]]
        out[neck, seed] = curve(xs, sub[metric])
    return out


def _groups(rows: pd.DataFrame, metric: str) -> Iterable[tuple[dict[str, Any], pd.DataFrame]]:
    """Each comparison group of ``rows`` (all phi together) that has some ``metric`` value: its keys and rows."""
    if rows.empty or metric not in rows.columns:
        return
    for key, group in rows.groupby(GROUP_KEYS, sort=True, dropna=False):
        if group[metric].notna().any():
            yield dict(zip(GROUP_KEYS, key)), group


def budget_rows(rows: pd.DataFrame, axis: str, metric: str, log: bool = LOG_COST) -> pd.DataFrame:
    """Per-seed ``metric`` at common budgets on ``axis``, in the shape of ``aggregate.seed_rows``.

    One row per (group, budget, neck, seed) whose seed curve (:func:`seed_curves`) spans the budget. Columns:
    ``GROUP_KEYS``, ``axis`` (the axis column's name), ``budget`` (in the axis column's units), ``neck``, ``seed``
    and ``metric`` (the interpolated value, metric units). A group's budgets are :func:`common_budgets` of its
    necks' costs; budgets where fewer than two necks have a value (nothing to compare) are left out. The per-pair
    tests that take one (group, phi)'s seed rows apply to one (group, axis, budget)'s rows unchanged.
    """
    cost_axis(axis)
    out: list[dict[str, Any]] = []
    for keys, group in _groups(rows, metric):
        costs = point_costs(group, axis).dropna()
        curves = {neck: np.sort(costs.loc[neck].to_numpy(dtype=float)) for neck in costs.index.unique("neck")}
        per_seed = seed_curves(group, axis, metric)
        for budget in common_budgets(curves):
            values = [(neck, seed, interpolate(xs, ys, budget, log)) for (neck, seed), (xs, ys) in per_seed.items()]
            kept = [(n, s, v) for n, s, v in values if not math.isnan(v)]
            if len({n for n, _, _ in kept}) < 2:
                continue
            out += [{**keys, "axis": axis, "budget": budget, "neck": n, "seed": s, metric: v} for n, s, v in kept]
    columns = [*GROUP_KEYS, "axis", "budget", "neck", "seed", metric]
    return pd.DataFrame(out, columns=columns)


# ---------------------------------------------------------------------------------------------- fit check


def fit_errors(rows: pd.DataFrame, axis: str, metric: str, log: bool = LOG_COST) -> pd.DataFrame:
    """Each interior point of each seed's curve predicted from its two neighbours by the interpolation.

    For every (neck, seed) curve (:func:`seed_curves`) with 3 or more points, each point but the cheapest and the
    costliest is left out and interpolated from the points on either side of it. Columns: ``GROUP_KEYS``,
    ``axis``, ``neck``, ``seed``, ``cost``, ``observed``, ``predicted`` and ``error`` = observed - predicted (metric
    units; positive where the curve bends above the chord).
    """
    cost_axis(axis)
    out = []
    for keys, group in _groups(rows, metric):
        for (neck, seed), (xs, ys) in seed_curves(group, axis, metric).items():
            for i in range(1, len(xs) - 1):
                near_x, near_y = xs[[i - 1, i + 1]], ys[[i - 1, i + 1]]
                predicted = interpolate(near_x, near_y, float(xs[i]), log)
                point = {"neck": neck, "seed": seed, "cost": xs[i], "observed": ys[i], "predicted": predicted}
                out.append({**keys, "axis": axis, **point, "error": ys[i] - predicted})
    columns = [*GROUP_KEYS, "axis", "neck", "seed", "cost", "observed", "predicted", "error"]
    return pd.DataFrame(out, columns=columns)


def fit_check(rows: pd.DataFrame, axis: str, metric: str, log: bool = LOG_COST) -> pd.DataFrame:
    """How well the interpolation holds, per group: :func:`fit_errors` summarised over necks, seeds and points.

    Columns: ``GROUP_KEYS``, then ``FIT_COLUMNS``: ``axis``, ``n_points`` (interior points predicted),
    ``n_necks``, ``error_mean`` (the bias: above 0, the curves bend above their chords), ``error_sd`` (sample sd),
    ``error_mae`` (mean absolute error) and ``error_max`` (largest absolute error), in metric units. A point is
    predicted across twice the gap the interpolation bridges between measured phi, so these errors are an upper
    bound on its error at a budget between two measured points. Groups without a curve of 3 points have no row.
    """
    errors = fit_errors(rows, axis, metric, log)
    out = []
    for key, sub in errors.groupby(GROUP_KEYS, sort=True, dropna=False):
        e = sub["error"].to_numpy(dtype=float)
        out.append(
            {
                **dict(zip(GROUP_KEYS, key)),
                "axis": axis,
                "n_points": len(e),
                "n_necks": sub["neck"].nunique(),
                "error_mean": float(e.mean()),
                "error_sd": float(e.std(ddof=1)) if len(e) > 1 else math.nan,
                "error_mae": float(np.abs(e).mean()),
                "error_max": float(np.abs(e).max()),
            }
        )
    return pd.DataFrame(out, columns=[*GROUP_KEYS, *FIT_COLUMNS])


# ---------------------------------------------------------------------------------------------- Pareto front


def pareto_frequency(rows: pd.DataFrame, axis: str, metric: str, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """How often each (neck, phi) is on its group's (``metric``, ``axis``) front when the seeds are resampled.

    Per group (every phi together), ``n_boot`` resamples of the group's seed ids with replacement (as many as it
    has), each shared by all (neck, phi): seeds are paired, so what a seed does to every neck moves them together.
    In each resample a (neck, phi)'s accuracy is the mean of its ``metric`` over the drawn seeds (a seed drawn
    twice counts twice) and its cost stays the mean over all its seeds (:func:`point_costs`); the front is
    ``aggregate.pareto_mask`` (no other point at least as accurate and at most as costly, one strictly).

    Columns: ``GROUP_KEYS``, ``axis``, ``neck``, ``phi``, ``cost`` (axis units), ``metric`` (the plain mean over
    its seeds), ``front`` (on the front of the plain means) and ``front_freq`` (the fraction of the resamples
    that drew one of its seeds in which it is on the front). ``seed`` seeds the generator (numpy's default), so
    the result is reproducible.
    """
    cost_axis(axis)
    rng = np.random.default_rng(seed)
    out = []
    for keys, group in _groups(rows, metric):
        table = group.pivot_table(index=["neck", "phi"], columns="seed", values=metric, aggfunc="mean")
        values = table.to_numpy(dtype=float)  # [points, seeds], NaN where a (neck, phi) lacks a seed
        has = ~np.isnan(values)
        costs = point_costs(group, axis).reindex(table.index).to_numpy(dtype=float)
        draws = rng.integers(0, values.shape[1], size=(n_boot, values.shape[1]))
        counts = np.stack([np.bincount(d, minlength=values.shape[1]) for d in draws])  # [n_boot, seeds]
        weight = counts @ has.T  # [n_boot, points]: drawn seeds each point has
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (counts @ np.where(has, values, 0.0).T) / weight
        on_front = np.array([pareto_mask(m, costs) for m in means])
        freq = on_front.sum(axis=0) / np.maximum((weight > 0).sum(axis=0), 1)
        plain = np.nanmean(values, axis=1)
        front = pareto_mask(plain, costs)
        for i, (neck, phi) in enumerate(table.index):
            point = {"neck": neck, "phi": phi, "cost": costs[i], metric: plain[i]}
            out.append({**keys, "axis": axis, **point, "front": front[i], "front_freq": float(freq[i])})
    columns = [*GROUP_KEYS, "axis", "neck", "phi", "cost", metric, "front", "front_freq"]
    return pd.DataFrame(out, columns=columns)
