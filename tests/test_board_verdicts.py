"""What the board shows of its statistics, on a small fixed set of hand-built records (hand-computed values).

Three necks, phi 0 with seeds 0-2 and phi 1 with seeds 0-1 (AP per seed):

    phi 0   fpn .30 .31 .35   bifpn .40 .42 .44   panet .31 .32 .37   (gflops 1.0 / 1.5 / 2.0)
    phi 1   fpn .40 .44       bifpn .45 .43       panet .41 .42       (gflops 2.0 / 3.0 / 4.0)

phi 0: bifpn - fpn = [.10 .11 .09] (mean .10, sum of squared deviations SS .0002), panet - fpn = [.01 .01 .02]
(mean .01333, SS .00006667), bifpn - panet = [.09 .10 .07] (mean .08667, SS .00046667). Block model: residual
SS .00073333 / 3 on (3 - 1)(3 - 1) = 4 df -> mean square .000061111; one difference's sd .011055, of a mean over
3 seeds .0063828: t = 15.667, 2.0889, 13.578 (p 9.7e-5, .105, 1.7e-4). Holm: 2.9e-4, 3.4e-4, .105 -> bifpn
apart, panet ~ fpn: letters a / b / b. Every seed orders bifpn > panet > fpn: rank stability 1.
phi 1: means bifpn .44, fpn .42, panet .415; bifpn - fpn = [.05 -.01] (SS .0018), panet - fpn = [.01 -.02]
(SS .00045), bifpn - panet = [.04 .01] (SS .00045): residual SS .0027 / 3 = .0009 on 2 df, mean square
.00045, one difference's sd .03: nothing resolved with 2 seeds (letters all a). Seed 0 orders
bifpn > panet > fpn, seed 1 fpn > bifpn > panet: tau = (1 - 2) / 3 = -1/3. Closest unresolved pair: fpn vs panet, +.005.
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
    assert bifpn["diff_ci95"] == pytest.approx(2.776445 * 0.011055 / math.sqrt(3), rel=1e-4)  # t_{.975, 4}
    panet = at(board.table, neck="panet", phi=1)
    assert panet["diff_mean"] == pytest.approx(-0.005)
    assert panet["diff_ci95"] == pytest.approx(4.302653 * 0.03 / math.sqrt(2), rel=1e-4)  # t_{.975, 2}
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


def test_rank_stability_and_closest_unresolved_pair(board):
    phi0, phi1 = at(board.groups, phi=0), at(board.groups, phi=1)
    assert phi0["rank_tau"] == pytest.approx(1.0) and phi1["rank_tau"] == pytest.approx(-1 / 3)
    assert (phi0["pair_a"], phi0["pair_b"]) == ("panet", "fpn")
    assert phi0["pair_diff"] == pytest.approx(0.04 / 3) and phi0["pair_sd"] == pytest.approx(0.011055, rel=1e-4)
    assert (phi1["pair_a"], phi1["pair_b"], phi1["pair_n"]) == ("fpn", "panet", 2)
    assert phi1["pair_diff"] == pytest.approx(0.005) and phi1["pair_sd"] == pytest.approx(0.03)
    assert phi1["seeds_needed"] == power.seeds_for_effect(0.005, 0.03, 0.05, 3)
    assert phi0["n_seeds"] == 3 and phi1["n_seeds"] == 2 and phi0["n_necks"] == 3


def test_iso_flops_intervals_from_per_seed_curves(board):
    # the only budget inside every neck's range is 2.0 GFLOPs
    assert sorted(board.iso["gflops"].unique()) == [2.0]
    fpn, bifpn, panet = (at(board.iso, neck=n) for n in ("fpn", "bifpn", "panet"))
    # fpn's phi 1 point; seed 2 has no phi 1 run, so its curve does not reach 2.0 and is left out
    assert fpn["value"] == pytest.approx(0.42) and fpn["n_seeds"] == 2
    assert fpn["ci95"] == pytest.approx(half(AP["fpn", 1]), rel=1e-4)
    # bifpn a third of the way from 1.5 to 3.0: seeds 0 and 1 give .41667 and .42333
    assert bifpn["value"] == pytest.approx(0.42 + 0.02 / 3) and bifpn["n_seeds"] == 2
    assert bifpn["ci95"] == pytest.approx(half([0.40 + 0.05 / 3, 0.42 + 0.01 / 3]), rel=1e-4)
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


def test_every_format_carries_the_statistics(board, tmp_path):
    md = render(board, "md")
    assert "| 1 | bifpn | a | 3 | 0.420 ± 0.050 | +0.100 ± 0.018 |" in md
    assert "| bifpn | 0.420 ± 0.050 a | 0.440 ± 0.127 a |" in md  # neck x phi
    assert "Kendall tau -0.33 between the rankings" in md and "fpn vs panet, paired difference +0.0050" in md
    assert "EfficientDet Table 5: Kendall tau +1.00 / +0.33 at phi 0 / 1" in md and "## Published comparisons" in md
    assert "| 2.000 | 0.427 ± 0.042 | 0.420 ± 0.254 | 0.333 ± 0.080 |" in md  # iso-FLOPs with intervals
    for fmt in ("table", "html"):
        text = render(board, fmt)
        assert "0.420 ± 0.050" in text and "Kendall tau -0.33" in text and "Published comparisons" in text
    doc = json.loads(render(board, "json"))
    assert len(doc["groups"]) == 2 and len(doc["transfer"]) == 4 and doc["iso_flops"][0]["ci95"] is not None
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
