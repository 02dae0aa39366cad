"""OPANAS's search space (Liang et al. 2021) as data: a chain of feature pyramids joined by information paths.

Pyramid F1 is the neck's inputs; F2..FN are built in order. Every pair Fi -> Fj (i < j) carries one path, chosen
among ``paths``; Fj at each level is the sum of what its incoming paths deliver there (OPANAS: a plain sum), and a
pyramid no path reaches is empty. The paths (over the spec's levels lo..hi; "conv" is the node op of the base
spec or of the run's ``--terms``):

- ``top_down``: t_hi = conv(x_hi), t_l = conv(x_l + up(t_l+1)), as OPANAS's code has it;
- ``bottom_up``: b_lo = conv(x_lo), b_l = conv(x_l + down(b_l-1));
- ``fusing_splitting``: the lower half of the levels is summed at its top level (a), the upper half at its bottom
  level (b); two convs of the concatenation [a, b] give beta_a at a's level and beta_b at b's level, and every
  level is resampled from the nearer of the two (OPANAS, on P2..P5: a at P3, b at P4);
- ``scale_equalizing``: y_l = conv(x_l + up(x_l+1) + down(x_l-1)). Deviation: OPANAS's path is SEPC's pyramid
  convolution, three deformable convs (one per neighbour, each shared across levels) summed; a spec has no shared
  or deformable convs, so one conv of the resampled sum stands in for it;
- ``skip``: x itself; ``none``: nothing.

``output: sum`` is OPANAS's neck output, the sum of F2..FN; ``output: last`` outputs FN. A pyramid whose paths
reach no output is left out with them by the space (the same graph as with those paths set to none), so graphs
that differ only there share a spec hash and train once.

Space file fields::

    graph: pyramid_paths
    pyramids: 4                          # F1 (the inputs) to F4
    paths: [top_down, bottom_up, fusing_splitting, scale_equalizing, skip, none]
    output: last                         # last (FN) | sum (F2 + ... + FN, OPANAS)

Parameters (Optuna categorical): ``F<i>-F<j>``, one path per pair. Node ids name the pyramid, the path's source
and type and the level (``f3_bu2_p5``: the bottom-up path F2 -> F3 at P5); ``f<j>_p<L>`` sums F<j> at level L.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from archbench.search.graphs.family import GraphFamily, Point
from archbench.search.space_rules import Checker, Infeasible
from archbench.spec.schema import NodeSpec

#: path type -> the short tag its node ids carry (None: the path makes no node)
PATHS: dict[str, str | None] = {
    "top_down": "td",
    "bottom_up": "bu",
    "fusing_splitting": "fs",
    "scale_equalizing": "se",
    "skip": None,
    "none": None,
}
OUTPUTS = ("last", "sum")
_NO_CONV = {"type": "none"}
Pyramid = dict[int, str]  # level -> the feature (input or node id) the pyramid holds there


@dataclass(frozen=True)
class PyramidPaths(GraphFamily):
    """``pyramids`` pyramids over ``levels``, each pair joined by one of ``paths``."""

    kind: ClassVar[str] = "pyramid_paths"
    fields: ClassVar[frozenset[str]] = frozenset({"pyramids", "paths", "output"})

    levels: tuple[int, ...]
    pyramids: int
    paths: tuple[str, ...]
    output: str

    @classmethod
    def parse(cls, c: Checker, data: Mapping[str, Any], levels: tuple[int, ...]) -> PyramidPaths | None:
        before = len(c.problems)
        pyramids: Any = data.get("pyramids")
        if not (isinstance(pyramids, int) and not isinstance(pyramids, bool) and pyramids >= 2):
            c.add(
                "wrong-type",
                f"pyramids is a whole number >= 2 (F1, the inputs, and F2..), got {pyramids!r}",
                "pyramids",
            )
        paths = data.get("paths", list(PATHS))
        if not (isinstance(paths, list) and paths and all(p in PATHS for p in paths) and len(set(paths)) == len(paths)):
            c.add(
                "bad-paths", f"paths is a list of distinct path types among {', '.join(PATHS)}, got {paths!r}", "paths"
            )
        elif not any(PATHS[p] for p in paths):
            c.add(
                "no-conv-path",
                f"paths {paths} cannot change the inputs (skip and none make no node): every "
                "graph would be the identity; add top_down, bottom_up, fusing_splitting or scale_equalizing",
                "paths",
            )
        output = data.get("output", "last")
        if output not in OUTPUTS:
            c.add("bad-value", f"output is one of {', '.join(OUTPUTS)}, got {output!r}", "output")
        if len(c.problems) > before:
            return None
        return cls(tuple(levels), pyramids, tuple(paths), output)

    def edges(self) -> list[tuple[int, int]]:
        """Every pair (i, j), i < j, in build order: by target, then by source."""
        return [(i, j) for j in range(2, self.pyramids + 1) for i in range(1, j)]

    def choices(self) -> dict[str, tuple[Any, ...]]:
        return {f"F{i}-F{j}": self.paths for i, j in self.edges()}

    def build(self, point: Point) -> tuple[tuple[NodeSpec, ...], dict[int, str]]:
        nodes: list[NodeSpec] = []
        built: dict[int, Pyramid] = {1: {lvl: f"in{lvl}" for lvl in self.levels}}
        for j in range(2, self.pyramids + 1):
            arriving: dict[int, list[str]] = {lvl: [] for lvl in self.levels}
            for i in range(1, j):
                path = point[f"F{i}-F{j}"]
                if i not in built or path == "none":
                    continue
                for lvl, ref in self._path(path, built[i], f"f{j}_{PATHS[path]}{i}", nodes).items():
                    arriving[lvl].append(ref)
            if any(arriving.values()):
                built[j] = self._sum(arriving, f"f{j}", nodes)
        if self.output == "last":
            if self.pyramids not in built:
                raise Infeasible(f"[empty-output] no path reaches F{self.pyramids}, the output pyramid")
            outputs = built[self.pyramids]
        else:
            made = [built[j] for j in range(2, self.pyramids + 1) if j in built]
            if not made:
                raise Infeasible("[empty-output] no path leaves F1: every pyramid F2.. is empty")
            outputs = self._sum({lvl: [p[lvl] for p in made] for lvl in self.levels}, "out", nodes)
        return tuple(nodes), outputs

    def _path(self, path: str, x: Pyramid, tag: str, nodes: list[NodeSpec]) -> Pyramid:
        """The nodes of ``path`` applied to pyramid ``x`` (appended to ``nodes``, ids ``<tag>_p<L>``); what it
        delivers at each level."""
        lo, hi = self.levels[0], self.levels[-1]
        out: Pyramid = {}

        def add(level: int, *inputs: str, **kw: Any) -> str:
            node_id = kw.pop("node_id", f"{tag}_p{level}")
            nodes.append(NodeSpec(id=node_id, level=level, inputs=inputs, **kw))
            return node_id

        if path == "skip":
            return dict(x)
        if path == "top_down":
            for lvl in range(hi, lo - 1, -1):
                out[lvl] = add(lvl, x[lvl], *([out[lvl + 1]] if lvl < hi else []))
        elif path == "bottom_up":
            for lvl in range(lo, hi + 1):
                out[lvl] = add(lvl, x[lvl], *([out[lvl - 1]] if lvl > lo else []))
        elif path == "scale_equalizing":
            for lvl in range(lo, hi + 1):
                out[lvl] = add(lvl, *(x[v] for v in (lvl, lvl + 1, lvl - 1) if v in x))
        else:  # fusing_splitting
            half = len(self.levels) // 2
            low, high = self.levels[:half], self.levels[half:]
            a = add(low[-1], *(x[v] for v in low), op=_NO_CONV, node_id=f"{tag}_a") if len(low) > 1 else x[low[0]]
            b = add(high[0], *(x[v] for v in high), op=_NO_CONV, node_id=f"{tag}_b") if len(high) > 1 else x[high[0]]
            beta_a = add(low[-1], a, b, fuse="concat")
            beta_b = add(high[0], a, b, fuse="concat")
            for lvl in self.levels:
                near = beta_a if lvl <= low[-1] else beta_b
                out[lvl] = near if lvl in (low[-1], high[0]) else add(lvl, near, op=_NO_CONV)
        return out

    def _sum(self, arriving: Mapping[int, list[str]], tag: str, nodes: list[NodeSpec]) -> Pyramid:
        """Per level, the one feature that arrives, or a sum node (no conv) of several."""
        out: Pyramid = {}
        for lvl, refs in arriving.items():
            unique = list(dict.fromkeys(refs))
            if len(unique) == 1:
                out[lvl] = unique[0]
            else:
                out[lvl] = f"{tag}_p{lvl}"
                nodes.append(NodeSpec(id=out[lvl], level=lvl, inputs=tuple(unique), fuse="sum", op=_NO_CONV))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"pyramids": self.pyramids, "paths": list(self.paths), "output": self.output}
