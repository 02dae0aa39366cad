"""Everything one board shows, from the records alone, in one object: what every output format renders.

``compose`` is the one path from records to a board (``archbench leaderboard``, ``scripts/make_leaderboard.py``
and the test that the checked-in board matches its records all go through it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from archbench.board import REFERENCE
from archbench.board.aggregate import Record, as_dict, build_table, failed_runs, seed_rows
from archbench.board.cost_verdicts import (
    COST_COLUMNS,
    FIT_TABLE_COLUMNS,
    PARETO_COLUMNS,
    cost_verdicts,
    fit_table,
    pareto_table,
)
from archbench.board.latency import Sitting, sitting_latency
from archbench.board.provenance import setup_table
from archbench.board.transfer import published_table, transfer
from archbench.board.verdicts import (
    check_reference,
    group_verdicts,
    neck_verdicts,
    schedule_agreement,
    with_verdicts,
)
from archbench.train.task_names import main_metric


@dataclass(frozen=True)
class Board:
    """A board's tables (raw numbers, metric units).

    ``table``: ``aggregate.build_table`` with ``verdicts.NECK_COLUMNS`` joined (per-phi rank, paired difference
    from ``reference`` with its 95 % half-width, tie letters); ``groups``: ``verdicts.group_verdicts`` (the
    pairs resolved, detectable differences, seeds for a stated effect, equivalent pairs, rank stability);
    ``costs``: each neck's metric at budgets common to a group on every cost axis with per-pair letters
    (``cost_verdicts.cost_verdicts``), ``fronts``: how often each (neck, phi) is on the accuracy-cost front of
    each axis over seed resamples (``cost_verdicts.pareto_table``), ``fits``: how well the interpolation along
    phi holds (``cost_verdicts.fit_table``); ``schedules``: how well each shorter schedule's ranking predicts a
    longer one's (``verdicts.schedule_agreement``); ``transfer``: agreement with the published comparisons and
    ``published`` their numbers; ``failed``: failed runs; ``setup``: how the runs were made (None to leave it out).
    """

    table: pd.DataFrame
    groups: pd.DataFrame
    costs: pd.DataFrame
    fronts: pd.DataFrame
    fits: pd.DataFrame
    schedules: pd.DataFrame
    transfer: pd.DataFrame
    published: pd.DataFrame
    failed: pd.DataFrame
    setup: pd.DataFrame | None
    reference: str


def compose(
    records: Iterable[Record],
    task: str | None = None,
    reference: str | None = None,
    setup: bool = True,
    sittings: Sequence[Sitting] = (),
) -> Board:
    """The board of ``records`` (of ``task`` only, if given).

    ``sittings``: latency measured for the board's models in one sitting (``latency.read_sittings(results)``);
    a group's latency comes from the newest sitting that covers it, else from the records.

    ``reference``: the neck paired differences are taken from; None means ``REFERENCE`` (fpn), and a
    reference no run on the board has is a ``UserError`` when it is given explicitly (the default neck
    missing only leaves the differences empty, with a note).
    """
    records = [as_dict(r) for r in records]
    rows = seed_rows(records, task)
    if reference is not None:
        check_reference(rows, reference)
    ref = reference or REFERENCE
    table = build_table(records, task)
    cost_rows = sitting_latency(records, sittings, task)
    metrics = sorted({main_metric(str(t)) for t in cost_rows["task"].unique()}) if not cost_rows.empty else []
    by_metric = [
        (
            cost_verdicts(cost_rows[cost_rows["task"].map(main_metric) == m], m, reference=ref),
            pareto_table(cost_rows[cost_rows["task"].map(main_metric) == m], m),
            fit_table(cost_rows[cost_rows["task"].map(main_metric) == m], m),
        )
        for m in metrics
    ]
    return Board(
        table=with_verdicts(table, neck_verdicts(rows, ref)),
        groups=group_verdicts(rows, ref),
        costs=_stacked([b[0] for b in by_metric], COST_COLUMNS),
        fronts=_stacked([b[1] for b in by_metric], PARETO_COLUMNS),
        fits=_stacked([b[2] for b in by_metric], FIT_TABLE_COLUMNS),
        schedules=schedule_agreement(rows),
        transfer=transfer(rows),
        published=published_table(),
        failed=failed_runs(records),
        setup=setup_table(records, task) if setup else None,
        reference=ref,
    )


def _stacked(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """The frames one under the other (an empty frame with ``columns`` when there are none)."""
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
