"""Transfer: does the board's neck ranking agree with the published comparisons of the same necks?

For each comparison group (``verdicts.PHI_GROUP``) and each published comparison
(``archbench.board.published.PUBLISHED``), the board's necks standing for the paper's networks are ranked by
their mean main metric and set against the paper's order with :func:`archbench.board.stats.ranking_agreement`:
Kendall tau-b (1 = same order, -1 = reversed) and the fraction of pairs ordered the same way. Means alone
order every pair, however close; ``resolved`` counts the pairs the board's letters tell apart
(``pairs.paired_tests``: each pair's own paired t-test, Holm over every pair of the group and phi) and
``resolved_agree`` how many of those go the paper's way.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from archbench.board import pairs, stats
from archbench.board.published import PUBLISHED, Comparison
from archbench.board.verdicts import PHI_GROUP, comparison_groups

TRANSFER_COLUMNS = [
    *PHI_GROUP,
    "comparison",
    "necks",
    "n_necks",
    "board_order",
    "published_order",
    "kendall_tau",
    "same_direction",
    "n_pairs",
    "resolved",
    "resolved_agree",
]


def stand_ins(comparison: Comparison, necks: set[str]) -> dict[str, str]:
    """Paper label -> the board neck standing for it: the first of the entry's necks in ``necks`` (if any)."""
    out = {}
    for entry in comparison.entries:
        found = [n for n in entry.necks if n in necks]
        if found:
            out[entry.label] = found[0]
    return out


def _resolved(tests: pd.DataFrame, order: list[str], published: list[str]) -> tuple[int, int]:
    """(pairs of ``order``'s necks the tie test resolves, how many of them the paper orders the same way)."""
    pos_board = {n: i for i, n in enumerate(order)}
    pos_paper = {n: i for i, n in enumerate(published)}
    hits = tests[tests["different"] & tests["a"].isin(pos_board) & tests["b"].isin(pos_board)]
    agree = sum((pos_board[a] < pos_board[b]) == (pos_paper[a] < pos_paper[b]) for a, b in zip(hits["a"], hits["b"]))
    return len(hits), int(agree)


def _one(keys: dict[str, Any], metric: str, sub: pd.DataFrame, comparison: Comparison) -> dict[str, Any] | None:
    """One group's agreement with ``comparison``; None when fewer than two of its networks are on the board."""
    chosen = stand_ins(comparison, {str(n) for n in sub["neck"]})
    if len(chosen) < 2:
        return None
    published = list(chosen.values())  # entries are best first
    means = stats.neck_means(sub[sub["neck"].isin(published)], metric).dropna()
    board = [str(n) for n in means.index]
    agreement = stats.ranking_agreement(board, published)
    resolved, agree = _resolved(pairs.paired_tests(sub, metric), board, published)
    return {
        **keys,
        "comparison": comparison.name,
        "necks": ", ".join(f"{n} = {label}" if n != label else n for label, n in chosen.items()),
        "n_necks": len(agreement.items),
        "board_order": " > ".join(board),
        "published_order": " > ".join(published),
        "kendall_tau": agreement.tau,
        "same_direction": agreement.direction,
        "n_pairs": agreement.n_pairs,
        "resolved": resolved,
        "resolved_agree": agree,
    }


def transfer(rows: pd.DataFrame, published: tuple[Comparison, ...] = PUBLISHED) -> pd.DataFrame:
    """One row per (comparison group, published comparison) with at least two of its networks on the board.

    ``necks``: which board neck stands for which paper network; ``board_order`` / ``published_order``: best
    first; ``kendall_tau`` (tau-b, dimensionless) and ``same_direction`` (fraction of the ``n_pairs`` pairs in
    the same order) compare them; ``resolved`` / ``resolved_agree`` as in the module docstring.
    """
    out = []
    for keys, metric, sub in comparison_groups(rows):
        for comparison in published:
            row = _one(keys, metric, sub, comparison)
            if row is not None:
                out.append(row)
    return pd.DataFrame(out, columns=TRANSFER_COLUMNS)


def published_table(published: tuple[Comparison, ...] = PUBLISHED) -> pd.DataFrame:
    """The published comparisons as rows: comparison, rank in it, paper label, board necks, AP (%), source."""
    rows = [
        {
            "comparison": c.name,
            "rank": i,
            "network": e.label,
            "board_necks": " or ".join(e.necks),
            "ap": e.ap,
            "setting": c.setting,
            "source": c.source,
            "note": c.note,
        }
        for c in published
        for i, e in enumerate(c.entries, start=1)
    ]
    return pd.DataFrame(rows)
