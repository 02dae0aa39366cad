"""A generated data set's description on disk: dataset.json and the fingerprint of its files.

dataset.json is written last (see :mod:`.writer`), so a folder holding a valid one is complete;
it records the generation parameters, the fingerprint, the classes, the size-bucket thresholds,
the ignore value and the annotation counts. :class:`SyntheticInfo` is what readers use of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archbench.data.synthetic.schema import (
    CLASSES,
    DATASET_NAME,
    GENERATOR_VERSION,
    IGNORE_INDEX,
    area_thresholds,
)
from archbench.errors import UserError


@dataclass(frozen=True)
class SyntheticInfo:
    """A generated data set on disk.

    ``path`` is the data set folder (layout in :mod:`archbench.data.synthetic`), ``fingerprint``
    the 64-hex-digit sha256 of its annotation and image/mask files (see :func:`fingerprint`),
    ``n_train``/``n_val`` image counts, ``size`` the image side in px, ``classes`` the class
    names in contiguous order (semantic-mask value k is ``classes[k - 1]``), ``area_thresholds``
    the (small_max, medium_max) object areas in px**2 of its size buckets, ``num_annotations``
    the annotation count per split (empty if dataset.json does not record it).
    """

    path: Path
    fingerprint: str
    n_train: int
    n_val: int
    size: int
    classes: list[str]
    area_thresholds: tuple[float, float]
    num_annotations: dict[str, int]


def _fingerprinted_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix path, path) of the files the fingerprint covers, sorted by path."""
    paths = list((root / "annotations").glob("*.json"))
    for folder in ("images", "masks"):
        paths += [p for p in (root / folder).rglob("*") if p.is_file()]
    yield from sorted((p.relative_to(root).as_posix(), p) for p in paths)


def fingerprint(out_dir: Path) -> str:
    """sha256 (64 hex digits) over the annotation jsons and every image and mask file.

    Files are taken in sorted relative-path order; each contributes its path, its length
    and its bytes, so renaming or moving a file changes the fingerprint too.
    """
    digest = hashlib.sha256()
    for rel, path in _fingerprinted_files(Path(out_dir)):
        data = path.read_bytes()
        digest.update(rel.encode() + b"\0" + len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def metadata(root: Path, *, seed: int, n_train: int, n_val: int, size: int, n_ann: dict[str, int]) -> dict[str, Any]:
    """The content of dataset.json for a freshly written data set in ``root``."""
    small_max, medium_max = area_thresholds(size)
    return {
        "name": DATASET_NAME,
        "seed": seed,
        "size": size,
        "n_train": n_train,
        "n_val": n_val,
        "fingerprint": fingerprint(root),
        "classes": [c.name for c in CLASSES],
        "category_ids": [c.category_id for c in CLASSES],
        "generator_version": GENERATOR_VERSION,
        "area_thresholds": {"small_max": small_max, "medium_max": medium_max},
        "ignore_index": IGNORE_INDEX,
        "num_annotations": n_ann,
    }


def read_meta(path: Path) -> dict[str, Any] | None:
    """dataset.json of a generated data set, or None if absent or not ours."""
    try:
        meta = json.loads((path / "dataset.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("name") != DATASET_NAME or "fingerprint" not in meta:
        return None
    return meta


def read_info(path: Path) -> SyntheticInfo:
    """The :class:`SyntheticInfo` of a complete generated data set; UserError otherwise.

    A dataset.json without ``area_thresholds`` gets those of :func:`~.schema.area_thresholds`.
    """
    meta = read_meta(Path(path))
    if meta is None:
        raise UserError(f"{path}: not a complete archbench synthetic data set (no valid dataset.json)")
    size = int(meta["size"])
    thresholds = meta.get("area_thresholds") or {}
    small_max, medium_max = area_thresholds(size)
    return SyntheticInfo(
        path=Path(path),
        fingerprint=meta["fingerprint"],
        n_train=int(meta["n_train"]),
        n_val=int(meta["n_val"]),
        size=size,
        classes=list(meta["classes"]),
        area_thresholds=(
            float(thresholds.get("small_max", small_max)),
            float(thresholds.get("medium_max", medium_max)),
        ),
        num_annotations=dict(meta.get("num_annotations", {})),
    )
