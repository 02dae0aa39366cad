"""Traversal of a spec's node graph: the execution order, the nodes that reach an output, and the network a spec
describes whatever its node ids.

Nodes may be listed in any order; the execution order is a topological order that keeps the
file order wherever the edges allow it. The rules a graph must follow are in
:mod:`archbench.spec.rules`.
"""

from __future__ import annotations

import hashlib
import json

from archbench.spec.schema import NeckSpec, NodeSpec

#: Fusions whose inputs can be listed in any order: each input gets its own resampling and projection, and the
#: inputs are added (``weighted`` and ``softmax`` with one scalar weight each, all started alike). ``concat``
#: fixes the channel order and ``attention`` gates its first input by the others.
ORDER_FREE_FUSES = ("sum", "weighted", "softmax")


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


def network_key(spec: NeckSpec) -> str:
    """A 16-hex-digit key of the network ``spec`` describes: the same for specs that differ only in their node ids,
    the order of their nodes, and the order of the inputs of a node whose fusion is order-free (``ORDER_FREE_FUSES``,
    not residual).

    Each node is described by its level, fusion, op, residual flag and its inputs' descriptions (sorted where the
    order is free), recursively from the inputs ``in<L>``; the key hashes the spec-wide settings, the sorted
    descriptions of all nodes (so that one node read twice and two alike nodes read once each stay apart) and the
    outputs' descriptions. :meth:`NeckSpec.spec_hash` is the key of the spec as written; two specs with one
    ``network_key`` build the same layers, wired alike, only named and ordered otherwise.
    """
    by_id = {n.id: n for n in spec.nodes}
    described: dict[str, str] = {}

    def describe(ref: str) -> str:
        if ref not in by_id:
            return ref
        if ref not in described:
            node = by_id[ref]
            inputs = [describe(i) for i in node.inputs]
            fuse = spec.node_fuse(node)
            if fuse in ORDER_FREE_FUSES and not node.residual:
                inputs.sort()
            body = [node.level, fuse, node.op or {}, node.residual, inputs]
            described[ref] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        return described[ref]

    outputs = {str(level): describe(ref) for level, ref in sorted(spec.outputs.items())}
    whole = {k: v for k, v in spec.to_dict().items() if k not in ("name", "description", "family", "nodes", "outputs")}
    body = [whole, sorted(describe(n.id) for n in spec.nodes), outputs]
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
