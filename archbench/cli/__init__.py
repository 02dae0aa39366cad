"""The ``archbench`` command line: one module per command group, progress displays in one place."""

from archbench.cli.app import app, main

__all__ = ["app", "main"]
