"""The two consoles every command prints on: ``out`` (stdout: tables, YAML, reports) and ``err`` (stderr:
progress, notices and errors), so that piped output holds only results."""

from __future__ import annotations

import sys

from rich.console import Console

# Pipes and CI logs get a wide console so tables and messages are not folded at 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)
