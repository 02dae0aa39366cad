"""Every built-in neck is pinned to reference data written from its paper and reference implementations.

Each ``tests/reference_topologies/<neck>.yaml`` names its sources and lists what the reference is
unambiguous about: the nodes (id, level, inputs in order, fusion, the op fields it fixes), the
outputs, and the spec-wide resampling, extra-level and projection choices. The built-in generated at
the file's levels must match it field for field.

Parts that are archbench's, not the reference's, are pinned too, and marked: a node the reference lacks
(or whose inputs differ from the reference's) carries ``ours: <why>``, and ``ours_outputs: {level: why}``
names the output levels the reference lacks. ``reference_levels`` (default: every level) lists the levels
the reference defines; every node and output at another level must be marked, and every marked output must
be at another level or name a marked node. Deviations that no node list shows (ops, widths, init) are in
the spec's description and docs/fidelity.md.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from archbench.spec import builtin_names, builtin_spec

REFERENCE_DIR = Path(__file__).parent / "reference_topologies"
REFERENCES = sorted(REFERENCE_DIR.glob("*.yaml"))
#: Spec-wide fields a reference file may pin, besides ``nodes`` and ``outputs``.
SPEC_FIELDS = ("fuse", "extra_levels", "input_projection", "repeat")


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert data.get("sources"), f"{path.name}: a reference names its sources"
    return data


def _ours_problems(ref: dict[str, Any]) -> list[str]:
    """Where the ``ours`` markers of a reference file are missing, empty or stale (see the module docstring)."""
    problems: list[str] = []
    ref_levels = set(ref.get("reference_levels", ref["levels"]))
    ours_nodes = set()
    for n in ref["nodes"]:
        if "ours" in n:
            if not isinstance(n["ours"], str) or not n["ours"].strip():
                problems.append(f"node {n['id']}: ours needs a reason")
            ours_nodes.add(n["id"])
        elif n["level"] not in ref_levels:
            problems.append(f"node {n['id']}: at level {n['level']}, which the reference lacks, but not marked ours")
    ours_outputs = {int(k): v for k, v in (ref.get("ours_outputs") or {}).items()}
    outputs = {int(k): v for k, v in ref["outputs"].items()}
    for level, why in ours_outputs.items():
        if not isinstance(why, str) or not why.strip():
            problems.append(f"ours_outputs {level}: needs a reason")
        if level not in outputs:
            problems.append(f"ours_outputs {level}: no such output")
        elif level in ref_levels and outputs[level] not in ours_nodes:
            problems.append(f"ours_outputs {level}: at a reference level, naming a reference node")
    for level in outputs:
        if level not in ref_levels and level not in ours_outputs:
            problems.append(f"output {level}: at a level the reference lacks, but not in ours_outputs")
    return problems


@pytest.mark.parametrize("path", REFERENCES, ids=[p.stem for p in REFERENCES])
def test_archbench_parts_are_marked(path: Path):
    problems = _ours_problems(_load(path))
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


def test_ours_markers_are_checked():
    ref = {
        "levels": [3, 4, 5, 6],
        "reference_levels": [3, 4, 5],
        "nodes": [{"id": "a", "level": 3, "inputs": ["in3"]}, {"id": "b", "level": 6, "inputs": ["in6"]}],
        "outputs": {3: "a", 4: "in4", 5: "in5", 6: "b"},
        "ours_outputs": {3: "stale"},
    }
    problems = _ours_problems(ref)
    assert any("node b" in p for p in problems)
    assert any("ours_outputs 3" in p for p in problems)
    assert any("output 6" in p for p in problems)


def test_every_builtin_has_reference_data():
    pinned = {_load(p)["neck"] for p in REFERENCES}
    assert set(builtin_names()) <= pinned, f"built-ins without reference data: {sorted(set(builtin_names()) - pinned)}"


@pytest.mark.parametrize("path", REFERENCES, ids=[p.stem for p in REFERENCES])
def test_builtin_matches_its_reference(path: Path):
    ref = _load(path)
    spec = builtin_spec(ref["neck"], tuple(ref["levels"]))
    problems: list[str] = []
    for key in SPEC_FIELDS:
        if key in ref and getattr(spec, key) != ref[key]:
            problems.append(f"{key}: {getattr(spec, key)!r}, reference {ref[key]!r}")
    for section, actual in (("resample", spec.resample), ("attention", spec.attention), ("op", spec.op)):
        for key, want in (ref.get(section) or {}).items():
            if asdict(actual)[key] != want:
                problems.append(f"{section}.{key}: {asdict(actual)[key]!r}, reference {want!r}")
    want_ids = [n["id"] for n in ref["nodes"]]
    got_ids = [n.id for n in spec.nodes]
    if got_ids != want_ids:
        problems.append(f"node ids {got_ids}, reference {want_ids}")
    for want in ref["nodes"]:
        if want["id"] not in got_ids:
            continue
        node = spec.node(want["id"])
        where = f"node {node.id}"
        if node.level != want["level"]:
            problems.append(f"{where}: level {node.level}, reference {want['level']}")
        if list(node.inputs) != want["inputs"]:
            problems.append(f"{where}: inputs {list(node.inputs)}, reference {want['inputs']}")
        if "fuse" in want and spec.node_fuse(node) != want["fuse"]:
            problems.append(f"{where}: fuse {spec.node_fuse(node)!r}, reference {want['fuse']!r}")
        if bool(want.get("residual", False)) != node.residual:
            problems.append(f"{where}: residual {node.residual}, reference {want.get('residual', False)}")
        op = asdict(spec.node_op(node))
        for key, value in (want.get("op") or {}).items():
            if op[key] != value:
                problems.append(f"{where}: op.{key} {op[key]!r}, reference {value!r}")
    outputs = {int(k): v for k, v in ref["outputs"].items()}
    if spec.outputs != outputs:
        problems.append(f"outputs {spec.outputs}, reference {outputs}")
    assert not problems, f"{ref['neck']} differs from {path.name}:\n  " + "\n  ".join(problems)
