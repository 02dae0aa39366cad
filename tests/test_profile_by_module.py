"""`archbench profile --by-module`: per-module params and FLOPs that add up to the profile row, agree with
fvcore's own per-module count, and come out in every format."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
from fvcore.nn import FlopCountAnalysis

from archbench.costs.flops import count_flops
from archbench.costs.modules import OWN, module_costs
from archbench.costs.profile import profile
from archbench.models.detector import Detector
from archbench.models.scaling import PROXY
from archbench.spec import resolve_spec

from helpers import run_cli

FIELDS = ("params", "gflops", "gflops_elementwise")


def children_of(modules: list[dict]) -> dict[int, list[int]]:
    """Index of each row -> indices of its child rows, from the pre-order rows and their depths."""
    children: dict[int, list[int]] = {i: [] for i in range(len(modules))}
    stack: list[int] = []
    for i, m in enumerate(modules):
        while stack and modules[stack[-1]]["depth"] >= m["depth"]:
            stack.pop()
        if stack:
            children[stack[-1]].append(i)
        stack.append(i)
    return children


@pytest.mark.parametrize(("task", "preset", "neck"), [("det", "efficientdet", "bifpn"), ("seg", "proxy", "nasfpn")])
def test_modules_add_up_to_the_profile_row(task, preset, neck):
    (row,) = profile([neck], [0], preset, num_classes=7, task=task, by_module=99)
    modules = row["modules"]
    parts = {m["module"]: m for m in modules if m["depth"] == 1}
    assert list(parts) == ["backbone", "neck", "head"]
    for part, m in parts.items():  # the same counts as the row: params exactly, fvcore FLOPs to float rounding
        assert m["params"] == row[f"params_{part}"]
        assert m["gflops"] == pytest.approx(row[f"gflops_{part}"], rel=1e-12)
    # per-module GFLOPs leave out element-wise work exactly as the row does: it is its own column
    assert sum(m["gflops_elementwise"] for m in parts.values()) == pytest.approx(row["gflops_elementwise"], rel=1e-12)
    assert row["gflops_elementwise"] > 0
    for parent, kids in children_of(modules).items():
        if kids:  # every shown row is the sum of the rows under it ('(own)' rows included)
            for field in FIELDS:
                assert sum(modules[k][field] for k in kids) == pytest.approx(modules[parent][field], rel=1e-9)
    assert any(m["module"].endswith(OWN) for m in modules)  # e.g. a cell's parameter-free upsampling


def test_default_depth_shows_stages_cells_nodes_and_head_nets():
    (row,) = profile(["bifpn"], [0], by_module=3)
    by_name = {m["module"]: m for m in row["modules"]}
    spec = resolve_spec("bifpn")
    cells = [n for n in by_name if n.count(".") == 2 and n.startswith("neck.cells.")]
    assert cells == ["neck.cells.0", "neck.cells.1", "neck.cells.2"]  # D0: 3 cells
    for cell in cells:
        for node in spec.nodes:
            m = by_name[f"{cell}.mods.node_{node.id}"]
            assert m["depth"] == 3 and m["type"] == "FusionNode" and m["note"] == f"node {node.id} -> P{node.level}"
            assert m["params"] > 0 and m["gflops"] > 0
    assert by_name["neck.extra"]["note"].startswith("extra levels P6..P7")
    stages = {n: m["note"] for n, m in by_name.items() if n.startswith("backbone.body.blocks.")}
    assert len(stages) == 7 and stages["backbone.body.blocks.6"] == "feature P5 (320 ch)"
    assert by_name["backbone"]["note"] == "efficientnet_b0"
    assert {"head.class_net", "head.box_net"} <= set(by_name)
    assert max(m["depth"] for m in row["modules"]) == 3
    (shallow,) = profile(["bifpn"], [0], by_module=1)
    assert [m["module"] for m in shallow["modules"]] == ["backbone", "neck", "head"]


def test_per_module_flops_equal_fvcore_by_module_on_real_tensors():
    torch.manual_seed(0)
    model = Detector(resolve_spec("bifpn"), PROXY.config(0), 7).eval()
    x = torch.randn(1, 3, 96, 160)
    analysis = FlopCountAnalysis(model, (x,))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    reference = analysis.by_module()
    flops, _ = count_flops(model, x, modules=model)
    rows = [r for r in module_costs("model", model, flops, depth=99) if not r.module.endswith(OWN)]
    assert len(rows) > 50
    for r in rows:
        name = r.module.removeprefix("model").removeprefix(".")
        assert r.flops == reference[name], name


def test_every_format_carries_the_breakdown():
    args = ("profile", "--neck", "bifpn,fpn", "--phi", "0,1", "--preset", "proxy", "--by-module")
    res = run_cli(*args, "--format", "json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [(r["neck"], r["phi"]) for r in rows] == [("bifpn", 0), ("fpn", 0), ("bifpn", 1), ("fpn", 1)]
    for r in rows:
        assert {m["module"] for m in r["modules"] if m["depth"] == 1} == {"backbone", "neck", "head"}
        assert max(m["depth"] for m in r["modules"]) == 3
    res = run_cli(*args, "--format", "csv", "--depth", "2")
    assert res.returncode == 0, res.stderr
    lines = list(csv.DictReader(io.StringIO(res.stdout)))
    assert {(r["neck"], r["phi"]) for r in lines} == {("bifpn", "0"), ("fpn", "0"), ("bifpn", "1"), ("fpn", "1")}
    assert {r["depth"] for r in lines} == {"1", "2"}
    neck_line = next(r for r in lines if r["neck"] == "bifpn" and r["phi"] == "0" and r["module"] == "neck")
    assert int(neck_line["params"]) == next(r for r in rows if r["neck"] == "bifpn")["params_neck"]
    res = run_cli(*args)
    assert res.returncode == 0, res.stderr
    assert "bifpn phi=1" in res.stdout and "fpn phi=0" in res.stdout
    assert "neck.cells.0.mods.node_td4" in res.stdout and "% GFLOPs" in res.stdout


def test_bad_combinations_are_clear_errors():
    for args, needle in [
        (("--depth", "2"), "add --by-module"),
        (("--by-module", "--latency"), "--latency times only the whole model"),
        (("--by-module", "--depth", "0"), "--depth"),
    ]:
        res = run_cli("profile", "--neck", "fpn", "--preset", "proxy", *args)
        assert res.returncode == 2, (args, res.stderr)
        assert needle in res.stderr and "Traceback" not in res.stderr
