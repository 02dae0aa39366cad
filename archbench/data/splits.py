"""The two splits every data set has, and how a run selects from them.

Every data source (the built-in set, COCO folders, segmentation folders) has a ``train`` and a
``val`` split; a run may keep a seeded subset of a split's images, and records one fingerprint
for the pair of splits it trained and evaluated on.
"""

from __future__ import annotations

import hashlib

import numpy as np

from archbench.errors import UserError

SPLITS = ("train", "val")


def subset_indices(n: int, subset: int | None, seed: int) -> list[int]:
    """Ascending indices of the ``subset`` of ``n`` ordered items kept (all when None or >= n).

    The draw uses its own ``numpy.random.default_rng(seed)``, so it depends on nothing else.
    """
    if subset is None or subset >= n:
        return list(range(n))
    if subset < 1:
        raise UserError(f"subset must be a positive number of images, got {subset}")
    return sorted(np.random.default_rng(seed).choice(n, size=subset, replace=False).tolist())


def pair_fingerprint(train: str, val: str) -> str:
    """One fingerprint for both splits: the shared one (full synthetic set), else sha256 of both."""
    return train if train == val else hashlib.sha256(f"{train}\n{val}".encode()).hexdigest()
