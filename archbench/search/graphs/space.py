"""Topology spaces: a YAML file naming a family of neck graphs (``graph``), its choices, the spec whose spec-wide
settings every graph takes (``base``), and where each graph trains (``preset``, ``phis``).

```yaml
name: nasfpn_cells
graph: merge_cells            # merge_cells (NAS-FPN) | pyramid_paths (OPANAS); their own fields follow
base: nasfpn                  # a built-in or a spec file: levels, op, resampling, extra levels, projections
preset: proxy                 # the scaling preset every graph is built at
phis: [0]                     # each trial trains (and is scored at) these phi
merge_cells: 7
fuse: [sum, attention]
references:                   # points enqueued as the study's first trials, named
  nasfpn: {cell0.inputs: in4+in6, cell0.level: 4, ...}
```

A point of the space (one value per parameter) becomes an ordinary spec: the family's nodes over the base's
settings, nodes no output depends on dropped, checked by the spec rules, named ``<space>-<first 8 hex of its spec
hash>`` (graphs that compile to the same spec share name, hash and records). A point that forms no neck raises
:class:`~archbench.search.space_rules.Infeasible` with the rule it broke; a file that breaks a rule is refused
with every problem listed (file, field, rule), its references built, before any training.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archbench.errors import Problem, UserError
from archbench.models.scaling import get_rule
from archbench.search.graphs.family import GraphFamily, Point
from archbench.search.graphs.merge_cells import MergeCells
from archbench.search.graphs.pyramid_paths import PyramidPaths
from archbench.search.space_rules import Checker, Infeasible, SpaceError
from archbench.spec import builtin_names, builtin_spec, resolve_spec
from archbench.spec.graph import live_nodes
from archbench.spec.rules import graph_problems
from archbench.spec.schema import NeckSpec

if TYPE_CHECKING:  # sampling takes a trial; loading a space needs no Optuna
    import optuna

FAMILIES: dict[str, type[GraphFamily]] = {f.kind: f for f in (MergeCells, PyramidPaths)}
TOP_FIELDS = frozenset({"name", "description", "graph", "base", "preset", "phis", "references"})


@dataclass(frozen=True)
class TopologySpace:
    """A validated topology space: :meth:`sample` draws a trial's point, :meth:`spec` builds its graph."""

    name: str
    source: str
    family: GraphFamily
    base_ref: str
    base: NeckSpec
    preset: str
    phis: tuple[int, ...]
    references: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The space as data (stored with a study, so every worker and report sees the same space)."""
        return {
            "name": self.name,
            "source": self.source,
            "graph": self.family.kind,
            **self.family.to_dict(),
            "base": self.base_ref,
            "base_hash": self.base.spec_hash(),
            "preset": self.preset,
            "phis": list(self.phis),
            "references": self.references,
        }

    def digest(self) -> str:
        """16-hex hash of what decides the trials (not the name, file or description)."""
        d = {k: v for k, v in self.to_dict().items() if k not in ("name", "source", "base")}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """The trial's point: one categorical suggestion per parameter."""
        return {name: trial.suggest_categorical(name, list(c)) for name, c in self.family.choices().items()}

    def spec(self, point: Point) -> NeckSpec:
        """The graph of ``point`` as a validated spec named ``<space>-<hash8>``; ``Infeasible`` naming the rule
        when the point forms no neck."""
        nodes, outputs = self.family.build(point)
        draft = replace(self.base, name=self.name, description="", family=None, nodes=nodes, outputs=outputs)
        live = live_nodes(draft)
        spec = replace(draft, nodes=tuple(n for n in nodes if n.id in live))
        errors = [p for p in graph_problems(spec, self.name) if p.severity == "error"]
        if errors:
            raise Infeasible(
                "; ".join(f"[{p.rule}] {p.message}" + (f" (node {p.node})" if p.node else "") for p in errors)
            )
        digest = spec.spec_hash()
        return replace(
            spec,
            name=f"{self.name}-{digest[:8]}",
            description=f"A graph of the topology space {self.name} ({self.family.kind}, base {self.base_ref}), "
            f"spec hash {digest}, built by archbench search.",
        )

    def at_phis(self, phis: tuple[int, ...]) -> TopologySpace:
        """The space trained at other phis (``--phi``); ``SpaceError`` if its preset does not define them."""
        c = Checker(self.source)
        _preset(c, self.preset, self.base, list(phis))
        if c.problems:
            raise SpaceError(self.source, c.problems)
        return replace(self, phis=tuple(phis))

    def same_as_builtin(self, reference: str) -> bool:
        """Whether reference point ``reference`` is the built-in neck of that name node for node (same spec
        hash), rather than the space's rendition of it."""
        return (
            reference in builtin_names()
            and self.spec(self.references[reference]).spec_hash() == builtin_spec(reference).spec_hash()
        )


def _base(c: Checker, ref: Any, source: str) -> NeckSpec | None:
    if not isinstance(ref, str):
        c.add("wrong-type", f"base is a built-in neck name or a spec file, got {ref!r}", "base")
        return None
    relative = Path(source).parent / ref
    try:  # a spec file is looked up beside the space file first
        return resolve_spec(str(relative) if ref.endswith((".yaml", ".yml")) and relative.is_file() else ref)
    except UserError as exc:
        c.add("bad-base", exc.message, "base")
        return None


def _preset(c: Checker, name: Any, base: NeckSpec | None, phis: Any) -> None:
    from archbench.models.trunk import check_levels  # imports torch: not at import time (the CLI's --help)

    try:
        rule = get_rule(name) if isinstance(name, str) else None
    except UserError:
        rule = None
    if rule is None:
        c.add("unknown-preset", f"preset is a scaling preset's name (proxy, efficientdet), got {name!r}", "preset")
        return
    for phi in phis if isinstance(phis, list) else []:
        try:
            config = rule.config(phi)
            if base is not None:
                check_levels(base, config)
        except UserError as exc:
            c.add("bad-phis", exc.message, "phis")
            return


def _references(c: Checker, raw: Any, family: GraphFamily) -> dict[str, dict[str, Any]]:
    choices = family.choices()
    out: dict[str, dict[str, Any]] = {}
    for name, point in c.mapping(raw, "references").items():
        where = f"references.{name}"
        point = c.mapping(point, where)
        missing = [p for p in choices if p not in point]
        if missing:
            c.add("incomplete-reference", f"a reference names every parameter; missing: {', '.join(missing)}", where)
        for param, value in point.items():
            if param not in choices:
                c.add("unknown-param", f"the space has no parameter {param!r}", f"{where}.{param}")
            elif value not in choices[param]:
                shown = ", ".join(map(str, choices[param][:12])) + (", ..." if len(choices[param]) > 12 else "")
                c.add("bad-choice", f"{value!r} is not among {param}'s choices ({shown})", f"{where}.{param}")
        out[str(name)] = dict(point)
    return out


def parse_topology_space(raw: Any, source: str) -> tuple[TopologySpace | None, list[Problem]]:
    """Check parsed YAML; returns the space (None if any problem) and every problem found."""
    c = Checker(source)
    data = c.mapping(raw, "(top level)")
    kind = data.get("graph")
    family_type = FAMILIES.get(kind) if isinstance(kind, str) else None
    if family_type is None:
        c.add("unknown-graph", f"graph is one of {', '.join(FAMILIES)}, got {kind!r}", "graph")
    c.unknown(data, set(TOP_FIELDS | (family_type.fields if family_type else set())), None)
    for key in ("name", "base", "phis"):
        if key not in data:
            c.add("missing-field", f"a topology space needs {key!r}", key)
    name, description, phis = c.name(data), c.description(data), c.phis(data)
    base = _base(c, data.get("base"), source) if "base" in data else None
    preset = data.get("preset", "proxy")
    _preset(c, preset, base, phis)
    if family_type is None or base is None:
        return None, c.problems
    family = family_type.parse(c, data, base.levels)
    if family is None or c.problems:
        return None, c.problems
    references = _references(c, data.get("references"), family)
    if c.problems:
        return None, c.problems
    space = TopologySpace(name, source, family, data["base"], base, preset, tuple(phis), references, description)
    for ref, point in references.items():
        try:
            space.spec(point)
        except Infeasible as exc:
            c.add("infeasible-reference", str(exc), f"references.{ref}")
    return (None if c.problems else space), c.problems
