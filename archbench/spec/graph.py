"""Traversal of a spec's node graph: the execution order and the nodes that reach an output.

Nodes may be listed in any order; the execution order is a topological order that keeps the
file order wherever the edges allow it. The rules a graph must follow are in
:mod:`archbench.spec.rules`.
"""

from __future__ import annotations

from archbench.spec.schema import NeckSpec, NodeSpec


def execution_order(spec: NeckSpec) -> list[NodeSpec]:
    """Nodes in dependency order (Kahn's algorithm, ties broken by file order).

    Raises ValueError on a cycle; validated specs have none.
    """
    order, stuck = dependency_order(spec)
    if stuck:
        raise ValueError(f"cycle through nodes {', '.join(stuck)}")
    return order


def dependency_order(spec: NeckSpec) -> tuple[list[NodeSpec], list[str]]:
    """(the nodes that can be ordered, in order; ids of the nodes a cycle keeps from being ordered).

    Inputs that are not node ids (``in<L>``, unknown references) impose no order.
    """
    ids = {n.id for n in spec.nodes}
    pending = {n.id: {i for i in n.inputs if i in ids} for n in spec.nodes}
    done: set[str] = set()
    order: list[NodeSpec] = []
    progress = True
    while progress:
        progress = False
        for n in spec.nodes:
            if n.id not in done and pending[n.id] <= done:
                done.add(n.id)
                order.append(n)
                progress = True
                break  # restart from the top so file order wins ties
    return order, [n.id for n in spec.nodes if n.id not in done]


def live_nodes(spec: NeckSpec) -> set[str]:
    """Ids of the nodes some output depends on (the rest is dead code)."""
    by_id = {n.id: n for n in spec.nodes}
    live: set[str] = set()
    stack = [ref for ref in spec.outputs.values() if ref in by_id]
    while stack:
        nid = stack.pop()
        if nid in live:
            continue
        live.add(nid)
        stack.extend(i for i in by_id[nid].inputs if i in by_id)
    return live
