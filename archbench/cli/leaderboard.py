"""``archbench leaderboard``: the board of the recorded runs (table, Markdown, CSV, HTML or JSON) and its figures."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from archbench.board import REFERENCE
from archbench.cli.consoles import err


class BoardFormat(str, Enum):
    table = "table"
    md = "md"
    csv = "csv"
    html = "html"
    json = "json"


def leaderboard_cmd(
    results: list[Path] = typer.Option(
        [Path("results")],
        "--results",
        help="folder holding runs/; repeat it to pool several folders into one board (latency sittings of all)",
    ),
    task: str | None = typer.Option(None, "--task", help="det | seg (default: all tasks)"),
    fmt: BoardFormat = typer.Option(BoardFormat.table, "--format"),
    output: Path | None = typer.Option(None, "-o", "--output", help="write here instead of stdout"),
    plot: Path | None = typer.Option(None, "--plot", help="folder to write the PNG figures into"),
    reference: str | None = typer.Option(
        None, "--reference", help=f"neck the paired differences are taken from (default: {REFERENCE})"
    ),
) -> None:
    """Per group and phi: mean and 95 % CI over seeds, paired difference from a reference neck, tie letters
    (per pair and pooled), pairs resolved, detectable differences, equivalence, rank stability; each neck at
    equal GFLOPs, parameters and latency with letters, and the Pareto fronts; the ranking against published
    comparisons."""
    # pandas loads here, matplotlib only where figures are drawn (--plot, --format html)
    from archbench.board.aggregate import pooled_records
    from archbench.board.compose import compose
    from archbench.board.formats import render
    from archbench.board.latency import read_sittings

    records = pooled_records(results, task)
    sittings = sorted((s for folder in results for s in read_sittings(folder)), key=lambda s: s.measured_at)
    board = compose(records, task, reference, sittings=sittings[::-1])  # newest first, as read_sittings gives
    figures: list[Path] = []
    if plot is not None:
        from archbench.board.plots import write_all

        figures = write_all(board.table, plot, fronts=board.fronts)
    for path in figures:
        err.print(f"wrote {path}")
    text = render(board, fmt.value, output, figures=figures)
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        err.print(f"wrote {output}")
