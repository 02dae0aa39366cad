"""The layout of a results folder and of the data cache: the one place that names their paths.

``RESULTS/runs/<task>-<neck>-phi<phi>-s<seed>-<config hash>.json``: one record per finished run.
``RESULTS/checkpoints/<config hash>/last.pt``: the last epoch's training state, for ``--resume``.
``RESULTS/weights/<record file stem>.pt``: an ok run's final weights (``archbench run --no-keep-weights``: none).
``RESULTS/evals/<record file stem>-on-<data>-<fingerprint 8>.json``: a trained run evaluated again (``archbench eval``).
``RESULTS/costs/<costs key>.json``: params, GFLOPs and latency of one model under one set of timing conditions,
measured by the first of its seeds and shared by the others.
``RESULTS/latency/<UTC stamp>.json``: a latency sitting, every configuration of the board timed in one process
(``scripts/measure_latency.py``, read by :mod:`archbench.board.latency`).
``RESULTS/search.db``: the default Optuna study storage (SQLite).
``RESULTS/search/<study>/``: a study's own results folder (its trials' records and checkpoints).
Generated data sets are cached under ``$ARCHBENCH_CACHE`` (default ``~/.cache/archbench``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

RUNS_DIR = "runs"
CHECKPOINTS_DIR = "checkpoints"
SEARCH_DB = "search.db"
SEARCH_DIR = "search"
WEIGHTS_DIR = "weights"
EVALS_DIR = "evals"
COSTS_DIR = "costs"
LATENCY_DIR = "latency"


def runs_dir(results: Path) -> Path:
    """The folder of run records."""
    return Path(results) / RUNS_DIR


def run_stem(task: str, neck: str, phi: int, seed: int, config_hash: str) -> str:
    """The name a run's files share: ``<task>-<neck>-phi<phi>-s<seed>-<config hash>``."""
    return f"{task}-{neck}-phi{phi}-s{seed}-{config_hash}"


def record_path(results: Path, task: str, neck: str, phi: int, seed: int, config_hash: str) -> Path:
    """A run record's file: ``RESULTS/runs/<task>-<neck>-phi<phi>-s<seed>-<config hash>.json``."""
    return runs_dir(results) / f"{run_stem(task, neck, phi, seed, config_hash)}.json"


def results_of_record(record_file: Path) -> Path:
    """The results folder a record file lies in (``RESULTS/runs/<stem>.json`` -> ``RESULTS``)."""
    return Path(record_file).resolve().parent.parent


def weights_path(results: Path, stem: str) -> Path:
    """A run's kept final weights: ``RESULTS/weights/<stem>.pt`` (``stem``: its record file's, see :func:`run_stem`)."""
    return Path(results) / WEIGHTS_DIR / f"{stem}.pt"


def record_of_weights(weights_file: Path) -> Path:
    """The record a kept weights file belongs to: ``RESULTS/weights/<stem>.pt`` -> ``RESULTS/runs/<stem>.json``."""
    weights_file = Path(weights_file).resolve()
    return runs_dir(weights_file.parent.parent) / f"{weights_file.stem}.json"


def eval_path(results: Path, stem: str, data_name: str, fingerprint: str) -> Path:
    """An evaluation of run ``stem`` on another data set: ``RESULTS/evals/<stem>-on-<data>-<fingerprint 8>.json``.

    ``data`` is the data set's name made file-safe: ``synthetic``, ``coco:/x/val_set`` -> ``coco-val_set``.
    """
    kind, _, where = data_name.partition(":")
    label = f"{kind}-{Path(where).name}" if where else kind
    label = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-") or "data"
    return Path(results) / EVALS_DIR / f"{stem}-on-{label}-{fingerprint[:8]}.json"


def costs_path(results: Path, key: str) -> Path:
    """The shared costs of one model under one set of timing conditions: ``RESULTS/costs/<key>.json``."""
    return Path(results) / COSTS_DIR / f"{key}.json"


def latency_dir(results: Path) -> Path:
    """The folder of latency sittings: ``RESULTS/latency/``."""
    return Path(results) / LATENCY_DIR


def checkpoint_path(results: Path, config_hash: str) -> Path:
    """A run's last epoch checkpoint: ``RESULTS/checkpoints/<config hash>/last.pt``."""
    return Path(results) / CHECKPOINTS_DIR / config_hash / "last.pt"


def remove_checkpoint(results: Path, config_hash: str) -> None:
    """Delete a run's epoch checkpoint, its folder and ``RESULTS/checkpoints`` (each once empty); nothing to delete
    is fine."""
    path = checkpoint_path(results, config_hash)
    path.unlink(missing_ok=True)
    for folder in (path.parent, path.parent.parent):
        try:
            folder.rmdir()
        except OSError:  # absent, or holding something else (another run's checkpoint)
            return


def search_db(results: Path) -> Path:
    """The default study storage file, ``RESULTS/search.db``."""
    return Path(results) / SEARCH_DB


def study_results(results: Path, study: str) -> Path:
    """A study's own results folder, ``RESULTS/search/<study>``: its trials write their records there."""
    return Path(results) / SEARCH_DIR / study


def cache_root() -> Path:
    """Where generated data sets are cached: ``$ARCHBENCH_CACHE`` or ``~/.cache/archbench``."""
    return Path(os.environ.get("ARCHBENCH_CACHE", Path.home() / ".cache" / "archbench"))


def study_graphs(study_folder: Path) -> Path:
    """Where a topology search writes its trials' graphs as spec files: ``RESULTS/search/<study>/graphs``."""
    return Path(study_folder) / "graphs"
