"""scripts/noise_budget.py's analysis against hand-computed values (no training, no torch).

Necks a and b at phi 0, 16 epochs, AP:
  seed source (plain seeds 0, 1, 2):     a .30 .34 .32  (sd .02)      b .33 .36 .36  (sd .017321)   a-b sd .01
  init (seed 1, data seed 0) + seed 0:   a .30 .31      (sd .007071)  b .33 .35      (sd .014142)   a-b sd .007071
  order (seed 0, data seed 1) + seed 0:  a .30 .29      (sd .007071)  b .33 .31      (sd .014142)   a-b sd .007071
  ema (plain seeds, --ema):              a .31 .33 .32  (sd .01)      b .34 .36 .35  (sd .01)       a-b sd 0
"""

from __future__ import annotations

import math

import pytest

from scriptkit import load_script


def record(neck, seed, ap, data_seed=None, ema=False, epochs=16, status="ok"):
    config = {"train": {"ema": ema}, **({} if data_seed is None else {"data_seed": data_seed})}
    return {"status": status, "phi": 0, "epochs": epochs, "neck": neck, "seed": seed, "config": config,
            "metrics": {"AP": ap}}  # fmt: skip


def records():
    out = []
    for neck, plain, init, order, ema in (
        ("a", (0.30, 0.34, 0.32), 0.31, 0.29, (0.31, 0.33, 0.32)),
        ("b", (0.33, 0.36, 0.36), 0.35, 0.31, (0.34, 0.36, 0.35)),
    ):
        out += [record(neck, s, v) for s, v in enumerate(plain)]
        out += [record(neck, 1, init, data_seed=0), record(neck, 0, order, data_seed=1)]
        out += [record(neck, s, v, ema=True) for s, v in enumerate(ema)]
    # not part of the design: another schedule, a failed run, both seeds moved at once
    return out + [record("a", 3, 0.9, epochs=8), record("a", 4, 0.9, status="failed"), record("a", 1, 0.9, 1)]


def test_sources_spreads_and_shares():
    script = load_script("noise_budget")
    runs = script.per_source(records(), epochs=16)
    assert sorted(runs["source"].unique()) == ["ema", "init", "order", "seed"]
    assert 0.9 not in set(runs["AP"])
    table = script.shares(script.spreads(runs[runs["source"] != "ema"])).set_index(["source", "item"])
    expected = {
        ("seed", "a"): 0.02, ("seed", "b"): 0.017321, ("seed", "a-b"): 0.01,
        ("init", "a"): 0.007071, ("init", "b"): 0.014142, ("init", "a-b"): 0.007071,
        ("order", "a"): 0.007071, ("order", "b"): 0.014142, ("order", "a-b"): 0.007071,
    }  # fmt: skip
    for key, sd in expected.items():
        assert table.loc[key, "sd"] == pytest.approx(sd, abs=1e-6), key
    assert table.loc[("init", "a"), "share"] == pytest.approx(0.125)  # .00005 / .0004
    assert table.loc[("init", "a-b"), "share"] == pytest.approx(0.5)  # .00005 / .0001
    assert table.loc[("seed", "a"), "share"] == pytest.approx(1.0)
    assert table.loc[("init", "a"), "n"] == 2
    # 95 % chi-square interval of an sd from 3 runs (2 df): sd * sqrt(2 / 7.377759), sd * sqrt(2 / 0.050636)
    assert table.loc[("seed", "a"), "sd_low"] == pytest.approx(0.0104132, rel=1e-4)
    assert table.loc[("seed", "a"), "sd_high"] == pytest.approx(0.125695, rel=1e-4)
    assert all(math.isnan(v) for v in script._sd_interval(0.01, 1))  # one run: no spread, no interval
    text = script.markdown(table.reset_index(), script.ema_effect(runs), "# budget")
    assert "| a | 0.0200 [0.0104, 0.1257] (1.00) | 0.0071 [" in text


def test_ema_effect_compares_the_same_seeds():
    script = load_script("noise_budget")
    effect = script.ema_effect(script.per_source(records(), epochs=16)).set_index("item")
    assert effect.loc["a", "sd_ema"] == pytest.approx(0.01) and effect.loc["a", "ratio"] == pytest.approx(0.25)
    assert effect.loc["a-b", "sd_ema"] == pytest.approx(0.0, abs=1e-12) and effect.loc["a-b", "ratio"] < 1e-20
    assert not math.isnan(effect.loc["b", "ratio"])
    assert effect.loc["a", "sd_ema_low"] == pytest.approx(0.01 * 0.520658, rel=1e-4)
    assert effect.loc["a", "sd_plain_high"] == pytest.approx(0.125695, rel=1e-4)
