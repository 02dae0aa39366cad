"""Paired initialisation: each part of a model drawn from its own random stream, seeded by the run seed and
the part's name.

Built from one stream, a model's later parts depend on how many numbers the earlier ones drew: the head of a
BiFPN detector starts from other weights than the head of an FPN detector with the same seed, because their
necks have different sizes. Seeded per part, every neck of one seed starts from the same backbone and head
(common random numbers), so what the necks share cancels in their paired differences on the board.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

#: How a run draws its initial weights: ``per_part`` (each part from its own stream, see :func:`part_seed`) or
#: ``one_stream`` (every part in build order from the run seed's stream, as before issue 18).
INIT_MODES = ("per_part", "one_stream")


def part_seed(seed: int, part: str) -> int:
    """A 63-bit seed for ``part`` (``backbone``, ``neck``, ``head``) of a run with ``seed``: the same for every
    model built with that seed, unrelated between parts and seeds (the first 8 bytes of SHA-256)."""
    digest = hashlib.sha256(f"{seed}:{part}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def part_init(seed: int | None, part: str) -> AbstractContextManager[None]:
    """Build ``part`` inside this context: from its own stream when ``seed`` is given (the global stream is left
    as it was), from the global stream when ``seed`` is None."""
    return nullcontext() if seed is None else _seeded(part_seed(seed, part))
