"""What every search space file shares, scaling and topology alike: the error that lists a file's problems, the
collector of those problems, and the exception that rejects one sampled point before training."""

from __future__ import annotations

import re
from typing import Any

from archbench.errors import Problem, UserError

#: what a space's ``name`` may hold (it becomes part of study names and file names)
NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class Infeasible(Exception):
    """A sampled point breaks one of the space's rules (a constraint, a graph rule); the trial is rejected before
    training, with this message as its reason."""


class SpaceError(UserError):
    """A search space file broke one or more rules; ``problems`` lists them all."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: the search space has {len(problems)} problem(s):\n{lines}")
        self.problems = problems


class Checker:
    """Collects every problem of one space file, each located by its field."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def add(self, rule: str, message: str, where: str | None = None) -> None:
        self.problems.append(Problem(self.source, rule, message, field=where))

    def mapping(self, value: Any, where: str) -> dict:
        """``value`` when it is a mapping; {} (and a problem unless it is absent) otherwise."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add("wrong-type", f"expected a mapping, got {type(value).__name__}", where)
            return {}
        return value

    def unknown(self, data: dict, allowed: set[str], where: str | None) -> None:
        """A problem for every key of ``data`` outside ``allowed``."""
        for key in data:
            if key not in allowed:
                self.add(
                    "unknown-field",
                    f"unknown field {key!r}; allowed: {', '.join(sorted(allowed))}",
                    f"{where}.{key}" if where else str(key),
                )

    def name(self, data: dict) -> Any:
        """The space's ``name`` (a problem when it is not letters, digits, '_', '.' or '-')."""
        name = data.get("name")
        if "name" in data and not (isinstance(name, str) and NAME.match(name)):
            self.add("bad-name", f"name is letters, digits, '_', '.' or '-', got {name!r}", "name")
        return name

    def phis(self, data: dict) -> Any:
        """The space's ``phis`` (a problem unless it is a list of distinct whole numbers >= 0)."""
        phis = data.get("phis")
        if "phis" in data and not (
            isinstance(phis, list)
            and phis
            and len(set(map(str, phis))) == len(phis)
            and all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in phis)
        ):
            self.add("bad-phis", f"phis is a list of distinct phi values >= 0, like [0, 1]; got {phis!r}", "phis")
        return phis

    def description(self, data: dict) -> str:
        """The space's ``description`` (a problem when it is not text)."""
        description = data.get("description", "")
        if not isinstance(description, str):
            self.add("wrong-type", "description is text", "description")
            return ""
        return description.strip()
