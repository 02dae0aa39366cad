"""The board's verdicts at equal cost: necks compared at common budgets of GFLOPs, parameters and latency.

Built on :mod:`archbench.board.equal_cost` (the per-seed values at a budget, the fit check, the Pareto
frequencies) and :mod:`archbench.board.pairs` (the per-pair paired tests), so a budget is judged exactly as a
phi is: one (group, axis, budget)'s per-seed rows take the place of one (group, phi)'s.

The inputs are per-seed rows (``aggregate.seed_rows``: ``GROUP_KEYS``, ``neck``, ``phi``, ``seed``, the metric
and the cost columns ``gflops``, ``params_total``, ``latency_ms``), every group and phi together. Latency: give
the rows of ``latency.sitting_latency``, which carry each group's latency from the newest latency sitting that
covers it, else from the records, and say which in ``latency_source``; rows without that column count as the
records' own. Every frame here names, per row, where its cost came from (``cost_source``): ``records`` for
GFLOPs and parameters (counted when the run was made), the sitting or ``records`` for latency. A group whose
rows name two latency sources is an error, never averaged.

Every frame carries ``metric`` and calls the metric's values ``value``, so frames of several tasks' main
metrics concatenate. Costs and budgets are in the axis column's own units (GFLOPs, parameters, ms); metric
values, half-widths and differences in the metric's units.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import pandas as pd

from archbench.board import REFERENCE
from archbench.board.aggregate import GROUP_KEYS
from archbench.board.equal_cost import COST_AXES, FIT_COLUMNS, LOG_COST, budget_rows, fit_check, pareto_frequency
from archbench.board.latency import FROM_RECORDS
from archbench.board.pairs import against, paired_letters, paired_tests
from archbench.board.stats import mean_ci

#: The columns of :func:`cost_verdicts`, one row per (group, axis, budget, neck).
COST_COLUMNS = [
    *GROUP_KEYS,
    "metric",
    "axis",
    "budget",
    "neck",
    "n_seeds",
    "value",
    "ci95",
    "letters",
    "reference",
    "n_pairs",
    "diff_mean",
    "diff_ci95",
    "diff_p_adj",
    "diff_note",
    "cost_source",
]
#: The columns of :func:`pareto_table`, one row per (group, axis, neck, phi).
PARETO_COLUMNS = [*GROUP_KEYS, "metric", "axis", "neck", "phi", "cost", "value", "front", "front_freq", "cost_source"]
#: The columns of :func:`fit_table`, one row per (group, axis).
FIT_TABLE_COLUMNS = [*GROUP_KEYS, "metric", *FIT_COLUMNS, "cost_source"]
#: The axes compared by default: every cost axis, in ``COST_AXES`` order.
ALL_AXES = tuple(COST_AXES)


# ---------------------------------------------------------------------------------------------- cost sources


def _group_key(values: Sequence[Any]) -> tuple[Hashable, ...]:
    """A group's key values as a dict key: missing values (NaN, None) all become None."""
    return tuple(None if pd.isna(v) else v for v in values)


def cost_sources(rows: pd.DataFrame, axis: str) -> dict[tuple[Hashable, ...], str]:
    """Where each group's costs on ``axis`` come from, by group key (``GROUP_KEYS`` values, missing as None).

    ``records`` (``latency.FROM_RECORDS``) for GFLOPs and parameters, and for latency when ``rows`` have no
    ``latency_source``; else the group's one ``latency_source`` (a row with none counts as the records'). Raises
    ``ValueError`` for a group whose rows name two sources: its latencies would mix two measurements.
    """
    out: dict[tuple[Hashable, ...], str] = {}
    if rows.empty:
        return out
    for key, group in rows.groupby(GROUP_KEYS, sort=True, dropna=False):
        sources = {FROM_RECORDS}
        if axis == "latency_ms" and "latency_source" in group.columns:
            sources = {FROM_RECORDS if pd.isna(s) else str(s) for s in group["latency_source"]}
        if len(sources) > 1:
            where = ", ".join(f"{k} {v}" for k, v in zip(GROUP_KEYS, key))
            raise ValueError(f"the latency of one group ({where}) comes from several sources: {sorted(sources)}")
        out[_group_key(key)] = sources.pop()
    return out


def _with_source(frame: pd.DataFrame, rows: pd.DataFrame, axis: str) -> pd.Series:
    """Each row's ``cost_source`` for ``frame`` (rows with ``GROUP_KEYS``) of ``axis``, from ``rows``' groups."""
    sources = cost_sources(rows, axis)
    keys = frame[GROUP_KEYS].itertuples(index=False)
    return pd.Series([sources[_group_key(k)] for k in keys], index=frame.index, dtype=object)


# ---------------------------------------------------------------------------------------------- at budgets


def _diff(neck: str, reference: str, at: pd.DataFrame, metric: str, tests: pd.DataFrame | None) -> dict[str, Any]:
    """One neck's paired difference from ``reference`` at one budget (see :func:`cost_verdicts`)."""
    if tests is None:
        return {"n_pairs": 0, "diff_note": f"no '{reference}' value at this budget"}
    if neck == reference:
        n = int(at.loc[at["neck"] == neck, metric].notna().sum())
        return {"n_pairs": n, "diff_mean": 0.0, "diff_ci95": 0.0, "diff_note": "reference"}
    test = tests.loc[neck]
    out = {"n_pairs": int(test["n_pairs"]), "diff_mean": test["diff_mean"], "diff_ci95": test["diff_ci"]}
    out["diff_p_adj"] = test["p_adj"]
    if math.isnan(float(test["diff_ci"])):
        out["diff_note"] = f"fewer than two seeds shared with '{reference}' at this budget"
    return out


def _one_budget(at: pd.DataFrame, metric: str, reference: str) -> list[dict[str, Any]]:
    """The rows of :func:`cost_verdicts` for one (group, axis, budget)'s per-seed rows ``at``."""
    necks = sorted(str(n) for n in at["neck"].unique())
    letters = paired_letters(at, metric)
    tests = paired_tests(at, metric, against(reference, necks)).set_index("a") if reference in necks else None
    first = at.iloc[0]
    keys = {k: first[k] for k in [*GROUP_KEYS, "axis", "budget"]}
    out = []
    for neck in necks:
        values = at.loc[at["neck"] == neck, metric]
        mean, half = mean_ci(values)
        row = {**keys, "metric": metric, "neck": neck, "n_seeds": int(values.notna().sum())}
        row.update(value=mean, ci95=half, letters=letters[neck], reference=reference)
        out.append({**row, **_diff(neck, reference, at, metric, tests)})
    return out


def cost_verdicts(
    rows: pd.DataFrame, metric: str, axes: Sequence[str] = ALL_AXES, reference: str = REFERENCE
) -> pd.DataFrame:
    """Necks compared at common budgets on each cost axis, with the per-phi verdicts' tests.

    For each axis of ``axes`` (columns of ``equal_cost.COST_AXES``), ``equal_cost.budget_rows`` gives each seed's
    ``metric`` at the group's common budgets (its own curve over phi, piecewise linear in log cost, never
    extrapolated; budgets where fewer than two necks have a value are left out). One row per (group, axis,
    budget, neck) with a value there, ``COST_COLUMNS``:

    - ``GROUP_KEYS``, ``metric``, ``axis`` (the cost column), ``budget`` (axis column units), ``neck``;
    - ``n_seeds``: seeds with a value at the budget; ``value``: their mean; ``ci95``: the half-width of its
      95 % Student-t interval (``stats.mean_ci``; NaN with one seed);
    - ``letters``: ``pairs.paired_letters`` of the budget's rows: per-pair paired t-tests over every pair of the
      necks with a value there, Holm over those pairs at 5 %, 'a' for the best (the control of the per-phi
      letters, with the budget as the family);
    - ``reference``; ``n_pairs``, ``diff_mean``, ``diff_ci95``, ``diff_p_adj``: the neck's paired difference
      neck - reference from ``pairs.paired_tests`` over the family ``pairs.against(reference)`` at the budget
      (seeds both have; the interval unadjusted, the p-value Holm-adjusted over that family); ``diff_note``:
      ``reference`` on the reference's own row (difference 0), why the difference is missing where it is
      (the reference has no value at the budget, or fewer than two shared seeds), else None;
    - ``cost_source``: where the axis' costs come from (:func:`cost_sources`).

    Rows ordered by ``axes``, then group, budget and neck; an empty frame with these columns when no group has a
    budget (every group of one phi).
    """
    out: list[dict[str, Any]] = []
    for axis in axes:
        per_seed = budget_rows(rows, axis, metric)
        if per_seed.empty:
            continue
        sources = cost_sources(rows, axis)
        for _, at in per_seed.groupby([*GROUP_KEYS, "budget"], sort=True, dropna=False):
            for row in _one_budget(at, metric, reference):
                out.append({**row, "cost_source": sources[_group_key([row[k] for k in GROUP_KEYS])]})
    frame = pd.DataFrame(out, columns=COST_COLUMNS)
    return frame.astype({"n_seeds": int, "n_pairs": int}) if len(frame) else frame


# ---------------------------------------------------------------------------------------------- fronts and fit


def pareto_table(
    rows: pd.DataFrame, metric: str, axes: Sequence[str] = ALL_AXES, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """``equal_cost.pareto_frequency`` of every axis of ``axes`` (``n_boot`` paired seed resamples, generator
    seed ``seed``), concatenated in ``axes`` order, with ``PARETO_COLUMNS``: its columns with the metric's
    column called ``value`` (the plain mean over seeds), ``metric`` naming it, and ``cost_source``
    (:func:`cost_sources`). ``front_freq``: the fraction of resamples in which the (neck, phi) is on its group's
    (metric, axis) front; ``front``: on the front of the plain means; ``cost``: axis column units."""
    frames = []
    for axis in axes:
        fronts = pareto_frequency(rows, axis, metric, n_boot, seed).rename(columns={metric: "value"})
        frames.append(fronts.assign(metric=metric, cost_source=_with_source(fronts, rows, axis)))
    return _concat(frames, PARETO_COLUMNS)


def fit_table(rows: pd.DataFrame, metric: str, axes: Sequence[str] = ALL_AXES, log: bool = LOG_COST) -> pd.DataFrame:
    """``equal_cost.fit_check`` of every axis of ``axes`` (each interior phi of each seed's curve predicted from
    its neighbours; errors observed - predicted in metric units, positive where the curves bend above their
    chords), concatenated in ``axes`` order, with ``FIT_TABLE_COLUMNS`` (``metric`` and ``cost_source`` added).
    Groups without a curve of three phi have no row."""
    frames = []
    for axis in axes:
        fits = fit_check(rows, axis, metric, log)
        frames.append(fits.assign(metric=metric, cost_source=_with_source(fits, rows, axis)))
    return _concat(frames, FIT_TABLE_COLUMNS)


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """The non-empty ``frames`` one after another, in ``columns``; empty with those columns when all are."""
    kept = [f[columns] for f in frames if len(f)]
    return pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(columns=columns)
