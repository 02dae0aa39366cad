"""Rendering rows of results (profile rows for now) as a terminal table, JSON or CSV.

Rows with a per-module breakdown (``archbench profile --by-module``, the ``"modules"`` key) carry it in
every format: JSON keeps it in each row, CSV becomes one line per (row, module), and the table is
followed by one module tree per row.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

#: Profile columns shown in the terminal table, with their headers and formats.
PROFILE_COLUMNS: list[tuple[str, str, str]] = [
    ("neck", "neck", "{}"),
    ("phi", "phi", "{}"),
    ("resolution", "res", "{}"),
    ("width", "W", "{}"),
    ("repeats", "D", "{}"),
    ("params_total", "params M", "{:.3f}"),
    ("params_backbone", "backbone M", "{:.3f}"),
    ("params_neck", "neck M", "{:.3f}"),
    ("params_head", "head M", "{:.3f}"),
    ("gflops", "GFLOPs", "{:.3f}"),
    ("gflops_backbone", "backbone", "{:.3f}"),
    ("gflops_neck", "neck", "{:.3f}"),
    ("gflops_head", "head", "{:.3f}"),
    ("gflops_elementwise", "elementwise*", "{:.3f}"),
    ("neck_params_ratio", "neck params x", "{:.2f}x"),
    ("neck_gflops_ratio", "neck GFLOPs x", "{:.2f}x"),
    ("latency_ms", "latency ms", "{:.1f}"),
    ("latency_mode", "latency mode", "{}"),
]
_MILLIONS = {"params_total", "params_backbone", "params_neck", "params_head"}
#: The fields of a profile row that name it on each CSV line of its modules.
MODULE_ROW_KEYS = ("neck", "spec_hash", "preset", "phi", "resolution", "backbone", "width", "repeats")
ELEMENTWISE_NOTE = (
    "* elementwise: adds, muls, activations, pooling and gates, which fvcore does not count; not included in GFLOPs."
)


def render_profile(rows: list[dict[str, Any]], fmt: str, console: Console) -> None:
    """Print rows: ``json`` (an array, nothing else on stdout), ``csv`` or a rich ``table``."""
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    by_module = any("modules" in r for r in rows)
    if fmt == "csv":
        sys.stdout.write(pd.DataFrame(module_lines(rows) if by_module else rows).to_csv(index=False))
        return
    present = [c for c in PROFILE_COLUMNS if any(c[0] in r for r in rows)]
    table = Table(*[h for _, h, _ in present], title="Costs per neck and phi (GFLOPs: fvcore, 1 multiply-add = 1)")
    for r in rows:
        cells = []
        for key, _, fmt_str in present:
            v = r.get(key)
            if v is None:
                cells.append("")
            else:
                cells.append(fmt_str.format(v / 1e6 if key in _MILLIONS else v))
        table.add_row(*cells)
    console.print(table)
    for r in rows:
        if "modules" in r:
            console.print(module_table(r))
    console.print(ELEMENTWISE_NOTE)


def module_lines(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat dict per (row, module): the row's :data:`MODULE_ROW_KEYS`, then the module's fields."""
    return [{**{k: r[k] for k in MODULE_ROW_KEYS}, **m} for r in rows for m in r.get("modules", [])]


def module_table(row: dict[str, Any]) -> Table:
    """A profile row's module tree: names indented by depth, params, GFLOPs, their share of the model's, notes."""
    table = Table(
        "module",
        "type",
        "params",
        "GFLOPs",
        "% GFLOPs",
        "elementwise*",
        "note",
        title=f"{row['neck']} phi={row['phi']} ({row['resolution']} px): params and GFLOPs by module, inclusive",
    )
    for m in row["modules"]:
        share = 100 * m["gflops"] / row["gflops"] if row["gflops"] else 0.0
        table.add_row(
            "  " * (m["depth"] - 1) + m["module"],
            m["type"],
            f"{m['params']:,}",
            f"{m['gflops']:.4f}",
            f"{share:.1f}",
            f"{m['gflops_elementwise']:.4f}",
            m["note"],
        )
    return table
