"""The two consoles every command prints on: ``out`` (stdout: tables, YAML, reports) and ``err`` (stderr:
progress, notices and errors), so that piped output holds only results; and :class:`Verbosity`, how much
progress goes on ``err``."""

from __future__ import annotations

import sys
from enum import IntEnum

from rich.console import Console

# Pipes and CI logs get a wide console so tables and messages are not folded at 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)


class Verbosity(IntEnum):
    """How much a command says on stderr while it works.

    ``QUIET``: errors and failed runs only (the command's results and summary still go to stdout).
    ``NORMAL``: bars on a terminal; plain lines where stderr is not one.
    ``VERBOSE``: the plain lines also on a terminal, beside the bars, and each finished run's config hash,
    data set and costs.
    """

    QUIET = 0
    NORMAL = 1
    VERBOSE = 2
