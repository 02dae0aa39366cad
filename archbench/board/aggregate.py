"""Run records -> the leaderboard table: seed statistics, ranks and Pareto flags; failed runs apart.

Everything on the board is a pure function of the records (``archbench.runs.records.load_records``);
nothing else is parsed. ``build_table`` aggregates seeds into one row per (task, dataset, preset,
neck, phi); ``failed_runs`` lists what did not finish. The board reads records as plain dicts:
``as_dict`` is the one place that turns whatever the record loader returns into one.

Metrics of -1 (COCO's "no ground truth in this size bucket") are treated as missing, so they
never pull a mean down.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from archbench.board.stats import t_half_width
from archbench.errors import UserError
from archbench.runs.environment import timing_conditions
from archbench.runs.layout import runs_dir
from archbench.runs.records import FAILED, OK, load_records
from archbench.spec.terms import terms_of
from archbench.train.task_names import HEADLINES, main_metric

#: AP per object size (COCO's small / medium / large buckets): shown beside detection's headline metrics.
SIZE_METRICS = ["APs", "APm", "APl"]
#: Metrics aggregated over seeds, per task: its headline metrics (the first is the one ranked on), then
#: what the board adds for it.
TASK_METRICS: dict[str, list[str]] = {
    name: [*headline, *(SIZE_METRICS if name == "det" else [])] for name, headline in HEADLINES.items()
}
#: Costs and throughput carried into the table (mean over seeds).
COST_COLUMNS = ["params_total", "gflops", "latency_ms", "images_per_s"]
#: The columns that identify a comparison group (ranks and Pareto flags are within a group); ``terms`` is the
#: equal-terms protocol (:func:`archbench.spec.terms.terms_of`), ``native`` for each neck with its own ops;
#: ``epochs`` the training schedule (a board's quick and headline tiers are groups of different schedules);
#: ``device`` (cpu / cuda) and ``amp`` (off / bf16 / fp16): CPU and GPU runs of one seed, or float32 and autocast
#: runs, are different experiments and never pool.
GROUP_KEYS = ["task", "dataset", "preset", "terms", "epochs", "device", "amp"]
ROW_KEYS = GROUP_KEYS + ["neck", "phi"]
#: A comparison group's keys without its schedule: what the schedules of one learning curve share.
UNSCHEDULED_KEYS = [k for k in GROUP_KEYS if k != "epochs"]
FAILED_COLUMNS = ["task", "neck", "phi", "seed", "reason"]


class _HasToDict(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


#: A run record as the loader returns it: its JSON dict, or an object whose ``to_dict()`` gives that dict.
Record = Mapping[str, Any] | _HasToDict


def as_dict(record: Record) -> Mapping[str, Any]:
    """A run record as its JSON dict (the same keys as the record file)."""
    return record if isinstance(record, Mapping) else record.to_dict()


def require_records(results: Path, task: str | None = None) -> list[Mapping[str, Any]]:
    """The records under ``results`` as dicts (of ``task`` only, if given), or a ``UserError`` when there are none."""
    records = [as_dict(r) for r in load_records(Path(results))]
    if task is not None:
        records = [r for r in records if r.get("task") == task]
    if not records:
        what = "run records" if task is None else f"'{task}' run records"
        raise UserError(f"no {what} under {runs_dir(results)}; run `archbench run` first")
    return records


def pooled_records(folders: Sequence[Path], task: str | None = None) -> list[Mapping[str, Any]]:
    """The records of several results folders as one board's (:func:`require_records` of each, so an empty folder is
    a ``UserError`` naming it). A configuration recorded in more than one folder counts once, the first folder's:
    a run copied or trained again elsewhere must not pool with itself as two seeds."""
    seen: set[str] = set()
    pooled = []
    for folder in folders:
        for record in require_records(folder, task):
            key = record.get("config_hash")
            if key in seen:
                continue
            if key is not None:
                seen.add(key)
            pooled.append(record)
    return pooled


def as_number(value: Any) -> float:
    """A float, or NaN for missing / non-numeric / negative-sentinel values (the one home of the -1 rule)."""
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return math.nan if x < 0 else x


def schedule_of(record: Mapping[str, Any]) -> int | None:
    """The run's training schedule in epochs (the record's ``epochs``, else its config's); None if neither says."""
    epochs = record.get("epochs", ((record.get("config") or {}).get("train") or {}).get("epochs"))
    return int(epochs) if epochs is not None else None


def amp_of(record: Mapping[str, Any]) -> str:
    """The run's autocast mode (off / bf16 / fp16) from its config; configs from before modes store True for bf16
    and False (or nothing) for off."""
    amp = ((record.get("config") or {}).get("train") or {}).get("amp", False)
    if isinstance(amp, bool):
        return "bf16" if amp else "off"
    return str(amp)


def group_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record's comparison group: its value of every ``GROUP_KEYS`` column."""
    return {
        "task": record.get("task", "det"),
        "dataset": (record.get("dataset") or {}).get("name", "?"),
        "preset": record.get("preset", "?"),
        "terms": terms_of(record.get("config")),
        "epochs": schedule_of(record),
        "device": str((record.get("config") or {}).get("device", "cpu")),
        "amp": amp_of(record),
    }


def _flatten(record: Mapping[str, Any]) -> dict[str, Any]:
    """One ok record as a flat row: keys, metrics of its task and costs."""
    task = record.get("task", "det")
    metrics = record.get("metrics") or {}
    costs = record.get("costs") or {}
    timing = record.get("timing") or {}
    row: dict[str, Any] = {
        **group_of(record),
        "neck": record.get("neck", "?"),
        "spec_hash": record.get("spec_hash"),
        "phi": record.get("phi"),
        "seed": record.get("seed"),
    }
    for m in TASK_METRICS.get(task, []):
        row[m] = as_number(metrics.get(m))
    for c in ("params_total", "gflops", "latency_ms"):
        row[c] = as_number(costs.get(c))
    row["images_per_s"] = as_number(timing.get("images_per_s"))
    row["timing_conditions"] = timing_conditions(record.get("environment"))
    return row


def _ok_rows(records: Iterable[Record], task: str | None) -> pd.DataFrame:
    rows = [
        _flatten(r) for r in map(as_dict, records) if r.get("status") == OK and (task is None or r.get("task") == task)
    ]
    return _split_topologies(pd.DataFrame(rows))


def seed_rows(records: Iterable[Record], task: str | None = None) -> pd.DataFrame:
    """One row per ``ok`` run (of ``task`` only, if given): the per-seed rows every board statistic starts from.

    Columns: ``GROUP_KEYS``, ``neck`` (split by topology as on the board), ``phi``, ``seed``, the task metrics
    (metric units; NaN when missing) and the costs. ``build_table`` aggregates exactly these rows.
    """
    return _ok_rows(records, task)


def _split_topologies(rows: pd.DataFrame) -> pd.DataFrame:
    """Never pool seeds of different topologies that share a name (a built-in changed between runs).

    Where one neck name has records with several spec hashes in a group, each topology becomes its own
    neck at every phi, labelled ``name@<first 8 hex digits of its spec hash>``, so each keeps its own curve;
    a name with one topology keeps its name.
    """
    if rows.empty:
        return rows
    keys = GROUP_KEYS + ["neck"]
    hashes = rows.groupby(keys, dropna=False)["spec_hash"].transform("nunique")
    ambiguous = hashes > 1
    rows.loc[ambiguous, "neck"] = rows.loc[ambiguous, "neck"] + "@" + rows.loc[ambiguous, "spec_hash"].str[:8]
    return rows.drop(columns="spec_hash")


def _aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean/std/95 % CI half-width of the metrics and mean costs per (task, dataset, preset, neck, phi)."""
    metrics = [m for ms in TASK_METRICS.values() for m in ms if m in rows.columns]
    grouped = rows.groupby(ROW_KEYS, sort=True, dropna=False)
    out = grouped.size().rename("n_seeds").to_frame()
    for m in metrics:
        out[f"{m}_mean"] = grouped[m].mean()
        out[f"{m}_std"] = grouped[m].std(ddof=1)  # sample std: NaN for a single seed
        # Student-t over the seeds that have the metric (stats.mean_ci): NaN for a single seed
        out[f"{m}_ci95"] = [t_half_width(sd, n) for sd, n in zip(out[f"{m}_std"], grouped[m].count())]
    for c in COST_COLUMNS:
        out[c] = grouped[c].mean()
    # latency and img/s are means over the seeds: say where those seeds ran under different conditions
    out["timing_mixed"] = grouped["timing_conditions"].nunique() > 1
    return out.reset_index()


def _main_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``metric``, ``score``, ``score_std`` and ``score_ci95``: the task's main metric, whatever the task."""
    table["metric"] = table["task"].map(main_metric)
    for out, suffix in (("score", "_mean"), ("score_std", "_std"), ("score_ci95", "_ci95")):
        table[out] = [
            table.at[i, m + suffix] if m + suffix in table.columns else math.nan
            for i, m in zip(table.index, table["metric"])
        ]
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
    table["rank"] = table.groupby(GROUP_KEYS, dropna=False)["score"].rank(ascending=False, method="min").astype("Int64")
    table["pareto"] = False
    for _, idx in table.groupby(GROUP_KEYS, dropna=False).groups.items():
        sub = table.loc[idx]
        table.loc[idx, "pareto"] = pareto_mask(sub["score"], sub["gflops"])
    table["pareto"] = table["pareto"].astype(bool)
    return table


def build_table(records: Iterable[Record], task: str | None = None) -> pd.DataFrame:
    """One row per (task, dataset, preset, neck, phi) over ``ok`` records.

    Columns: the keys, ``n_seeds``, ``<metric>_mean`` / ``<metric>_std`` (sample std, NaN for
    one seed) / ``<metric>_ci95`` (half-width of the Student-t 95 % interval of the mean over seeds,
    metric units, NaN for one seed; :func:`archbench.board.stats.mean_ci`) of each task metric, the
    mean ``params_total``, ``gflops``, ``latency_ms`` and ``images_per_s``, ``timing_mixed`` (True where those
    timings average runs made under different conditions: machine, threads, jobs, speed settings; see
    :func:`archbench.runs.environment.timing_conditions`), ``metric`` (the main
    metric's name), ``score`` / ``score_std`` / ``score_ci95`` (its mean, std and 95 % half-width),
    ``rank`` (1 = best within the (task, dataset, preset) group) and ``pareto`` (no
    other row in the group is at least as accurate and at most as costly in GFLOPs, one strictly).
    Rows are sorted by group, then rank.
    """
    rows = _ok_rows(records, task)
    if rows.empty:
        return pd.DataFrame(
            columns=ROW_KEYS
            + ["n_seeds", *COST_COLUMNS, "timing_mixed", "metric", "score", "score_std", "score_ci95", "rank", "pareto"]
        )
    table = _rank_and_pareto(_main_scores(_aggregate(rows)))
    return table.sort_values(GROUP_KEYS + ["rank", "neck", "phi"]).reset_index(drop=True)


def failed_runs(records: Iterable[Record]) -> pd.DataFrame:
    """The failed runs, apart: task, neck, phi, seed and reason."""
    rows = [
        {
            "task": r.get("task"),
            "neck": r.get("neck"),
            "phi": r.get("phi"),
            "seed": r.get("seed"),
            "reason": r.get("reason", ""),
        }
        for r in map(as_dict, records)
        if r.get("status") == FAILED
    ]
    return pd.DataFrame(rows, columns=FAILED_COLUMNS)
