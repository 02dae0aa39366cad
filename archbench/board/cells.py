"""The board's tables as titled sections of text cells, shared by the text, Markdown and HTML formats.

Metrics read ``mean ± std`` (3 decimals), parameters in millions, latency and throughput with one
decimal; a missing number is ``-``.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from archbench.board.aggregate import FAILED_COLUMNS, GROUP_KEYS, TASK_METRICS
from archbench.board.provenance import SETUP_COLUMNS

_MILLION = 1e6

#: A section: (title, headers, rows of cells).
Section = tuple[str, list[str], list[list[str]]]


def _fmt(x: Any, spec: str = "{:.3f}") -> str:
    if x is None or pd.isna(x):
        return "-"
    return spec.format(x)


def mean_std(mean: float, std: float, spec: str = "{:.3f}") -> str:
    """``mean ± std``; just the mean when the std is missing (one seed); ``-`` when both are."""
    if mean is None or pd.isna(mean):
        return "-"
    if std is None or pd.isna(std):
        return spec.format(mean)
    return f"{spec.format(mean)} ± {spec.format(std)}"


def _display_metrics(table: pd.DataFrame) -> list[str]:
    """Metrics with at least one value in the table, in task order."""
    out = []
    for ms in TASK_METRICS.values():
        out += [m for m in ms if f"{m}_mean" in table.columns and table[f"{m}_mean"].notna().any()]
    return out


def leaderboard_rows(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells of the leaderboard (metrics as mean ± std, params in M)."""
    metrics = _display_metrics(table)
    headers = [
        "rank",
        "task",
        "dataset",
        "preset",
        "neck",
        "phi",
        "seeds",
        *metrics,
        "params M",
        "GFLOPs",
        "latency ms",
        "img/s",
        "pareto",
    ]
    cells = []
    for _, r in table.iterrows():
        cells.append(
            [
                _fmt(r["rank"], "{}"),
                str(r["task"]),
                str(r["dataset"]),
                str(r["preset"]),
                str(r["neck"]),
                str(r["phi"]),
                str(r["n_seeds"]),
                *[mean_std(r[f"{m}_mean"], r[f"{m}_std"]) for m in metrics],
                _fmt(r["params_total"] / _MILLION, "{:.3f}"),
                _fmt(r["gflops"], "{:.3f}"),
                _fmt(r["latency_ms"], "{:.1f}"),
                _fmt(r["images_per_s"], "{:.1f}"),
                "*" if r["pareto"] else "",
            ]
        )
    return headers, cells


def iso_rows(iso: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Iso-FLOPs table in wide form: one row per (group, budget), one column per neck."""
    if iso.empty:
        return ["GFLOPs"], []
    necks = sorted(iso["neck"].unique())
    wide = iso.pivot_table(
        index=[*GROUP_KEYS, "metric", "gflops"], columns="neck", values="value", aggfunc="first", dropna=False
    )
    headers = [*GROUP_KEYS, "metric", "GFLOPs", *necks]
    cells = [
        [str(k) for k in idx[:-1]] + [_fmt(idx[-1])] + [_fmt(row.get(n, math.nan)) for n in necks]
        for idx, row in wide.iterrows()
    ]
    return headers, cells


def _text_rows(df: pd.DataFrame, columns: list[str]) -> list[list[str]]:
    """``df[columns]`` as ``str`` cells."""
    return [[str(v) for v in row] for row in df[columns].itertuples(index=False)]


def sections(table: pd.DataFrame, failed: pd.DataFrame, iso: pd.DataFrame, setup: pd.DataFrame | None) -> list[Section]:
    """The leaderboard, iso-FLOPs and failed-runs sections, then "how the runs were made" if ``setup`` is given."""
    out: list[Section] = [
        ("Leaderboard", *leaderboard_rows(table)),
        ("Iso-FLOPs comparison (main metric interpolated along each neck's phi curve)", *iso_rows(iso)),
        ("Failed runs", FAILED_COLUMNS, _text_rows(failed, FAILED_COLUMNS)),
    ]
    if setup is not None:
        out.append(("How the runs were made", SETUP_COLUMNS, _text_rows(setup, SETUP_COLUMNS)))
    return out
