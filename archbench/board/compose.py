"""Everything one board shows, from the records alone, in one object: what every output format renders.

``compose`` is the one path from records to a board (``archbench leaderboard``, ``scripts/make_leaderboard.py``
and the test that the checked-in board matches its records all go through it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from archbench.board import stats
from archbench.board.aggregate import Record, as_dict, build_table, failed_runs, seed_rows
from archbench.board.iso import iso_flops
from archbench.board.provenance import setup_table
from archbench.board.transfer import published_table, transfer
from archbench.board.verdicts import check_reference, group_verdicts, neck_verdicts, with_verdicts


@dataclass(frozen=True)
class Board:
    """A board's tables (raw numbers, metric units).

    ``table``: ``aggregate.build_table`` with ``verdicts.NECK_COLUMNS`` joined (per-phi rank, paired difference
    from ``reference`` with its 95 % half-width, tie letters); ``groups``: ``verdicts.group_verdicts`` (rank
    stability, closest unresolved pair, seeds needed); ``iso``: iso-FLOPs values with 95 % half-widths;
    ``transfer``: agreement with the published comparisons and ``published`` their numbers; ``failed``: failed
    runs; ``setup``: how the runs were made (None to leave it out).
    """

    table: pd.DataFrame
    groups: pd.DataFrame
    iso: pd.DataFrame
    transfer: pd.DataFrame
    published: pd.DataFrame
    failed: pd.DataFrame
    setup: pd.DataFrame | None
    reference: str


def compose(
    records: Iterable[Record], task: str | None = None, reference: str | None = None, setup: bool = True
) -> Board:
    """The board of ``records`` (of ``task`` only, if given).

    ``reference``: the neck paired differences are taken from; None means ``stats.REFERENCE`` (fpn), and a
    reference no run on the board has is a ``UserError`` when it is given explicitly (the default neck
    missing only leaves the differences empty, with a note).
    """
    records = [as_dict(r) for r in records]
    rows = seed_rows(records, task)
    if reference is not None:
        check_reference(rows, reference)
    ref = reference or stats.REFERENCE
    table = build_table(records, task)
    return Board(
        table=with_verdicts(table, neck_verdicts(rows, ref)),
        groups=group_verdicts(rows),
        iso=iso_flops(table, rows=rows),
        transfer=transfer(rows),
        published=published_table(),
        failed=failed_runs(records),
        setup=setup_table(records, task) if setup else None,
        reference=ref,
    )
