"""The main job on the real built-in data set, shortened to 3 epochs (about 2 minutes on 2 cores).

Marked ``slow``; the README's test command (and so CI) runs it. Run ``-m "not slow"`` to skip.
"""

from __future__ import annotations

import pytest

from archbench.runs.records import load_records

from helpers import run_cli


@pytest.mark.slow
def test_run_on_the_builtin_data_learns(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHBENCH_CACHE", str(tmp_path / "cache"))  # first use: the data set is generated
    res = run_cli("run", "--neck", "bifpn", "--phi", "0", "--epochs", "3", "--results", str(tmp_path / "results"))
    assert res.returncode == 0, res.stderr
    (record,) = [r.to_dict() for r in load_records(tmp_path / "results")]
    assert record["status"] == "ok" and record["dataset"]["n_train"] == 2048 and record["dataset"]["n_val"] == 512
    # Measured: AP50 0.49..0.52 over seeds 0..2 after the default 8 epochs (0.07..0.10 after 3 with the old lcnet_050
    # backbone); chance is ~0.
    assert record["metrics"]["AP50"] > 0.03
    assert record["timing"]["eval_fraction"] < 0.10
