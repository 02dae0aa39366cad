"""The board's verdicts per comparison group: paired differences, tie letters, power, equivalence, stability.

A comparison group is one value of ``aggregate.GROUP_KEYS`` and one ``phi``: necks are compared only at equal
settings and equal scale. Everything here is computed from the per-seed rows (``aggregate.seed_rows``) by the
functions of :mod:`archbench.board.pairs` (each pair on its own per-seed differences: the verdicts),
:mod:`archbench.board.stats` (the pooled block model, the secondary view) and :mod:`archbench.board.power`, on
the task's main metric (``train.task_names.main_metric``), in its own units (AP, mIoU: fractions in [0, 1]).

``neck_verdicts`` gives one row per (group, neck): the per-phi rank, the paired difference from the reference
neck with its 95 % interval and both sets of letters; ``with_verdicts`` joins them onto the board's table (whose
``score`` / ``score_ci95`` already hold each neck's mean and 95 % interval). ``group_verdicts`` gives one row per
group: how many pairs are resolved, the smallest difference the seeds can detect, the seeds a stated effect
needs, the pairs shown equivalent, and the seed-split rank stability.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from archbench.board import REFERENCE, pairs, power, stats
from archbench.board.aggregate import GROUP_KEYS, ROW_KEYS, UNSCHEDULED_KEYS
from archbench.errors import UserError
from archbench.train.task_names import main_metric

#: The columns naming one comparison group (read from ``GROUP_KEYS`` whatever it holds, then ``phi``).
PHI_GROUP = [*GROUP_KEYS, "phi"]
#: What ``neck_verdicts`` adds per (group, neck); differences and half-widths in the metric's units.
NECK_COLUMNS = [
    "phi_rank",
    "reference",
    "n_pairs",
    "diff_mean",
    "diff_ci95",
    "letters",
    "pooled_letters",
    "diff_note",
]
#: What ``group_verdicts`` holds per group besides its keys (see :func:`group_verdicts`).
GROUP_COLUMNS = [
    "metric",
    "n_necks",
    "n_seeds",
    "pair_seeds",
    "rank_tau",
    "tests",
    "resolved",
    "resolved_pooled",
    "diff_sd",
    "pooled_sd",
    "mdd",
    "mdd_vs_reference",
    "seeds_for_small",
    "seeds_for_large",
    "equivalent",
    "equivalent_pairs",
]
#: Stated effects (metric units) for the seeds-needed statements, and the equivalence margin (the small one).
SMALL_EFFECT, LARGE_EFFECT = 0.02, 0.04
#: The power every detectable-difference statement is made at.
POWER = 0.8


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
    means = stats.neck_means(sub, metric)
    necks = [str(n) for n in means.index]
    vs_reference = (
        pairs.paired_tests(sub, metric, pairs.against(reference, necks)).set_index("a")
        if reference in necks
        else pd.DataFrame(columns=["n_pairs", "diff_mean", "diff_ci"])
    )
    letters, pooled = pairs.paired_letters(sub, metric), stats.tie_letters(sub, metric)
    rows = []
    for neck in necks:
        row: dict[str, Any] = {"neck": neck, "reference": reference, "letters": letters[neck]}
        row["pooled_letters"] = pooled[neck]
        if reference not in necks:
            row.update(n_pairs=0, diff_note=f"no '{reference}' runs in this group")
        elif neck == reference:
            row.update(n_pairs=int(sub.loc[sub["neck"] == neck, metric].notna().sum()), diff_mean=0.0, diff_ci95=0.0)
            row["diff_note"] = "reference"
        else:
            test = vs_reference.loc[neck]
            row.update(n_pairs=int(test["n_pairs"]), diff_mean=test["diff_mean"], diff_ci95=test["diff_ci"])
            if math.isnan(float(test["diff_ci"])):
                row["diff_note"] = f"fewer than two seeds shared with '{reference}'"
        rows.append(row)
    out = pd.DataFrame(rows)
    out["phi_rank"] = means.rank(ascending=False, method="min").astype("Int64").to_numpy()
    for k, v in keys.items():
        out[k] = v
    return out.reindex(columns=[*ROW_KEYS, *NECK_COLUMNS])


def neck_verdicts(rows: pd.DataFrame, reference: str = REFERENCE) -> pd.DataFrame:
    """One row per (group, neck), best mean first within a group: ``ROW_KEYS`` and ``NECK_COLUMNS``.

    ``phi_rank``: 1 = best mean of the main metric in its (group, phi), ties share the best rank.
    ``diff_mean`` / ``diff_ci95``: the neck's mean paired difference from ``reference`` over the seeds the two
    share (``n_pairs``) and the Student-t 95 % half-width of that pair's own differences
    (:func:`pairs.paired_tests`; metric units), not adjusted for the other comparisons; NaN and a
    ``diff_note`` when it cannot be computed (``diff_note`` is NaN otherwise, "reference" on its own row).
    ``letters``: necks sharing a letter are not told apart by the per-pair paired t-tests, Holm over every pair
    of the group (:func:`pairs.paired_letters`), the board's verdicts; ``pooled_letters``: the same from the
    pooled block model (:func:`stats.tie_letters`), which assumes every pair is equally noisy.
    """
    frames = [_one_group_necks(k, m, sub, reference) for k, m, sub in comparison_groups(rows)]
    if not frames:
        return pd.DataFrame(columns=[*ROW_KEYS, *NECK_COLUMNS])
    return pd.concat(frames, ignore_index=True)[[*ROW_KEYS, *NECK_COLUMNS]]


def _one_group(keys: dict[str, Any], metric: str, sub: pd.DataFrame, reference: str) -> dict[str, Any]:
    """One group's row of :func:`group_verdicts`."""
    necks = sorted(str(n) for n in sub["neck"].unique())
    tests = pairs.paired_tests(sub, metric)
    tested = tests["p"].notna()
    n = int(tests.loc[tested, "n_pairs"].median()) if tested.any() else 0  # the seeds of a typical pair
    sd = pairs.typical_diff_sd(sub, metric)
    m = int(tested.sum())
    family = pairs.against(reference, necks) if reference in necks else []
    ref_sd = pairs.typical_diff_sd(sub, metric, family).typical if family else math.nan
    equivalent = pairs.equivalence_tests(sub, metric, SMALL_EFFECT)
    equal = equivalent[equivalent["equivalent"]]
    return {
        **keys,
        "metric": metric,
        "n_necks": len(necks),
        "n_seeds": int(sub["seed"].nunique()),
        "pair_seeds": n,
        "rank_tau": stats.rank_stability(sub, metric),
        "tests": m,
        "resolved": int(tests["different"].sum()),
        "resolved_pooled": int(stats.pairwise_tests(sub, metric)["different"].sum()),
        "diff_sd": sd.typical,
        "pooled_sd": sd.pooled,
        "mdd": power.min_detectable_difference(sd.typical, n, stats.ALPHA, max(1, m), POWER),
        "mdd_vs_reference": power.min_detectable_difference(ref_sd, n, stats.ALPHA, max(1, len(family)), POWER),
        "seeds_for_small": power.seeds_for_effect(SMALL_EFFECT, sd.typical, stats.ALPHA, max(1, m), POWER),
        "seeds_for_large": power.seeds_for_effect(LARGE_EFFECT, sd.typical, stats.ALPHA, max(1, m), POWER),
        "equivalent": len(equal),
        "equivalent_pairs": ", ".join(f"{a} = {b}" for a, b in zip(equal["a"], equal["b"])),
    }


def group_verdicts(rows: pd.DataFrame, reference: str = REFERENCE) -> pd.DataFrame:
    """One row per comparison group: ``PHI_GROUP`` and ``GROUP_COLUMNS`` (differences and sds in metric units).

    ``n_seeds``: the seeds any neck of the group has; ``pair_seeds``: the seeds a typical pair shares (the median
    over the tested pairs), which the detectable difference is computed at.
    ``rank_tau``: Kendall tau-b between the neck rankings of disjoint halves of the seeds
    (:func:`stats.rank_stability`; 1 = the halves agree). ``tests``: the pairs tested (every pair with two or
    more shared seeds); ``resolved``: those the per-pair paired t-tests tell apart after Holm over all of them
    (:func:`pairs.paired_tests`), ``resolved_pooled``: those the pooled block model does
    (:func:`stats.pairwise_tests`). ``diff_sd``: the sd of one per-seed difference typical of the group's pairs
    (:func:`pairs.typical_diff_sd`), ``pooled_sd``: the block model's. ``mdd``: the smallest true difference a
    pair's test detects with ``POWER`` at the typical pair's seeds, Bonferroni over the ``tests`` pairs (Holm's
    strictest step, so it holds for every pair; :func:`power.min_detectable_difference`); ``mdd_vs_reference``:
    the same for the family of each neck against ``reference`` (k - 1 tests, with that family's sd).
    ``seeds_for_small`` / ``seeds_for_large``: paired seeds per neck that would detect ``SMALL_EFFECT`` /
    ``LARGE_EFFECT`` with ``POWER`` over the same family of all pairs at the typical sd
    (:func:`power.seeds_for_effect`; inf beyond any practical number). ``equivalent``: pairs shown equal within
    +-``SMALL_EFFECT`` by two one-sided tests, Holm over all pairs (:func:`pairs.equivalence_tests`), listed in
    ``equivalent_pairs``.
    """
    out = [_one_group(k, m, sub, reference) for k, m, sub in comparison_groups(rows)]
    return pd.DataFrame(out, columns=[*PHI_GROUP, *GROUP_COLUMNS])


def with_verdicts(table: pd.DataFrame, necks: pd.DataFrame) -> pd.DataFrame:
    """The board's ``table`` with the ``NECK_COLUMNS`` of ``necks`` joined on ``ROW_KEYS`` (same row order)."""
    if table.empty:
        return table.assign(**{c: pd.Series(dtype=object) for c in NECK_COLUMNS})
    return table.merge(necks, on=ROW_KEYS, how="left", validate="one_to_one")


#: What ``schedule_agreement`` holds per (group without its schedule, phi, shorter schedule, longer schedule).
SCHEDULE_COLUMNS = [
    *UNSCHEDULED_KEYS,
    "phi",
    "metric",
    "short",
    "long",
    "n_necks",
    "tau",
    "tau_low",
    "tau_high",
    "long_rank_tau",
    "within_noise",
    "reversed",
    "flips",
]


def schedule_agreement(rows: pd.DataFrame, n_boot: int = 2000) -> pd.DataFrame:
    """How well each shorter schedule's ranking predicts each longer one's, per group and phi.

    For every two groups that differ only in ``epochs`` and share two or more necks at a phi: Kendall tau-b
    between the necks' mean metric under the two schedules with its 95 % bootstrap interval over seeds (the
    same resample for a seed both ran: seed s of both schedules shares its initial weights and data order;
    :func:`pairs.tier_agreement`), beside the longer schedule's own seed-split tau (``long_rank_tau``, the
    noise a ranking agreement should be read against). ``reversed``: pairs ordered oppositely by the two
    schedules' means; ``flips``: pairs whose per-pair verdict (resolved either way, or not) differs, as
    ``a ? b: short -> long`` text. ``within_noise``: the agreement is at least the longer schedule's seed-split
    tau, i.e. changing the schedule reorders the necks no more than changing the seeds does (see
    :func:`settled_schedule`).
    """
    if rows.empty:
        return pd.DataFrame(columns=SCHEDULE_COLUMNS)
    out = []
    for key, sub in rows.groupby([*UNSCHEDULED_KEYS, "phi"], sort=True, dropna=False):
        keys = dict(zip([*UNSCHEDULED_KEYS, "phi"], key))
        metric = main_metric(str(keys["task"]))
        schedules = sorted(e for e in sub["epochs"].dropna().unique())
        for short, long in itertools.combinations(schedules, 2):
            a, b = sub[sub["epochs"] == short], sub[sub["epochs"] == long]
            if len(set(a["neck"]) & set(b["neck"])) < 2:
                continue
            agreement = pairs.tier_agreement(a, b, metric, n_boot=n_boot)
            p = agreement.pairs
            reversed_ = int((np.sign(p["first_diff"]) * np.sign(p["second_diff"]) < 0).sum())
            flips = "; ".join(f"{r.a} ? {r.b}: {r.first} -> {r.second}" for r in agreement.flips.itertuples())
            common = b[b["neck"].isin(agreement.necks)]
            long_tau = stats.rank_stability(common, metric)
            measured = bool(np.isfinite([agreement.tau, long_tau]).all())
            out.append(
                {
                    **keys,
                    "metric": metric,
                    "short": int(short),
                    "long": int(long),
                    "n_necks": len(agreement.necks),
                    "tau": agreement.tau,
                    "tau_low": agreement.low,
                    "tau_high": agreement.high,
                    "long_rank_tau": long_tau,
                    "within_noise": bool(agreement.tau >= long_tau) if measured else None,
                    "reversed": reversed_,
                    "flips": flips,
                }
            )
    return pd.DataFrame(out, columns=SCHEDULE_COLUMNS)


def settled_schedule(schedules: pd.DataFrame) -> pd.DataFrame:
    """Per group (without its schedule) and phi, the shortest schedule at which the ranking has settled: its
    agreement with every longer schedule trained is within that schedule's seed noise (``within_noise`` of every
    row of :func:`schedule_agreement` from it). ``settled`` is None where no schedule but the longest qualifies
    (the longest has nothing to be checked against); ``longest`` is the longest schedule trained."""
    keys = [*UNSCHEDULED_KEYS, "phi"]
    out = []
    for key, sub in schedules.groupby(keys, sort=True, dropna=False):
        settled = next(
            (int(short) for short, rows in sub.groupby("short", sort=True) if rows["within_noise"].eq(True).all()),
            None,
        )
        out.append({**dict(zip(keys, key)), "settled": settled, "longest": int(sub["long"].max())})
    return pd.DataFrame(out, columns=[*keys, "settled", "longest"])
