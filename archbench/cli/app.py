"""The ``archbench`` command line: the typer app, its command groups, and ``main``.

Each command lives in the module of its group (``specs``, ``data``, ``profile``, ``run``, ``leaderboard``,
``search``) and is a thin shell over the package that does the work. User errors (``UserError``) print
one paragraph on stderr and exit with their code (2 for bad input) and never a traceback.

Start-up stays light: the command modules import torch, Optuna, pandas and matplotlib inside the commands that
use them, so ``--help``, ``--version``, ``specs`` and ``leaderboard`` never load the training stack
(tests/test_cli_startup.py checks which modules they load).
"""

from __future__ import annotations

import sys
import warnings

import typer

from archbench import __version__
from archbench.cli import data, specs
from archbench.cli.consoles import err, out
from archbench.cli.evaluate import eval_cmd
from archbench.cli.leaderboard import leaderboard_cmd
from archbench.cli.predict import predict_cmd
from archbench.cli.profile import profile_cmd
from archbench.cli.run import run_cmd
from archbench.cli.search import search_cmd
from archbench.errors import UserError
from archbench.quiet import hide_dependency_deprecations

app = typer.Typer(
    help="Benchmark multi-scale feature-fusion necks on equal terms.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"archbench {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="print archbench's version and exit"
    ),
) -> None:
    """The options given before a command (the app's help text is the Typer's above)."""


app.add_typer(specs.app, name="specs")
app.add_typer(data.app, name="data", help="Make and inspect datasets (the built-in generated COCO-format set).")
app.command("profile")(profile_cmd)
app.command("run")(run_cmd)
app.command("leaderboard")(leaderboard_cmd)
app.command("search")(search_cmd)
app.command("eval")(eval_cmd)
app.command("predict")(predict_cmd)


def main() -> None:
    """Console-script entry point (and ``python -m archbench``, which torchrun starts): run the app with the
    dependencies' deprecation warnings hidden, turning user errors into a message and exit code."""
    with warnings.catch_warnings():  # an in-process caller (the tests) gets its own filters back
        hide_dependency_deprecations()
        try:
            app()
        except UserError as exc:
            err.print(f"error: {exc.message}", markup=False, highlight=False)
            sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
