"""The board's verdicts per comparison group: intervals, paired differences, ties, rank stability, seeds needed.

A comparison group is one value of ``aggregate.GROUP_KEYS`` and one ``phi``: necks are compared only at equal
settings and equal scale. Everything here is computed from the per-seed rows (``aggregate.seed_rows``) by the
functions of :mod:`archbench.board.stats`, on the task's main metric (``train.task_names.main_metric``), in
its own units (AP, mIoU: fractions in [0, 1]).

``neck_verdicts`` gives one row per (group, neck): the per-phi rank, the paired difference from the reference
neck with its 95 % interval and the tie letters; ``with_verdicts`` joins them onto the board's table (whose
``score`` / ``score_ci95`` already hold each neck's mean and 95 % interval). ``group_verdicts`` gives one row per
group: the seed-split rank stability and the closest unresolved pair with about how many seeds would resolve it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pandas as pd

from archbench.board import stats
from archbench.board.aggregate import GROUP_KEYS, ROW_KEYS
from archbench.errors import UserError
from archbench.train.task_names import main_metric

#: The columns naming one comparison group (read from ``GROUP_KEYS`` whatever it holds, then ``phi``).
PHI_GROUP = [*GROUP_KEYS, "phi"]
#: What ``neck_verdicts`` adds per (group, neck); differences and half-widths in the metric's units.
NECK_COLUMNS = ["phi_rank", "reference", "n_pairs", "diff_mean", "diff_ci95", "letters", "diff_note"]
#: What ``group_verdicts`` holds per group besides its keys.
GROUP_COLUMNS = [
    "metric",
    "n_necks",
    "n_seeds",
    "rank_tau",
    "pair_a",
    "pair_b",
    "pair_n",
    "pair_diff",
    "pair_sd",
    "seeds_needed",
]


def comparison_groups(rows: pd.DataFrame) -> Iterator[tuple[dict[str, Any], str, pd.DataFrame]]:
    """Each comparison group of the per-seed ``rows``: its keys, its main metric and its rows.

    Groups whose main metric is missing from every row are skipped (nothing to compare). Two rows for one
    (neck, seed) in a group is a ``UserError``: seeds could not be paired.
    """
    if rows.empty:
        return
    for key, sub in rows.groupby(PHI_GROUP, sort=True, dropna=False):
        keys = dict(zip(PHI_GROUP, key))
        metric = main_metric(str(keys["task"]))
        if metric not in sub.columns or sub[metric].isna().all():
            continue
        dup = sub.duplicated(["neck", "seed"], keep=False)
        if dup.any():
            first = sub[dup].iloc[0]
            where = ", ".join(f"{k} {v}" for k, v in keys.items())
            raise UserError(
                f"two ok records of neck {first['neck']!r} with seed {first['seed']} in one group ({where}): "
                "seeds cannot be paired; remove one of them from runs/"
            )
        yield keys, metric, sub


def check_reference(rows: pd.DataFrame, reference: str) -> str:
    """``reference`` when some run on the board has that neck; a ``UserError`` listing the board's necks otherwise."""
    necks = sorted({str(n) for n in rows["neck"]}) if not rows.empty else []
    if reference not in necks:
        choices = ", ".join(necks)
        raise UserError(f"--reference {reference!r}: no run of that neck on this board; choose one of {choices}")
    return reference


def _one_group_necks(keys: dict[str, Any], metric: str, sub: pd.DataFrame, reference: str) -> pd.DataFrame:
    """One group's per-neck verdicts (see :func:`neck_verdicts`)."""
    summary = stats.neck_summary(sub, metric, reference)
    out = pd.DataFrame(
        {
            "neck": summary.index,
            "phi_rank": summary["mean"].rank(ascending=False, method="min").astype("Int64").to_numpy(),
            "reference": reference,
            "n_pairs": summary["n_pairs"].fillna(0).astype(int).to_numpy(),
            "diff_mean": summary["diff_mean"].to_numpy(),
            "diff_ci95": summary["diff_ci"].to_numpy(),
            "letters": summary["letters"].to_numpy(),
            "diff_note": summary["note"].where(summary["note"] != "", math.nan).to_numpy(),
        }
    )
    for k, v in keys.items():
        out[k] = v
    return out


def neck_verdicts(rows: pd.DataFrame, reference: str = stats.REFERENCE) -> pd.DataFrame:
    """One row per (group, neck), best mean first within a group: ``ROW_KEYS`` and ``NECK_COLUMNS``.

    ``phi_rank``: 1 = best mean of the main metric in its (group, phi), ties share the best rank.
    ``diff_mean`` / ``diff_ci95``: the neck's paired difference from ``reference`` and its Student-t 95 %
    half-width on the block model (:func:`stats.paired_differences`; metric units; ``n_pairs``: seeds the two
    share; NaN and a ``diff_note`` when it cannot be computed; ``diff_note`` is NaN otherwise). ``letters``:
    necks sharing a letter are statistically tied (:func:`stats.tie_letters`).
    """
    frames = [_one_group_necks(k, m, sub, reference) for k, m, sub in comparison_groups(rows)]
    if not frames:
        return pd.DataFrame(columns=[*ROW_KEYS, *NECK_COLUMNS])
    return pd.concat(frames, ignore_index=True)[[*ROW_KEYS, *NECK_COLUMNS]]


def _one_group(keys: dict[str, Any], metric: str, sub: pd.DataFrame) -> dict[str, Any]:
    """One group's row of :func:`group_verdicts`."""
    pair = stats.closest_unresolved_pair(sub, metric)
    return {
        **keys,
        "metric": metric,
        "n_necks": int(sub["neck"].nunique()),
        "n_seeds": int(sub["seed"].nunique()),
        "rank_tau": stats.rank_stability(sub, metric),
        "pair_a": pair.a if pair else None,
        "pair_b": pair.b if pair else None,
        "pair_n": pair.n_pairs if pair else None,
        "pair_diff": pair.diff_mean if pair else None,
        "pair_sd": pair.diff_sd if pair else None,
        "seeds_needed": pair.seeds_needed if pair else None,
    }


def group_verdicts(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per comparison group: ``PHI_GROUP`` and ``GROUP_COLUMNS``.

    ``rank_tau``: Kendall tau-b between the neck rankings of disjoint halves of the seeds
    (:func:`stats.rank_stability`; dimensionless, 1 = the halves agree). ``pair_a`` / ``pair_b``: among the three
    best necks, the statistically tied pair with the smallest paired mean difference ``pair_diff`` (a - b,
    metric units; ``pair_sd`` the block model's sd of one per-seed difference, over ``pair_n`` seeds), and
    ``seeds_needed``: about how many paired seeds would resolve it (:func:`stats.closest_unresolved_pair`;
    inf for a zero difference). All None when the three best necks are all resolved.
    """
    out = [_one_group(k, m, sub) for k, m, sub in comparison_groups(rows)]
    return pd.DataFrame(out, columns=[*PHI_GROUP, *GROUP_COLUMNS])


def with_verdicts(table: pd.DataFrame, necks: pd.DataFrame) -> pd.DataFrame:
    """The board's ``table`` with the ``NECK_COLUMNS`` of ``necks`` joined on ``ROW_KEYS`` (same row order)."""
    if table.empty:
        return table.assign(**{c: pd.Series(dtype=object) for c in NECK_COLUMNS})
    return table.merge(necks, on=ROW_KEYS, how="left", validate="one_to_one")
