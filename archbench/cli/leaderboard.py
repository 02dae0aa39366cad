"""``archbench leaderboard``: the board of the recorded runs (table, Markdown, CSV, HTML or JSON) and its figures."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from archbench.board.aggregate import build_table, failed_runs, require_records
from archbench.board.formats import render
from archbench.board.iso import iso_flops
from archbench.board.plots import write_all
from archbench.board.provenance import setup_table
from archbench.cli.consoles import err


class BoardFormat(str, Enum):
    table = "table"
    md = "md"
    csv = "csv"
    html = "html"
    json = "json"


def leaderboard_cmd(
    results: Path = typer.Option(Path("results"), "--results", help="folder holding runs/"),
    task: str | None = typer.Option(None, "--task", help="det | seg (default: all tasks)"),
    fmt: BoardFormat = typer.Option(BoardFormat.table, "--format"),
    output: Path | None = typer.Option(None, "-o", "--output", help="write here instead of stdout"),
    plot: Path | None = typer.Option(None, "--plot", help="folder to write the PNG figures into"),
) -> None:
    """Mean +- std over seeds per (task, data, preset, neck, phi), rank, Pareto front, iso-FLOPs comparison."""
    records = require_records(results, task)
    table = build_table(records, task)
    figures = write_all(table, plot) if plot is not None else []
    for path in figures:
        err.print(f"wrote {path}")
    text = render(
        table,
        failed_runs(records),
        iso_flops(table),
        fmt.value,
        output,
        setup=setup_table(records, task),
        figures=figures,
    )
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        err.print(f"wrote {output}")
