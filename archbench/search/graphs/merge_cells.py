"""NAS-FPN's search space (Ghiasi, Lin, Le 2019) as data: a sequence of merge cells.

Each cell merges two features chosen among the neck's inputs and the earlier cells' outputs (two different
ones), at an output level, with a binary fusion (NAS-FPN: sum or global-pooling attention). The last
``len(levels)`` cells are the outputs, at the levels of ``output_order``; the cells before them are intermediate
and choose their level among ``cell_levels``. As in NAS-FPN (and TF Model Garden's implementation of it), when an
output cell is built, every feature of its level that no cell has consumed so far (an input or an intermediate
cell) is summed into it before its op, so no feature is computed for nothing.

Space file fields::

    graph: merge_cells
    merge_cells: 7                  # cells in all; the last len(levels) are the outputs
    output_order: [3, 4, 5, 7, 6]   # levels of the output cells, in build order (default: ascending)
    cell_levels: [3, 4, 5, 6, 7]    # levels an intermediate cell may take (default: all)
    fuse: [sum, attention]          # fusions a cell may take (default: these two)

Parameters (Optuna categorical): ``cell<k>.inputs`` / ``out<L>.inputs`` (a pair ``a+b`` of candidates, named
``in<L>``, ``cell<k>`` or ``out<L>``, in build order), ``cell<k>.level``, and ``cell<k>.fuse`` / ``out<L>.fuse``
when more than one fusion is allowed. Nodes are named ``p<L>_<n>`` (the n-th intermediate cell at level L) and
``out<L>``, their inputs in build order, so NAS-FPN's published cell is the built-in ``nasfpn`` node for node.
NAS-FPN's controller also chose the order of the output levels; here ``output_order`` fixes it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from archbench.search.graphs.family import GraphFamily, Point
from archbench.search.space_rules import Checker
from archbench.spec.schema import FUSE_TYPES, NodeSpec

DEFAULT_FUSES = ("sum", "attention")


def _levels(c: Checker, raw: Any, where: str, allowed: tuple[int, ...]) -> tuple[int, ...] | None:
    if not (isinstance(raw, list) and raw and all(isinstance(v, int) and not isinstance(v, bool) for v in raw)):
        c.add("wrong-type", f"{where} is a list of pyramid levels, got {raw!r}", where)
        return None
    outside = [v for v in raw if v not in allowed]
    if outside:
        c.add("level-out-of-range", f"levels {outside} are not among the base spec's levels {list(allowed)}", where)
        return None
    if len(set(raw)) != len(raw):
        c.add("duplicate-level", f"{where} lists a level twice: {raw}", where)
        return None
    return tuple(raw)


@dataclass(frozen=True)
class MergeCells(GraphFamily):
    """``cells`` merge cells over ``levels``; the last ``len(levels)`` output ``output_order``."""

    kind: ClassVar[str] = "merge_cells"
    fields: ClassVar[frozenset[str]] = frozenset({"merge_cells", "output_order", "cell_levels", "fuse"})

    levels: tuple[int, ...]
    cells: int
    output_order: tuple[int, ...]
    cell_levels: tuple[int, ...]
    fuses: tuple[str, ...]

    @classmethod
    def parse(cls, c: Checker, data: Mapping[str, Any], levels: tuple[int, ...]) -> MergeCells | None:
        before = len(c.problems)
        cells: Any = data.get("merge_cells")
        if "merge_cells" not in data:
            c.add("missing-field", "a merge_cells space needs 'merge_cells', the number of cells", "merge_cells")
        elif not (isinstance(cells, int) and not isinstance(cells, bool)) or cells < len(levels):
            c.add(
                "too-few-cells",
                f"merge_cells is a whole number of at least {len(levels)} (one output cell per level "
                f"{list(levels)}), got {cells!r}",
                "merge_cells",
            )
        order = _levels(c, data.get("output_order", list(levels)), "output_order", levels)
        if order is not None and sorted(order) != list(levels):
            c.add(
                "output-levels",
                f"output_order must list every level {list(levels)} once, got {list(order)}",
                "output_order",
            )
        cell_levels = _levels(c, data.get("cell_levels", list(levels)), "cell_levels", levels)
        raw_fuse = data.get("fuse", list(DEFAULT_FUSES))
        fuses = tuple(raw_fuse) if isinstance(raw_fuse, list) else (raw_fuse,)
        if not fuses or any(f not in FUSE_TYPES for f in fuses) or len(set(fuses)) != len(fuses):
            c.add(
                "bad-fuse",
                f"fuse is a fusion or a list of distinct ones among {', '.join(FUSE_TYPES)}, got {raw_fuse!r}",
                "fuse",
            )
        if len(c.problems) > before or order is None or cell_levels is None:
            return None
        return cls(tuple(levels), cells, order, cell_levels, fuses)

    @property
    def intermediate(self) -> int:
        """How many cells come before the output cells."""
        return self.cells - len(self.levels)

    def _cell_names(self) -> list[str]:
        """The cells' positional names, in build order: ``cell0..``, then ``out<L>`` in ``output_order``."""
        return [f"cell{k}" for k in range(self.intermediate)] + [f"out{lvl}" for lvl in self.output_order]

    def choices(self) -> dict[str, tuple[Any, ...]]:
        out: dict[str, tuple[Any, ...]] = {}
        candidates = [f"in{lvl}" for lvl in self.levels]
        for name in self._cell_names():
            out[f"{name}.inputs"] = tuple(f"{a}+{b}" for a, b in itertools.combinations(candidates, 2))
            if name.startswith("cell"):
                out[f"{name}.level"] = self.cell_levels
            if len(self.fuses) > 1:
                out[f"{name}.fuse"] = self.fuses
            candidates.append(name)
        return out

    def build(self, point: Point) -> tuple[tuple[NodeSpec, ...], dict[int, str]]:
        ids = {f"in{lvl}": f"in{lvl}" for lvl in self.levels}  # positional name -> node id
        level_of = {f"in{lvl}": lvl for lvl in self.levels}
        consumers = dict.fromkeys(ids, 0)
        per_level: dict[int, int] = {}
        nodes = []
        for name in self._cell_names():
            first, second = point[f"{name}.inputs"].split("+")
            inputs = [first, second]
            if name.startswith("out"):
                level = int(name.removeprefix("out"))
                node_id = name
                # NAS-FPN: the features of this level no cell has consumed so far join the output cell
                inputs += [k for k, n in consumers.items() if n == 0 and level_of[k] == level and k not in inputs]
            else:
                level = int(point[f"{name}.level"])
                per_level[level] = per_level.get(level, 0) + 1
                node_id = f"p{level}_{per_level[level]}"
            for k in inputs:
                consumers[k] += 1
            fuse = point[f"{name}.fuse"] if len(self.fuses) > 1 else self.fuses[0]
            nodes.append(NodeSpec(id=node_id, level=level, inputs=tuple(ids[k] for k in inputs), fuse=fuse))
            ids[name], level_of[name], consumers[name] = node_id, level, 0
        return tuple(nodes), {lvl: f"out{lvl}" for lvl in self.levels}

    def to_dict(self) -> dict[str, Any]:
        return {
            "merge_cells": self.cells,
            "output_order": list(self.output_order),
            "cell_levels": list(self.cell_levels),
            "fuse": list(self.fuses),
        }
