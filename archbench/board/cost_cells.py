"""One comparison group's equal-cost section as board blocks (:mod:`archbench.board.cells`' headings, sentences
and grids), from the frames of :mod:`archbench.board.cost_verdicts`.

Per cost axis: a heading, a sentence saying how the values are made (with the fit check's numbers and where the
costs come from) and a grid with budgets as rows and necks as columns, each cell ``value ± 95 % CI letters``;
then one grid of how often each (neck, phi) is on the accuracy-cost front of each axis when the seeds are
resampled. A group of one phi has no budgets: one sentence says so, and the fronts are still shown. Budgets are
shown in the axis' display units (``equal_cost.CostAxis``: parameters in millions) with 3 significant digits, more
where two budgets would otherwise look alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from archbench.board.equal_cost import COST_AXES, CostAxis, cost_axis
from archbench.board.grids import Block, Grid, Heading, Text, interval
from archbench.board.latency import FROM_RECORDS

#: Budgets are shown with at least this many significant digits (display units), more where two would look alike.
BUDGET_DIGITS = 3


def _of_group(frame: pd.DataFrame, keys: dict[str, Any], metric: str) -> pd.DataFrame:
    """The rows of ``frame`` of ``metric`` whose columns equal ``keys`` (NaN matches NaN)."""
    keep = frame["metric"] == metric
    for k, v in keys.items():
        keep &= frame[k].isna() if pd.isna(v) else frame[k] == v
    return frame[keep]


def axis_words(axis: CostAxis) -> str:
    """The axis in running text: ``GFLOPs``, ``parameters``, ``latency`` (a label that is not an acronym in
    lower case)."""
    return axis.label if any(c.isupper() for c in axis.label[1:]) else axis.label.lower()


def _axis_header(axis: CostAxis) -> str:
    """A budget column's header: the label and, where they differ, the display unit (``Parameters M``)."""
    return axis.label if axis.label == axis.unit else f"{axis.label} {axis.unit}"


def _source_text(source: str) -> str:
    """Where a group's latency comes from, in one sentence."""
    if source == FROM_RECORDS:
        return (
            "Latency from the records: each run timed when it finished, beside whatever else ran then, so necks "
            "may have been timed under different loads."
        )
    return f"Latency from one sitting ({source}): every configuration of the group timed in one process, fixed threads."


def fit_text(fit: pd.Series | None, metric: str) -> str:
    """The fit check's numbers for one group and axis (a row of ``cost_verdicts.fit_table``), with the sign of
    the bias in words."""
    if fit is None:
        return "Fit check: no seed's curve has three phi, so the interpolation cannot be checked here."
    mean = float(fit["error_mean"])
    if mean > 0:
        bias = (
            "the curves bend above their chords (concave), so interpolated values under-read them between measured phi"
        )
    elif mean < 0:
        bias = "the curves bend below their chords (convex), so interpolated values over-read them between measured phi"
    else:
        bias = "no bias either way"
    return (
        f"Fit check: {int(fit['n_points'])} interior points of {int(fit['n_necks'])} necks' seed curves, each "
        f"predicted from its two neighbours: mean error {mean:+.3f} {metric} (observed - interpolated), mean "
        f"absolute {interval(fit['error_mae'], None)}, largest {interval(fit['error_max'], None)}; {bias}. Each "
        "prediction bridges twice the gap a budget between two measured phi does, so these errors bound that "
        "budget's from above."
    )


def _method_text(axis: CostAxis, metric: str, source: str, fit: pd.Series | None) -> Text:
    """How one axis' values and letters are made, its cost source where it matters, and its fit check."""
    text = (
        f"Each seed's {metric} at a budget is read off that seed's own curve over phi, piecewise linear in log "
        f"{axis_words(axis)}, never extrapolated: a seed whose curve does not reach the budget has no value there. "
        "Cells: the mean over seeds ± the half-width of its 95 % Student-t interval, then letters: necks sharing a "
        "letter are not told apart by per-pair paired t-tests (Holm over the pairs of necks at that budget, 5 %)."
    )
    if axis.column == "latency_ms":
        text += " " + _source_text(source)
    return Text(f"{text} {fit_text(fit, metric)}")


def budget_grid(costs: pd.DataFrame, axis: CostAxis) -> Grid:
    """One group's values on one axis: budgets (display units) as rows, necks (by name) as columns, cells
    ``value ± 95 % CI letters`` (``-`` where a neck has no value at a budget)."""
    necks = sorted(costs["neck"].unique())
    groups = list(costs.groupby("budget", sort=True))
    labels = budget_labels([budget * axis.scale for budget, _ in groups])
    rows = []
    for label, (_, at) in zip(labels, groups):
        cells = {r["neck"]: f"{interval(r['value'], r['ci95'])} {r['letters']}".rstrip() for _, r in at.iterrows()}
        rows.append([label, *[cells.get(n, "-") for n in necks]])
    return Grid([_axis_header(axis), *necks], rows)


def budget_labels(budgets: Sequence[float], digits: int = BUDGET_DIGITS) -> list[str]:
    """``budgets`` (display units, distinct) written with the fewest significant digits, ``digits`` at least, at
    which no two look alike. Where the necks' cost ranges share nothing, every neck's cost is a budget, and two
    necks of one phi can differ in the fifth digit (0.753171 and 0.753209 M parameters)."""
    for d in range(digits, 16):
        labels = [f"{b:.{d}g}" for b in budgets]
        if len(set(labels)) == len(labels):
            break
    return labels


def _freq_cell(r: pd.Series | None) -> str:
    """A point's front frequency on one axis as a percentage, ``*`` when it is on the front of the means."""
    if r is None:
        return "-"
    return interval(100 * r["front_freq"], None, "{:.0f} %") + (" *" if bool(r["front"]) else "")


def pareto_grid(fronts: pd.DataFrame, metric: str) -> Grid:
    """One group's front frequencies: a row per (neck, phi) with a non-zero frequency on some axis, most
    frequent first (its highest frequency over the axes; then neck, phi), columns neck, phi, mean metric and one
    per axis (``COST_AXES`` order)."""
    axes = [a for a in COST_AXES if a in set(fronts["axis"])]
    by_point = {(r["neck"], r["phi"], r["axis"]): r for _, r in fronts.iterrows()}
    best = fronts.groupby(["neck", "phi"])["front_freq"].max().rename("best").reset_index()
    order = best[best["best"] > 0].sort_values(["best", "neck", "phi"], ascending=[False, True, True])
    rows = []
    for neck, phi in zip(order["neck"], order["phi"]):
        value = fronts.loc[(fronts["neck"] == neck) & (fronts["phi"] == phi), "value"].iloc[0]
        freqs = [_freq_cell(by_point.get((neck, phi, a))) for a in axes]
        rows.append([str(neck), str(phi), interval(value, None), *freqs])
    return Grid(["neck", "phi", f"{metric} mean", *[cost_axis(a).label for a in axes]], rows)


def _pareto_blocks(fronts: pd.DataFrame, metric: str) -> list[Block]:
    """The front-frequency heading, what its cells mean, and its grid (a sentence when it would be empty)."""
    out: list[Block] = [Heading(3, f"Pareto fronts of {metric} against each cost, over seed resamples")]
    if fronts.empty or not (fronts["front_freq"] > 0).any():
        return [*out, Text("No point of this group is on a front (no costs or no metric values).")]
    text = (
        "The share of seed resamples (the group's seeds drawn with replacement, one draw shared by every neck and "
        f"phi) in which the point is on the front of mean {metric} against that cost: no other point at least as "
        "accurate and at most as costly, one strictly. * marks the front of the plain means; points on no front in "
        "any resample are left out."
    )
    latency = fronts.loc[fronts["axis"] == "latency_ms", "cost_source"]
    if len(latency):
        text += " " + _source_text(str(latency.iloc[0]))
    return [*out, Text(text), pareto_grid(fronts, metric)]


def equal_cost_blocks(
    keys: dict[str, Any], cost_frame: pd.DataFrame, pareto_frame: pd.DataFrame, fit_frame: pd.DataFrame, metric: str
) -> list[Block]:
    """One comparison group's equal-cost section (see the module docstring).

    ``keys``: the group's ``GROUP_KEYS`` values; ``cost_frame``, ``pareto_frame``, ``fit_frame``: the board's
    ``cost_verdicts.cost_verdicts``, ``pareto_table`` and ``fit_table`` (every group; this group's rows of
    ``metric`` are taken). The axes are those of ``pareto_frame`` and ``cost_frame``, in ``COST_AXES`` order.
    """
    costs = _of_group(cost_frame, keys, metric)
    fronts = _of_group(pareto_frame, keys, metric)
    fits = _of_group(fit_frame, keys, metric)
    out: list[Block] = []
    if costs.empty and fronts["phi"].nunique() == 1:
        out += [Heading(3, f"{metric} at equal cost")]
        out.append(
            Text(
                "Every neck of this group ran one phi, so no neck has a curve over phi and there is no common "
                "budget to compare at; the Pareto fronts below are its only equal-cost view."
            )
        )
        return out + _pareto_blocks(fronts, metric)
    present = set(costs["axis"]) | set(fronts["axis"])
    for column in [a for a in COST_AXES if a in present]:
        axis = cost_axis(column)
        on_axis = costs[costs["axis"] == column]
        fit = fits[fits["axis"] == column]
        out.append(Heading(3, f"{metric} at equal {axis_words(axis)}"))
        if on_axis.empty:
            words = axis_words(axis)
            out.append(Text(f"No budget where two necks' curves both have a value: no {words} to compare at."))
            continue
        source = str(on_axis["cost_source"].iloc[0])
        out += [_method_text(axis, metric, source, fit.iloc[0] if len(fit) else None), budget_grid(on_axis, axis)]
    return out + _pareto_blocks(fronts, metric)
