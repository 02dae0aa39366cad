"""The board's output formats: a terminal table, Markdown, CSV, JSON or one self-contained HTML page.

``render`` writes a board (``archbench.board.compose.Board``) in one of ``FORMATS``. The text, Markdown and
HTML formats show the blocks of ``archbench.board.cells`` (the HTML tables sort by a click on a header, with a
small inline script); CSV and JSON hold the raw numbers of every table.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from archbench.board.cells import blocks
from archbench.board.compose import Board
from archbench.board.grids import Block, Grid, Heading, Text
from archbench.errors import UserError

FORMATS = ("table", "md", "csv", "json", "html")
#: The tables beside a CSV board, written as ``<stem>.<name>.csv`` (the leaderboard itself is ``<stem>.csv``).
_CSV_PARTS = (
    "groups",
    "equal_cost",
    "pareto_fronts",
    "equal_cost_fit",
    "schedules",
    "transfer",
    "published",
    "failed",
    "setup",
)


def _records_json(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (NaN -> null, inf -> null, numpy scalars -> Python)."""
    return json.loads(df.to_json(orient="records"))


def _parts(board: Board) -> dict[str, pd.DataFrame]:
    """The board's tables by the names JSON and CSV give them (``setup`` only when the board has it)."""
    parts = {
        "leaderboard": board.table,
        "groups": board.groups,
        "equal_cost": board.costs,
        "pareto_fronts": board.fronts,
        "equal_cost_fit": board.fits,
        "schedules": board.schedules,
        "transfer": board.transfer,
        "published": board.published,
        "failed": board.failed,
    }
    if board.setup is not None:
        parts["setup"] = board.setup
    return parts


def render_json(board: Board) -> str:
    """Every table of the board with raw numbers: ``{"reference": ..., "leaderboard": [...], "groups": [...],
    "equal_cost": [...], "pareto_fronts": [...], "equal_cost_fit": [...], "schedules": [...], "transfer": [...],
    "published": [...], "failed": [...]}`` (and ``"setup"``)."""
    doc: dict[str, Any] = {"reference": board.reference}
    doc.update({name: _records_json(df) for name, df in _parts(board).items()})
    return json.dumps(doc, indent=2) + "\n"


def render_csv(board: Board) -> str:
    """The leaderboard as CSV with raw numbers (mean, std, 95 % half-width and the verdicts in separate columns)."""
    return board.table.to_csv(index=False)


def _md_table(grid: Grid) -> str:
    """A Markdown table (``|`` in a cell escaped)."""

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|").replace("\n", " ") for v in values) + " |"

    return "\n".join([line(grid.headers), "| " + " | ".join("---" for _ in grid.headers) + " |", *map(line, grid.rows)])


def _md_block(block: Block) -> str:
    """One block as Markdown."""
    if isinstance(block, Heading):
        return "#" * block.level + " " + block.text
    if isinstance(block, Text):
        return block.text
    return _md_table(block) if block.rows else "None."


_TITLE = "archbench leaderboard"
_PREAMBLE = "Derived from the run records by `archbench leaderboard`: regenerate it, do not edit it."


def render_md(board: Board, figures: Sequence[str] = ()) -> str:
    """Markdown: a title, the blocks of :func:`archbench.board.cells.blocks`, then ``figures`` (image paths)."""
    text = f"# {_TITLE}\n\n{_PREAMBLE}\n\n" + "\n\n".join(_md_block(b) for b in blocks(board)) + "\n"
    if figures:
        text += "\n## Figures\n\n" + "\n\n".join(f"![{Path(f).stem}]({f})" for f in figures) + "\n"
    return text


def render_rich(board: Board, width: int = 200) -> str:
    """Rich terminal tables under their headings, returned as text (ANSI styling only when printed)."""
    console = Console(file=io.StringIO(), width=width, record=True)
    for block in blocks(board):
        if isinstance(block, Heading) and block.level <= 2:
            console.rule(escape(block.text))
        elif isinstance(block, Heading):
            console.print(f"[bold]{escape(block.text)}")
        elif isinstance(block, Text):
            console.print(escape(block.text))
        elif not block.rows:
            console.print("None.")
        else:
            t = Table()
            for h in block.headers:
                t.add_column(h, no_wrap=True)
            for row in block.rows:
                t.add_row(*row)
            console.print(t)
    return console.export_text()


#: A cell that reads as a number (right-aligned); any other text is left-aligned.
_NUMBER = re.compile(r"^[-+]?\d")


def _html_cell(text: str) -> str:
    """One ``<td>``: numbers right-aligned (the default), text left-aligned (class ``t``)."""
    return f"<td>{html.escape(text)}</td>" if _NUMBER.match(text) else f'<td class="t">{html.escape(text)}</td>'


def _html_block(block: Block) -> str:
    """One block as HTML; tables are sortable by clicking a header (see ``_SORT_SCRIPT``)."""
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Text):
        return f"<p>{html.escape(block.text)}</p>"
    if not block.rows:
        return "<p>None.</p>"
    head = "".join(f'<th title="sort">{html.escape(h)}</th>' for h in block.headers)
    body = "".join("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in block.rows)
    return (
        f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    )


def _figure_tags(board: Board) -> list[str]:
    """``<img>`` tags with the plots embedded as base64 PNG."""
    from archbench.board import plots  # matplotlib: loaded only where figures are drawn

    tags = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in plots.write_all(board.table, Path(tmp), fronts=board.fronts):
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            tags.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}">'
                f"<figcaption>{html.escape(path.stem)}</figcaption></figure>"
            )
    return tags


_CSS = (
    "body{font-family:sans-serif;margin:2em;max-width:100%}p{max-width:75em}"
    ".scroll{overflow-x:auto;margin-bottom:1.5em}table{border-collapse:collapse}"
    "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}"
    "th{background:#eee;cursor:pointer;user-select:none}th[data-order=asc]::after{content:' \\25B2'}"
    "th[data-order=desc]::after{content:' \\25BC'}tbody tr:nth-child(even){background:#fafafa}"
    "td.t{text-align:left}h2{margin-top:2em;border-bottom:1px solid #ccc}img{max-width:100%}"
)

#: Click a header to sort its table by that column, ascending, and again for descending: a cell that starts with a
#: number (:data:`_NUMBER`) by that number, other text by its letters; in both directions the numbers come first,
#: then text (a missing value's "-", "reference") and then empty cells. No network.
_SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var row = th.parentNode, body = th.closest("table").tBodies[0];
    var i = Array.prototype.indexOf.call(row.children, th), asc = th.getAttribute("data-order") !== "asc";
    Array.prototype.forEach.call(row.children, function (h) { h.removeAttribute("data-order"); });
    th.setAttribute("data-order", asc ? "asc" : "desc");
    var keyed = Array.prototype.map.call(body.rows, function (tr) {
      var t = tr.cells[i].textContent.trim(), number = /@NUMBER@/.test(t);
      return {tr: tr, kind: number ? 0 : t ? 1 : 2, value: number ? parseFloat(t) : t};
    });
    keyed.sort(function (a, b) {
      if (a.kind !== b.kind) return a.kind - b.kind;
      var c = a.kind === 0 ? (a.value > b.value) - (a.value < b.value) : a.value.localeCompare(b.value);
      return asc ? c : -c;
    });
    keyed.forEach(function (k) { body.appendChild(k.tr); });
  });
});
""".replace("@NUMBER@", _NUMBER.pattern)


def render_html(board: Board) -> str:
    """One self-contained page: the blocks, sortable tables and the figures (base64 PNG); nothing external."""
    parts = "".join(_html_block(b) for b in blocks(board))
    figures = "".join(_figure_tags(board)) if not board.table.empty else "<p>No ok runs to plot.</p>"
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{_TITLE}</title>'
        f"<style>{_CSS}</style></head><body><h1>{_TITLE}</h1><p>{html.escape(_PREAMBLE)}</p>"
        + parts
        + f"<h2>Figures</h2>{figures}<script>{_SORT_SCRIPT}</script></body></html>\n"
    )


def _write(text: str, fmt: str, path: Path, board: Board) -> None:
    """``text`` to ``path``; for csv also the board's other tables beside it (``<stem>.equal_cost.csv`` ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if fmt == "csv":
        for name, df in _parts(board).items():
            if name in _CSV_PARTS:
                path.with_name(f"{path.stem}.{name}.csv").write_text(df.to_csv(index=False))


def render(board: Board, fmt: str, path: Path | None = None, figures: Sequence[Path] = ()) -> str:
    """Render ``board`` (:func:`archbench.board.compose.compose`) as ``fmt``; write to ``path`` if given.

    ``figures`` (PNG files already written) are linked from ``md``, relative to ``path``'s folder
    so the Markdown file and its figures can move together; the HTML page embeds its own.

    ``table`` (rich text), ``md`` and ``html`` show the blocks of :mod:`archbench.board.cells`. ``json`` holds
    every table with raw numbers. ``csv`` is the leaderboard (raw numbers); with a ``path`` the other tables
    are written beside it as ``<stem>.<name>.csv`` (groups, equal_cost, pareto_fronts, equal_cost_fit,
    schedules, transfer, published, failed, setup).
    Returns the rendered text (of the leaderboard, for csv).
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "json":
        text = render_json(board)
    elif fmt == "md":
        base = Path(path).parent if path is not None else Path.cwd()
        text = render_md(board, [Path(os.path.relpath(Path(f).resolve(), base.resolve())).as_posix() for f in figures])
    elif fmt == "html":
        text = render_html(board)
    elif fmt == "csv":
        text = render_csv(board)
    else:
        text = render_rich(board)
    if path is not None:
        _write(text, fmt, Path(path), board)
    return text
