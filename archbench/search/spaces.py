"""Search space files of both kinds, by file or by the name of a shipped one: a scaling space (the coefficients of a
scaling rule, :mod:`archbench.search.space`) or a topology space (a family of neck graphs, a file with a ``graph``
field, :mod:`archbench.search.graphs.space`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from archbench.errors import UserError
from archbench.files import read_yaml_file
from archbench.search.graphs.space import TopologySpace, parse_topology_space
from archbench.search.space import ScalingSpace, parse_space
from archbench.search.space_rules import SpaceError

#: what a search varies: a scaling rule's coefficients, or the neck graph itself
Space = ScalingSpace | TopologySpace
#: the shipped spaces, usable by name: the checkout's top-level ``search_spaces/``, which pyproject.toml maps into the
#: package as ``archbench.search_spaces`` (a regular package installed as files, so its folder is a file-system path)
SHIPPED_SPACES = Path(str(resources.files("archbench.search_spaces")))
DEFAULT_SPACE = "efficientdet_family"


def resolve_space(ref: str | Path) -> Path:
    """A search space file: ``ref`` itself when it exists, else the shipped space of that name
    (``efficientdet_family`` -> ``search_spaces/efficientdet_family.yaml``); UserError otherwise."""
    path = Path(ref)
    if path.exists():
        return path
    shipped = SHIPPED_SPACES / f"{ref}.yaml"
    if path.suffix == "" and path.name == str(ref) and shipped.is_file():
        return shipped
    raise UserError(
        f"--space {ref}: no such file, and not the name of a shipped space "
        f"({', '.join(shipped_space_names()) or f'none found in {SHIPPED_SPACES}'})"
    )


def shipped_space_names() -> list[str]:
    """The names ``--space`` accepts besides a file, sorted."""
    return sorted(p.stem for p in SHIPPED_SPACES.glob("*.yaml"))


def load_space(path: str | Path) -> Space:
    """Load and validate a search space file, a topology space when it has a ``graph`` field and a scaling space
    otherwise; raises ``SpaceError`` listing every problem."""
    source = str(path)
    raw, problems = read_yaml_file(path)
    if not problems:
        parse = parse_topology_space if isinstance(raw, dict) and "graph" in raw else parse_space
        space, problems = parse(raw, source)
        if space is not None:
            return space
    raise SpaceError(source, problems)
