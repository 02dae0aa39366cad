"""Equal-cost comparisons (archbench.board.equal_cost) on small synthetic per-seed rows, against hand-computed values.

Three necks, phi 0-2, seeds 0 and 1 (GFLOPs; AP per seed):

    a  1, 2, 4     seed 0: .30 .40 .50   seed 1: .32 .40 .46
    b  2, 4, 8     seed 0: .35 .45 .55   seed 1: .33 .41 .51
    c  3, 6, 12    seed 0: .20 .30 .40   seed 1: .20 .30 .40

Every neck's costs double per phi, so in log cost each phi is one step and the middle point lies halfway.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from archbench.board.aggregate import GROUP_KEYS
from archbench.board.equal_cost import (
    COST_AXES,
    budget_rows,
    cost_axis,
    fit_check,
    fit_errors,
    interpolate,
    pareto_frequency,
)

from helpers import ONE_GROUP

KEYS = ONE_GROUP
GFLOPS = {"a": (1.0, 2.0, 4.0), "b": (2.0, 4.0, 8.0), "c": (3.0, 6.0, 12.0)}
AP = {
    ("a", 0): (0.30, 0.40, 0.50),
    ("a", 1): (0.32, 0.40, 0.46),
    ("b", 0): (0.35, 0.45, 0.55),
    ("b", 1): (0.33, 0.41, 0.51),
    ("c", 0): (0.20, 0.30, 0.40),
    ("c", 1): (0.20, 0.30, 0.40),
}
LOG_3 = math.log(1.5) / math.log(2)  # where 3 lies between 2 and 4 in log cost: 0.5849625


def rows(**keys) -> pd.DataFrame:
    """The table above as per-seed rows (the columns of aggregate.seed_rows that equal_cost reads)."""
    out = []
    for (neck, seed), aps in AP.items():
        for phi, (g, ap) in enumerate(zip(GFLOPS[neck], aps)):
            cost = {"gflops": g, "params_total": 1e6 * g, "latency_ms": 10.0 * g}
            out.append({**KEYS, **keys, "neck": neck, "phi": phi, "seed": seed, "AP": ap, **cost})
    return pd.DataFrame(out)


def value(frame: pd.DataFrame, budget: float, neck: str, seed: int) -> float:
    sel = frame[(frame["budget"] == budget) & (frame["neck"] == neck) & (frame["seed"] == seed)]
    assert len(sel) == 1, (budget, neck, seed)
    return float(sel.iloc[0]["AP"])


def test_interpolation_in_cost_and_in_log_cost():
    xs, ys = np.array([1.0, 4.0]), np.array([0.2, 0.4])
    assert interpolate(xs, ys, 2.0) == pytest.approx(0.2 + 0.2 / 3)  # a third of the way in cost
    assert interpolate(xs, ys, 2.0, log=True) == pytest.approx(0.3)  # halfway in log cost
    assert math.isnan(interpolate(xs, ys, 0.99, log=True)) and math.isnan(interpolate(xs, ys, 4.01))
    assert interpolate(xs, ys, 4.0 * (1 + 1e-12), log=True) == pytest.approx(0.4)  # a mean's last bit is inside


def test_budget_rows_interpolate_each_seed_at_the_common_budgets():
    frame = budget_rows(rows(), "gflops", "AP")
    assert list(frame.columns) == [*GROUP_KEYS, "axis", "budget", "neck", "seed", "AP"]
    # ranges [1, 4], [2, 8], [3, 12] share [3, 4]: the costs inside are 3 (c's phi 0) and 4 (a's phi 2, b's phi 1)
    assert sorted(frame["budget"].unique()) == [3.0, 4.0]
    assert len(frame) == 2 * 3 * 2 and set(frame["axis"]) == {"gflops"}
    assert value(frame, 3.0, "a", 0) == pytest.approx(0.40 + 0.10 * LOG_3)
    assert value(frame, 3.0, "a", 1) == pytest.approx(0.40 + 0.06 * LOG_3)
    assert value(frame, 3.0, "b", 0) == pytest.approx(0.35 + 0.10 * LOG_3)
    assert value(frame, 3.0, "b", 1) == pytest.approx(0.33 + 0.08 * LOG_3)
    assert value(frame, 3.0, "c", 1) == pytest.approx(0.20)
    assert value(frame, 4.0, "a", 1) == pytest.approx(0.46) and value(frame, 4.0, "b", 0) == pytest.approx(0.45)
    linear = budget_rows(rows(), "gflops", "AP", log=False)
    assert value(linear, 3.0, "a", 0) == pytest.approx(0.45) and value(linear, 3.0, "b", 1) == pytest.approx(0.37)


def test_budget_rows_group_like_seed_rows_and_pair_by_seed():
    frame = budget_rows(pd.concat([rows(), rows(epochs=24)]), "params_total", "AP")
    assert set(frame["epochs"]) == {8, 24}  # each schedule its own group, as on the board
    for _, sub in frame.groupby([*GROUP_KEYS, "axis", "budget"]):
        table = sub.pivot(index="seed", columns="neck", values="AP")  # what the per-pair tests read
        assert list(table.columns) == ["a", "b", "c"] and list(table.index) == [0, 1]
    assert sorted(frame["budget"].unique()) == [3e6, 4e6]


def test_budgets_never_lie_outside_a_neck_range_and_seeds_never_extrapolate():
    data = rows()
    data = data[~((data["neck"] == "a") & (data["seed"] == 1) & (data["phi"] == 2))]  # seed 1 of a stops at 2
    frame = budget_rows(data, "gflops", "AP")
    for neck, costs in GFLOPS.items():
        budgets = frame.loc[frame["neck"] == neck, "budget"]
        assert budgets.between(min(costs), max(costs)).all()
    assert frame[(frame["neck"] == "a") & (frame["seed"] == 1)].empty  # its curve ends at 2 < 3
    assert value(frame, 3.0, "a", 0) == pytest.approx(0.40 + 0.10 * LOG_3)


def test_disjoint_ranges_compare_only_where_two_necks_overlap():
    # a [1, 4] and b [2, 8] overlap; d [20, 40] overlaps nobody: its budgets have one neck and are left out
    data = rows()
    data = data[data["neck"] != "c"]
    far = data[data["neck"] == "a"].assign(neck="d", gflops=lambda f: f["gflops"] * 10 + 10)
    frame = budget_rows(pd.concat([data, far]), "gflops", "AP")
    assert sorted(frame["budget"].unique()) == [2.0, 4.0]
    assert set(frame["neck"]) == {"a", "b"}


def test_no_budgets_without_curves():
    data = rows()
    assert budget_rows(data[data["phi"] == 0], "gflops", "AP").empty  # one phi: nothing to go along
    with pytest.raises(ValueError, match="unknown cost axis"):
        budget_rows(data, "images_per_s", "AP")


def test_fit_check_predicts_each_interior_phi_from_its_neighbours():
    errors = fit_errors(rows(), "gflops", "AP")
    # middle points predicted halfway (log): a .40 / .39, b .45 / .42, c .30 / .30 -> errors 0, .01, 0, -.01, 0, 0
    by = {(n, s): e for n, s, e in zip(errors["neck"], errors["seed"], errors["error"])}
    assert by == pytest.approx({("a", 0): 0, ("a", 1): 0.01, ("b", 0): 0, ("b", 1): -0.01, ("c", 0): 0, ("c", 1): 0})
    (check,) = fit_check(rows(), "gflops", "AP").to_dict("records")
    assert check["n_points"] == 6 and check["n_necks"] == 3 and check["axis"] == "gflops"
    assert check["error_mean"] == pytest.approx(0.0, abs=1e-12)
    assert check["error_sd"] == pytest.approx(math.sqrt(2e-4 / 5))
    assert check["error_mae"] == pytest.approx(0.02 / 6) and check["error_max"] == pytest.approx(0.01)
    # linear in cost the middle point is a third of the way: a seed 0 .30 + .20 / 3 -> error .1 / 3; so are a
    # seed 1, b seed 0 and c; b seed 1 .33 + .18 / 3 = .39 -> error .02
    (linear,) = fit_check(rows(), "gflops", "AP", log=False).to_dict("records")
    assert linear["error_mean"] == pytest.approx((5 * 0.1 / 3 + 0.02) / 6)


def test_fit_check_needs_three_points():
    data = rows()
    assert fit_check(data[data["phi"] < 2], "gflops", "AP").empty


def front_rows() -> pd.DataFrame:
    """One group, two seeds; latency per seed (ms), AP per seed:

    p1 (a, 0)  1.0 / 1.0   .50 / .50   cheapest: always on the front
    p2 (b, 0)  1.5 / 2.5   .40 / .40   costlier and worse than p1: never
    p3 (c, 0)  3.0 / 3.0   .45 / .60   above p1 unless both draws are seed 0 (1 in 4): about 3 / 4
    p4 (a, 1)  4.0 / 4.0   .46 / .61   p3 + .01 per seed: on the front exactly when p3 is (paired resamples)
    """
    points = {
        ("a", 0): ((1.0, 1.0), (0.50, 0.50)),
        ("b", 0): ((1.5, 2.5), (0.40, 0.40)),
        ("c", 0): ((3.0, 3.0), (0.45, 0.60)),
        ("a", 1): ((4.0, 4.0), (0.46, 0.61)),
    }
    return pd.DataFrame(
        [
            {**KEYS, "neck": neck, "phi": phi, "seed": s, "latency_ms": lat[s], "AP": ap[s]}
            for (neck, phi), (lat, ap) in points.items()
            for s in (0, 1)
        ]
    )


def test_pareto_frequency_always_never_sometimes():
    front = pareto_frequency(front_rows(), "latency_ms", "AP", n_boot=2000, seed=0).set_index(["neck", "phi"])
    assert list(front.columns[: len(GROUP_KEYS)]) == GROUP_KEYS
    assert front.loc[("b", 0), "cost"] == pytest.approx(2.0)  # the mean over its seeds
    assert front.loc[("c", 0), "AP"] == pytest.approx(0.525)
    assert front["front"].to_dict() == {("a", 0): True, ("a", 1): True, ("b", 0): False, ("c", 0): True}
    assert front.loc[("a", 0), "front_freq"] == 1.0 and front.loc[("b", 0), "front_freq"] == 0.0
    assert front.loc[("c", 0), "front_freq"] == pytest.approx(0.75, abs=0.04)
    # one resample for every point: p4 moves with p3, so their frequencies are equal, not merely close
    assert front.loc[("a", 1), "front_freq"] == front.loc[("c", 0), "front_freq"]
    again = pareto_frequency(front_rows(), "latency_ms", "AP", n_boot=2000, seed=0).set_index(["neck", "phi"])
    assert again["front_freq"].equals(front["front_freq"])


def test_pareto_frequency_counts_only_resamples_that_drew_a_point_seed():
    data = front_rows()
    data = data[~((data["neck"] == "b") & (data["seed"] == 1))]  # p2 ran seed 0 only
    data.loc[data["neck"] == "b", "AP"] = 0.99  # now the most accurate: on the front whenever seed 0 is drawn
    front = pareto_frequency(data, "latency_ms", "AP", n_boot=500).set_index(["neck", "phi"])
    assert front.loc[("b", 0), "front_freq"] == 1.0


def test_every_cost_axis_has_a_label_and_unit():
    assert list(COST_AXES) == ["gflops", "params_total", "latency_ms"]
    assert cost_axis("params_total").unit == "M" and cost_axis("params_total").scale == 1e-6
    assert cost_axis("latency_ms").label == "Latency"
