"""The registry of built-in families: each family module registers its generator with :func:`family`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from archbench.errors import UserError
from archbench.spec.schema import DEFAULT_LEVELS, NeckSpec, NodeSpec

Generator = Callable[..., NeckSpec]
_FAMILIES: dict[str, Generator] = {}
#: Built-in neck names -> (family, fixed generator arguments).
_BUILTINS: dict[str, tuple[str, dict[str, Any]]] = {}


def family(name: str, *variants: tuple[str, dict[str, Any]]) -> Callable[[Generator], Generator]:
    """Register a generator as family ``name`` and as built-in neck ``name`` (+ named variants)."""

    def register(fn: Generator) -> Generator:
        _FAMILIES[name] = fn
        _BUILTINS[name] = (name, {})
        for variant, kwargs in variants:
            _BUILTINS[variant] = (name, kwargs)
        return fn

    return register


def builtin_names() -> list[str]:
    """Names accepted wherever a neck is asked for, besides spec file paths."""
    return list(_BUILTINS)


def builtin_spec(name: str, levels: tuple[int, ...] | None = None) -> NeckSpec:
    """The built-in spec ``name`` generated over ``levels`` (default 3..7)."""
    if name not in _BUILTINS:
        raise UserError(
            f"unknown neck {name!r}: built-in necks are {', '.join(_BUILTINS)}, or give the path of a spec .yaml file"
        )
    fam, kwargs = _BUILTINS[name]
    lv = tuple(levels) if levels else DEFAULT_LEVELS
    spec = _FAMILIES[fam](levels=lv, **kwargs)
    args = {"levels": list(lv), **kwargs}
    return replace(spec, name=name, family={"name": fam, "args": args})


def check_levels(name: str, levels: tuple[int, ...], min_count: int = 2) -> tuple[int, int]:
    """(lowest, highest) of ``levels``; UserError unless they are a contiguous range of ``min_count``+ levels >= 1."""
    if len(levels) < min_count or list(levels) != list(range(levels[0], levels[0] + len(levels))) or levels[0] < 1:
        raise UserError(
            f"{name}: levels must be a contiguous range of at least {min_count} levels >= 1, got {list(levels)}"
        )
    return levels[0], levels[-1]


def node(nid: str, level: int, *inputs: str, **kw: Any) -> NodeSpec:
    """A node ``nid`` at ``level`` fusing ``inputs`` in order (``kw``: fuse, op, residual)."""
    return NodeSpec(id=nid, level=level, inputs=tuple(inputs), **kw)
