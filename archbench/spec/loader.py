"""Reading specs from YAML / dicts, with every problem reported at once.

``parse_spec`` never raises on bad content: it returns the spec it could build (or None) and
a list of ``Problem``s, type errors and graph-rule violations (:mod:`archbench.spec.rules`)
together, each naming the file, node id, field and rule. ``load_spec_file`` raises ``SpecError``
carrying all of them.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from archbench.errors import Problem, UserError
from archbench.files import load_yaml_text, read_yaml_file
from archbench.spec import schema as m
from archbench.spec.rules import graph_problems
from archbench.spec.schema import AttentionSpec, NeckSpec, NodeSpec, OpSpec, ResampleSpec


class SpecError(UserError):
    """A spec broke one or more rules; ``problems`` lists them all."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        errors = [p for p in problems if p.severity == "error"]
        lines = "\n".join(f"  - {p}" for p in errors)
        super().__init__(f"{source}: the topology spec has {len(errors)} problem(s):\n{lines}")
        self.problems = problems


_TOP_FIELDS = {
    "name",
    "description",
    "family",
    "levels",
    "repeat",
    "fuse",
    "op",
    "resample",
    "attention",
    "extra_levels",
    "input_projection",
    "nodes",
    "outputs",
}
_NODE_FIELDS = {"id", "level", "inputs", "fuse", "op", "residual"}
_OP_CHOICES = {
    "type": m.OP_TYPES,
    "norm": m.NORM_TYPES,
    "act": m.ACT_TYPES,
    "order": m.OP_ORDERS,
}


class _Collector:
    """Accumulates problems for one source while values are checked."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def add(
        self, rule: str, message: str, node: str | None = None, field: str | None = None, severity: str = "error"
    ) -> None:
        self.problems.append(Problem(self.source, rule, message, node, field, severity))

    def typed(self, value: Any, kind: type | tuple[type, ...], what: str, field: str, node: str | None = None) -> bool:
        # bool is an int subclass; a level of `true` is a type error, not level 1.
        ok = isinstance(value, kind) and not (isinstance(value, bool) and bool not in _as_tuple(kind))
        if not ok:
            self.add("wrong-type", f"expected {what}, got {type(value).__name__} {value!r}", node, field)
        return ok

    def choice(
        self, value: Any, allowed: tuple[str, ...], field: str, node: str | None = None, rule: str = "unknown-type"
    ) -> bool:
        if not self.typed(value, str, "a string", field, node):
            return False
        if value not in allowed:
            self.add(rule, f"{value!r} is not one of {', '.join(allowed)}", node, field)
            return False
        return True


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _parse_op(raw: Any, c: _Collector, field: str, node: str | None) -> dict[str, Any] | None:
    """An op given as a mapping or as a bare type name (``op: none``); returns its fields."""
    if isinstance(raw, str):
        raw = {"type": raw}
    if not c.typed(raw, dict, "a mapping like {type: sepconv, kernel: 3} or a type name", field, node):
        return None
    out: dict[str, Any] = {}
    known = {f.name for f in fields(OpSpec)}
    for key, val in raw.items():
        fname = f"{field}.{key}"
        if key not in known:
            c.add("unknown-field", f"ops have no field {key!r} (known: {', '.join(sorted(known))})", node, fname)
        elif key in _OP_CHOICES:
            if c.choice(val, _OP_CHOICES[key], fname, node):
                out[key] = val
        elif key == "kernel":
            if c.typed(val, int, "an odd positive integer", fname, node):
                if val < 1 or val % 2 == 0:
                    c.add("bad-value", f"kernel must be odd and positive, got {val}", node, fname)
                else:
                    out[key] = val
        elif key == "bias" and c.typed(val, bool, "true or false", fname, node):
            out[key] = val
        elif key == "convs" and c.typed(val, int, "a positive integer", fname, node):
            if val < 1:
                c.add("bad-value", f"convs must be >= 1, got {val}", node, fname)
            else:
                out[key] = val
    return out


def _parse_choices(raw: Any, c: _Collector, field: str, allowed: dict[str, tuple[str, ...]]) -> dict[str, str]:
    if not c.typed(raw, dict, "a mapping", field):
        return {}
    out = {}
    for key, val in raw.items():
        if key not in allowed:
            c.add("unknown-field", f"no field {key!r} (known: {', '.join(allowed)})", None, f"{field}.{key}")
        elif c.choice(val, allowed[key], f"{field}.{key}"):
            out[key] = val
    return out


def _parse_node(raw: Any, index: int, c: _Collector) -> NodeSpec | None:
    if not isinstance(raw, dict):
        c.add("wrong-type", f"node #{index} must be a mapping with id, level, inputs; got {raw!r}", None, "nodes")
        return None
    nid: Any = raw.get("id")
    label = nid if isinstance(nid, str) else f"#{index}"
    ok = True
    for key in raw:
        if key not in _NODE_FIELDS:
            known = ", ".join(sorted(_NODE_FIELDS))
            c.add("unknown-field", f"nodes have no field {key!r} (known: {known})", label, key)
    for key in ("id", "level", "inputs"):
        if key not in raw:
            c.add("missing-field", f"a node needs {key!r}", label, key)
            ok = False
    if "id" in raw:
        ok &= c.typed(nid, str, "a string id", "id", label)
    if "level" in raw:
        ok &= c.typed(raw["level"], int, "an integer level", "level", label)
    inputs = raw.get("inputs", [])
    if "inputs" in raw and c.typed(inputs, list, "a list of input ids", "inputs", label):
        if not inputs:
            c.add("no-inputs", "a node needs at least one input", label, "inputs")
            ok = False
        for ref in inputs:
            ok &= c.typed(ref, str, "input ids as strings", "inputs", label)
    else:
        ok = False
    fuse = raw.get("fuse")
    if fuse is not None and not c.choice(fuse, m.FUSE_TYPES, "fuse", label):
        fuse = None
    op = _parse_op(raw["op"], c, "op", label) if "op" in raw else None
    residual = raw.get("residual", False)
    if not c.typed(residual, bool, "true or false", "residual", label):
        residual = False
    if not ok:
        return None
    return NodeSpec(id=nid, level=raw["level"], inputs=tuple(inputs), fuse=fuse, op=op or None, residual=residual)


def parse_spec(raw: Any, source: str = "<spec>") -> tuple[NeckSpec | None, list[Problem]]:
    """Check a raw (YAML-decoded) spec; return the spec (None if it can't be built) and all problems."""
    c = _Collector(source)
    if not isinstance(raw, dict):
        c.add("wrong-type", f"a spec is a mapping with levels, nodes and outputs; got {type(raw).__name__}")
        return None, c.problems
    for key in raw:
        if key not in _TOP_FIELDS:
            known = ", ".join(sorted(_TOP_FIELDS))
            c.add("unknown-field", f"specs have no field {key!r} (known: {known})", None, str(key))
    buildable = True
    for key in ("levels", "nodes", "outputs"):
        if key not in raw:
            c.add("missing-field", f"a spec needs {key!r}", None, key)
            buildable = False

    name = raw.get("name", Path(source).stem)
    if not c.typed(name, str, "a string", "name"):
        name = Path(source).stem
    description = raw.get("description", "")
    if not c.typed(description, str, "a string", "description"):
        description = ""
    family = raw.get("family")
    if family is not None and not c.typed(family, dict, "a mapping", "family"):
        family = None

    levels = raw.get("levels", [])
    levels_ok = "levels" in raw
    if c.typed(levels, list, "a list of integer levels like [3, 4, 5, 6, 7]", "levels"):
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in levels):
            c.add("wrong-type", f"levels must be integers, got {levels!r}", None, "levels")
            buildable = levels_ok = False
        elif not levels or levels != list(range(levels[0], levels[0] + len(levels))):
            c.add(
                "bad-levels", f"levels must be a non-empty contiguous ascending range, got {levels!r}", None, "levels"
            )
            buildable = levels_ok = False
        elif levels[0] < 1:
            c.add("bad-levels", f"levels start at 1 (stride 2) or above, got {levels[0]}", None, "levels")
            buildable = levels_ok = False
    else:
        buildable = levels_ok = False

    defaults = NeckSpec(name="", levels=(), nodes=(), outputs={})
    fuse = raw.get("fuse", defaults.fuse)
    if not c.choice(fuse, m.FUSE_TYPES, "fuse"):
        fuse = defaults.fuse
    op = OpSpec(**(_parse_op(raw["op"], c, "op", None) or {})) if "op" in raw else OpSpec()
    resample_choices = {"up": m.UP_MODES, "down": m.DOWN_MODES, "down_pool": m.DOWN_POOLS}
    resample = ResampleSpec(**_parse_choices(raw.get("resample", {}), c, "resample", resample_choices))
    attention = AttentionSpec(
        **_parse_choices(
            raw.get("attention", {}), c, "attention", {"pool": m.ATTENTION_POOLS, "gate": m.ATTENTION_GATES}
        )
    )
    extra = raw.get("extra_levels", defaults.extra_levels)
    if not c.choice(extra, m.EXTRA_LEVEL_TYPES, "extra_levels"):
        extra = defaults.extra_levels
    projection = raw.get("input_projection", defaults.input_projection)
    if not c.choice(projection, m.PROJECTION_MODES, "input_projection"):
        projection = defaults.input_projection
    repeat = raw.get("repeat", defaults.repeat)
    if not c.typed(repeat, bool, "true or false", "repeat"):
        repeat = defaults.repeat

    nodes: list[NodeSpec] = []
    broken_ids: set[str] = set()  # nodes that failed to parse: references to them are not "unknown"
    raw_nodes = raw.get("nodes", [])
    if c.typed(raw_nodes, list, "a list of nodes", "nodes"):
        for i, rn in enumerate(raw_nodes):
            node = _parse_node(rn, i, c)
            if node is None:
                buildable = False
                if isinstance(rn, dict) and isinstance(rn.get("id"), str):
                    broken_ids.add(rn["id"])
            else:
                nodes.append(node)
    else:
        buildable = False
        levels_ok = False

    outputs: dict[int, str] = {}
    raw_out = raw.get("outputs", {})
    if c.typed(raw_out, dict, "a mapping level -> node id, like {3: out3}", "outputs"):
        for k, v in raw_out.items():
            if isinstance(k, bool) or not (isinstance(k, int) or (isinstance(k, str) and k.isdigit())):
                c.add("wrong-type", f"output keys are levels (integers), got {k!r}", None, "outputs")
                buildable = False
                continue
            lvl = int(k)
            if lvl in outputs:
                c.add("duplicate-output", f"level {lvl} is mapped twice", None, f"outputs.{k}")
                buildable = False
                continue
            if c.typed(v, str, "a node id", f"outputs.{k}"):
                outputs[lvl] = v
            else:
                buildable = False
    else:
        buildable = False

    if not levels_ok:
        return None, c.problems
    spec = NeckSpec(
        name=name,
        description=description,
        family=family,
        levels=tuple(levels),
        nodes=tuple(nodes),
        outputs=outputs,
        fuse=fuse,
        op=op,
        resample=resample,
        attention=attention,
        extra_levels=extra,
        input_projection=projection,
        repeat=repeat,
    )
    # Graph rules run on whatever parsed, so one pass reports type and graph problems together.
    problems = c.problems + graph_problems(spec, source, broken_ids)
    return (spec if buildable else None), problems


def parse_yaml(text: str, source: str) -> tuple[NeckSpec | None, list[Problem]]:
    """Parse YAML text; a syntax error is one problem naming the line and column."""
    raw, problems = load_yaml_text(text, source)
    return (None, problems) if problems else parse_spec(raw, source)


def check_file(path: str | Path) -> tuple[NeckSpec | None, list[Problem]]:
    """Read and check a spec file; an unreadable file is one problem."""
    raw, problems = read_yaml_file(path)
    return (None, problems) if problems else parse_spec(raw, str(path))


def require_valid(spec: NeckSpec | None, problems: list[Problem], source: str) -> NeckSpec:
    """The spec, or a ``SpecError`` listing every error (warnings do not refuse it)."""
    if spec is None or any(p.severity == "error" for p in problems):
        raise SpecError(source, problems)
    return spec


def load_spec_file(path: str | Path) -> NeckSpec:
    """Load and validate a spec file, raising ``SpecError`` with every problem."""
    spec, problems = check_file(path)
    return require_valid(spec, problems, str(path))


class _SpecDumper(yaml.SafeDumper):
    """Writes lists of scalars inline ([3, 4, 5]) and everything else in block style."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(x, (list, dict)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_SpecDumper.add_representer(list, _represent_list)


def dump_yaml(spec: NeckSpec) -> str:
    """YAML text that ``parse_yaml`` reads back into an equal spec (nodes one per line)."""
    d = spec.to_dict()
    nodes = d.pop("nodes")
    outputs = d.pop("outputs")
    head = yaml.dump(d, Dumper=_SpecDumper, sort_keys=False, width=100, allow_unicode=True)
    node_lines = "".join(
        "  - " + yaml.safe_dump(n, default_flow_style=True, sort_keys=False, width=1000).strip() + "\n" for n in nodes
    )
    out_line = yaml.safe_dump({"outputs": outputs}, default_flow_style=None, sort_keys=False, width=1000)
    node_block = "nodes:\n" + node_lines if nodes else "nodes: []\n"  # a node-less neck (the identity) as well
    return f"{head}{node_block}{out_line}"
