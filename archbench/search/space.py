"""Scaling spaces: YAML files naming the scaling-rule coefficients a search varies, and their ranges.

A space builds one parametric rule per trial (:mod:`archbench.models.scaling`): ``rule: compound`` is
EfficientDet's family of growth laws (``CompoundRule``), ``rule: efficientnet`` is EfficientNet's
alpha/beta/gamma scaling of a base model (``EfficientNetRule``). Every coefficient comes from,
in order of precedence, the trial (``search``), the file (``fixed``) or the ``base`` preset.

```yaml
name: efficientnet_abg
rule: efficientnet          # compound | efficientnet
base: proxy                 # preset giving every coefficient not fixed or searched
phis: [1]                   # each trial trains (and is scored at) these phi
fixed: {anchor_size: 2.0}
search:
  alpha: {low: 1.0, high: 2.0, step: 0.5}   # float; `step` or `log: true` optional
  beta:  {low: 1.0, high: 1.25, step: 0.25}
  gamma: {low: 1.0, high: 1.5}
constraint: {product: 2.0, solve: gamma}    # alpha * beta**2 * gamma**2 = product
```

The constraint is enforced exactly by solving: the two other coefficients are sampled and the
``solve`` one is computed from them; a trial whose solved value falls outside its range is
rejected before training. A bad file is refused with every problem listed (file, field, rule).

Layer counts and sizes are rounded, so a continuous coefficient has plateaus: the shipped spaces step
a coefficient wherever one step of it is one layer, 8 channels or one resolution multiple at
the phis they train (tests/test_search_space.py checks that no step, and no continuous range, collapses).
"""

from __future__ import annotations

import hashlib
import json
import math
import typing
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from archbench.errors import Problem, UserError
from archbench.models.scaling import RULE_KINDS, CompoundRule, ParametricRule, get_rule
from archbench.search.space_rules import Checker, Infeasible, SpaceError

if TYPE_CHECKING:  # the sampling methods take a trial; naming the shipped spaces (search --help) needs no Optuna
    import optuna

TOP_FIELDS = {"name", "description", "rule", "base", "phis", "fixed", "search", "constraint"}
RANGE_FIELDS = {"low", "high", "step", "log"}
#: exponent of each coefficient in EfficientNet's FLOPs constraint alpha * beta**2 * gamma**2
EXPONENTS = {"alpha": 1, "beta": 2, "gamma": 2}


@dataclass(frozen=True)
class Range:
    """One searched coefficient: ``low..high`` (inclusive), optionally stepped or log-uniform."""

    name: str
    low: float
    high: float
    integer: bool
    step: float | None = None
    log: bool = False

    def suggest(self, trial: optuna.Trial) -> float:
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Constraint:
    """``alpha * beta**2 * gamma**2 = product``; ``solve`` is computed from the two sampled coefficients."""

    product: float
    solve: str

    def solved(self, values: dict[str, float]) -> float:
        others = math.prod(values[k] ** e for k, e in EXPONENTS.items() if k != self.solve)
        return (self.product / others) ** (1 / EXPONENTS[self.solve])


@dataclass(frozen=True)
class ScalingSpace:
    """A validated search space; :meth:`sample` draws a trial's coefficients, :meth:`rule` builds its rule."""

    name: str
    source: str
    rule_kind: str
    base: str
    phis: tuple[int, ...]
    fixed: dict[str, Any]
    ranges: tuple[Range, ...]
    constraint: Constraint | None = None
    description: str = ""
    _base_fields: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The space as data (stored with a study, so every worker and report sees the same space)."""
        return {
            "name": self.name,
            "source": self.source,
            "rule": self.rule_kind,
            "base": self.base,
            "phis": list(self.phis),
            "fixed": self.fixed,
            "search": {r.name: {"low": r.low, "high": r.high, "step": r.step, "log": r.log} for r in self.ranges},
            "constraint": {"product": self.constraint.product, "solve": self.constraint.solve}
            if self.constraint
            else None,
            "base_fields": {k: list(v) if isinstance(v, tuple) else v for k, v in self._base_fields.items()},
        }

    def digest(self) -> str:
        """16-hex hash of what decides the trials (not the name, file or description)."""
        d = {k: v for k, v in self.to_dict().items() if k not in ("name", "source")}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def sample(self, trial: optuna.Trial) -> dict[str, float]:
        """The trial's coefficients (the solved one included); raises ``Infeasible`` if the constraint can't hold."""
        constraint = self.constraint
        values = {r.name: r.suggest(trial) for r in self.ranges if constraint is None or r.name != constraint.solve}
        if constraint is not None:
            solve, solved = constraint.solve, constraint.solved(values)
            bounds = next(r for r in self.ranges if r.name == solve)
            if not bounds.contains(solved):
                raise Infeasible(
                    f"{solve} = {solved:.4f} solved from alpha * beta^2 * gamma^2 = "
                    f"{constraint.product:g} is outside its range {bounds.low:g}..{bounds.high:g}"
                )
            values[solve] = solved
        return values

    def rule(self, values: dict[str, float], name: str) -> ParametricRule:
        """The scaling rule of one trial's coefficients."""
        return RULE_KINDS[self.rule_kind](name=name, **{**self._base_fields, **self.fixed, **values})

    def corner(self, end: str) -> dict[str, float]:
        """Every searched coefficient at the ``low`` or ``high`` end of its range (the constraint ignored)."""
        return {r.name: getattr(r, end) for r in self.ranges}

    def at_phis(self, phis: tuple[int, ...]) -> ScalingSpace:
        """The space trained at other phis (``--phi``); ``SpaceError`` if its rules do not define them."""
        space = replace(self, phis=phis)
        c = Checker(self.source)
        _check_buildable(c, space)
        if c.problems:
            raise SpaceError(self.source, c.problems)
        return space


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _field_types(kind: str) -> dict[str, Any]:
    return {k: v for k, v in typing.get_type_hints(RULE_KINDS[kind]).items() if k != "name"}


def _check_value(c: Checker, name: str, value: Any, typ: Any, where: str) -> Any:
    """A fixed coefficient, converted to its field's type, or None when it is wrong."""
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        c.add("wrong-type", f"{name} is a whole number, got {value!r}", where)
    elif typ is float:
        if _is_number(value):
            return float(value)
        c.add("wrong-type", f"{name} is a number, got {value!r}", where)
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    else:
        c.add("wrong-type", f"{name} is a list of timm model names, got {value!r}", where)
    return None


def _check_range(c: Checker, name: str, spec: Any, typ: Any) -> Range | None:
    where = f"search.{name}"
    if typ not in (int, float):
        c.add("not-searchable", f"{name} can be fixed but not searched", where)
        return None
    if not isinstance(spec, dict):
        c.add("wrong-type", f"expected a mapping like {{low: 1, high: 2}}, got {spec!r}", where)
        return None
    c.unknown(spec, RANGE_FIELDS, where)
    ok = True
    for key in ("low", "high"):
        if key not in spec:
            c.add("missing-field", f"a range needs {key!r}", f"{where}.{key}")
            ok = False
    for key in ("low", "high", "step"):
        value = spec.get(key)
        if value is None:
            continue
        if not _is_number(value) or (typ is int and not isinstance(value, int)):
            kind = "a whole number" if typ is int else "a number"
            c.add("wrong-type", f"{name} is {kind}; {key} = {value!r}", f"{where}.{key}")
            ok = False
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        c.add("wrong-type", f"log is true or false, got {log!r}", f"{where}.log")
        ok = False
    if not ok:
        return None
    low, high = spec["low"], spec["high"]
    if low >= high:
        c.add("bad-range", f"low {low} must be below high {high}", where)
    elif step is not None and step <= 0:
        c.add("bad-range", f"step {step} must be positive", f"{where}.step")
    elif step is not None and log:
        c.add("bad-range", "a range is either stepped or log-uniform, not both", where)
    elif log and low <= 0:
        c.add("bad-range", f"a log-uniform range needs low > 0, got {low}", where)
    else:
        return Range(
            name,
            float(low) if typ is float else low,
            float(high) if typ is float else high,
            integer=typ is int,
            step=step,
            log=log,
        )
    return None


def _check_constraint(c: Checker, raw: Any, kind: str, searched: set[str]) -> Constraint | None:
    if raw is None:
        return None
    if kind != "efficientnet":
        c.add("constraint-rule", "alpha * beta^2 * gamma^2 applies to `rule: efficientnet` only", "constraint")
        return None
    data = c.mapping(raw, "constraint")
    c.unknown(data, {"product", "solve"}, "constraint")
    product: Any = data.get("product")
    solve: Any = data.get("solve")
    if not _is_number(product) or product <= 0:
        c.add("wrong-type", f"product is a positive number (EfficientNet: 2), got {product!r}", "constraint.product")
    if solve not in EXPONENTS:
        c.add("wrong-type", f"solve is one of alpha, beta, gamma, got {solve!r}", "constraint.solve")
    missing = [k for k in EXPONENTS if k not in searched]
    if missing:
        c.add(
            "constraint-params",
            f"the constraint needs ranges for alpha, beta and gamma under `search`; missing: {', '.join(missing)}",
            "constraint",
        )
    if c.problems:
        return None
    return Constraint(float(product), solve)


def parse_space(raw: Any, source: str) -> tuple[ScalingSpace | None, list[Problem]]:
    """Check parsed YAML; returns the space (None if any problem) and every problem found."""
    c = Checker(source)
    data = c.mapping(raw, "(top level)")
    if raw is not None and not data:
        return None, c.problems
    c.unknown(data, TOP_FIELDS, None)
    for key in ("name", "rule", "phis", "search"):
        if key not in data:
            c.add("missing-field", f"a search space needs {key!r}", key)
    name: Any = c.name(data)
    description = c.description(data)
    kind = data.get("rule")
    if "rule" in data and kind not in RULE_KINDS:
        c.add("unknown-rule", f"rule is one of {', '.join(RULE_KINDS)}, got {kind!r}", "rule")
        kind = None
    base_name = data.get("base", "proxy")
    base = None
    try:
        base = get_rule(base_name) if isinstance(base_name, str) else None
    except UserError:
        pass
    if base is None:
        c.add("unknown-preset", f"base is a preset name (proxy, efficientdet), got {base_name!r}", "base")
    elif kind == "compound" and not isinstance(base, CompoundRule):
        c.add(
            "bad-base",
            f"rule compound takes its other coefficients from a compound preset (proxy); "
            f"{base_name!r} is a per-phi table",
            "base",
        )
        base = None
    phis: Any = c.phis(data)
    if kind is None:
        return None, c.problems
    types = _field_types(kind)
    fixed: dict[str, Any] = {}
    for key, value in c.mapping(data.get("fixed"), "fixed").items():
        if key not in types:
            c.add(
                "unknown-param", f"{kind} rules have no coefficient {key!r}; known: {', '.join(types)}", f"fixed.{key}"
            )
        else:
            fixed[key] = _check_value(c, key, value, types[key], f"fixed.{key}")
    search = c.mapping(data.get("search"), "search")
    if "search" in data and not search:
        c.add("nothing-to-search", "search names no coefficient to vary", "search")
    ranges = []
    for key, spec in search.items():
        if key not in types:
            c.add(
                "unknown-param", f"{kind} rules have no coefficient {key!r}; known: {', '.join(types)}", f"search.{key}"
            )
        elif key in fixed:
            c.add("duplicate-param", f"{key} is both fixed and searched", f"search.{key}")
        else:
            r = _check_range(c, key, spec, types[key])
            if r is not None:  # else a problem was recorded and no space is built
                ranges.append(r)
    constraint = _check_constraint(c, data.get("constraint"), kind, set(search))
    if c.problems or base is None:
        return None, c.problems
    space = ScalingSpace(
        name,
        source,
        kind,
        base_name,
        tuple(phis),
        fixed,
        tuple(ranges),
        constraint,
        description,
        RULE_KINDS[kind].preset_coefficients(base),
    )
    _check_buildable(c, space)
    return (None if c.problems else space), c.problems


def _check_buildable(c: Checker, space: ScalingSpace) -> None:
    """Build the rule at both ends of every range and at every phi: catches phi > max_phi and the like."""
    if space.rule_kind == "efficientnet" and not any(space.phis):
        c.add("bad-phis", "an efficientnet rule at phi 0 is its base model whatever alpha, beta and gamma", "phis")
        return
    for corner in ("low", "high"):
        try:
            rule = space.rule(space.corner(corner), space.name)
            for phi in space.phis:
                rule.config(phi)
        except UserError as exc:
            c.add("bad-phis", exc.message, "phis")
            return
        except (TypeError, ValueError, ZeroDivisionError) as exc:
            c.add("unbuildable", f"the rule cannot be built from the {corner} ends of the ranges: {exc}", "search")
            return
