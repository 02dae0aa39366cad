"""`archbench profile` through the console script: formats, presets, spec files, errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from helpers import run_cli


def test_json_is_only_a_json_array_on_stdout():
    res = run_cli("profile", "--neck", "bifpn,fpn", "--phi", "0,1", "--format", "json", "--num-classes", "90")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [(r["neck"], r["phi"]) for r in rows] == [("bifpn", 0), ("fpn", 0), ("bifpn", 1), ("fpn", 1)]
    assert round(rows[0]["gflops"], 3) == 2.571


def test_a_log_gets_a_line_as_each_row_starts():
    res = run_cli("profile", "--neck", "fpn,bifpn", "--phi", "0,1", "--preset", "proxy", "--format", "json")
    assert res.returncode == 0, res.stderr  # run_cli's stderr is no terminal: no bar, plain lines
    assert res.stderr.splitlines() == [
        "profiling 1/4: fpn phi=0",
        "profiling 2/4: bifpn phi=0",
        "profiling 3/4: fpn phi=1",
        "profiling 4/4: bifpn phi=1",
    ]
    assert len(json.loads(res.stdout)) == 4


def test_csv_and_table_with_proxy_preset_and_a_spec_file(tmp_path: Path):
    spec = tmp_path / "my_neck.yaml"
    spec.write_text(run_cli("specs", "show", "panet").stdout.replace("name: panet", "name: my_neck", 1))
    res = run_cli(
        "profile",
        "--neck",
        f"{spec},bifpn",
        "--phi",
        "0..1",
        "--preset",
        "proxy",
        "--format",
        "csv",
        "--relative-to",
        "bifpn",
    )
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert {r["neck"] for r in rows} == {"my_neck", "bifpn"} and len(rows) == 4
    assert all(float(r["neck_params_ratio"]) > 0 for r in rows)
    table = run_cli("profile", "--neck", "hda", "--phi", "0", "--preset", "proxy", "--latency", "--latency-runs", "2")
    assert table.returncode == 0, table.stderr
    assert "hda" in table.stdout and "latency ms" in table.stdout


def test_bad_arguments_are_clear_errors():
    for args, needle in [
        (("--phi", "0..9"), "phi 0..7"),
        (("--preset", "huge"), "unknown preset"),
        (("--neck", "bifnp"), "unknown neck"),
        (("--phi", "a..b"), "--phi"),
        (("--op", "magic"), "--op"),
    ]:
        res = run_cli("profile", *args)
        assert res.returncode == 2, (args, res.stderr)
        assert needle in res.stderr and "Traceback" not in res.stderr


def test_seg_task_costs_the_segmentation_head():
    rows = {}
    for task in ("det", "seg"):
        res = run_cli(
            "profile",
            "--task",
            task,
            "--neck",
            "fpn",
            "--preset",
            "proxy",
            "--num-classes",
            "7",
            "--format",
            "json",
            "--latency",
            "--latency-runs",
            "1",
        )
        assert res.returncode == 0, res.stderr
        (rows[task],) = json.loads(res.stdout)
    assert rows["seg"]["params_neck"] == rows["det"]["params_neck"]  # same trunk, other head
    assert rows["seg"]["params_head"] != rows["det"]["params_head"] and rows["seg"]["latency_ms"] > 0
    bad = run_cli("profile", "--task", "depth")
    assert bad.returncode == 2 and "choose one of det, seg" in bad.stderr
