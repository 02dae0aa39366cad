"""What the board shows of its statistics, on a small fixed set of hand-built records (hand-computed values).

Three necks, phi 0 with seeds 0-2 and phi 1 with seeds 0-1 (AP per seed):

    phi 0   fpn .30 .31 .35   bifpn .40 .42 .44   panet .31 .32 .37   (gflops 1.0 / 1.5 / 2.0)
    phi 1   fpn .40 .44       bifpn .45 .43       panet .41 .42       (gflops 2.0 / 3.0 / 4.0)

phi 0: bifpn - fpn = [.10 .11 .09] (mean .10, sum of squared deviations SS .0002), panet - fpn = [.01 .01 .02]
(mean .01333, SS .00006667), bifpn - panet = [.09 .10 .07] (mean .08667, SS .00046667). Block model: residual
SS .00073333 / 3 on (3 - 1)(3 - 1) = 4 df -> mean square .000061111; one difference's sd .011055, of a mean over
3 seeds .0063828: t = 15.667, 2.0889, 13.578 (p 9.7e-5, .105, 1.7e-4). Holm: 2.9e-4, 3.4e-4, .105 -> bifpn
apart, panet ~ fpn: pooled letters a / b / b. Each pair on its own differences (2 df; for df 2 the two-sided
p is 1 - t / sqrt(t^2 + 2)): bifpn - fpn sd .01, t 17.321, p .0033167; panet - fpn sd .0057735, t 4, p .057191;
bifpn - panet sd .015275, t 9.8270, p .010204. Holm: .00995, .020408, .057191 -> letters a / b / b too, 2 of 3
pairs resolved. The RMS of the three pair sds is .011055, the pooled one (a complete board). Every seed orders
bifpn > panet > fpn: rank stability 1.
phi 1: means bifpn .44, fpn .42, panet .415; bifpn - fpn = [.05 -.01] (SS .0018), panet - fpn = [.01 -.02]
(SS .00045), bifpn - panet = [.04 .01] (SS .00045): residual SS .0027 / 3 = .0009 on 2 df, mean square
.00045, one difference's sd .03: nothing resolved with 2 seeds (letters all a). Seed 0 orders
bifpn > panet > fpn, seed 1 fpn > bifpn > panet: tau = (1 - 2) / 3 = -1/3.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
import pytest

from archbench.board import power
from archbench.board.compose import compose
from archbench.board.formats import render
from archbench.board.verdicts import schedule_agreement, settled_schedule
from archbench.errors import UserError
from archbench.runs.records import RunRecord

from helpers import run_cli

AP: dict[tuple[str, int], tuple[float, ...]] = {
    ("fpn", 0): (0.30, 0.31, 0.35),
    ("bifpn", 0): (0.40, 0.42, 0.44),
    ("panet", 0): (0.31, 0.32, 0.37),
    ("fpn", 1): (0.40, 0.44),
    ("bifpn", 1): (0.45, 0.43),
    ("panet", 1): (0.41, 0.42),
}
GFLOPS = {("fpn", 0): 1.0, ("bifpn", 0): 1.5, ("panet", 0): 2.0, ("fpn", 1): 2.0, ("bifpn", 1): 3.0, ("panet", 1): 4.0}
T975 = {1: 12.706, 2: 4.303}  # Student t quantiles from the printed table

#: One comparison group's keys, without its schedule (the schedule tests vary it)
ONE_GROUP = {
    "task": "det",
    "dataset": "synthetic",
    "preset": "proxy",
    "terms": "efficientdet",
    "device": "cpu",
    "amp": "off",
}


def record(neck: str, phi: int, seed: int, ap: float, preset: str = "proxy") -> dict[str, Any]:
    """A run record with the fields the board reads."""
    return {
        "status": "ok",
        "task": "det",
        "neck": neck,
        "phi": phi,
        "seed": seed,
        "preset": preset,
        "dataset": {"name": "synthetic"},
        "metrics": {"AP": ap, "AP50": ap + 0.2},
        "costs": {"params_total": 1e6, "gflops": GFLOPS[neck, phi], "latency_ms": 1.0},
        "timing": {"images_per_s": 10.0},
        "spec_hash": f"spec-{neck}",
        "config_hash": f"{neck}{phi}{seed}{preset}".ljust(16, "0")[:16],
    }


def records() -> list[dict[str, Any]]:
    return [record(neck, phi, seed, ap) for (neck, phi), aps in AP.items() for seed, ap in enumerate(aps)]


def half(values: list[float] | tuple[float, ...]) -> float:
    """The 95 % half-width over seeds by hand: t_{0.975, n-1} * sd / sqrt(n)."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return T975[n - 1] * sd / math.sqrt(n)


@pytest.fixture(scope="module")
def board():
    return compose(records(), setup=False)


def at(df: pd.DataFrame, **keys: Any) -> pd.Series:
    sel = df
    for k, v in keys.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, keys
    return sel.iloc[0]


def test_means_and_intervals(board):
    for (neck, phi), aps in AP.items():
        row = at(board.table, neck=neck, phi=phi)
        assert row["score"] == pytest.approx(sum(aps) / len(aps))
        assert row["score_ci95"] == pytest.approx(half(aps), rel=1e-4)


def test_paired_differences_from_the_reference(board):
    assert board.reference == "fpn"
    bifpn = at(board.table, neck="bifpn", phi=0)
    assert bifpn["diff_mean"] == pytest.approx(0.10) and bifpn["n_pairs"] == 3
    # the pair's own interval: t_{.975, 2} * sd of its differences / sqrt(3)
    assert bifpn["diff_ci95"] == pytest.approx(4.302653 * 0.01 / math.sqrt(3), rel=1e-4)
    panet = at(board.table, neck="panet", phi=1)
    assert panet["diff_mean"] == pytest.approx(-0.005)
    assert panet["diff_ci95"] == pytest.approx(12.706205 * 0.0212132 / math.sqrt(2), rel=1e-4)  # t_{.975, 1}
    fpn = at(board.table, neck="fpn", phi=0)
    assert fpn["diff_mean"] == 0 and fpn["diff_note"] == "reference"
    other = compose(records(), reference="bifpn", setup=False)
    assert at(other.table, neck="fpn", phi=0)["diff_mean"] == pytest.approx(-0.10)


def test_an_unknown_reference_is_a_user_error():
    with pytest.raises(UserError, match=r"--reference 'nope'.*bifpn, fpn, panet"):
        compose(records(), reference="nope")
    # the default reference missing from a board only leaves the differences empty
    without = compose([r for r in records() if r["neck"] != "fpn"], setup=False)
    assert without.table["diff_mean"].isna().all() and "no 'fpn' runs" in without.table["diff_note"].iloc[0]


def test_tie_letters_and_per_phi_ranks(board):
    letters = {(n, p): at(board.table, neck=n, phi=p)["letters"] for n, p in AP}
    assert letters == {
        ("bifpn", 0): "a",
        ("panet", 0): "b",
        ("fpn", 0): "b",
        ("fpn", 1): "a",
        ("bifpn", 1): "a",
        ("panet", 1): "a",
    }
    ranks = {(n, p): int(at(board.table, neck=n, phi=p)["phi_rank"]) for n, p in AP}
    assert ranks == {("bifpn", 0): 1, ("panet", 0): 2, ("fpn", 0): 3, ("bifpn", 1): 1, ("fpn", 1): 2, ("panet", 1): 3}


def test_group_verdicts_resolved_pairs_power_and_stability(board):
    phi0, phi1 = at(board.groups, phi=0), at(board.groups, phi=1)
    assert phi0["rank_tau"] == pytest.approx(1.0) and phi1["rank_tau"] == pytest.approx(-1 / 3)
    assert (phi0["tests"], phi0["resolved"], phi0["resolved_pooled"]) == (3, 2, 2)
    assert (phi1["tests"], phi1["resolved"], phi1["resolved_pooled"]) == (3, 0, 0)
    assert phi0["diff_sd"] == pytest.approx(0.011055, rel=1e-4) == phi0["pooled_sd"]
    # the power statements use the typical sd, the group's seeds and Bonferroni over the 3 pairs
    assert phi0["mdd"] == pytest.approx(power.min_detectable_difference(phi0["diff_sd"], 3, 0.05, 3))
    assert phi0["mdd_vs_reference"] == pytest.approx(  # 2 tests (bifpn and panet against fpn), their own sds
        power.min_detectable_difference(math.sqrt((0.01**2 + 0.0057735**2) / 2), 3, 0.05, 2), rel=1e-4
    )
    assert phi0["seeds_for_large"] == power.seeds_for_effect(0.04, phi0["diff_sd"], 0.05, 3)
    assert phi1["mdd"] == pytest.approx(power.min_detectable_difference(phi1["diff_sd"], 2, 0.05, 3))
    assert phi0["equivalent"] == 0 and phi0["equivalent_pairs"] == ""
    assert phi0["n_seeds"] == 3 and phi1["n_seeds"] == 2 and phi0["n_necks"] == 3


def test_an_extra_seed_of_one_neck_does_not_raise_the_seeds_the_power_statement_uses():
    # fpn gets a fourth seed at phi 0; the other two necks, and so two of the three pairs, keep three
    board = compose([*records(), record("fpn", 0, 3, 0.33)], setup=False)
    phi0 = at(board.groups, phi=0)
    assert phi0["n_seeds"] == 4 and phi0["pair_seeds"] == 3
    assert phi0["mdd"] == pytest.approx(power.min_detectable_difference(phi0["diff_sd"], 3, 0.05, 3))
    assert "with 3 seeds shared (a typical pair's)" in render(board, "md")


def test_pooled_letters_are_kept_beside_the_per_pair_ones(board):
    assert at(board.table, neck="bifpn", phi=0)["pooled_letters"] == "a"
    assert at(board.table, neck="fpn", phi=0)["pooled_letters"] == "b"


def test_equal_gflops_from_per_seed_curves_in_log_cost(board):
    at_budget = board.costs[board.costs["axis"] == "gflops"]
    # the only budget inside every neck's range is 2.0 GFLOPs
    assert sorted(at_budget["budget"].unique()) == [2.0]
    fpn, bifpn, panet = (at(at_budget, neck=n) for n in ("fpn", "bifpn", "panet"))
    # fpn's phi 1 point; seed 2 has no phi 1 run, so its curve does not reach 2.0 and is left out
    assert fpn["value"] == pytest.approx(0.42) and fpn["n_seeds"] == 2
    assert fpn["ci95"] == pytest.approx(half(AP["fpn", 1]), rel=1e-4)
    # bifpn ln(2 / 1.5) / ln(3 / 1.5) = .41504 of the way from phi 0 to phi 1: seeds 0 and 1 give .42075, .42415
    w = math.log(2 / 1.5) / math.log(2)
    per_seed = [0.40 + w * 0.05, 0.42 + w * 0.01]
    assert bifpn["value"] == pytest.approx(sum(per_seed) / 2) and bifpn["n_seeds"] == 2
    assert bifpn["ci95"] == pytest.approx(half(per_seed), rel=1e-4)
    assert panet["n_seeds"] == 3 and panet["ci95"] == pytest.approx(half(AP["panet", 0]), rel=1e-4)


def test_transfer_against_the_published_rankings(board):
    table5_0 = at(board.transfer, phi=0, comparison="EfficientDet Table 5")
    assert table5_0["board_order"] == "bifpn > panet > fpn" == table5_0["published_order"]
    assert table5_0["kendall_tau"] == pytest.approx(1.0) and table5_0["same_direction"] == 1.0
    assert (table5_0["n_pairs"], table5_0["resolved"], table5_0["resolved_agree"]) == (3, 2, 2)
    table5_1 = at(board.transfer, phi=1, comparison="EfficientDet Table 5")
    assert table5_1["board_order"] == "bifpn > fpn > panet" and table5_1["kendall_tau"] == pytest.approx(1 / 3)
    assert table5_1["same_direction"] == pytest.approx(2 / 3) and table5_1["resolved"] == 0
    panet_1 = at(board.transfer, phi=1, comparison="PANet vs FPN")
    assert panet_1["kendall_tau"] == pytest.approx(-1.0) and panet_1["same_direction"] == 0.0
    assert "NAS-FPN vs FPN" not in set(board.transfer["comparison"])  # no nasfpn on this board
    assert {"bifpn", "panet", "fpn"} <= set(board.published["board_necks"].str.split(" or ").explode())


def test_transfer_counts_the_pairs_the_letters_resolve():
    """The transfer's "resolved" are the board's per-pair verdicts, not the pooled model's. A noisy panet
    (.20 .50 .35) inflates the pooled residual (SS .029045 on 4 df: bifpn - fpn t = 1.49, unresolved), while
    bifpn - fpn = [.10 .11 .10] is steady on its own (t = 31.0 on 2 df, p .00104, Holm x3 .0031: resolved)."""
    aps = {"fpn": (0.30, 0.30, 0.30), "bifpn": (0.40, 0.41, 0.40), "panet": (0.20, 0.50, 0.35)}
    rows = [record(neck, 0, seed, ap) for neck, values in aps.items() for seed, ap in enumerate(values)]
    noisy = compose(rows, setup=False)
    assert at(noisy.groups, phi=0)[["resolved", "resolved_pooled"]].tolist() == [1, 0]
    table5 = at(noisy.transfer, phi=0, comparison="EfficientDet Table 5")
    assert table5["board_order"] == "bifpn > panet > fpn"
    assert (table5["resolved"], table5["resolved_agree"]) == (1, 1)
    assert at(noisy.transfer, phi=0, comparison="PANet vs FPN")["resolved"] == 0


def test_every_format_carries_the_statistics(board, tmp_path):
    md = render(board, "md")
    assert "| 1 | bifpn | a | a | 3 | 0.420 ± 0.050 | +0.100 ± 0.025 |" in md
    assert "| bifpn | 0.420 ± 0.050 a | 0.440 ± 0.127 a |" in md  # neck x phi
    assert (
        "Kendall tau -0.33 between the rankings" in md
        and "Resolved: 2 of 3 pairs by their own paired tests (Holm), 2 by the pooled" in md
    )
    assert "EfficientDet Table 5: Kendall tau +1.00 / +0.33 at phi 0 / 1" in md and "## Published comparisons" in md
    assert "### AP at equal GFLOPs" in md and "### AP at equal parameters" in md  # equal-cost sections
    for fmt in ("table", "html"):
        text = render(board, fmt)
        assert "0.420 ± 0.050" in text and "Kendall tau -0.33" in text and "Published comparisons" in text
    doc = json.loads(render(board, "json"))
    assert len(doc["groups"]) == 2 and len(doc["transfer"]) == 4 and doc["equal_cost"][0]["ci95"] is not None
    render(board, "csv", path=tmp_path / "b.csv")
    assert set(pd.read_csv(tmp_path / "b.transfer.csv")["comparison"]) == {"EfficientDet Table 5", "PANet vs FPN"}
    assert "letters" in pd.read_csv(tmp_path / "b.csv").columns


def test_groups_stay_apart():
    extra = [record(n, 0, s, ap, preset="other") for (n, p), aps in AP.items() if p == 0 for s, ap in enumerate(aps)]
    board = compose(records() + extra, setup=False)
    assert len(board.groups) == 3 and set(board.groups["preset"]) == {"proxy", "other"}
    md = render(board, "md")
    assert md.count("## task det · dataset synthetic · preset other") == 1


def test_cli_reference(tmp_path):
    for rec in records():
        RunRecord.from_dict(rec).save(tmp_path)
    res = run_cli("leaderboard", "--results", str(tmp_path), "--format", "json", "--reference", "bifpn")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["reference"] == "bifpn"
    bad = run_cli("leaderboard", "--results", str(tmp_path), "--reference", "nope")
    assert bad.returncode == 2 and "--reference 'nope'" in bad.stderr


def test_schedule_agreement_compares_two_schedules_of_the_same_necks():
    # 8 epochs order a > b > c (means .30 .25 .20); 16 epochs a > c > b (.50 .40 .45): pairs (a, b) and (a, c)
    # keep their order, (b, c) reverses -> tau-b (2 - 1) / 3 = 1/3; one pair reversed
    values = {8: {"a": (0.30, 0.30), "b": (0.25, 0.25), "c": (0.20, 0.20)}}
    values[16] = {"a": (0.50, 0.50), "b": (0.40, 0.40), "c": (0.45, 0.45)}
    keys = {**ONE_GROUP, "phi": 0}
    rows = pd.DataFrame(
        [
            {**keys, "epochs": e, "neck": n, "seed": s, "AP": v}
            for e, necks in values.items()
            for n, vs in necks.items()
            for s, v in enumerate(vs)
        ]
    )
    (row,) = schedule_agreement(rows, n_boot=50).to_dict("records")
    assert (row["short"], row["long"], row["n_necks"], row["reversed"]) == (8, 16, 3, 1)
    assert row["tau"] == pytest.approx(1 / 3) and row["long_rank_tau"] == pytest.approx(1.0)  # seeds agree
    assert row["tau_low"] <= row["tau"] <= row["tau_high"]


def test_a_schedule_settles_when_it_agrees_with_every_longer_one_within_that_ones_seed_noise():
    # seeds agree at every schedule (seed-split tau +1). 8 epochs: a > b > c; 16 and 32: a > c > b. 8 -> 16 and
    # 8 -> 32 reverse (b, c): tau 1/3 < 1, not within noise; 16 -> 32 keep every pair: 16 settles, 8 does not
    order = {8: ("a", "b", "c"), 16: ("a", "c", "b"), 32: ("a", "c", "b")}
    keys = {**ONE_GROUP, "phi": 0}
    rows = pd.DataFrame(
        [
            {**keys, "epochs": e, "neck": n, "seed": s, "AP": 0.01 * e * (3 - rank) + 0.001 * s}
            for e, necks in order.items()
            for rank, n in enumerate(necks)
            for s in range(2)
        ]
    )
    schedules = schedule_agreement(rows, n_boot=50)
    within = {(r.short, r.long): r.within_noise for r in schedules.itertuples()}
    assert within == {(8, 16): False, (8, 32): False, (16, 32): True}
    (settled,) = settled_schedule(schedules).to_dict("records")
    assert (settled["settled"], settled["longest"]) == (16, 32)
    unsettled = settled_schedule(schedules[schedules["short"] == 8]).iloc[0]
    assert unsettled["settled"] is None or pd.isna(unsettled["settled"])


def test_the_board_pools_several_results_folders_and_counts_a_configuration_once(tmp_path):
    everything = records()
    for i, rec in enumerate(everything):  # split the records over two folders, one of them also in both
        RunRecord.from_dict(rec).save(tmp_path / ("a" if i % 2 else "b"))
    RunRecord.from_dict(everything[0]).save(tmp_path / "a")
    pooled = run_cli(
        "leaderboard", "--results", str(tmp_path / "a"), "--results", str(tmp_path / "b"), "--format", "json"
    )
    alone = run_cli("leaderboard", "--results", str(tmp_path / "b"), "--format", "json")
    every = tmp_path / "all"
    for rec in everything:
        RunRecord.from_dict(rec).save(every)
    whole = run_cli("leaderboard", "--results", str(every), "--format", "json")
    assert pooled.returncode == alone.returncode == whole.returncode == 0, pooled.stderr
    assert json.loads(pooled.stdout)["groups"] == json.loads(whole.stdout)["groups"]  # the duplicate counted once
    assert json.loads(alone.stdout)["groups"] != json.loads(whole.stdout)["groups"]
    empty = run_cli("leaderboard", "--results", str(every), "--results", str(tmp_path / "none"))
    assert empty.returncode == 2 and "none" in empty.stderr
