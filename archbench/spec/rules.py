"""The graph rules of a topology spec: ids, levels, inputs, cycles, fusion arity, outputs, dead nodes, and
the settings a node's op would silently ignore.

Every rule violation is returned as a :class:`~archbench.errors.Problem`, not raised, so a file's
type errors (:mod:`archbench.spec.loader`) and graph problems are reported together.
"""

from __future__ import annotations

import re

from archbench.errors import Problem
from archbench.spec.graph import dependency_order, live_nodes
from archbench.spec.schema import MULTI_INPUT_FUSES, NeckSpec, input_level

_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONVS_WITHOUT_CONV = "convs > 1 stacks the op's k x k convs, but op type 'none' has no conv"


def graph_problems(spec: NeckSpec, source: str, broken_ids: set[str] | frozenset[str] = frozenset()) -> list[Problem]:
    """Every graph rule the spec breaks: ids, levels, inputs, cycles, fusion arity, outputs.

    ``broken_ids`` are nodes that exist in the file but failed to parse (already reported):
    references to them are not reported again as unknown.
    """
    problems: list[Problem] = []

    def add(
        rule: str, message: str, node: str | None = None, field: str | None = None, severity: str = "error"
    ) -> None:
        problems.append(Problem(source, rule, message, node, field, severity))

    levels = set(spec.levels)
    lo, hi = spec.min_level, spec.max_level
    seen: set[str] = set()
    for n in spec.nodes:
        if n.id in seen:
            add("duplicate-id", "the id is used by more than one node", n.id, "id")
        seen.add(n.id)
        if not _ID.match(n.id):
            add("bad-id", "ids are letters, digits and underscores, starting with a letter or underscore", n.id, "id")
        elif input_level(n.id) is not None:
            add("reserved-id", "ids of the form in<L> name the neck's inputs; rename the node", n.id, "id")
        if n.level not in levels:
            add("level-out-of-range", f"level {n.level} is outside the spec's levels {lo}..{hi}", n.id, "level")
    ids = {n.id for n in spec.nodes}
    known = ids | set(broken_ids)

    for n in spec.nodes:
        for ref in n.inputs:
            lvl = input_level(ref)
            if lvl is not None:
                if lvl not in levels:
                    add(
                        "level-out-of-range",
                        f"input {ref!r} is at level {lvl}, outside the spec's levels {lo}..{hi}",
                        n.id,
                        "inputs",
                    )
            elif ref == n.id:
                add("cycle", "the node takes its own output as input", n.id, "inputs")
            elif ref not in known:
                add("unknown-input", f"input {ref!r} is neither a node id nor an input in{lo}..in{hi}", n.id, "inputs")
        if len(set(n.inputs)) != len(n.inputs):
            add("duplicate-input", "the same input is listed twice", n.id, "inputs")
        if n.fuse in MULTI_INPUT_FUSES and len(n.inputs) < 2:
            add(
                "fusion-arity",
                f"fuse {n.fuse!r} combines two or more inputs but the node has {len(n.inputs)}",
                n.id,
                "fuse",
            )
        if spec.node_fuse(n) == "attention" and n.residual:
            add("bad-value", "residual is not defined for attention fusion", n.id, "residual")
        if (n.op or {}).get("convs", 1) > 1 and spec.node_op(n).type == "none":
            add("bad-value", _CONVS_WITHOUT_CONV, n.id, "op.convs")
    if spec.op.type == "none" and spec.op.convs > 1:
        add("bad-value", _CONVS_WITHOUT_CONV, None, "op.convs")

    _, stuck = dependency_order(spec)
    self_loops = {n.id for n in spec.nodes if n.id in n.inputs}
    cyclic = [nid for nid in stuck if nid not in self_loops and nid in ids]
    if cyclic:
        add(
            "cycle",
            f"nodes {', '.join(cyclic)} depend on each other in a cycle (or on a node that does)",
            cyclic[0],
            "inputs",
        )

    for lvl, ref in sorted(spec.outputs.items()):
        if lvl not in levels:
            add(
                "level-out-of-range",
                f"output level {lvl} is outside the spec's levels {lo}..{hi}",
                None,
                f"outputs.{lvl}",
            )
            continue
        rl = input_level(ref)
        if rl is None and ref in broken_ids:
            continue
        if rl is None and ref not in ids:
            add(
                "output-not-produced",
                f"output level {lvl} names {ref!r}, which no node produces",
                None,
                f"outputs.{lvl}",
            )
            continue
        actual = rl if rl is not None else spec.node(ref).level
        if actual != lvl:
            add(
                "output-level-mismatch",
                f"output level {lvl} names {ref!r}, which is at level {actual}",
                None,
                f"outputs.{lvl}",
            )
    for lvl in spec.levels:
        if lvl not in spec.outputs:
            add("output-missing", f"level {lvl} has no output; every level in levels needs one", None, "outputs")

    if not any(p.severity == "error" for p in problems):
        live = live_nodes(spec)
        for n in spec.nodes:
            if n.id not in live:
                add("dead-node", "the node feeds no output; it will be computed for nothing", n.id, severity="warning")
    return problems
