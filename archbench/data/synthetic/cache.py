"""The cached built-in data set: one folder per parameter set, generated on first use."""

from __future__ import annotations

import shutil
from pathlib import Path

from archbench.data.synthetic.schema import GENERATOR_VERSION
from archbench.data.synthetic.store import read_meta
from archbench.data.synthetic.writer import (
    DEFAULT_N_TRAIN,
    DEFAULT_N_VAL,
    DEFAULT_SEED,
    DEFAULT_SIZE,
    ProgressCallback,
    generate,
    validate_args,
)


def cache_name(*, seed: int, n_train: int, n_val: int, size: int) -> str:
    """The cache folder name of a parameter set (encodes the generator version)."""
    return f"synthetic-s{seed}-{size}px-{n_train}-{n_val}-v{GENERATOR_VERSION}"


def ensure_synthetic(
    cache_root: Path,
    *,
    seed: int = DEFAULT_SEED,
    n_train: int = DEFAULT_N_TRAIN,
    n_val: int = DEFAULT_N_VAL,
    size: int = DEFAULT_SIZE,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
) -> Path:
    """The cached data set folder ``cache_root/<cache_name(...)>``, generated if needed.

    Generates only when the folder is missing or incomplete, i.e. its dataset.json is absent,
    unreadable or records other parameters; a folder left by an interrupted run is replaced.
    ``progress`` and ``workers`` as in :func:`~.writer.generate` (``progress`` hears nothing
    when the cached folder is complete).
    """
    validate_args(seed=seed, n_train=n_train, n_val=n_val, size=size)
    path = Path(cache_root) / cache_name(seed=seed, n_train=n_train, n_val=n_val, size=size)
    meta = read_meta(path)
    wanted = {"seed": seed, "n_train": n_train, "n_val": n_val, "size": size, "generator_version": GENERATOR_VERSION}
    if meta is not None and all(meta.get(k) == v for k, v in wanted.items()):
        return path
    if path.exists():
        shutil.rmtree(path)  # our own cache folder, incomplete or stale
    generate(path, seed=seed, n_train=n_train, n_val=n_val, size=size, progress=progress, workers=workers)
    return path
