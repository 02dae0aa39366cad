"""The layout of a results folder and of the data cache: the one place that names their paths.

``RESULTS/runs/<task>-<neck>-phi<phi>-s<seed>-<config hash>.json``: one record per finished run.
``RESULTS/checkpoints/<config hash>/last.pt``: the last epoch's training state, for ``--resume``.
``RESULTS/search.db``: the default Optuna study storage (SQLite).
``RESULTS/search/<study>/``: a study's own results folder (its trials' records and checkpoints).
Generated data sets are cached under ``$ARCHBENCH_CACHE`` (default ``~/.cache/archbench``).
"""

from __future__ import annotations

import os
from pathlib import Path

RUNS_DIR = "runs"
CHECKPOINTS_DIR = "checkpoints"
SEARCH_DB = "search.db"
SEARCH_DIR = "search"


def runs_dir(results: Path) -> Path:
    """The folder of run records."""
    return Path(results) / RUNS_DIR


def record_path(results: Path, task: str, neck: str, phi: int, seed: int, config_hash: str) -> Path:
    """A run record's file: ``RESULTS/runs/<task>-<neck>-phi<phi>-s<seed>-<config hash>.json``."""
    return runs_dir(results) / f"{task}-{neck}-phi{phi}-s{seed}-{config_hash}.json"


def checkpoint_path(results: Path, config_hash: str) -> Path:
    """A run's last epoch checkpoint: ``RESULTS/checkpoints/<config hash>/last.pt``."""
    return Path(results) / CHECKPOINTS_DIR / config_hash / "last.pt"


def search_db(results: Path) -> Path:
    """The default study storage file, ``RESULTS/search.db``."""
    return Path(results) / SEARCH_DB


def study_results(results: Path, study: str) -> Path:
    """A study's own results folder, ``RESULTS/search/<study>``: its trials write their records there."""
    return Path(results) / SEARCH_DIR / study


def cache_root() -> Path:
    """Where generated data sets are cached: ``$ARCHBENCH_CACHE`` or ``~/.cache/archbench``."""
    return Path(os.environ.get("ARCHBENCH_CACHE", Path.home() / ".cache" / "archbench"))
