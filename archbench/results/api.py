"""``runs``, ``board`` and ``query``: a results folder read as pandas DataFrames (see :mod:`archbench.results`)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from archbench.board.compose import compose
from archbench.errors import UserError
from archbench.results.flat import flat_frame
from archbench.runs.layout import runs_dir
from archbench.runs.records import RunRecord, record_files

#: A results folder: what ``archbench run --results`` wrote into (``results`` by default).
Results = str | os.PathLike[str]


def _record_files(results: Results) -> list[Path]:
    """The record files of ``results``; a ``UserError`` when it is not a results folder (it has no ``runs/``)."""
    folder = runs_dir(Path(results))
    if not folder.is_dir():
        raise UserError(
            f"{results}: not a results folder (no {folder} folder of run records); give the folder that "
            "`archbench run --results` wrote into (default: results)"
        )
    return record_files(Path(results))


def runs(results: Results = "results") -> pd.DataFrame:
    """Every run record under ``results/runs`` as one row (one per seed; failed runs too, by ``status``).

    Columns (see :mod:`archbench.results.flat`): ``task``, ``neck``, ``spec_hash``, ``phi``, ``preset``,
    ``terms``, ``seed``, ``status``, ``metric`` (the main metric's name) and ``score`` (its value), ``config_hash``
    and ``record`` (the file) first; then the record's other plain fields; then its nested ones as
    ``metrics.AP50``, ``costs.gflops``, ``timing.images_per_s``, ``dataset.fingerprint``, ``train.lr``,
    ``model.width``, ... Units: ``costs`` in parameters, GFLOPs and ms; ``timing`` in s and images/s;
    ``memory`` in MiB. A bad record file is a ``UserError`` naming it, as for every reader of records.
    """
    return flat_frame([(path, RunRecord.load(path).to_dict()) for path in _record_files(results)])


def board(results: Results = "results", task: str | None = None, reference: str | None = None) -> pd.DataFrame:
    """The leaderboard of ``results``, the very table ``archbench leaderboard`` shows (``--format csv`` gives its
    raw numbers): one row per (group, neck, phi) of the ``ok`` runs (of ``task`` only, if given) with ``n_seeds``,
    ``<metric>_mean`` / ``<metric>_std`` / ``<metric>_ci95`` of each task metric, mean costs, ``score``, ``rank``
    and ``pareto`` (:func:`archbench.board.aggregate.build_table`), and the verdicts per phi: ``phi_rank``, the
    paired difference from ``reference`` (default fpn; ``diff_mean``, ``diff_ci95``, ``n_pairs``) and the tie
    ``letters`` (:func:`archbench.board.verdicts.neck_verdicts`). The board's other tables (rank stability,
    iso-FLOPs, transfer) are in :func:`archbench.board.compose.compose`.
    """
    return compose([RunRecord.load(path) for path in _record_files(results)], task, reference, setup=False).table


def _one_or_many(value: Any) -> list[Any]:
    """A filter's accepted values: ``value`` itself, or each of them when it is a list, tuple, set or range."""
    return list(value) if isinstance(value, Iterable) and not isinstance(value, str) else [value]


def query(
    neck: str | Iterable[str] | None = None,
    phi: int | Iterable[int] | None = None,
    task: str | Iterable[str] | None = None,
    preset: str | Iterable[str] | None = None,
    terms: str | Iterable[str] | None = None,
    results: Results = "results",
) -> pd.DataFrame:
    """The rows of :func:`runs` that match every filter given; each filter takes one value or a list of them.

    ``neck`` is the spec's name (as on the board), ``phi`` the compound-scaling index, ``task`` ``det`` or
    ``seg``, ``preset`` the scaling rule (``proxy``, ``efficientdet``, ``study:NAME#K``), ``terms`` the
    equal-terms protocol: a run whose configuration has no op/act/norm overrides (each neck with its own ops;
    every record written before ``--terms`` existed) is ``"native"``. A value no run has gives an empty frame
    (with the columns); an unknown results folder is a ``UserError``.
    """
    frame = runs(results)
    filters = {"neck": neck, "phi": phi, "task": task, "preset": preset, "terms": terms}
    keep = pd.Series(True, index=frame.index)
    for column, wanted in filters.items():
        if wanted is not None:
            keep &= frame[column].isin(_one_or_many(wanted))
    return frame[keep].reset_index(drop=True)
