"""Params and FLOPs per module: the tree behind ``archbench profile --by-module``.

A model is costed in parts (backbone, neck, head; see :mod:`archbench.costs.profile`), and each part
is broken down along its module tree. Params come from ``fvcore.nn.parameter_count``; FLOPs from
:func:`~archbench.costs.flops.count_flops` with ``modules=`` (fvcore's formulas and convention,
1 multiply-add = 1 flop, attributed like ``FlopCountAnalysis.by_module``), with the element-wise work
that fvcore does not count kept apart, as in the profile row. Every figure is inclusive: a module's
row covers its submodules.

The tree is the module tree with two simplifications, so that depth means something:

- ``nn.ModuleList`` / ``nn.ModuleDict`` are transparent (their items take their place: a neck's
  cells are ``neck.cells.0``, ``neck.cells.1`` one level below ``neck``, and a cell's nodes
  ``neck.cells.0.mods.node_td4`` one level below that), unless every item is a leaf module (a list
  of per-level norms stays one row, its norms below it);
- a module with a single child and no params or ops of its own is shown merged with that child
  (``backbone`` stands for the ``Backbone`` wrapper and the timm model it holds).

Modules without params or counted ops (identities, dropout, empty lists) are left out.
Ops that a module runs in its own ``forward`` outside any submodule (e.g. a cell's parameter-free
upsampling, a residual add) get a row ``<name>.(own)`` under it, so that every row's children add
up to it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from fvcore.nn import parameter_count
from torch import nn

from archbench.costs.flops import FlopCount
from archbench.models.backbone import Backbone
from archbench.neck.compiler import GraphNeck

OWN = "(own)"


@dataclass(frozen=True)
class ModuleCost:
    """One row of the breakdown. ``module``: the dotted name, part first (``neck.cells.0.mods.node_td4``);
    ``depth``: 1 for a part, +1 per shown level; ``flops`` (fvcore) and ``elementwise`` in flops, inclusive."""

    module: str
    type: str
    depth: int
    params: int
    flops: int
    elementwise: int
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The JSON / CSV form: flops as ``gflops`` and ``gflops_elementwise``, as in a profile row."""
        return {
            "module": self.module,
            "type": self.type,
            "depth": self.depth,
            "params": self.params,
            "gflops": self.flops / 1e9,
            "gflops_elementwise": self.elementwise / 1e9,
            "note": self.note,
        }


def _inclusive(by_module: Counter) -> Counter:
    """Each module's total with its submodules': every count added to all prefixes of its name."""
    total: Counter = Counter()
    for name, n in by_module.items():
        parts = name.split(".") if name else []
        for i in range(len(parts) + 1):
            total[".".join(parts[:i])] += n
    return total


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _is_leaf(module: nn.Module) -> bool:
    return next(module.children(), None) is None


def _shown_children(module: nn.Module, name: str) -> list[tuple[str, nn.Module]]:
    """(name, module) of the children shown under ``module``, containers of non-leaves made transparent."""
    shown = []
    for child_name, child in module.named_children():
        full = _join(name, child_name)
        if isinstance(child, (nn.ModuleList, nn.ModuleDict)) and not all(_is_leaf(c) for c in child.children()):
            shown += _shown_children(child, full)
        else:
            shown.append((full, child))
    return shown


def _notes(module: nn.Module) -> dict[str, str]:
    """What a name alone does not say, keyed by name inside ``module``: the backbone's timm name and the
    pyramid level each stage feeds; the neck's spec, each node's level and the levels its extra stem makes."""
    if isinstance(module, Backbone):
        info: Any = module.body.feature_info  # timm's FeatureInfo
        names = [_join("body", n) for n in info.module_name()]
        notes = {n: f"feature P{lvl} ({c} ch)" for n, lvl, c in zip(names, module.levels, module.channels)}
        return {"": module.name, **notes}
    if isinstance(module, GraphNeck):
        spec = module.spec
        notes = {
            _join(f"cells.{i}.mods", f"node_{node.id}"): f"node {node.id} -> P{node.level}"
            for i in range(len(module.cells))
            for node in spec.nodes
        }
        notes[""] = f"{spec.name}, {len(module.cells)} cell(s)"
        if module.extra is not None:
            new = module.out_levels[-module.extra.count :]
            notes["extra"] = f"extra levels P{new[0]}..P{new[-1]} ({module.extra.kind})"
        return notes
    return {}


def module_costs(part: str, module: nn.Module, flops: FlopCount, depth: int) -> list[ModuleCost]:
    """Rows for ``module`` (costed as ``part``, e.g. 'neck') down to ``depth`` (1: the part's row only), in
    pre-order. ``flops`` must come from ``count_flops(..., modules=module)``."""
    params = parameter_count(module)
    fv, ew = _inclusive(flops.by_module), _inclusive(flops.elementwise_by_module)
    notes = _notes(module)
    rows: list[ModuleCost] = []

    def cost(name: str) -> tuple[int, int, int]:
        return params.get(name, 0), fv[name], ew[name]

    def costly_children(name: str, mod: nn.Module) -> list[tuple[str, nn.Module]]:
        return [(n, c) for n, c in _shown_children(mod, name) if any(cost(n))]

    def visit(name: str, mod: nn.Module, level: int) -> None:
        children = costly_children(name, mod)
        while len(children) == 1 and cost(name) == cost(children[0][0]):  # a wrapper: show its child's children
            children = costly_children(*children[0])
        label = _join(part, name) if name else part
        rows.append(ModuleCost(label, type(mod).__name__, level, *cost(name), notes.get(name, "")))
        if level >= depth or not children:
            return
        for child_name, child in children:
            visit(child_name, child, level + 1)
        p, f, e = (total - sum(cost(c)[i] for c, _ in children) for i, total in enumerate(cost(name)))
        if p or f or e:
            rows.append(ModuleCost(f"{label}.{OWN}", "-", level + 1, p, f, e, "ops in its own forward()"))

    visit("", module, 1)
    return rows
