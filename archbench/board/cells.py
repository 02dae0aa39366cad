"""The board as a list of blocks (headings, sentences, tables of text cells), shared by the terminal,
Markdown and HTML formats.

Layout: per comparison group (one value of ``aggregate.GROUP_KEYS``) a heading naming its shared settings
once, then a neck x phi view of the main metric, then one ranking per phi with its statistics, the
comparisons at equal cost (:mod:`archbench.board.cost_cells`) and the transfer to the published comparisons;
then the published comparisons, the failed runs and how the runs were made. Numbers: metrics with 3
decimals, ``mean ± h`` where h is the half-width of the 95 % Student-t interval over seeds (metric units),
parameters in millions, latency and throughput with one decimal; a missing number is ``-``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pandas as pd

from archbench.board.aggregate import FAILED_COLUMNS, GROUP_KEYS, TASK_METRICS
from archbench.board.compose import Board
from archbench.board.cost_cells import equal_cost_blocks
from archbench.board.grids import Block, Grid, Heading, Text, interval
from archbench.board.provenance import SETUP_COLUMNS
from archbench.board.verdicts import settled_schedule

_MILLION = 1e6
#: Where the board's statistics are explained (a path in the repository).
HOW_TO_READ = "docs/board.md"


def _fmt(x: Any, spec: str = "{:.3f}") -> str:
    """``x`` formatted, or ``-`` when it is missing."""
    if x is None or pd.isna(x):
        return "-"
    return spec.format(x)


def _text(x: Any) -> str:
    """``x`` as text, or empty when it is missing."""
    return "" if x is None or (not isinstance(x, str) and pd.isna(x)) else str(x)


def _select(df: pd.DataFrame, keys: dict[str, Any]) -> pd.DataFrame:
    """The rows of ``df`` whose columns equal ``keys`` (NaN matches NaN)."""
    keep = pd.Series(True, index=df.index)
    for k, v in keys.items():
        keep &= df[k].isna() if pd.isna(v) else df[k] == v
    return df[keep]


def _groups(table: pd.DataFrame) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    """The table's comparison groups (``GROUP_KEYS``) with their rows."""
    for key, sub in table.groupby(GROUP_KEYS, sort=True, dropna=False):
        yield dict(zip(GROUP_KEYS, key)), sub


def _secondary_metrics(table: pd.DataFrame, main: str) -> list[str]:
    """The task metrics other than ``main`` with at least one value in the table, in task order."""
    out = []
    for ms in TASK_METRICS.values():
        out += [m for m in ms if m != main and f"{m}_mean" in table.columns and table[f"{m}_mean"].notna().any()]
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------------------------- one group


def group_title(keys: dict[str, Any]) -> str:
    """A group's shared settings as one heading: ``task det · dataset synthetic · preset proxy``; a key the
    records do not say (e.g. the schedule of a hand-made record) is left out."""
    return " · ".join(f"{k} {v}" for k, v in keys.items() if v is not None and not pd.isna(v))


def _intro(sub: pd.DataFrame, board: Board) -> Text:
    """What the group's numbers mean, once."""
    metric = str(sub["metric"].iloc[0])
    seeds = sorted({int(n) for n in sub["n_seeds"]})
    n = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]} to {seeds[-1]}"
    return Text(
        f"Ranked on {metric}, the mean over {n} seeds per neck and phi. ± is the half-width of the 95 % "
        "Student-t interval over seeds. Necks sharing a letter are not told apart: paired t-tests of each pair on "
        "its own per-seed differences, Holm over every pair of the phi, 5 % (the pooled column: the same from "
        f"the block model that pools the noise over all necks, a secondary view). Δ is the paired difference from "
        f"{board.reference} (same seeds) with that pair's own 95 % interval, not corrected for the other "
        "comparisons: an interval can exclude 0 while the letters, which are corrected, still tie. Not told "
        "apart is not equal: only the equivalence test below says equal. "
        f"How to read it: {HOW_TO_READ}."
    )


def neck_phi_grid(sub: pd.DataFrame) -> Grid:
    """Necks as rows (best mean over phi first), phi as columns: ``mean ± 95 % CI`` and the tie letters."""
    phis = sorted(sub["phi"].dropna().unique())
    order = sub.groupby("neck")["score"].mean().sort_values(ascending=False, kind="stable").index
    rows = []
    for neck in order:
        cells = [str(neck)]
        for phi in phis:
            hit = sub[(sub["neck"] == neck) & (sub["phi"] == phi)]
            if hit.empty:
                cells.append("-")
                continue
            r = hit.iloc[0]
            cells.append(f"{interval(r['score'], r['score_ci95'])} {_text(r.get('letters'))}".rstrip())
        rows.append(cells)
    return Grid(["neck", *[f"phi {p}" for p in phis]], rows)


def _diff_cell(r: pd.Series) -> str:
    """The paired difference from the reference: ``+0.082 ± 0.050``, ``reference``, or ``-``."""
    if r.get("diff_note") == "reference":
        return "reference"
    return interval(r.get("diff_mean"), r.get("diff_ci95"), "{:+.3f}")


#: Marks a timing that averages seeds run under different conditions (machine, threads, jobs, speed settings).
MIXED_MARK = "†"
MIXED_NOTE = (
    f"{MIXED_MARK} latency and img/s average seeds that ran under different conditions (CPU kind, threads, runs "
    "side by side, speed settings; see How the runs were made): compare them with care."
)


def _mixed_mark(r: pd.Series) -> str:
    return MIXED_MARK if bool(r.get("timing_mixed", False)) else ""


def ranking_grid(sub: pd.DataFrame, secondary: list[str], reference: str) -> Grid:
    """One phi's ranking: rank, neck, tie letters (per pair, then pooled), seeds, main metric ± CI, Δ from the
    reference ± CI, the other metrics' means, costs, and the Pareto flag (accuracy vs GFLOPs over the group's
    every phi)."""
    metric = str(sub["metric"].iloc[0])
    headers = [
        "rank",
        "neck",
        "tied",
        "pooled",
        "seeds",
        f"{metric} ± 95 % CI",
        f"Δ {metric} vs {reference} ± 95 % CI",
        *secondary,
    ]
    headers += ["params M", "GFLOPs", "latency ms", "img/s", "Pareto"]
    rows = []
    for _, r in sub.sort_values(["phi_rank", "neck"], kind="stable").iterrows():
        rows.append(
            [
                _fmt(r["phi_rank"], "{}"),
                str(r["neck"]),
                _text(r.get("letters")),
                _text(r.get("pooled_letters")),
                str(r["n_seeds"]),
                interval(r["score"], r["score_ci95"]),
                _diff_cell(r),
                *[_fmt(r[f"{m}_mean"]) for m in secondary],
                _fmt(r["params_total"] / _MILLION),
                _fmt(r["gflops"]),
                _fmt(r["latency_ms"], "{:.1f}") + _mixed_mark(r),
                _fmt(r["images_per_s"], "{:.1f}") + _mixed_mark(r),
                "*" if r["pareto"] else "",
            ]
        )
    return Grid(headers, rows)


def _seeds_text(n: Any) -> str:
    """``15 seeds per neck``; no practical number when infinite."""
    if n is None or pd.isna(n):
        return "an unknown number of seeds"
    return "no practical number of seeds" if math.isinf(n) else f"{int(n):,} seeds per neck"


def verdict_text(g: pd.Series | None) -> Text:
    """One phi's verdicts in words: pairs resolved, the smallest difference detectable, seeds a stated effect
    needs, pairs shown equal, and rank stability."""
    if g is None:
        return Text("No statistics: the main metric is missing.")
    metric = g["metric"]
    tau = "-" if pd.isna(g["rank_tau"]) else f"{g['rank_tau']:.2f}"
    split = "seed against seed" if g["n_seeds"] == 2 else "averaged over the balanced splits of the seeds"
    equal = f"{g['equivalent']}: {g['equivalent_pairs']}" if g["equivalent"] else "none"
    return Text(
        f"Resolved: {g['resolved']} of {g['tests']} pairs by their own paired tests (Holm), {g['resolved_pooled']} "
        f"by the pooled block model. The sd of one per-seed difference is {_fmt(g['diff_sd'], '{:.4f}')} "
        f"(root mean square over the pairs; pooled {_fmt(g['pooled_sd'], '{:.4f}')}), so "
        f"with {g['pair_seeds']} seeds shared (a typical pair's) a pair's test detects, with 80 % power, a true "
        f"difference of {_fmt(g['mdd'])} {metric} (each neck against the reference alone: "
        f"{_fmt(g['mdd_vs_reference'])}); "
        f"detecting 0.04 would take {_seeds_text(g['seeds_for_large'])}, 0.02 {_seeds_text(g['seeds_for_small'])}. "
        f"Shown equal within ±0.02 (two one-sided tests, Holm): {equal}. Rank stability: Kendall tau {tau} "
        f"between the rankings of disjoint halves of the seeds ({split})."
    )


def transfer_grid(rows: pd.DataFrame) -> Grid:
    """One group's agreement with the published comparisons, one row per (phi, comparison); orders in board
    neck names (which neck stands for which paper network: the published comparisons' section)."""
    headers = ["phi", "comparison", "board order", "published order"]
    headers += ["Kendall tau", "same direction", "resolved by the board"]
    cells = [
        [
            str(r["phi"]),
            str(r["comparison"]),
            str(r["board_order"]),
            str(r["published_order"]),
            _fmt(r["kendall_tau"], "{:+.2f}"),
            f"{round(r['same_direction'] * r['n_pairs'])} of {r['n_pairs']} pairs" if r["n_pairs"] else "-",
            f"{r['resolved']} of {r['n_pairs']} ({r['resolved_agree']} agree)",
        ]
        for _, r in rows.iterrows()
    ]
    return Grid(headers, cells)


def transfer_summary(rows: pd.DataFrame) -> list[Text]:
    """The transfer stated plainly: per published comparison, tau at each phi and what the seeds resolve."""
    out = []
    for name, sub in rows.groupby("comparison", sort=False):
        taus = " / ".join(_fmt(t, "{:+.2f}") for t in sub["kendall_tau"])
        phis = " / ".join(str(p) for p in sub["phi"])
        same = int(sum(round(d * n) for d, n in zip(sub["same_direction"], sub["n_pairs"]) if n))
        total, resolved, agree = int(sub["n_pairs"].sum()), int(sub["resolved"].sum()), int(sub["resolved_agree"].sum())
        out.append(
            Text(
                f"{name}: Kendall tau {taus} at phi {phis}; by their means the board orders {same} of {total} pairs "
                f"as the paper does; its seeds resolve {resolved} of those {total} pairs ({agree} in the paper's "
                "direction)."
            )
        )
    return out


def group_blocks(keys: dict[str, Any], sub: pd.DataFrame, board: Board) -> list[Block]:
    """Everything the board shows for one comparison group."""
    metric = str(sub["metric"].iloc[0])
    secondary = _secondary_metrics(sub, metric)
    out: list[Block] = [Heading(2, group_title(keys)), _intro(sub, board)]
    out += [Heading(3, f"{metric} by neck and phi (mean ± 95 % CI, tie letters per phi)"), neck_phi_grid(sub)]
    groups = _select(board.groups, keys)
    for phi, at_phi in sub.groupby("phi", sort=True):
        g = groups[groups["phi"] == phi]
        out += [Heading(3, f"phi {phi}"), verdict_text(g.iloc[0] if len(g) else None)]
        out.append(ranking_grid(at_phi, secondary, board.reference))
        if at_phi.get("timing_mixed", pd.Series(dtype=bool)).astype(bool).any():
            out.append(Text(MIXED_NOTE))
    out += equal_cost_blocks(keys, board.costs, board.fronts, board.fits, metric)
    transfer = _select(board.transfer, keys)
    out.append(Heading(3, "Transfer: the board's ranking against the published comparisons"))
    out += [transfer_grid(transfer), *transfer_summary(transfer)] if not transfer.empty else [Text("None.")]
    return out


# ---------------------------------------------------------------------------------------------- appendices


def schedule_blocks(schedules: pd.DataFrame) -> list[Block]:
    """Whether a shorter schedule ranks the necks as a longer one does (``verdicts.schedule_agreement``)."""
    if schedules.empty:
        return []
    rows = [
        [
            str(r["terms"]),
            str(r["phi"]),
            f"{r['short']} -> {r['long']}",
            str(r["n_necks"]),
            f"{_fmt(r['tau'], '{:+.2f}')} [{_fmt(r['tau_low'], '{:+.2f}')}, {_fmt(r['tau_high'], '{:+.2f}')}]",
            _fmt(r["long_rank_tau"], "{:+.2f}"),
            {True: "yes", False: "no"}.get(r["within_noise"], "-"),
            str(r["reversed"]),
            _text(r["flips"]) or "none",
        ]
        for _, r in schedules.iterrows()
    ]
    headers = ["terms", "phi", "epochs", "necks", "Kendall tau [95 % CI]", "seed-split tau, longer"]
    headers += ["within seed noise", "pairs reversed", "verdicts that change"]
    settled = [
        Text(
            f"terms {r['terms']}, phi {r['phi']}: "
            + (
                f"the ranking settles at {r['settled']} epochs: its agreement with every longer schedule trained "
                f"(up to {r['longest']}) is at least that schedule's seed-split tau."
                if r["settled"] is not None and not pd.isna(r["settled"])
                else f"no schedule shorter than {r['longest']} epochs agrees with every longer one within its seed "
                "noise yet."
            )
        )
        for _, r in settled_schedule(schedules).iterrows()
    ]
    return [
        Heading(2, "Schedules: does a shorter schedule rank the necks as a longer one does?"),
        Text(
            "Per group and phi, for every two schedules both trained: Kendall tau-b between the necks' mean "
            "metric under the shorter and the longer schedule, with a 95 % bootstrap interval over seeds (seed s "
            "of both schedules shares its initial weights and data order, so it is resampled once), beside the "
            "longer schedule's own seed-split tau: the agreement two halves of its seeds reach. Pairs reversed: "
            "ordered oppositely by the two schedules' means; verdicts that change: per-pair tests resolved one way, "
            "the other or not at all. Within seed noise: the tau is at least the seed-split tau, i.e. changing the "
            "schedule reorders the necks no more than changing the seeds does; a schedule has settled when that "
            "holds against every longer schedule trained."
        ),
        Grid(headers, rows),
        *settled,
    ]


def published_blocks(published: pd.DataFrame) -> list[Block]:
    """The published comparisons the transfer uses: their networks, numbers and sources."""
    rows = [
        [str(r["comparison"]), str(r["rank"]), str(r["network"]), str(r["board_necks"]), _fmt(r["ap"], "{:.2f}")]
        for _, r in published.iterrows()
    ]
    notes = [
        Text(f"{name}: {sub['source'].iloc[0]}. {sub['setting'].iloc[0]}. {sub['note'].iloc[0]}")
        for name, sub in published.groupby("comparison", sort=False)
    ]
    grid = Grid(["comparison", "rank", "network", "board neck", "COCO AP %"], rows)
    return [Heading(2, "Published comparisons"), grid, *notes]


def _text_rows(df: pd.DataFrame, columns: list[str]) -> list[list[str]]:
    """``df[columns]`` as ``str`` cells."""
    return [[str(v) for v in row] for row in df[columns].itertuples(index=False)]


def blocks(board: Board) -> list[Block]:
    """The whole board: every group, then the published comparisons, failed runs and how the runs were made."""
    out: list[Block] = []
    for keys, sub in _groups(board.table):
        out += group_blocks(keys, sub, board)
    if board.table.empty:
        out += [Heading(2, "Leaderboard"), Text("No ok runs.")]
    out += schedule_blocks(board.schedules)
    out += published_blocks(board.published)
    out.append(Heading(2, "Failed runs"))
    out.append(Grid(FAILED_COLUMNS, _text_rows(board.failed, FAILED_COLUMNS)) if len(board.failed) else Text("None."))
    if board.setup is not None:
        out += [Heading(2, "How the runs were made"), Grid(SETUP_COLUMNS, _text_rows(board.setup, SETUP_COLUMNS))]
    return out
