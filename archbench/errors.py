"""User-facing errors: the CLI prints them as one paragraph and exits non-zero, without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with what the user asked for or gave us (a file, a flag, a name).

    ``exit_code`` is what the CLI exits with; 2 is the convention for bad input.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
