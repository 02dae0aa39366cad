"""Verdicts at equal cost (archbench.board.cost_verdicts) and their blocks (archbench.board.cost_cells), on small
synthetic per-seed rows against hand-computed values.

Three necks, seeds 0-2 (GFLOPs per phi; AP per seed and phi; parameters = GFLOPs x 1e6, latency = GFLOPs x 10 ms):

    a  1, 4, 16   s0 .300 .420 .500   s1 .321 .439 .520   s2 .290 .410 .490
    b  2, 8       s0 .290 .425        s1 .280 .430        s2 .275 .405
    c  1, 3, 9    s0 .250 .330 .410   s1 .270 .352 .430   s2 .241 .318 .400

The ranges [1, 16], [2, 8], [1, 9] share [2, 8]; the costs inside it are 2, 3, 4 and 8: the budgets. At each,
a leads by about 0.04 to 0.07 with per-seed differences that hardly vary (resolved even at 2 degrees of
freedom), while b and c differ by 0.02 or less with noisy per-seed differences (tied). b at phi 1 is below a at
phi 1, at twice its cost, on average but not on seed 0: it is on the GFLOPs front in some seed resamples only.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from archbench.board.cost_cells import equal_cost_blocks
from archbench.board.cost_verdicts import (
    COST_COLUMNS,
    FIT_TABLE_COLUMNS,
    PARETO_COLUMNS,
    cost_verdicts,
    fit_table,
    pareto_table,
)
from archbench.board.equal_cost import COST_AXES, fit_check, pareto_frequency
from archbench.board.grids import Grid, Heading, Text
from archbench.board.pairs import paired_letters

from helpers import ONE_GROUP

KEYS = ONE_GROUP
GFLOPS = {"a": (1.0, 4.0, 16.0), "b": (2.0, 8.0), "c": (1.0, 3.0, 9.0)}
AP = {
    ("a", 0): (0.300, 0.420, 0.500),
    ("a", 1): (0.321, 0.439, 0.520),
    ("a", 2): (0.290, 0.410, 0.490),
    ("b", 0): (0.290, 0.425),
    ("b", 1): (0.280, 0.430),
    ("b", 2): (0.275, 0.405),
    ("c", 0): (0.250, 0.330, 0.410),
    ("c", 1): (0.270, 0.352, 0.430),
    ("c", 2): (0.241, 0.318, 0.400),
}
BUDGETS = [2.0, 3.0, 4.0, 8.0]
T_975_2 = 4.302652729911275  # Student t, 97.5 % quantile, 2 degrees of freedom
SITTING = "sitting 20250101T000000Z.json"


def rows(phis: int = 3, **keys) -> pd.DataFrame:
    """The table above as per-seed rows (the columns of aggregate.seed_rows that the equal-cost code reads),
    phi 0 to ``phis`` - 1 only."""
    out = []
    for (neck, seed), aps in AP.items():
        for phi, (g, ap) in list(enumerate(zip(GFLOPS[neck], aps)))[:phis]:
            cost = {"gflops": g, "params_total": 1e6 * g, "latency_ms": 10.0 * g}
            out.append({**KEYS, **keys, "neck": neck, "phi": phi, "seed": seed, "AP": ap, **cost})
    return pd.DataFrame(out)


def hand(neck: str, seed: int, budget: float) -> float:
    """The seed's AP at a GFLOPs budget, by hand: the chord in log cost between the two measured points around it."""
    xs, ys = GFLOPS[neck], AP[neck, seed]
    for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:]):
        if x0 <= budget <= x1:
            return y0 + (y1 - y0) * (math.log(budget) - math.log(x0)) / (math.log(x1) - math.log(x0))
    raise AssertionError(f"{budget} lies outside {neck}'s curve")


def hand_ci(values: list[float]) -> tuple[float, float]:
    """(mean, 95 % half-width) of three values by hand."""
    return float(np.mean(values)), T_975_2 * float(np.std(values, ddof=1)) / math.sqrt(3)


def at(frame: pd.DataFrame, axis: str, budget: float, neck: str) -> pd.Series:
    sel = frame[(frame["axis"] == axis) & np.isclose(frame["budget"], budget) & (frame["neck"] == neck)]
    assert len(sel) == 1, (axis, budget, neck)
    return sel.iloc[0]


def test_values_at_a_budget_are_the_seeds_hand_interpolations_in_log_cost():
    frame = cost_verdicts(rows(), "AP", reference="c")
    assert list(frame.columns) == COST_COLUMNS
    assert list(dict.fromkeys(frame["axis"])) == list(COST_AXES)  # every axis, in COST_AXES order
    assert sorted(frame.loc[frame["axis"] == "gflops", "budget"].unique()) == BUDGETS
    assert sorted(frame.loc[frame["axis"] == "params_total", "budget"].unique()) == [1e6 * b for b in BUDGETS]
    assert sorted(frame.loc[frame["axis"] == "latency_ms", "budget"].unique()) == [10 * b for b in BUDGETS]
    for budget in BUDGETS:
        for neck in "abc":
            mean, half = hand_ci([hand(neck, s, budget) for s in range(3)])
            for axis, scale in (("gflops", 1.0), ("params_total", 1e6), ("latency_ms", 10.0)):
                row = at(frame, axis, scale * budget, neck)
                assert row["n_seeds"] == 3 and row["metric"] == "AP"
                assert row["value"] == pytest.approx(mean) and row["ci95"] == pytest.approx(half)
    # one value spelled out: a at 3 GFLOPs lies ln 3 / ln 4 of the way from phi 0 to phi 1 in log cost
    t = math.log(3) / math.log(4)
    assert at(frame, "gflops", 3.0, "a")["value"] == pytest.approx(np.mean([0.300, 0.321, 0.290]) + t * 0.1193333333)


def test_letters_at_a_budget_are_the_per_pair_letters_of_the_hand_values():
    frame = cost_verdicts(rows(), "AP")
    for budget in BUDGETS:
        values = pd.DataFrame([{"neck": n, "seed": s, "AP": hand(n, s, budget)} for n in "abc" for s in range(3)])
        expected = paired_letters(values, "AP")
        assert expected == {"a": "a", "b": "b", "c": "b"}  # a resolved from both, b and c tied: not vacuous
        assert {n: at(frame, "gflops", budget, n)["letters"] for n in "abc"} == expected


def test_difference_from_the_reference_is_paired_by_seed_with_its_own_interval():
    frame = cost_verdicts(rows(), "AP", reference="c")
    diffs = [hand("a", s, 3.0) - hand("c", s, 3.0) for s in range(3)]
    mean, half = hand_ci(diffs)
    row = at(frame, "gflops", 3.0, "a")
    assert row["n_pairs"] == 3 and row["diff_mean"] == pytest.approx(mean) and row["diff_ci95"] == pytest.approx(half)
    assert row["diff_p_adj"] < 0.05 and pd.isna(row["diff_note"])
    ref = at(frame, "gflops", 3.0, "c")
    assert (ref["diff_mean"], ref["diff_ci95"], ref["diff_note"], ref["n_pairs"]) == (0.0, 0.0, "reference", 3)
    assert at(frame, "gflops", 3.0, "b")["diff_p_adj"] > 0.05  # b - c: differences of both signs
    absent = cost_verdicts(rows(), "AP")  # the default reference, fpn, ran nowhere here
    assert set(absent["diff_note"]) == {"no 'fpn' value at this budget"} and (absent["n_pairs"] == 0).all()


def test_latency_source_says_sitting_or_records_and_never_mixes():
    plain = cost_verdicts(rows(), "AP")
    assert set(plain["cost_source"]) == {"records"}  # no latency_source column: the records' own
    timed = rows().assign(latency_source=SITTING)
    frame = cost_verdicts(timed, "AP")
    assert set(frame.loc[frame["axis"] == "latency_ms", "cost_source"]) == {SITTING}
    assert set(frame.loc[frame["axis"] != "latency_ms", "cost_source"]) == {"records"}
    fronts = pareto_table(timed, "AP", n_boot=50)
    assert set(fronts.loc[fronts["axis"] == "latency_ms", "cost_source"]) == {SITTING}
    mixed = timed.copy()
    mixed.loc[mixed["neck"] == "b", "latency_source"] = "records"
    with pytest.raises(ValueError, match="several sources"):
        cost_verdicts(mixed, "AP")
    assert set(cost_verdicts(mixed, "AP", axes=["gflops"])["cost_source"]) == {"records"}  # other axes unaffected


def test_pareto_and_fit_tables_are_the_per_axis_frames_concatenated():
    data = rows()
    fronts = pareto_table(data, "AP", n_boot=200, seed=3)
    assert list(fronts.columns) == PARETO_COLUMNS
    for axis in COST_AXES:
        mine = fronts[fronts["axis"] == axis].reset_index(drop=True)
        theirs = pareto_frequency(data, axis, "AP", 200, 3)
        assert mine["front_freq"].tolist() == theirs["front_freq"].tolist()
        assert mine["value"].tolist() == pytest.approx(theirs["AP"].tolist())
    fits = fit_table(data, "AP")
    assert list(fits.columns) == FIT_TABLE_COLUMNS and list(fits["axis"]) == list(COST_AXES)
    per_axis = [fit_check(data, axis, "AP")["error_mean"].iloc[0] for axis in COST_AXES]
    assert fits["error_mean"].tolist() == pytest.approx(per_axis)
    # by hand: the middle phi of a (predicted halfway between 1 and 16) and of c (between 1 and 9)
    errors = [0.42 - 0.40, 0.439 - 0.4205, 0.41 - 0.39, 0.33 - 0.33, 0.352 - 0.35, 0.318 - 0.3205]
    assert fits["error_mean"].iloc[0] == pytest.approx(np.mean(errors)) and (fits["n_points"] == 6).all()


def one_group_blocks(data: pd.DataFrame, keys: dict) -> list:
    return equal_cost_blocks(
        keys, cost_verdicts(data, "AP"), pareto_table(data, "AP", n_boot=200), fit_table(data, "AP"), "AP"
    )


def test_blocks_show_each_axis_budgets_by_necks_then_the_fronts():
    data = pd.concat([rows().assign(latency_source=SITTING), rows(phis=1, epochs=24)], ignore_index=True)
    blocks = one_group_blocks(data, KEYS)
    headings = [b.text for b in blocks if isinstance(b, Heading)]
    assert headings == [
        "AP at equal GFLOPs",
        "AP at equal parameters",
        "AP at equal latency",
        "Pareto fronts of AP against each cost, over seed resamples",
    ]
    grids = [b for b in blocks if isinstance(b, Grid)]
    assert [g.headers for g in grids[:3]] == [
        ["GFLOPs", "a", "b", "c"],
        ["Parameters M", "a", "b", "c"],
        ["Latency ms", "a", "b", "c"],
    ]
    assert [r[0] for r in grids[0].rows] == ["2", "3", "4", "8"]
    assert [r[0] for r in grids[1].rows] == ["2", "3", "4", "8"]  # parameters in millions
    assert [r[0] for r in grids[2].rows] == ["20", "30", "40", "80"]
    mean, half = hand_ci([hand("a", s, 3.0) for s in range(3)])
    assert grids[0].rows[1][1] == f"{mean:.3f} ± {half:.3f} a"
    texts = [b.text for b in blocks if isinstance(b, Text)]
    assert "mean error +0.010 AP" in texts[0] and "under-read" in texts[0]  # the fit check, bias signed
    assert "Holm over the pairs of necks at that budget" in texts[0]
    assert SITTING in texts[2] and SITTING not in texts[0]


def test_pareto_grid_keeps_points_on_some_front_most_frequent_first():
    data = rows()
    fronts = pareto_table(data, "AP", n_boot=200)
    grid = one_group_blocks(data, KEYS)[-1]
    assert isinstance(grid, Grid) and grid.headers == ["neck", "phi", "AP mean", "GFLOPs", "Parameters", "Latency"]
    best = fronts.groupby(["neck", "phi"])["front_freq"].max()
    assert {(r[0], int(r[1])) for r in grid.rows} == set(best[best > 0].index)
    assert len(grid.rows) < len(best)  # some points are on no front: left out
    shown = [best[(r[0], int(r[1]))] for r in grid.rows]
    assert shown == sorted(shown, reverse=True)
    # c at phi 0 (AP .254 at 1 GFLOP) is dominated by a at phi 0 (.304 at the same cost) in every resample
    assert ("c", 0) not in {(r[0], int(r[1])) for r in grid.rows}
    assert 0 < best[("b", 1)] < 1 and not fronts.loc[(fronts["neck"] == "b") & (fronts["phi"] == 1), "front"].any()
    top = fronts[(fronts["neck"] == grid.rows[0][0]) & (fronts["phi"] == int(grid.rows[0][1]))]
    first = top[top["axis"] == "gflops"].iloc[0]
    assert grid.rows[0][3] == f"{100 * first['front_freq']:.0f} %" + (" *" if first["front"] else "")


def test_a_group_of_one_phi_says_it_has_no_budgets_and_still_shows_the_fronts():
    data = pd.concat([rows(), rows(phis=1, epochs=24)], ignore_index=True)
    assert cost_verdicts(rows(phis=1), "AP").empty  # no curve, no budget
    blocks = one_group_blocks(data, {**KEYS, "epochs": 24})
    assert [type(b) for b in blocks] == [Heading, Text, Heading, Text, Grid]
    assert blocks[0].text == "AP at equal cost" and "one phi" in blocks[1].text
    grid = blocks[-1]
    assert isinstance(grid, Grid) and {r[1] for r in grid.rows} == {"0"}


def test_budget_labels_add_digits_until_no_two_budgets_look_alike():
    from archbench.board.cost_cells import budget_labels

    assert budget_labels([0.0665, 0.0769]) == ["0.0665", "0.0769"]
    assert budget_labels([0.7347, 0.753171, 0.753209, 0.7539]) == ["0.7347", "0.75317", "0.75321", "0.7539"]
    assert budget_labels([10.12, 10.14]) == ["10.12", "10.14"]
