"""scripts/pairing_gain.py: the paired, pooled and unpaired sd of neck pairs against hand-computed values.

Three necks over seeds 0-2 (AP):  fpn .30 .34 .32   a .33 .36 .36   b .35 .33 .37
  a - fpn = [.03 .02 .04]: paired sd .01;   b - fpn = [.05 -.01 .05]: paired sd .034641
  sd_fpn .02, sd_a .017321, sd_b .02 -> unpaired sd sqrt(.0003 + .0004) = .026458 (a), sqrt(.0008) = .028284 (b)
  ratio 2.6458 (a - fpn), 0.8165 (b - fpn); pooled (block model, tests/test_board_stats.py) .025820 for both
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from scriptkit import load_script


def rows() -> pd.DataFrame:
    values = {"fpn": (0.30, 0.34, 0.32), "a": (0.33, 0.36, 0.36), "b": (0.35, 0.33, 0.37)}
    keys = {"task": "det", "dataset": "synthetic", "preset": "proxy", "terms": "efficientdet", "epochs": 8}
    keys |= {"device": "cpu", "amp": "off", "phi": 0}
    return pd.DataFrame([{**keys, "neck": n, "seed": s, "AP": v} for n, vs in values.items() for s, v in enumerate(vs)])


def test_pair_gains_hand_values():
    script = load_script("pairing_gain")
    gains = script.pair_gains(rows(), [("a", "fpn"), ("b", "fpn"), ("a", "nope")], min_seeds=3).set_index("pair")
    assert list(gains.index) == ["a:fpn", "b:fpn"]  # a pair with a neck the group lacks is skipped
    a, b = gains.loc["a:fpn"], gains.loc["b:fpn"]
    assert a["paired_sd"] == pytest.approx(0.01) and a["unpaired_sd"] == pytest.approx(0.026458, abs=1e-6)
    assert a["ratio"] == pytest.approx(2.6458, abs=1e-4) and b["ratio"] == pytest.approx(0.8165, abs=1e-4)
    assert a["pooled_sd"] == b["pooled_sd"] == pytest.approx(0.025820, abs=1e-6)
    assert a["diff_mean"] == pytest.approx(0.03) and a["n_seeds"] == 3
    # ratio^2 = 1 / (1 - corr * 2 sd_a sd_b / (sd_a^2 + sd_b^2)), the identity the script's docstring states
    sd_a, sd_fpn = math.sqrt(0.0003), 0.02
    assert a["ratio"] ** 2 == pytest.approx(1 / (1 - a["corr"] * 2 * sd_a * sd_fpn / (sd_a**2 + sd_fpn**2)))
    every = script.pair_gains(rows(), None, min_seeds=3)
    assert sorted(every["pair"]) == ["a:b", "a:fpn", "b:fpn"]
    assert script.pair_gains(rows(), None, min_seeds=4).empty


def test_pairs_are_neck_colon_neck():
    script = load_script("pairing_gain")
    assert script.parse_pairs("panet:fpn, my-neck:fpn") == [("panet", "fpn"), ("my-neck", "fpn")]
    assert script.parse_pairs("") is None
    with pytest.raises(SystemExit, match="NECK:NECK"):
        script.parse_pairs("panet-fpn")
