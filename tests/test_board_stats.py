"""The board's statistics (archbench.board.stats, .pairs, .power) against hand-computed values on small fixed numbers.

Reference quantiles from the printed table of Student's t (e.g. any statistics textbook's appendix):
t_{0.975, df} = 12.706, 4.303, 3.182, 2.776, 2.571 for df 1..5, 2.228 (10), 2.042 (30), 1.980 (120);
t_{0.95, df} = 6.314, 2.920, 2.353 for df 1..3. Normal: z_{0.975} = 1.959964, z_{0.8} = 0.841621.
Two-sided t p-values in closed form (independent of scipy, which the modules use):
df 1: p = 1 - (2/pi) atan|t|; df 2: p = 1 - |t| / sqrt(t^2 + 2);
df 3: p = 1 - (2/pi) (atan(u) + u / (1 + u^2)), u = |t| / sqrt(3);
even df: p = 1 - x sum_{k < df/2} C(2k, k) / 4^k (1 - x^2)^k, x = |t| / sqrt(t^2 + df).
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
import scipy.stats

from archbench.board import pairs, power, stats
from archbench.board.aggregate import build_table
from archbench.runs.records import OK


def p_df3(t: float) -> float:
    """Two-sided p of Student's t with 3 degrees of freedom, closed form."""
    u = abs(t) / math.sqrt(3.0)
    return 1.0 - (2.0 / math.pi) * (math.atan(u) + u / (1.0 + u * u))


def p_even(t: float, df: int) -> float:
    """Two-sided p of Student's t with an even number of degrees of freedom, closed form."""
    x = abs(t) / math.sqrt(t * t + df)
    return 1.0 - x * sum(math.comb(2 * k, k) / 4**k * (1 - x * x) ** k for k in range(df // 2))


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


# x, y, z over 4 seeds (used for tests, letters and the closest pair). Per-seed differences:
#   x - y = [.10, .11, .09, .10]: mean .10, sum of squared deviations (SS) .0002; on its own: sd .0081650,
#           paired t = .10 / (.0081650 / 2) = 24.495 (df 3)
#   z - y = [.07, .12, .07, .12]: mean .095, SS .0025
#   x - z = [.03, -.01, .02, -.02]: mean .005, SS .0017
# Block model (necks + seeds): residual SS = (sum of the pairs' SS) / k = .0044 / 3 = .00146667 on
# (3 - 1)(4 - 1) = 6 df -> mean square .00024444, residual sd .0156347; one difference's sd
# sqrt(2 * .00024444) = .0221108, of a mean over 4 seeds .0110554. t: x - y 9.0453, y - z -8.5931, x - z 0.4523.
# Holm over 3 tests: p(x, y) and p(y, z) ~ 1e-4 (x 3 and x 2: < .05), p(x, z) = .667 -> x ~ z, y apart.
X = (0.50, 0.52, 0.48, 0.51)
Y = tuple(x - d for x, d in zip(X, (0.10, 0.11, 0.09, 0.10)))
Z = tuple(x - d for x, d in zip(X, (0.03, -0.01, 0.02, -0.02)))
XYZ = group({"x": seeds(*X), "y": seeds(*Y), "z": seeds(*Z)})


# ---------------------------------------------------------------------------------------------- t distribution


def test_closed_form_p_values_agree():
    # the helpers above against each other and known points: df 2, t = 2: 1 - 2 / sqrt(6) = 0.183503
    assert p_even(2.0, 2) == pytest.approx(1 - 2 / math.sqrt(6), abs=1e-12)
    assert p_even(0.0, 6) == 1.0 and p_df3(0.0) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("level", "df", "table"),
    [
        (0.95, 1, 12.706),
        (0.95, 2, 4.303),
        (0.95, 3, 3.182),
        (0.95, 4, 2.776),
        (0.95, 5, 2.571),
        (0.95, 10, 2.228),
        (0.95, 30, 2.042),
        (0.95, 120, 1.980),
        (0.90, 1, 6.314),
        (0.90, 2, 2.920),
    ],
)
def test_t_critical_matches_the_printed_table(level, df, table):
    assert stats.t_critical(level, df) == pytest.approx(table, abs=5e-4)
    # the half-width of n = df + 1 values of sd sqrt(n) is the critical value itself
    assert stats.t_half_width(math.sqrt(df + 1), df + 1, level) == pytest.approx(table, abs=5e-4)


def test_t_critical_tends_to_the_normal():
    assert stats.t_critical(0.95, 1e6) == pytest.approx(1.959964, abs=1e-5)
    assert math.isnan(stats.t_critical(0.95, 0)) and math.isnan(stats.t_half_width(0.1, 1))


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


def test_block_model_differences_hand_values():
    rows = group(
        {
            "fpn": seeds(0.30, 0.34, 0.32),
            "a": seeds(0.33, 0.36, 0.36),
            "b": seeds(0.35, 0.33, 0.37),
            "c": {3: 0.40},
            "d": {0: 0.31},
        }
    )
    fit = stats.block_fit(rows, "AP")
    # fpn, a, b on seeds 0-2. Per-seed differences and their SS:
    #   a - fpn = [.03, .02, .04] (mean .03, SS .0002), b - fpn = [.05, -.01, .05] (.03, .0024),
    #   a - b = [-.02, .03, -.01] (0, .0014) -> residual SS .004 / 3 on (3 - 1)(3 - 1) = 4 df: mean square
    #   .00033333, one difference's sd sqrt(.00066667) = .025820, half-width t_{.975, 4} 2.776445 * .025820 /
    #   sqrt(3) = .041388 -- the same for a and b, whose own paired sds (.01, .034641) differ.
    # c and d add one value and one neck each (c also a seed): the residual and its 4 df stay.
    assert fit.df == 4 and fit.diff_sd == pytest.approx(0.025820, abs=1e-6)
    for neck in ("a", "b"):
        assert fit.difference(neck, "fpn")[0] == pytest.approx(0.03)
        assert fit.half_width(neck, "fpn") == pytest.approx(0.041388, abs=1e-6)
    # c's only seed (3) is nobody else's: nothing links it to fpn
    assert math.isnan(fit.difference("c", "fpn")[0]) and math.isnan(fit.half_width("c", "fpn"))
    # d ran seed 0 only: d - (fpn's fitted seed-0 value) = .31 - (fpn mean .32 + seed-0 effect (.30 + .33 +
    # .35) / 3 - grand mean .34 = -.013333) = .003333; its variance sigma^2 (1 + 1/n + 1/k - 1/(nk)) with n = k = 3
    # = .00033333 * 1.5556 -> se .022771, half-width 2.776445 * .022771 = .063222
    assert fit.difference("d", "fpn")[0] == pytest.approx(0.003333, abs=1e-6)
    assert fit.half_width("d", "fpn") == pytest.approx(0.063222, abs=1e-6)


def test_welch_hand_values():
    # a = [.33, .36, .36]: sd sqrt(.0003) = .017321; fpn = [.30, .34, .32]: sd .02 -> sd of one unpaired
    # difference sqrt(.0007) = .026458. b = [.35, .33, .37] vs fpn: equal sd .02, n 3 -> sd .028284,
    # se sqrt(2 * .0004 / 3) = .016330, Welch df 4, t_{.975, 4} 2.776445 -> half-width .045339
    diff, sd, _ = stats.welch([0.33, 0.36, 0.36], [0.30, 0.34, 0.32])
    assert diff == pytest.approx(0.03) and sd == pytest.approx(0.026458, abs=1e-6)
    diff, sd, half = stats.welch([0.35, 0.33, 0.37], [0.30, 0.34, 0.32])
    assert sd == pytest.approx(0.028284, abs=1e-6) and half == pytest.approx(0.045339, abs=1e-6)


def test_welch_needs_two_values_per_side():
    diff, sd, half = stats.welch([0.3], [0.2, 0.4])
    assert diff == pytest.approx(0.0) and math.isnan(sd) and math.isnan(half)


def test_two_rows_for_one_seed_are_refused():
    rows = pd.concat([XYZ, XYZ.iloc[[0]]])
    with pytest.raises(ValueError, match="several rows"):
        stats.seed_table(rows, "AP")


# ---------------------------------------------------------------------------------------------- tied necks


def test_holm_adjustment():
    # sorted .01, .03, .04 -> 3 * .01 = .03, 2 * .03 = .06, max(.06, 1 * .04) = .06 (back in input order)
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = stats.holm([0.01, math.nan, 0.04])  # NaN not counted: m = 2
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    assert stats.holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])


def test_pairwise_tests_on_the_block_model():
    fit = stats.block_fit(XYZ, "AP")
    assert (fit.necks, fit.seeds, fit.df) == (("x", "y", "z"), (0, 1, 2, 3), 6)
    assert fit.residual_sd == pytest.approx(0.0156347, abs=1e-7) and fit.diff_sd == pytest.approx(0.0221108, abs=1e-7)
    tests = stats.pairwise_tests(XYZ, "AP").set_index(["a", "b"])
    xy, xz, yz = tests.loc[("x", "y")], tests.loc[("x", "z")], tests.loc[("y", "z")]
    assert xy["t"] == pytest.approx(9.0453, abs=1e-4) and yz["t"] == pytest.approx(-8.5931, abs=1e-4)
    assert xz["t"] == pytest.approx(0.45227, abs=1e-5) and yz["diff_mean"] == pytest.approx(-0.095)
    assert xy["p"] == pytest.approx(p_even(9.0453, 6), rel=1e-3) and (tests["n_pairs"] == 4).all()
    # Holm: 3 * p(x, y) = 3.07e-4; max(that, 2 * p(y, z) = 2.73e-4); max(that, 1 * p(x, z))
    assert xy["p_holm"] == pytest.approx(3 * xy["p"]) and yz["p_holm"] == pytest.approx(3 * xy["p"])
    assert xz["p_holm"] == pytest.approx(xz["p"])
    assert list(tests["different"]) == [True, False, True]


def test_with_two_necks_the_block_model_is_the_paired_t_test():
    tests = stats.pairwise_tests(XYZ[XYZ["neck"] != "z"], "AP")
    # x - y = [.10, .11, .09, .10]: sd .0081650, t = 24.495 on 3 df (closed form p)
    assert tests["t"][0] == pytest.approx(24.4949, abs=1e-3) and tests["p"][0] == pytest.approx(
        p_df3(24.4949), rel=1e-4
    )
    assert tests["diff_sd"][0] == pytest.approx(0.0081650, abs=1e-7)


def test_a_neck_with_one_seed_is_compared_through_the_pooled_residual():
    rows = group({**{n: seeds(*v) for n, v in (("x", X), ("y", Y), ("z", Z))}, "w": {0: 0.9}})
    fit = stats.block_fit(rows, "AP")
    assert fit.df == 6 and fit.residual_sd == pytest.approx(0.0156347, abs=1e-7)  # w's one value fits exactly
    # w - x = .9 - x's fitted seed-0 value, variance sigma^2 (1 + 1/n + 1/k - 1/(nk)) = 1.5 sigma^2 (n = 4, k = 3)
    assert fit.difference("w", "x")[1] == pytest.approx(0.0156347 * math.sqrt(1.5), abs=1e-6)
    tests = stats.pairwise_tests(rows, "AP").set_index(["a", "b"])
    assert tests.loc[("w", "x"), "n_pairs"] == 1 and tests.loc[("w", "x"), "different"]
    assert tests.loc[("x", "y"), "t"] == pytest.approx(9.0453, abs=1e-4)  # the x, y, z tests are unchanged


def test_unbalanced_seeds_are_adjusted_for_the_seeds():
    # exactly additive: necks .30 / .40 / .35, seed effects 0 / +.02 / -.01, fpn lacks seed 2
    effects, seed_effects = {"fpn": 0.30, "a": 0.40, "b": 0.35}, (0.0, 0.02, -0.01)
    rows = group(
        {n: {s: e + d for s, d in enumerate(seed_effects) if (n, s) != ("fpn", 2)} for n, e in effects.items()}
    )
    fit = stats.block_fit(rows, "AP")
    # fpn's plain mean (.30 + .32) / 2 = .31 rides on the lucky seed 1; adjusted: .30 + mean(0, .02, -.01) = .30333
    assert fit.adjusted_means().to_dict() == pytest.approx({"fpn": 0.303333, "a": 0.403333, "b": 0.353333}, abs=1e-6)
    assert fit.difference("a", "fpn")[0] == pytest.approx(0.10) and fit.residual_sd == pytest.approx(0.0, abs=1e-9)
    assert stats.verdict_order(rows, "AP") == ["a", "b", "fpn"]


def test_necks_on_disjoint_seeds_are_not_compared():
    rows = group({"fpn": seeds(0.30, 0.34, 0.32), "a": seeds(0.33, 0.36, 0.36), "b": {3: 0.35, 4: 0.33}})
    tests = stats.pairwise_tests(rows, "AP").set_index(["a", "b"])
    # a - fpn = [.03, .02, .04] is the paired t-test on its own: mean .03, sd .01, t = 5.196 on 2 df
    assert tests.loc[("a", "fpn"), "t"] == pytest.approx(5.19615, abs=1e-4)
    assert tests.loc[("a", "b"), "n_pairs"] == 0 and math.isnan(tests.loc[("a", "b"), "p"])
    assert not tests.loc[("a", "b"), "different"] and math.isnan(tests.loc[("a", "b"), "diff_sd"])


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


# ---------------------------------------------------------------------------------------------- power


def upper_power(delta: float, sd: float, n: int, a: float) -> float:
    """The paired t-test's power from its upper tail alone, P(T > t_{1 - a/2, n-1}) for noncentral T (the
    lower tail is below 1e-6 wherever it is used here)."""
    crit = scipy.stats.t.ppf(1 - a / 2, n - 1)
    return float(scipy.stats.nct.sf(crit, n - 1, delta * math.sqrt(n) / sd))


def test_power_without_a_difference_is_the_size():
    assert power.paired_t_power(0.0, 0.03, 5, 0.05) == pytest.approx(0.05, abs=1e-12)
    assert power.paired_t_power(0.0, 0.03, 5, 0.05, tests=78) == pytest.approx(0.05 / 78, abs=1e-12)
    assert math.isnan(power.paired_t_power(0.01, 0.03, 1, 0.05)) and power.paired_t_power(0.01, 0.0, 3, 0.05) == 1.0


def test_power_in_the_normal_limit():
    # n = 1e6: T ~ N(nc, 1) and the critical value is z_{0.975}; nc = z_{0.975} + z_{0.8} = 2.801585 gives 0.8
    n = 1_000_000
    delta = 2.801585 * 0.03 / math.sqrt(n)
    assert power.paired_t_power(delta, 0.03, n, 0.05) == pytest.approx(0.8, abs=1e-4)


def test_seeds_for_a_stated_effect():
    # effect = sd: the central-t bound n >= ((t_{0.975, n-1} + t_{0.80, n-1}) sd / effect)^2 from the printed
    # table fails at 9 ((2.306 + 0.889)^2 = 10.21) and holds at 10 ((2.262 + 0.883)^2 = 9.89); the exact power
    # agrees: below 0.8 at 9 seeds, above at 10
    assert power.seeds_for_effect(0.03, 0.03, 0.05, 1) == 10.0
    assert power.seeds_for_effect(-0.03, 0.03, 0.05, 1) == 10.0  # the sign does not matter
    assert upper_power(0.03, 0.03, 9, 0.05) < 0.8 <= upper_power(0.03, 0.03, 10, 0.05)
    # more tests, a stricter level: never fewer seeds; Bonferroni over 3 at effect = sd / 2: the normal count
    # (2.39398 + 0.841621)^2 * 4 = 41.88 is a lower bound, t quantiles add a few
    n3 = power.seeds_for_effect(0.015, 0.03, 0.05, 3)
    assert 42 <= n3 <= 46 and upper_power(0.015, 0.03, int(n3) - 1, 0.05 / 3) < 0.8 <= upper_power(
        0.015, 0.03, int(n3), 0.05 / 3
    )
    assert power.seeds_for_effect(0.0, 0.03, 0.05, 1) == math.inf
    assert power.seeds_for_effect(1e-16, 0.03, 0.05, 1) == math.inf  # rounding noise: no practical count
    assert math.isnan(power.seeds_for_effect(0.01, math.nan, 0.05, 1))
    assert power.seeds_for_effect(0.1, 0.001, 0.05, 1) == 2.0  # at least two seeds


def test_min_detectable_difference():
    # 10 seeds, sd 0.03, 5 %: the central-t approximation (t_{0.975, 9} + t_{0.80, 9}) sd / sqrt(10) =
    # (2.262 + 0.883) * 0.03 / 3.162278 = 0.029836; the exact value is close, and has power 0.8 exactly
    mdd = power.min_detectable_difference(0.03, 10, 0.05, 1)
    assert mdd == pytest.approx(0.029836, rel=5e-3)
    assert upper_power(mdd, 0.03, 10, 0.05) == pytest.approx(0.8, abs=1e-6)
    # Bonferroni over 78 pairs at 3 seeds: the level a = .05 / 78 is that of Holm's first step
    strict = power.min_detectable_difference(0.03, 3, 0.05, 78)
    assert strict > mdd and upper_power(strict, 0.03, 3, 0.05 / 78) == pytest.approx(0.8, abs=1e-6)
    # the two functions agree: the MDD of n seeds needs n seeds
    assert power.seeds_for_effect(mdd * 1.0001, 0.03, 0.05, 1) == 10.0
    assert power.seeds_for_effect(mdd * 0.999, 0.03, 0.05, 1) == 11.0
    assert math.isnan(power.min_detectable_difference(0.03, 1, 0.05, 1))
    assert power.min_detectable_difference(0.0, 3, 0.05, 1) == 0.0


# ---------------------------------------------------------------------------------------------- closest pair


# ---------------------------------------------------------------------------------------------- per-pair tests

# Three necks on seeds 0-2 (as in test_paired_differences_hand_values), each pair on its own differences:
#   a - fpn = [.03, .02, .04]: mean .03, sd .01, t = .03 / (.01 / sqrt 3) = 5.196152 (df 2),
#           p = 1 - 5.196152 / sqrt(29) = .035099, half-width 4.302653 * .01 / sqrt 3 = .024841
#   b - fpn = [.05, -.01, .05]: mean .03, sd .034641, t = 1.5, p = 1 - 1.5 / sqrt(4.25) = .272393
#   a - b = [-.02, .03, -.01]: mean 0, sd .026458, t = 0, p = 1
# Holm over the 3 pairs: .035099 * 3 = .105297, .272393 * 2 = .544786, 1; over the 2 against fpn: .070198, .272393
THREE = group({"fpn": seeds(0.30, 0.34, 0.32), "a": seeds(0.33, 0.36, 0.36), "b": seeds(0.35, 0.33, 0.37)})


def test_paired_tests_three_seeds_by_hand():
    tests = pairs.paired_tests(THREE, "AP").set_index(["a", "b"])
    assert list(tests.index) == [("a", "b"), ("a", "fpn"), ("b", "fpn")]
    af, bf, ab = tests.loc[("a", "fpn")], tests.loc[("b", "fpn")], tests.loc[("a", "b")]
    assert (af["n_pairs"], af["diff_mean"], af["diff_sd"]) == (3, pytest.approx(0.03), pytest.approx(0.01))
    assert af["t"] == pytest.approx(5.196152, abs=1e-5) and af["p"] == pytest.approx(0.035099, abs=1e-6)
    assert af["diff_ci"] == pytest.approx(0.024841, abs=1e-6)
    assert bf["diff_sd"] == pytest.approx(0.034641, abs=1e-6) and bf["t"] == pytest.approx(1.5)
    assert bf["p"] == pytest.approx(0.272393, abs=1e-6)
    assert ab["t"] == pytest.approx(0.0, abs=1e-9) and ab["p"] == pytest.approx(1.0)
    assert tests["p_adj"].tolist() == pytest.approx([1.0, 0.105297, 0.544786], abs=1e-6)
    assert not tests["different"].any()
    # each neck against fpn: 2 tests, a lighter correction; resolved at alpha 0.1 (.070198 < .1)
    vs = pairs.paired_tests(THREE, "AP", pairs.against("fpn", ["a", "b", "fpn"]), alpha=0.1)
    assert list(zip(vs["a"], vs["b"])) == [("a", "fpn"), ("b", "fpn")]
    assert vs["p_adj"].tolist() == pytest.approx([0.070198, 0.272393], abs=1e-6)
    assert vs["different"].tolist() == [True, False]


def test_paired_tests_four_seeds_match_closed_forms():
    # x - y: t 24.4949 (df 3); x - z = [.03, -.01, .02, -.02]: mean .005, sd .023805, t .42008;
    # y - z = -(z - y) = -[.07, .12, .07, .12]: mean -.095, sd .028868, t -6.5818
    tests = pairs.paired_tests(XYZ, "AP").set_index(["a", "b"])
    for pair, t in ((("x", "y"), 24.4949), (("x", "z"), 0.42008), (("y", "z"), -6.5818)):
        assert tests.loc[pair, "t"] == pytest.approx(t, abs=1e-4)
        assert tests.loc[pair, "p"] == pytest.approx(p_df3(t), rel=1e-4)
    assert tests["different"].tolist() == [True, False, True]


def test_paired_tests_need_two_shared_seeds():
    rows = group({**{n: seeds(*v) for n, v in (("x", X), ("y", Y))}, "c": {7: 0.4}, "d": {0: 0.45}})
    tests = pairs.paired_tests(rows, "AP").set_index(["a", "b"])
    assert tests.loc[("c", "x"), "n_pairs"] == 0 and math.isnan(tests.loc[("c", "x"), "diff_mean"])
    one = tests.loc[("d", "x")]  # one shared seed: its difference, nothing else
    assert one["n_pairs"] == 1 and one["diff_mean"] == pytest.approx(0.45 - 0.50)
    assert all(math.isnan(one[c]) for c in ("diff_sd", "t", "p", "diff_ci", "p_adj")) and not one["different"]
    # the untestable pairs are not counted: x - y alone, unadjusted
    assert tests.loc[("x", "y"), "p_adj"] == pytest.approx(tests.loc[("x", "y"), "p"])


def test_paired_tests_without_spread():
    # p - q = .25 on every seed (exact in binary): t = inf, p = 0; p - r = 0 on every seed: t = 0, p = 1
    rows = group({"p": seeds(0.5, 0.75, 0.25), "q": seeds(0.25, 0.5, 0.0), "r": seeds(0.5, 0.75, 0.25)})
    tests = pairs.paired_tests(rows, "AP").set_index(["a", "b"])
    assert tests.loc[("p", "q"), "t"] == math.inf and tests.loc[("p", "q"), "p"] == 0.0
    assert tests.loc[("p", "r"), "t"] == 0.0 and tests.loc[("p", "r"), "p"] == 1.0
    assert tests.loc[("p", "q"), "diff_ci"] == 0.0 and tests.loc[("p", "q"), "different"]
    equiv = pairs.equivalence_tests(rows, "AP").set_index(["a", "b"])
    assert equiv.loc[("p", "r"), "equivalent"] and equiv.loc[("p", "r"), "p_tost"] == 0.0
    assert not equiv.loc[("p", "q"), "equivalent"] and equiv.loc[("p", "q"), "p_tost"] == 1.0


def test_families():
    assert pairs.all_pairs(["c", "a", "b", "a"]) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert pairs.against("b", ["c", "a", "b"]) == [("a", "b"), ("c", "b")]
    with pytest.raises(ValueError, match="without runs"):
        pairs.paired_tests(XYZ, "AP", [("x", "fpn")])
    with pytest.raises(ValueError, match="itself"):
        pairs.paired_tests(XYZ, "AP", [("x", "x")])


def test_paired_letters():
    assert pairs.paired_letters(XYZ, "AP") == {"x": "a", "z": "a", "y": "b"}
    assert set(pairs.paired_letters(THREE, "AP").values()) == {"a"}  # nothing resolved at 3 seeds


def test_adjust_p():
    # Benjamini-Hochberg: sorted .01, .03, .04 -> .01 * 3 / 1 = .03, .03 * 3 / 2 = .045, .04 * 3 / 3 = .04,
    # then the running minimum from the top: .03, .04, .04 (back in input order: .03, .04, .04)
    assert stats.adjust_p([0.01, 0.04, 0.03], "bh") == pytest.approx([0.03, 0.04, 0.04])
    # Benjamini-Yekutieli: times 1 + 1/2 + 1/3 = 1.833333
    assert stats.adjust_p([0.01, 0.04, 0.03], "by") == pytest.approx([0.055, 0.073333, 0.073333], abs=1e-6)
    bh = stats.adjust_p([0.01, math.nan, 0.04], "bh")  # m = 2: .02, .04
    assert bh[0] == pytest.approx(0.02) and math.isnan(bh[1]) and bh[2] == pytest.approx(0.04)
    assert stats.adjust_p([0.01, 0.04, 0.03]) == stats.holm([0.01, 0.04, 0.03])
    with pytest.raises(ValueError, match="unknown"):
        stats.adjust_p([0.01], "fdr")


# ---------------------------------------------------------------------------------------------- equivalence


def test_equivalence_tost_by_hand():
    # u - v = [.005, -.005, .010, 0]: mean .0025, SS 1.25e-4, sd .0064550, se .0032275 (df 3). Margin .02:
    #   lower: t = (.0025 + .02) / .0032275 = 6.97137, one-sided p = p_df3(6.97137) / 2
    #   upper: t = (.0025 - .02) / .0032275 = -5.42218, one-sided p = p_df3(5.42218) / 2 (the larger: p_tost)
    #   90 % interval: .0025 -+ t_{0.95, 3} 2.353 * .0032275 = [-.005095, .010095], inside +-.02
    u = (0.40, 0.42, 0.38, 0.41)
    v = tuple(x - d for x, d in zip(u, (0.005, -0.005, 0.010, 0.0)))
    row = pairs.equivalence_tests(group({"u": seeds(*u), "v": seeds(*v)}), "AP").iloc[0]
    assert (row["a"], row["b"], row["n_pairs"]) == ("u", "v", 4)
    assert row["diff_mean"] == pytest.approx(0.0025) and row["diff_sd"] == pytest.approx(0.0064550, abs=1e-7)
    assert row["p_lower"] == pytest.approx(p_df3(6.97137) / 2, rel=1e-4)
    assert row["p_upper"] == pytest.approx(p_df3(5.42218) / 2, rel=1e-4)
    assert row["p_tost"] == row["p_upper"] == row["p_adj"] and row["p_tost"] < 0.05 and row["equivalent"]
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(-0.005095, abs=1e-5), pytest.approx(0.010095, abs=1e-5))
    # a margin the interval crosses (.01 < .010095) is not shown
    assert not pairs.equivalence_tests(group({"u": seeds(*u), "v": seeds(*v)}), "AP", margin=0.01)["equivalent"][0]
    with pytest.raises(ValueError, match="positive"):
        pairs.equivalence_tests(XYZ, "AP", margin=0.0)


def test_tied_is_not_equal():
    # x and z are not different (paired p .70) yet not shown equivalent within .02: x - z has mean .005 and
    # se .023805 / 2 = .011902, upper t = (.005 - .02) / .011902 = -1.26025, p = p_df3(1.26025) / 2 = .148
    tests = pairs.paired_tests(XYZ, "AP").set_index(["a", "b"])
    equiv = pairs.equivalence_tests(XYZ, "AP").set_index(["a", "b"])
    assert not tests.loc[("x", "z"), "different"] and not equiv.loc[("x", "z"), "equivalent"]
    assert equiv.loc[("x", "z"), "p_tost"] == pytest.approx(p_df3(1.26025) / 2, rel=1e-4)
    assert not equiv["equivalent"].any()


# ---------------------------------------------------------------------------------------------- typical sd


def test_typical_diff_sd():
    # the pairs' own sums of squares .0002 (x - y), .0017 (x - z), .0025 (y - z) on 3 df: variances .0000667,
    # .0005667, .0008333; mean .00048889 -> .0221108, the block model's diff_sd (complete board, every pair)
    every = pairs.typical_diff_sd(XYZ, "AP")
    assert every.typical == pytest.approx(0.0221108, abs=1e-7) and every.pooled == pytest.approx(0.0221108, abs=1e-7)
    assert every.pairs == 3
    # against x only: (.0000667 + .0005667) / 2 -> sqrt .00031667 = .0177951; the pooled sd is the group's
    vs_x = pairs.typical_diff_sd(XYZ, "AP", pairs.against("x", "xyz"))
    assert vs_x.typical == pytest.approx(0.0177951, abs=1e-7) and vs_x.pairs == 2
    assert vs_x.pooled == pytest.approx(0.0221108, abs=1e-7)
    lonely = pairs.typical_diff_sd(group({"p": {0: 0.3}, "q": {1: 0.4}}), "AP")
    assert math.isnan(lonely.typical) and lonely.pairs == 0


# ---------------------------------------------------------------------------------------------- two tiers


def test_tier_agreement_tau_and_flips():
    # the second tier: y moves up next to x (x - y2 = [.01, -.02, .03, -.01], mean .0025). Means by neck
    # (x, y, z): first .5025, .4025, .4975; second .5025, .5000, .4975 -> y-z discordant, the other two
    # concordant: tau = (2 - 1) / 3. Verdicts: x > y and z > y resolved in the first tier (see
    # test_paired_tests_four_seeds_match_closed_forms), both unresolved in the second (y2 - z = [.02, .01,
    # -.01, -.01]); x ~ z in both
    y2 = tuple(x - d for x, d in zip(X, (0.01, -0.02, 0.03, -0.01)))
    second = group({"x": seeds(*X), "y": seeds(*y2), "z": seeds(*Z), "only_here": seeds(0.1, 0.1)})
    agreement = pairs.tier_agreement(XYZ, second, "AP", n_boot=200)
    assert agreement.tau == pytest.approx(1 / 3) and agreement.necks == ("x", "z", "y")
    assert -1.0 <= agreement.low <= agreement.high <= 1.0 and agreement.n_boot == 200
    flips = agreement.flips
    assert list(zip(flips["a"], flips["b"], flips["first"], flips["second"])) == [
        ("x", "y", "a>b", "unresolved"),
        ("y", "z", "b>a", "unresolved"),
    ]
    assert len(agreement.pairs) == 3 and agreement.pairs["second_diff"].tolist() == pytest.approx(
        [0.0025, 0.005, 0.0025]
    )
    reversed_tier = group({"x": seeds(0.1, 0.1), "y": seeds(0.3, 0.3), "z": seeds(0.2, 0.2)})
    assert pairs.tier_agreement(XYZ, reversed_tier, "AP", n_boot=50).tau == pytest.approx(-1.0)


def test_tier_agreement_resamples_shared_seeds_together():
    # within a tier the seeds disagree on the order (the neck ranking of a seed half is unstable), but the
    # second tier is the first plus one constant per seed: every neck of a seed moves alike, so any shared
    # resample ranks the necks identically in both tiers and every bootstrap tau is 1. Drawing the two tiers'
    # seeds independently would not. Values in 1/1024ths, so that sums are exact and ties stay ties.
    ticks = {
        "p": (512, 410, 461, 481, 420),
        "q": (430, 502, 451, 410, 492),
        "r": (461, 440, 512, 471, 399),
        "s": (410, 461, 420, 502, 451),
    }
    first = group({n: seeds(*(v / 1024 for v in t)) for n, t in ticks.items()})
    assert stats.rank_stability(first, "AP") < 0.5
    shift = (100 / 1024, -50 / 1024, 200 / 1024, 0.0, 30 / 1024)
    second = first.assign(AP=first["AP"] + first["seed"].map(dict(enumerate(shift))))
    agreement = pairs.tier_agreement(first, second, "AP", n_boot=300, seed=1)
    assert agreement.tau == pytest.approx(1.0)
    assert agreement.low == pytest.approx(1.0) and agreement.high == pytest.approx(1.0)
    # a seed in one tier only is drawn within that tier: the taus now vary
    extra = pd.concat([second, group({"p": {9: 0.25}, "q": {9: 0.875}, "r": {9: 0.25}, "s": {9: 0.25}})])
    wide = pairs.tier_agreement(first, extra, "AP", n_boot=300, seed=1)
    assert wide.low < 1.0 and wide.n_boot == 300
    assert pairs.tier_agreement(first, extra, "AP", n_boot=300, seed=1).low == wide.low  # reproducible


# ---------------------------------------------------------------------------------------------- unequal noise

#: Fixed "noise" of 8 necks x 6 seeds (integers, in units of the noise sd below).
NOISE = (
    (3, -3, 3, -1, 0, 2),
    (0, 3, -3, 0, 3, -3),
    (-3, -3, -2, -1, 1, 2),
    (3, 1, -3, 1, 2, -3),
    (0, 2, 3, 1, -1, -3),
    (-3, 2, 0, -1, 2, -3),
    (3, -2, 1, 0, 0, 1),
    (0, 0, 0, -1, 1, -1),
)


def noisy_board(inflate: float) -> pd.DataFrame:
    """8 necks x 6 seeds: neck i has mean .40 + .008 i, seed effects shared by all necks, noise .003 x NOISE;
    neck n4's noise times ``inflate``."""
    seed_effect = (0.0, 0.02, -0.01, 0.015, -0.02, 0.005)
    return group(
        {
            f"n{i}": {
                s: 0.40 + 0.008 * i + seed_effect[s] + 0.003 * (inflate if i == 4 else 1.0) * NOISE[i][s]
                for s in range(6)
            }
            for i in range(8)
        }
    )


def shares_letter(letters: dict[str, str], a: str, b: str) -> bool:
    return bool(set(letters[a]) & set(letters[b]))


def test_one_noisy_neck_moves_the_pooled_letters_not_the_per_pair_verdicts():
    calm, noisy = noisy_board(1.0), noisy_board(6.0)
    others = [(a, b) for a, b in pairs.all_pairs(calm["neck"]) if "n4" not in (a, b)]  # 21 pairs without n4

    # the pooled block model: n4's noise enters every pair's sd, so pairs without n4 lose their verdicts
    pooled = [
        {p: d for p, d in zip(zip(t["a"], t["b"]), t["different"])}
        for t in map(stats.pairwise_tests, (calm, noisy), ("AP", "AP"))
    ]
    lost = [p for p in others if pooled[0][p] and not pooled[1][p]]
    assert len(lost) >= 5 and not any(pooled[1][p] and not pooled[0][p] for p in others)
    letters = [stats.tie_letters(rows, "AP") for rows in (calm, noisy)]
    assert any(not shares_letter(letters[0], a, b) and shares_letter(letters[1], a, b) for a, b in lost)

    # per pair: the pairs without n4 have the same data, p-values and verdicts; some are resolved, some not
    per_pair = [pairs.paired_tests(rows, "AP").set_index(["a", "b"]).loc[others] for rows in (calm, noisy)]
    assert per_pair[0]["p"].tolist() == per_pair[1]["p"].tolist()
    assert per_pair[0]["different"].tolist() == per_pair[1]["different"].tolist()
    assert 5 <= int(per_pair[0]["different"].sum()) <= 16
    paired = [pairs.paired_letters(rows, "AP") for rows in (calm, noisy)]
    assert [shares_letter(paired[0], a, b) for a, b in others] == [shares_letter(paired[1], a, b) for a, b in others]


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
