"""Topology specs: the data model (schema), YAML loading (loader) + validation (rules), graph traversal
(graph), built-in families and drawing."""

from __future__ import annotations

from pathlib import Path

from archbench.errors import Problem, UserError
from archbench.spec.families import builtin_names, builtin_spec
from archbench.spec.loader import SpecError, check_file, dump_yaml, load_spec_file, parse_yaml
from archbench.spec.schema import DEFAULT_LEVELS, NeckSpec, NodeSpec, OpSpec

__all__ = [
    "DEFAULT_LEVELS",
    "NeckSpec",
    "NodeSpec",
    "OpSpec",
    "Problem",
    "SpecError",
    "builtin_names",
    "builtin_spec",
    "check_file",
    "dump_yaml",
    "is_spec_path",
    "load_spec_file",
    "parse_yaml",
    "resolve_spec",
]


def is_spec_path(ref: str) -> bool:
    """True when a neck reference names a file rather than a built-in."""
    return ref.endswith((".yaml", ".yml")) or "/" in ref or (ref not in builtin_names() and Path(ref).is_file())


def resolve_spec(ref: str, levels: tuple[int, ...] | None = None) -> NeckSpec:
    """A built-in neck name or a spec file path -> a validated spec.

    ``levels`` regenerates a built-in family over another level range; a file's levels are
    its own, so asking for other levels is an error rather than a silent mismatch.
    """
    if is_spec_path(ref):
        if not Path(ref).is_file():
            raise UserError(f"{ref}: no such spec file")
        spec = load_spec_file(ref)
        if levels and tuple(levels) != spec.levels:
            raise UserError(
                f"{ref}: the spec is defined on levels {list(spec.levels)}, not {list(levels)}; "
                "edit its levels/nodes instead of passing --levels"
            )
        return spec
    return builtin_spec(ref, levels)
