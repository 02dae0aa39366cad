"""The interface of a family of neck graphs: its choices as Optuna categorical parameters, and the nodes a point
of them builds. Each family also reads its own fields of a space file (``parse``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from archbench.search.space_rules import Checker
from archbench.spec.schema import NodeSpec

#: a point of a space: one value per parameter (the name of a choice, or a level)
Point = Mapping[str, Any]


class GraphFamily(ABC):
    """A family of graphs over fixed pyramid levels; a point names one value per parameter."""

    #: the space file's ``graph`` value
    kind: ClassVar[str]
    #: the fields of a space file this family reads, besides the common ones
    fields: ClassVar[frozenset[str]]

    @classmethod
    @abstractmethod
    def parse(cls, c: Checker, data: Mapping[str, Any], levels: tuple[int, ...]) -> GraphFamily | None:
        """The family of a space file's fields over ``levels`` (the base spec's), or None after recording every
        problem in ``c`` (each names its field and rule)."""

    @abstractmethod
    def choices(self) -> dict[str, tuple[Any, ...]]:
        """Every parameter and its choices, the same for every trial (Optuna's categorical distributions cannot
        change between trials)."""

    @abstractmethod
    def build(self, point: Point) -> tuple[tuple[NodeSpec, ...], dict[int, str]]:
        """The nodes and the output map of ``point``, keeping every rule of :mod:`archbench.spec.rules` (nodes no
        output depends on may remain: the space drops them). Raises :class:`~archbench.search.space_rules.Infeasible`
        when the point forms no neck."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The family's fields as the space file writes them (stored with a study)."""
