"""Leaderboards derived from run records: seed statistics, ranks, Pareto fronts and iso-FLOPs curves.

Everything here is a pure function of the records (``archbench.runs.records.load_records``); nothing
else is parsed. ``build_table`` aggregates seeds into one row per (task, dataset, preset, neck,
phi); ``iso_flops`` compares necks at equal compute by interpolating each neck's accuracy along
its own phi curve; ``failed_runs`` lists what did not finish; ``setup_table`` says how the runs
were made (training, data, environment, code); ``render`` writes them as a terminal table,
Markdown, CSV, JSON or one self-contained HTML page.

Metrics of -1 (COCO's "no ground truth in this size bucket") are treated as missing, so they
never pull a mean down.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from archbench.errors import UserError
from archbench.runs.records import RUNS_DIR, load_records

#: Metrics aggregated over seeds, per task; the first is the one ranked on.
TASK_METRICS: dict[str, list[str]] = {
    "det": ["AP", "AP50", "APs", "APm", "APl"],
    "seg": ["mIoU", "pixel_accuracy"],
}
#: Costs and throughput carried into the table (mean over seeds).
COST_COLUMNS = ["params_total", "gflops", "latency_ms", "images_per_s"]
#: The columns that identify a comparison group (ranks and Pareto flags are within a group).
GROUP_KEYS = ["task", "dataset", "preset"]
ROW_KEYS = GROUP_KEYS + ["neck", "phi"]
FORMATS = ("table", "md", "csv", "json", "html")
FAILED_COLUMNS = ["task", "neck", "phi", "seed", "reason"]
ISO_COLUMNS = ["task", "dataset", "preset", "metric", "gflops", "neck", "value"]
SETUP_COLUMNS = GROUP_KEYS + ["runs", "training", "data", "environment", "code", "written"]


# ----------------------------------------------------------------------------------------------
# Loading


def require_records(results: Path, task: str | None = None) -> list[dict[str, Any]]:
    """``load_records(results)``, or a ``UserError`` when there are none (of ``task``, if given)."""
    records = load_records(Path(results))
    if task is not None:
        records = [r for r in records if r.get("task") == task]
    if not records:
        what = "run records" if task is None else f"'{task}' run records"
        raise UserError(f"no {what} under {Path(results) / RUNS_DIR}; run `archbench run` first")
    return records


def main_metric(task: str) -> str:
    """The metric a task is ranked on (AP for det, mIoU for seg)."""
    return TASK_METRICS.get(task, ["AP"])[0]


# ----------------------------------------------------------------------------------------------
# The leaderboard


def _number(value: Any) -> float:
    """A float, or NaN for missing / non-numeric / negative-sentinel values."""
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return math.nan if x < 0 else x


def _flatten(record: dict[str, Any]) -> dict[str, Any]:
    """One ok record as a flat row: keys, metrics of its task and costs."""
    task = record.get("task", "det")
    metrics = record.get("metrics") or {}
    costs = record.get("costs") or {}
    timing = record.get("timing") or {}
    dataset = record.get("dataset") or {}
    row: dict[str, Any] = {
        "task": task, "dataset": dataset.get("name", "?"), "preset": record.get("preset", "?"),
        "neck": record.get("neck", "?"), "phi": record.get("phi"), "seed": record.get("seed"),
    }
    for m in TASK_METRICS.get(task, []):
        row[m] = _number(metrics.get(m))
    for c in ("params_total", "gflops", "latency_ms"):
        row[c] = _number(costs.get(c))
    row["images_per_s"] = _number(timing.get("images_per_s"))
    return row


def _ok_rows(records: Iterable[dict[str, Any]], task: str | None) -> pd.DataFrame:
    rows = [_flatten(r) for r in records
            if r.get("status") == "ok" and (task is None or r.get("task") == task)]
    return pd.DataFrame(rows)


def _aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean/std of the metrics and mean costs per (task, dataset, preset, neck, phi)."""
    metrics = [m for ms in TASK_METRICS.values() for m in ms if m in rows.columns]
    grouped = rows.groupby(ROW_KEYS, sort=True, dropna=False)
    out = grouped.size().rename("n_seeds").to_frame()
    for m in metrics:
        out[f"{m}_mean"] = grouped[m].mean()
        out[f"{m}_std"] = grouped[m].std(ddof=1)  # sample std: NaN for a single seed
    for c in COST_COLUMNS:
        out[c] = grouped[c].mean()
    return out.reset_index()


def _main_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``metric``, ``score`` and ``score_std``: the task's main metric, whatever the task."""
    table["metric"] = table["task"].map(main_metric)
    for out, suffix in (("score", "_mean"), ("score_std", "_std")):
        table[out] = [table.at[i, m + suffix] if m + suffix in table.columns else math.nan
                      for i, m in zip(table.index, table["metric"])]
    return table


def pareto_mask(accuracy: Sequence[float], cost: Sequence[float]) -> list[bool]:
    """True for points no other point dominates (>= accuracy and <= cost, one strictly).

    Points with a missing accuracy or cost are never on the front.
    """
    acc = np.asarray(accuracy, dtype=float)
    cst = np.asarray(cost, dtype=float)
    flags = []
    for i in range(len(acc)):
        if np.isnan(acc[i]) or np.isnan(cst[i]):
            flags.append(False)
            continue
        better_eq = (acc >= acc[i]) & (cst <= cst[i])
        strict = (acc > acc[i]) | (cst < cst[i])
        flags.append(not bool(np.any(better_eq & strict)))
    return flags


def _rank_and_pareto(table: pd.DataFrame) -> pd.DataFrame:
    """``rank`` (1 = best main metric, ties share the best rank) and ``pareto`` within each group."""
    table["rank"] = (table.groupby(GROUP_KEYS, dropna=False)["score"]
                     .rank(ascending=False, method="min").astype("Int64"))
    table["pareto"] = False
    for _, idx in table.groupby(GROUP_KEYS, dropna=False).groups.items():
        sub = table.loc[idx]
        table.loc[idx, "pareto"] = pareto_mask(sub["score"], sub["gflops"])
    table["pareto"] = table["pareto"].astype(bool)
    return table


def build_table(records: Iterable[dict[str, Any]], task: str | None = None) -> pd.DataFrame:
    """One row per (task, dataset, preset, neck, phi) over ``ok`` records.

    Columns: the keys, ``n_seeds``, ``<metric>_mean`` / ``<metric>_std`` (sample std, NaN for
    one seed) of each task metric, the mean ``params_total``, ``gflops``, ``latency_ms`` and
    ``images_per_s``, ``metric`` (the main metric's name), ``score`` / ``score_std`` (its mean
    and std), ``rank`` (1 = best within the (task, dataset, preset) group) and ``pareto`` (no
    other row in the group is at least as accurate and at most as costly in GFLOPs, one strictly).
    Rows are sorted by group, then rank.
    """
    rows = _ok_rows(records, task)
    if rows.empty:
        return pd.DataFrame(columns=ROW_KEYS + ["n_seeds", *COST_COLUMNS, "metric", "score", "score_std",
                                                "rank", "pareto"])
    table = _rank_and_pareto(_main_scores(_aggregate(rows)))
    return table.sort_values(GROUP_KEYS + ["rank", "neck", "phi"]).reset_index(drop=True)


def failed_runs(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """The failed runs, apart: task, neck, phi, seed and reason."""
    rows = [{"task": r.get("task"), "neck": r.get("neck"), "phi": r.get("phi"), "seed": r.get("seed"),
             "reason": r.get("reason", "")} for r in records if r.get("status") == "failed"]
    return pd.DataFrame(rows, columns=FAILED_COLUMNS)


def _run_setup(record: dict[str, Any]) -> dict[str, Any]:
    """How one run was made, as short texts (None where the record does not say)."""
    train = (record.get("config") or {}).get("train") or {}
    dataset = record.get("dataset") or {}
    env = record.get("environment") or {}
    commit = env.get("git_commit") or ""
    return {
        "task": record.get("task", "det"), "dataset": dataset.get("name", "?"), "preset": record.get("preset", "?"),
        "training": (f"{train['epochs']} epochs, batch {train['batch_size']}, {train['optimizer']} lr {train['lr']:g}"
                     if {"epochs", "batch_size", "optimizer", "lr"} <= set(train) else None),
        "data": (f"{dataset['n_train']} train / {dataset['n_val']} val images, fingerprint "
                 f"{str(dataset.get('fingerprint', '?'))[:12]}" if {"n_train", "n_val"} <= set(dataset) else None),
        "environment": (f"{env.get('device', '?')}, {env.get('torch_threads', '?')} threads on {env.get('cpu_count', '?')} "
                        f"cores, torch {env.get('torch', '?')}, timm {env.get('timm', '?')}" if env else None),
        "code": (commit[:12] + (" (uncommitted changes)" if commit.endswith("+dirty") else "")) or None,
        "written": str(record.get("written_at") or "")[:10] or None,
    }


def _distinct(values: Iterable[Any]) -> str:
    """The different values, sorted and joined with '; ' ('?' when none is known)."""
    return "; ".join(sorted({str(v) for v in values if v is not None})) or "?"


def setup_table(records: Iterable[dict[str, Any]], task: str | None = None) -> pd.DataFrame:
    """Per (task, dataset, preset): how many runs, and every distinct training schedule, data set,
    environment and code version among them, and the dates they were written (first .. last).
    A board mixing machines or code versions says so here."""
    rows = pd.DataFrame([_run_setup(r) for r in records if task is None or r.get("task") == task],
                        columns=[c for c in SETUP_COLUMNS if c != "runs"])
    out = []
    for keys, group in rows.groupby(GROUP_KEYS, sort=True):
        dates = sorted(d for d in group["written"] if d)
        out.append({**dict(zip(GROUP_KEYS, keys)), "runs": len(group),
                    **{c: _distinct(group[c]) for c in ("training", "data", "environment", "code")},
                    "written": f"{dates[0]} .. {dates[-1]}" if dates else "?"})
    return pd.DataFrame(out, columns=SETUP_COLUMNS)


# ----------------------------------------------------------------------------------------------
# Iso-FLOPs comparison


def _neck_curve(sub: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A neck's (gflops, score) points sorted by gflops; points at equal gflops are averaged."""
    pts = sub.dropna(subset=["gflops", "score"]).groupby("gflops")["score"].mean().sort_index()
    return pts.index.to_numpy(dtype=float), pts.to_numpy(dtype=float)


def interpolate(xs: np.ndarray, ys: np.ndarray, at: float) -> float:
    """Linear interpolation of (xs, ys) at ``at``; NaN outside [min xs, max xs] (no extrapolation)."""
    if len(xs) == 0 or at < xs[0] or at > xs[-1]:
        return math.nan
    return float(np.interp(at, xs, ys))


def _default_budgets(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """The group's gflops values that lie inside every (multi-point) neck's range.

    Single-point necks do not narrow the range (they only get a value at their own gflops). When
    the ranges share nothing, every gflops value of the group is a budget.
    """
    all_x = sorted({float(x) for xs, _ in curves.values() for x in xs})
    spans = [(xs[0], xs[-1]) for xs, _ in curves.values() if len(xs) >= 2]
    if not spans:
        return all_x
    lo, hi = max(s[0] for s in spans), min(s[1] for s in spans)
    inside = [x for x in all_x if lo <= x <= hi]
    return inside or all_x


def iso_flops(table: pd.DataFrame, budgets: Sequence[float] | None = None) -> pd.DataFrame:
    """Each neck's main metric interpolated along its own phi curve at common GFLOPs budgets.

    Long format, one row per (task, dataset, preset, budget, neck): ``metric``, ``gflops``
    (the budget) and ``value`` (NaN outside the neck's measured range: no extrapolation).
    ``budgets`` apply to every group; by default each group uses its rows' gflops values that lie
    inside every neck's range (see ``_default_budgets``).
    """
    out: list[dict[str, Any]] = []
    if table.empty:
        return pd.DataFrame(columns=ISO_COLUMNS)
    for key, group in table.groupby(GROUP_KEYS, sort=True, dropna=False):
        curves = {neck: _neck_curve(sub) for neck, sub in group.groupby("neck", sort=True)}
        points = sorted({float(b) for b in budgets}) if budgets is not None else _default_budgets(curves)
        metric = main_metric(key[0])
        for b in points:
            for neck, (xs, ys) in curves.items():
                out.append({"task": key[0], "dataset": key[1], "preset": key[2], "metric": metric,
                            "gflops": b, "neck": neck, "value": interpolate(xs, ys, b)})
    return pd.DataFrame(out, columns=ISO_COLUMNS)


# ----------------------------------------------------------------------------------------------
# Rendering

_MILLION = 1e6


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
    headers = ["rank", "task", "dataset", "preset", "neck", "phi", "seeds", *metrics,
               "params M", "GFLOPs", "latency ms", "img/s", "pareto"]
    cells = []
    for _, r in table.iterrows():
        cells.append([_fmt(r["rank"], "{}"), str(r["task"]), str(r["dataset"]), str(r["preset"]), str(r["neck"]),
                      str(r["phi"]), str(r["n_seeds"]),
                      *[mean_std(r[f"{m}_mean"], r[f"{m}_std"]) for m in metrics],
                      _fmt(r["params_total"] / _MILLION, "{:.3f}"), _fmt(r["gflops"], "{:.3f}"),
                      _fmt(r["latency_ms"], "{:.1f}"), _fmt(r["images_per_s"], "{:.1f}"),
                      "*" if r["pareto"] else ""])
    return headers, cells


def iso_rows(iso: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Iso-FLOPs table in wide form: one row per (group, budget), one column per neck."""
    if iso.empty:
        return ["GFLOPs"], []
    necks = sorted(iso["neck"].unique())
    wide = iso.pivot_table(index=["task", "dataset", "preset", "metric", "gflops"], columns="neck",
                           values="value", aggfunc="first", dropna=False)
    headers = ["task", "dataset", "preset", "metric", "GFLOPs", *necks]
    cells = [[str(k) for k in idx[:4]] + [_fmt(idx[4])] + [_fmt(row.get(n, math.nan)) for n in necks]
             for idx, row in wide.iterrows()]
    return headers, cells


def failed_rows(failed: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Failed runs as text cells."""
    return FAILED_COLUMNS, [[str(v) for v in row] for row in failed[FAILED_COLUMNS].itertuples(index=False)]


def _markdown(title: str, headers: list[str], cells: list[list[str]]) -> str:
    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|").replace("\n", " ") for v in values) + " |"

    if not cells:
        return f"## {title}\n\nNone.\n"
    body = [line(headers), "| " + " | ".join("---" for _ in headers) + " |", *[line(c) for c in cells]]
    return f"## {title}\n\n" + "\n".join(body) + "\n"


def _html_table(headers: list[str], cells: list[list[str]]) -> str:
    if not cells:
        return "<p>None.</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _sections(table: pd.DataFrame, failed: pd.DataFrame, iso: pd.DataFrame, setup: pd.DataFrame | None):
    sections = [("Leaderboard", *leaderboard_rows(table)),
                ("Iso-FLOPs comparison (main metric interpolated along each neck's phi curve)", *iso_rows(iso)),
                ("Failed runs", *failed_rows(failed))]
    if setup is not None:
        sections.append(("How the runs were made", SETUP_COLUMNS,
                         [[str(v) for v in row] for row in setup[SETUP_COLUMNS].itertuples(index=False)]))
    return sections


def _records_json(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (NaN -> null, numpy scalars -> Python)."""
    return json.loads(df.to_json(orient="records"))


def render_json(table: pd.DataFrame, failed: pd.DataFrame, iso: pd.DataFrame, setup: pd.DataFrame | None = None) -> str:
    """``{"leaderboard": [...], "iso_flops": [...], "failed": [...]}`` with raw numbers (and ``"setup"`` if given)."""
    doc = {"leaderboard": _records_json(table), "iso_flops": _records_json(iso), "failed": _records_json(failed)}
    if setup is not None:
        doc["setup"] = _records_json(setup)
    return json.dumps(doc, indent=2) + "\n"


def render_md(table: pd.DataFrame, failed: pd.DataFrame, iso: pd.DataFrame, setup: pd.DataFrame | None = None,
              figures: Sequence[str] = ()) -> str:
    """Markdown: a title, then one section per table, then ``figures`` (image paths or URLs) if any."""
    title = "# archbench leaderboard\n\nDerived from the run records by `archbench leaderboard`: regenerate it, do not edit it.\n\n"
    text = title + "\n".join(_markdown(*s) for s in _sections(table, failed, iso, setup))
    if figures:
        text += "\n## Figures\n\n" + "\n\n".join(f"![{Path(f).stem}]({f})" for f in figures) + "\n"
    return text


def render_rich(table: pd.DataFrame, failed: pd.DataFrame, iso: pd.DataFrame, setup: pd.DataFrame | None = None,
                width: int = 200) -> str:
    """Rich terminal tables, returned as text (ANSI styling only when printed to a terminal)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=io.StringIO(), width=width, record=True)
    for title, headers, cells in _sections(table, failed, iso, setup):
        t = Table(title=title)
        for h in headers:
            t.add_column(h)
        for row in cells:
            t.add_row(*row)
        console.print(t)
    return console.export_text()


def _figure_tags(table: pd.DataFrame) -> list[str]:
    """``<img>`` tags with the plots embedded as base64 PNG."""
    from archbench.board import plots

    tags = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in plots.write_all(table, Path(tmp)):
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            tags.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}">'
                        f"<figcaption>{html.escape(path.stem)}</figcaption></figure>")
    return tags


_CSS = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
        "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#eee}"
        "img{max-width:100%}")


def render_html(table: pd.DataFrame, failed: pd.DataFrame, iso: pd.DataFrame, setup: pd.DataFrame | None = None) -> str:
    """One self-contained page: the tables and the figures (base64 PNG), no external files."""
    parts = [f"<h2>{html.escape(title)}</h2>{_html_table(headers, cells)}"
             for title, headers, cells in _sections(table, failed, iso, setup)]
    figures = "".join(_figure_tags(table)) if not table.empty else "<p>No ok runs to plot.</p>"
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>archbench leaderboard</title>"
            f"<style>{_CSS}</style></head><body><h1>archbench leaderboard</h1>"
            + "".join(parts) + f"<h2>Figures</h2>{figures}</body></html>\n")


def render_csv(table: pd.DataFrame) -> str:
    """The leaderboard as CSV with raw numbers (mean and std in separate columns)."""
    return table.to_csv(index=False)


def render(table: pd.DataFrame, failed: pd.DataFrame, iso: pd.DataFrame, fmt: str,
           path: Path | None = None, setup: pd.DataFrame | None = None, figures: Sequence[Path] = ()) -> str:
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
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if fmt == "csv":
            path.with_name(f"{path.stem}.iso_flops.csv").write_text(iso.to_csv(index=False))
            path.with_name(f"{path.stem}.failed.csv").write_text(failed.to_csv(index=False))
            if setup is not None:
                path.with_name(f"{path.stem}.setup.csv").write_text(setup.to_csv(index=False))
    return text
