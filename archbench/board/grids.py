"""The pieces every board format renders: headings, paragraphs, tables of text cells, and the ``mean ± h`` cell.

:mod:`archbench.board.cells` and :mod:`archbench.board.cost_cells` build a board from them;
:mod:`archbench.board.formats` renders them as a terminal table, Markdown or HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Heading:
    """A heading; ``level`` 2 for a group or an appendix, 3 for a part of a group."""

    level: int
    text: str


@dataclass(frozen=True)
class Text:
    """One paragraph of plain text."""

    text: str


@dataclass(frozen=True)
class Grid:
    """A table of text cells (each row as long as ``headers``)."""

    headers: list[str]
    rows: list[list[str]]


Block = Heading | Text | Grid


def interval(mean: Any, half: Any, spec: str = "{:.3f}") -> str:
    """``mean ± half``; just the mean when the half-width is missing (one seed); ``-`` when the mean is."""
    if mean is None or pd.isna(mean):
        return "-"
    if half is None or pd.isna(half):
        return spec.format(mean)
    return f"{spec.format(mean)} ± {spec.replace('+', '').format(abs(half))}"
