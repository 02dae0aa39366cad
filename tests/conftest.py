"""Shared test helpers."""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from unittest.mock import patch

import torch


def pyramid(h: int, w: int, channels=(40, 112, 320), batch: int = 2, first_level: int = 3) -> list[torch.Tensor]:
    """Random backbone features for an h x w image, sized like a ceil-halving backbone."""
    out = []
    for i, c in enumerate(channels):
        s = 2 ** (first_level + i)
        out.append(torch.randn(batch, c, -(-h // s), -(-w // s)))
    return out


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    """Run the ``archbench`` entry point in-process (as the console script does), capturing output.

    In-process keeps the suite fast (no torch import per call); ``test_cli_specs`` also runs the
    real console script once to check that no traceback escapes.
    """
    from archbench import cli

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err), patch.object(sys, "argv", ["archbench", *args]):
        try:
            cli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return CliResult(code, out.getvalue(), err.getvalue())
