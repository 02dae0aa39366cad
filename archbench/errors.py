"""User-facing errors: the CLI prints them as one paragraph and exits non-zero, without a traceback.

``Problem`` is one located rule violation in a file a user wrote; checkers collect them all before refusing.
"""

from __future__ import annotations

from dataclasses import dataclass


class UserError(Exception):
    """A problem with what the user asked for or gave us (a file, a flag, a name).

    ``exit_code`` is what the CLI exits with; 2 is the convention for bad input.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Problem:
    """One rule an input file (a topology spec, a search space) breaks, located by file, node and field.

    ``severity`` is ``error`` (refused) or ``warning`` (allowed).
    """

    source: str
    rule: str
    message: str
    node: str | None = None
    field: str | None = None
    severity: str = "error"

    def __str__(self) -> str:
        where = self.source
        if self.node is not None:
            where += f": node '{self.node}'"
        if self.field is not None:
            where += f", field '{self.field}'" if self.node is not None else f": field '{self.field}'"
        return f"{where}: [{self.rule}] {self.message}"
