"""The board's output formats: a terminal table, Markdown, CSV, JSON or one self-contained HTML page.

``render`` writes the leaderboard, iso-FLOPs and failed-runs tables (and how the runs were made)
in one of ``FORMATS``. The text, Markdown and HTML formats show the cells of
``archbench.board.cells``; CSV and JSON hold the raw numbers.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from archbench.board import plots
from archbench.board.cells import sections
from archbench.errors import UserError

FORMATS = ("table", "md", "csv", "json", "html")


def _records_json(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (NaN -> null, numpy scalars -> Python)."""
    return json.loads(df.to_json(orient="records"))


def render_json(table: pd.DataFrame, failed: pd.DataFrame, iso: pd.DataFrame, setup: pd.DataFrame | None = None) -> str:
    """``{"leaderboard": [...], "iso_flops": [...], "failed": [...]}`` with raw numbers (and ``"setup"`` if given)."""
    doc = {"leaderboard": _records_json(table), "iso_flops": _records_json(iso), "failed": _records_json(failed)}
    if setup is not None:
        doc["setup"] = _records_json(setup)
    return json.dumps(doc, indent=2) + "\n"


def render_csv(table: pd.DataFrame) -> str:
    """The leaderboard as CSV with raw numbers (mean and std in separate columns)."""
    return table.to_csv(index=False)


def _markdown(title: str, headers: list[str], cells: list[list[str]]) -> str:
    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|").replace("\n", " ") for v in values) + " |"

    if not cells:
        return f"## {title}\n\nNone.\n"
    body = [line(headers), "| " + " | ".join("---" for _ in headers) + " |", *[line(c) for c in cells]]
    return f"## {title}\n\n" + "\n".join(body) + "\n"


def render_md(
    table: pd.DataFrame,
    failed: pd.DataFrame,
    iso: pd.DataFrame,
    setup: pd.DataFrame | None = None,
    figures: Sequence[str] = (),
) -> str:
    """Markdown: a title, then one section per table, then ``figures`` (image paths or URLs) if any."""
    title = (
        "# archbench leaderboard\n\n"
        "Derived from the run records by `archbench leaderboard`: regenerate it, do not edit it.\n\n"
    )
    text = title + "\n".join(_markdown(*s) for s in sections(table, failed, iso, setup))
    if figures:
        text += "\n## Figures\n\n" + "\n\n".join(f"![{Path(f).stem}]({f})" for f in figures) + "\n"
    return text


def render_rich(
    table: pd.DataFrame, failed: pd.DataFrame, iso: pd.DataFrame, setup: pd.DataFrame | None = None, width: int = 200
) -> str:
    """Rich terminal tables, returned as text (ANSI styling only when printed to a terminal)."""
    console = Console(file=io.StringIO(), width=width, record=True)
    for title, headers, cells in sections(table, failed, iso, setup):
        t = Table(title=title)
        for h in headers:
            t.add_column(h)
        for row in cells:
            t.add_row(*row)
        console.print(t)
    return console.export_text()


def _html_table(headers: list[str], cells: list[list[str]]) -> str:
    if not cells:
        return "<p>None.</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure_tags(table: pd.DataFrame) -> list[str]:
    """``<img>`` tags with the plots embedded as base64 PNG."""
    tags = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in plots.write_all(table, Path(tmp)):
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            tags.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}">'
                f"<figcaption>{html.escape(path.stem)}</figcaption></figure>"
            )
    return tags


_CSS = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
    "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#eee}"
    "img{max-width:100%}"
)


def render_html(table: pd.DataFrame, failed: pd.DataFrame, iso: pd.DataFrame, setup: pd.DataFrame | None = None) -> str:
    """One self-contained page: the tables and the figures (base64 PNG), no external files."""
    parts = [
        f"<h2>{html.escape(title)}</h2>{_html_table(headers, cells)}"
        for title, headers, cells in sections(table, failed, iso, setup)
    ]
    figures = "".join(_figure_tags(table)) if not table.empty else "<p>No ok runs to plot.</p>"
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>archbench leaderboard</title>'
        f"<style>{_CSS}</style></head><body><h1>archbench leaderboard</h1>"
        + "".join(parts)
        + f"<h2>Figures</h2>{figures}</body></html>\n"
    )


def _write(
    text: str, fmt: str, path: Path, failed: pd.DataFrame, iso: pd.DataFrame, setup: pd.DataFrame | None
) -> None:
    """``text`` to ``path``; for csv also the other tables beside it (``<stem>.iso_flops.csv`` ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if fmt == "csv":
        path.with_name(f"{path.stem}.iso_flops.csv").write_text(iso.to_csv(index=False))
        path.with_name(f"{path.stem}.failed.csv").write_text(failed.to_csv(index=False))
        if setup is not None:
            path.with_name(f"{path.stem}.setup.csv").write_text(setup.to_csv(index=False))


def render(
    table: pd.DataFrame,
    failed: pd.DataFrame,
    iso: pd.DataFrame,
    fmt: str,
    path: Path | None = None,
    setup: pd.DataFrame | None = None,
    figures: Sequence[Path] = (),
) -> str:
    """Render the leaderboard, iso-FLOPs and failed tables (and ``setup``, if given) as ``fmt``;
    write to ``path`` if given.

    ``figures`` (PNG files already written) are linked from ``md``, relative to ``path``'s folder
    so the Markdown file and its figures can move together; the HTML page embeds its own.

    ``table`` (rich text), ``md`` and ``html`` show metrics as mean ± std. ``json`` holds all three
    tables with raw numbers. ``csv`` is the leaderboard (raw numbers); with a ``path`` the other
    two are written beside it as ``<stem>.iso_flops.csv`` and ``<stem>.failed.csv``.
    Returns the rendered text (of the leaderboard, for csv).
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "json":
        text = render_json(table, failed, iso, setup)
    elif fmt == "md":
        base = Path(path).parent if path is not None else Path.cwd()
        links = [Path(os.path.relpath(Path(f).resolve(), base.resolve())).as_posix() for f in figures]
        text = render_md(table, failed, iso, setup, links)
    elif fmt == "html":
        text = render_html(table, failed, iso, setup)
    elif fmt == "csv":
        text = render_csv(table)
    else:
        text = render_rich(table, failed, iso, setup)
    if path is not None:
        _write(text, fmt, Path(path), failed, iso, setup)
    return text
