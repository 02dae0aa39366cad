"""The board's statistics (archbench.board.stats) against hand-computed values on small fixed numbers.

Reference quantiles from the printed table of Student's t (e.g. any statistics textbook's appendix):
t_{0.975, df} = 12.706, 4.303, 3.182, 2.776, 2.571 for df 1..5, 2.228 (10), 2.042 (30), 1.980 (120);
t_{0.95, 1} = 6.314, t_{0.95, 2} = 2.920. Normal: z_{0.975} = 1.959964, z_{0.8} = 0.841621.
Two-sided t p-values in closed form (independent of the incomplete beta the module uses):
df 1: p = 1 - (2/pi) atan|t|; df 2: p = 1 - |t| / sqrt(t^2 + 2);
df 3: p = 1 - (2/pi) (atan(u) + u / (1 + u^2)), u = |t| / sqrt(3).
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from archbench.board import stats
from archbench.board.aggregate import build_table
from archbench.runs.records import OK


def p_df3(t: float) -> float:
    """Two-sided p of Student's t with 3 degrees of freedom, closed form."""
    u = abs(t) / math.sqrt(3.0)
    return 1.0 - (2.0 / math.pi) * (math.atan(u) + u / (1.0 + u * u))


def group(values: dict[str, dict[int, float]], metric: str = "AP") -> pd.DataFrame:
    """A comparison group's per-seed rows (as aggregate._ok_rows gives them): neck -> seed -> metric."""
    rows = [
        {"task": "det", "dataset": "synthetic", "preset": "proxy", "neck": neck, "phi": 0, "seed": seed, metric: v}
        for neck, by_seed in values.items()
        for seed, v in by_seed.items()
    ]
    return pd.DataFrame(rows)


def seeds(*values: float) -> dict[int, float]:
    """Values for seeds 0, 1, 2, ..."""
    return dict(enumerate(values))


# x, y, z over 4 seeds (used for tests, letters and the closest pair):
#   x - y = [.10, .11, .09, .10]: mean .10, sd .0081650, t = .10 / (.0081650 / 2) = 24.495 (df 3), p = 1.49e-4
#   z - y = [.07, .12, .07, .12]: mean .095, sd .028868, t = 6.5818, p = 0.00714
#   x - z = [.03, -.01, .02, -.02]: mean .005, sd .023805, t = 0.42008, p = 0.70
# Holm over 3 tests: 3 * 1.49e-4 = 4.5e-4, 2 * 0.00714 = 0.0143 (both < .05), 1 * 0.70 -> x ~ z, y apart.
X = (0.50, 0.52, 0.48, 0.51)
Y = tuple(x - d for x, d in zip(X, (0.10, 0.11, 0.09, 0.10)))
Z = tuple(x - d for x, d in zip(X, (0.03, -0.01, 0.02, -0.02)))
XYZ = group({"x": seeds(*X), "y": seeds(*Y), "z": seeds(*Z)})


# ---------------------------------------------------------------------------------------------- t distribution


def test_incomplete_beta_known_values():
    # I_x(1, 1) = x; I_x(a, 1) = x^a; I_0.5(2, 3) = sum_{j=2..4} C(4, j) / 16 = (6 + 4 + 1) / 16 = 0.6875
    assert stats.betainc(1, 1, 0.3) == pytest.approx(0.3, abs=1e-12)
    assert stats.betainc(3, 1, 0.4) == pytest.approx(0.064, abs=1e-12)
    assert stats.betainc(2, 3, 0.5) == pytest.approx(0.6875, abs=1e-12)
    assert stats.betainc(2, 3, 0.0) == 0.0 and stats.betainc(2, 3, 1.0) == 1.0


def test_t_p_values_match_closed_forms():
    # df 1, t = 1: 1 - (2/pi) * pi/4 = 0.5; df 2, t = 2: 1 - 2 / sqrt(6) = 0.183503
    assert stats.t_two_sided_p(1.0, 1) == pytest.approx(0.5, abs=1e-12)
    assert stats.t_two_sided_p(-2.0, 2) == pytest.approx(1 - 2 / math.sqrt(6), abs=1e-12)
    for t in (0.3, 1.7, 6.58, 24.5):
        assert stats.t_two_sided_p(t, 3) == pytest.approx(p_df3(t), abs=1e-12)
    assert stats.t_two_sided_p(0.0, 5) == 1.0 and stats.t_two_sided_p(math.inf, 5) == 0.0


@pytest.mark.parametrize(
    ("p", "df", "table"),
    [
        (0.975, 1, 12.706),
        (0.975, 2, 4.303),
        (0.975, 3, 3.182),
        (0.975, 4, 2.776),
        (0.975, 5, 2.571),
        (0.975, 10, 2.228),
        (0.975, 30, 2.042),
        (0.975, 120, 1.980),
        (0.95, 1, 6.314),
        (0.95, 2, 2.920),
        (0.025, 2, -4.303),
    ],
)
def test_t_quantile_matches_the_printed_table(p, df, table):
    assert stats.t_quantile(p, df) == pytest.approx(table, abs=5e-4)


def test_t_quantile_tends_to_the_normal_and_rejects_bad_input():
    assert stats.t_quantile(0.975, 1e6) == pytest.approx(1.959964, abs=1e-5)
    assert stats.t_quantile(0.5, 3) == 0.0
    with pytest.raises(ValueError):
        stats.t_quantile(1.0, 3)


# ---------------------------------------------------------------------------------------------- mean_ci


def test_mean_ci_three_seeds():
    # [0.5, 0.6, 0.7]: mean 0.6, sd 0.1, se 0.1 / sqrt(3) = 0.057735, t_{0.975,2} = 4.302653 -> 0.248414
    mean, half = stats.mean_ci([0.5, 0.6, 0.7])
    assert mean == pytest.approx(0.6) and half == pytest.approx(0.248414, abs=1e-6)
    # 90 %: t_{0.95,2} = 2.919986 -> 0.168585
    assert stats.mean_ci([0.5, 0.6, 0.7], level=0.90)[1] == pytest.approx(0.168585, abs=1e-6)


def test_mean_ci_edge_cases():
    mean, half = stats.mean_ci([0.42])
    assert mean == 0.42 and math.isnan(half)  # one seed: no interval
    assert all(math.isnan(v) for v in stats.mean_ci([]))
    # a missing metric is left out: [0.5, 0.7]: mean 0.6, sd 0.141421, se 0.1, t_{0.975,1} = 12.7062 -> 1.27062
    mean, half = stats.mean_ci([0.5, math.nan, 0.7])
    assert mean == pytest.approx(0.6) and half == pytest.approx(1.27062, abs=1e-5)
    assert stats.mean_ci([0.3, 0.3, 0.3]) == (pytest.approx(0.3), 0.0)  # all equal: zero width


# ---------------------------------------------------------------------------------------------- paired differences


def test_paired_differences_hand_values():
    rows = group(
        {
            "fpn": seeds(0.30, 0.34, 0.32),
            "a": seeds(0.33, 0.36, 0.36),
            "b": seeds(0.35, 0.33, 0.37),
            "c": {3: 0.40, 4: 0.42},
            "d": {0: 0.31, 5: 0.35},
        }
    )
    diffs = stats.paired_differences(rows, "AP", reference="fpn")
    a, b, c, d, ref = (diffs.loc[n] for n in ("a", "b", "c", "d", "fpn"))
    # a - fpn = [.03, .02, .04]: mean .03, sd .01, half 4.302653 * .01 / sqrt(3) = 0.024841
    assert a["n_pairs"] == 3 and a["diff_mean"] == pytest.approx(0.03) and a["diff_sd"] == pytest.approx(0.01)
    assert a["diff_ci"] == pytest.approx(0.024841, abs=1e-6)
    # unpaired a vs fpn: sd_a = sqrt(.0003) = .017321, sd_fpn = .02 -> sd of one difference sqrt(.0007) = .026458
    assert a["unpaired_diff"] == pytest.approx(0.03) and a["unpaired_sd"] == pytest.approx(0.026458, abs=1e-6)
    # b - fpn = [.05, -.01, .05]: mean .03, sd sqrt(.0012) = .034641, half 4.302653 * .02 = .086053
    assert b["diff_sd"] == pytest.approx(0.034641, abs=1e-6) and b["diff_ci"] == pytest.approx(0.086053, abs=1e-6)
    # Welch b vs fpn: equal sd .02 and n 3 -> se sqrt(2 * .0004 / 3) = .016330, df 4, t 2.776445 -> .045339
    assert b["unpaired_sd"] == pytest.approx(0.028284, abs=1e-6)
    assert b["unpaired_ci"] == pytest.approx(0.045339, abs=1e-6)
    # c has no seed in common with fpn: NaN paired values, stated; its unpaired difference .41 - .32 = .09
    assert c["n_pairs"] == 0 and math.isnan(c["diff_mean"]) and math.isnan(c["diff_ci"])
    assert "no seed in common" in c["note"] and c["unpaired_diff"] == pytest.approx(0.09)
    # d shares seed 0 only: one difference .01, no interval
    assert d["n_pairs"] == 1 and d["diff_mean"] == pytest.approx(0.01) and math.isnan(d["diff_ci"])
    assert "one seed" in d["note"]
    assert ref["diff_mean"] == 0.0 and ref["diff_ci"] == 0.0 and ref["note"] == "reference"


def test_paired_differences_without_the_reference():
    diffs = stats.paired_differences(XYZ, "AP", reference="fpn")
    assert diffs["diff_mean"].isna().all() and (diffs["n_pairs"] == 0).all()
    assert diffs["note"].str.contains("no 'fpn' runs").all()


def test_welch_needs_two_values_per_side():
    diff, sd, half = stats.welch([0.3], [0.2, 0.4])
    assert diff == pytest.approx(0.0) and math.isnan(sd) and math.isnan(half)


def test_two_rows_for_one_seed_are_refused():
    rows = pd.concat([XYZ, XYZ.iloc[[0]]])
    with pytest.raises(ValueError, match="several rows"):
        stats.paired_differences(rows, "AP", reference="x")


# ---------------------------------------------------------------------------------------------- tied necks


def test_holm_adjustment():
    # sorted .01, .03, .04 -> 3 * .01 = .03, 2 * .03 = .06, max(.06, 1 * .04) = .06 (back in input order)
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = stats.holm([0.01, math.nan, 0.04])  # NaN not counted: m = 2
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    assert stats.holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])


def test_pairwise_paired_t_tests():
    tests = stats.pairwise_tests(XYZ, "AP").set_index(["a", "b"])
    xy, xz, yz = tests.loc[("x", "y")], tests.loc[("x", "z")], tests.loc[("y", "z")]
    assert xy["t"] == pytest.approx(24.4949, abs=1e-3) and xy["p"] == pytest.approx(p_df3(24.4949), rel=1e-4)
    assert yz["diff_mean"] == pytest.approx(-0.095) and yz["t"] == pytest.approx(-6.5818, abs=1e-3)
    assert yz["p"] == pytest.approx(0.00714, abs=1e-5) and xz["p"] == pytest.approx(p_df3(0.42008), abs=1e-4)
    assert xy["p_holm"] == pytest.approx(3 * xy["p"]) and yz["p_holm"] == pytest.approx(2 * yz["p"])
    assert list(tests["different"]) == [True, False, True]


def test_tie_letters_from_the_tests():
    assert stats.tie_letters(XYZ, "AP") == {"x": "a", "z": "a", "y": "b"}


def test_all_tied_necks_share_one_letter():
    rows = group({"p": seeds(0.3, 0.4), "q": seeds(0.3, 0.4), "r": seeds(0.31, 0.38)})
    assert set(stats.tie_letters(rows, "AP").values()) == {"a"}


def test_pairs_without_two_common_seeds_count_as_tied():
    rows = group({"p": seeds(0.9, 0.9), "q": {2: 0.1, 3: 0.1}})
    tests = stats.pairwise_tests(rows, "AP")
    assert tests["n_pairs"].tolist() == [0] and math.isnan(tests["p"][0]) and not tests["different"][0]
    assert stats.tie_letters(rows, "AP") == {"p": "a", "q": "a"}


def test_letter_display_non_transitive_ties():
    # a > c resolved, b ties with both: a -> "a", b -> "ab", c -> "b"
    assert stats.letter_display(["a", "b", "c"], [("a", "c")], ["a", "b", "c"]) == {"a": "a", "b": "ab", "c": "b"}
    # every pair resolved: one letter each, best first
    every = [("a", "b"), ("a", "c"), ("b", "c")]
    assert stats.letter_display(["c", "b", "a"], every, ["a", "b", "c"]) == {"a": "a", "b": "b", "c": "c"}
    # 4 items, a-c, a-d, b-d resolved: {a, b}, {b, c}, {c, d} -> a: a, b: ab, c: bc, d: c
    letters = stats.letter_display("abcd", [("a", "c"), ("a", "d"), ("b", "d")], "abcd")
    assert letters == {"a": "a", "b": "ab", "c": "bc", "d": "c"}


# ---------------------------------------------------------------------------------------------- rankings


def test_kendall_tau_b_hand_values():
    assert stats.kendall_tau_b([4, 3, 2, 1], [4, 3, 2, 1]) == 1.0  # perfect agreement
    assert stats.kendall_tau_b([4, 3, 2, 1], [1, 2, 3, 4]) == -1.0  # reversed
    # one swapped pair of 6: (5 - 1) / 6
    assert stats.kendall_tau_b([4, 3, 2, 1], [4, 3, 1, 2]) == pytest.approx(4 / 6)
    # a tie in y: C = 5, D = 0, n0 = 6, n2 = 1 -> 5 / sqrt(6 * 5) = 0.912871
    assert stats.kendall_tau_b([4, 3, 2, 1], [4, 3, 2, 2]) == pytest.approx(0.912871, abs=1e-6)
    # a tie on each side: C = 4, D = 0, n1 = n2 = 1 -> 4 / sqrt(5 * 5) = 0.8
    assert stats.kendall_tau_b([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(0.8)
    assert math.isnan(stats.kendall_tau_b([1, 1, 1], [1, 2, 3]))  # all tied on one side
    assert math.isnan(stats.kendall_tau_b([1], [1]))


def test_rank_stability_two_seeds_is_seed0_vs_seed1():
    rows = group({"p": seeds(4, 4), "q": seeds(3, 3), "r": seeds(2, 1), "s": seeds(1, 2)})
    assert stats.rank_stability(rows, "AP") == pytest.approx(4 / 6)  # r, s swap: one discordant pair of 6


def test_rank_stability_averages_all_balanced_splits():
    # u = .5 every seed; v = [.8, .6, .3, .55]. Splits of 4 seeds into halves:
    #   {0,1} | {2,3}: v .70 > u, .425 < u -> tau -1
    #   {0,2} | {1,3}: v .55 > u, .575 > u -> tau +1
    #   {0,3} | {1,2}: v .675 > u, .45 < u -> tau -1          mean: -1/3
    rows = group({"u": seeds(0.5, 0.5, 0.5, 0.5), "v": seeds(0.8, 0.6, 0.3, 0.55)})
    assert stats.rank_stability(rows, "AP") == pytest.approx(-1 / 3)


def test_rank_stability_odd_seeds_and_edge_cases():
    # 3 seeds: halves of 1 and 2 -- {0}|{1,2}: v .9 > u, .45 < u (-1); {1}|{0,2}: .6 >, .6 > (+1);
    # {2}|{0,1}: .3 <, .75 > (-1) -> -1/3
    rows = group({"u": seeds(0.5, 0.5, 0.5), "v": seeds(0.9, 0.6, 0.3)})
    assert stats.rank_stability(rows, "AP") == pytest.approx(-1 / 3)
    assert math.isnan(stats.rank_stability(group({"u": seeds(0.5), "v": seeds(0.6)}), "AP"))  # one seed
    assert math.isnan(stats.rank_stability(group({"u": seeds(0.5, 0.6)}), "AP"))  # one neck
    all_tied = group({"u": seeds(0.5, 0.5), "v": seeds(0.5, 0.5)})
    assert math.isnan(stats.rank_stability(all_tied, "AP"))


def test_rank_stability_samples_when_splits_are_many():
    rows = group({"u": seeds(*[0.5] * 12), "v": seeds(*[0.6] * 12)})  # C(12, 6) / 2 = 462 splits
    assert stats.rank_stability(rows, "AP", max_splits=10) == 1.0


def test_ranking_agreement():
    paper = ["bifpn", "nasfpn", "panet", "fpn"]
    same = stats.ranking_agreement(paper, paper)
    assert (same.tau, same.direction, same.n_pairs) == (1.0, 1.0, 6)
    rev = stats.ranking_agreement(paper, paper[::-1])
    assert (rev.tau, rev.direction) == (-1.0, 0.0)
    # board bifpn, panet, fpn, nasfpn (+ dla, not in the paper): pairs panet-nasfpn and fpn-nasfpn disagree
    # C = 4, D = 2: tau = 2/6, direction 4/6
    board = stats.ranking_agreement(["bifpn", "panet", "dla", "fpn", "nasfpn"], paper)
    assert board.tau == pytest.approx(1 / 3) and board.direction == pytest.approx(2 / 3) and board.n_pairs == 6
    assert board.items == ("bifpn", "panet", "fpn", "nasfpn")
    # a tie in the second ranking: C = 2 (a-c, b-c), n2 = 1 -> 2 / sqrt(3 * 2) = 0.816497; direction over 2 pairs
    tied = stats.ranking_agreement(["a", "b", "c"], [["a", "b"], "c"])
    assert tied.tau == pytest.approx(0.816497, abs=1e-6) and (tied.direction, tied.n_pairs) == (1.0, 2)
    with pytest.raises(ValueError, match="twice"):
        stats.ranking_agreement(["a", "a"], ["a"])


# ---------------------------------------------------------------------------------------------- seeds needed


def test_seeds_needed_normal_approximation():
    # (1.959964 + 0.841621) * .02 / .01 = 5.603170 -> squared 31.3955 -> 32
    assert stats.seeds_needed(0.01, 0.02) == 32.0
    assert stats.seeds_needed(-0.01, 0.02) == 32.0  # the sign does not matter
    assert stats.seeds_needed(0.0, 0.02) == math.inf
    assert math.isnan(stats.seeds_needed(0.01, math.nan))
    assert stats.seeds_needed(0.1, 0.001) == 2.0  # at least two pairs
    # Bonferroni over 3 tests: a = .05 / 3, z_{1 - a/2} = 2.39398 -> (3.23560 * 2)^2 = 41.88 -> 42
    assert stats.seeds_needed(0.01, 0.02, tests=3) == 42.0


def test_seeds_needed_with_t_quantiles():
    # sd / mean = 1: normal n = 2.801585^2 = 7.85 -> 8; with t (t_{0.975, df} + t_{0.80, df}, printed table):
    #   n 8, df 7: (2.365 + 0.896)^2 = 10.63 > 8;  n 9, df 8: (2.306 + 0.889)^2 = 10.21 > 9;
    #   n 10, df 9: (2.262 + 0.883)^2 = 9.89 <= 10 -> 10
    assert stats.seeds_needed(0.1, 0.1) == 8.0
    assert stats.seeds_needed(0.1, 0.1, t=True) == 10.0


def test_closest_unresolved_pair():
    # x ~ z (p .70), y resolved from both; x - z: mean .005, sd .023805, (sd / mean)^2 = 22.667.
    # Seeds at the Bonferroni level of the 3 tests (a = .05 / 3) with t quantiles: the normal count is
    # (2.39398 + 0.841621)^2 * 22.667 = 237.3; at df ~ 240 the t quantiles are ~ 2.4104 and ~ 0.8430
    # ((3.2534)^2 * 22.667 = 239.9), so about 240: checked as the smallest n with n >= that bound.
    pair = stats.closest_unresolved_pair(XYZ, "AP")
    assert pair is not None and (pair.a, pair.b, pair.n_pairs) == ("x", "z", 4)
    assert pair.diff_mean == pytest.approx(0.005) and pair.diff_sd == pytest.approx(0.023805, abs=1e-6)
    n = pair.seeds_needed
    assert n == stats.seeds_needed(0.005, pair.diff_sd, 1 - 0.05, tests=3, t=True) and 238 <= n <= 242

    def bound(k: float) -> float:
        return (stats.t_quantile(1 - 0.05 / 6, k - 1) + stats.t_quantile(0.8, k - 1)) ** 2 * 22.667

    assert n >= bound(n) - 0.01 and n - 1 < bound(n - 1) + 0.01
    resolved = group({"x": seeds(*X), "y": seeds(*Y)})
    assert stats.closest_unresolved_pair(resolved, "AP") is None
    assert stats.closest_unresolved_pair(XYZ, "AP", top=1) is None  # one neck: no pair


def test_neck_summary():
    summary = stats.neck_summary(XYZ, "AP", reference="x")
    assert list(summary.index) == ["x", "z", "y"]  # x .5025, z .4975, y .4025
    assert summary.loc["y", "diff_mean"] == pytest.approx(-0.10) and summary.loc["z", "letters"] == "a"
    assert summary.loc["x", "mean"] == pytest.approx(0.5025) and summary.loc["y", "letters"] == "b"
    assert summary.loc["x", "ci"] == pytest.approx(stats.mean_ci(X)[1])


# ---------------------------------------------------------------------------------------------- on the board


def test_build_table_carries_ci95_half_widths():
    def record(neck: str, seed: int, ap: float) -> dict[str, object]:
        return {
            "status": OK,
            "task": "det",
            "neck": neck,
            "phi": 0,
            "seed": seed,
            "preset": "proxy",
            "dataset": {"name": "synthetic"},
            "metrics": {"AP": ap, "AP50": ap + 0.2, "APs": -1.0},
        }

    records = [record("fpn", s, ap) for s, ap in enumerate((0.5, 0.6, 0.7))] + [record("pan", 0, 0.4)]
    table = build_table(records).set_index("neck")
    # fpn AP [.5, .6, .7]: half-width 0.248414 (as in test_mean_ci_three_seeds); AP50 the same spread
    assert table.loc["fpn", "AP_ci95"] == pytest.approx(0.248414, abs=1e-6)
    assert table.loc["fpn", "score_ci95"] == pytest.approx(0.248414, abs=1e-6)
    assert table.loc["fpn", "AP50_ci95"] == pytest.approx(0.248414, abs=1e-6)
    assert math.isnan(table.loc["pan", "AP_ci95"]) and math.isnan(table.loc["fpn", "APs_ci95"])  # one seed; all -1
    assert "score_ci95" in build_table([]).columns
