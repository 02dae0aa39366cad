"""Side-by-side timing: several callables measured in one process, interleaved, after a warm-up.

Interleaving (A B C, B C A, C A B, ...) spreads slow phases of a shared machine over every
candidate instead of over whichever ran last, and pairing the i-th samples of two candidates
gives ratios whose spread says how far the comparison can be trusted.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Spread:
    """Median and interquartile range (q1, q3) of ``n`` samples."""

    median: float
    q1: float
    q3: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Spread:
        if not samples:
            raise ValueError("no samples")
        if len(samples) == 1:
            return cls(samples[0], samples[0], samples[0], 1)
        q1, median, q3 = statistics.quantiles(samples, n=4, method="inclusive")
        return cls(median, q1, q3, len(samples))

    def format(self, digits: int = 3) -> str:
        """``median [q1, q3]`` with ``digits`` significant digits."""
        return f"{self.median:.{digits}g} [{self.q1:.{digits}g}, {self.q3:.{digits}g}]"


def time_interleaved(
    fns: Mapping[str, Callable[[], Any]],
    runs: int = 20,
    warmup: int = 3,
    sync: Callable[[], None] | None = None,
    on_round: Callable[[int, int], None] | None = None,
) -> dict[str, list[float]]:
    """Wall time in ms of every ``fns[name]()``, ``runs`` samples each, the order rotated every round.

    ``warmup`` rounds (same rotation) run first and are not kept. ``sync`` (e.g.
    ``torch.cuda.synchronize``) runs before the clock starts and before it stops, so that
    asynchronous work is inside the sample it belongs to. ``on_round(i, total)`` is told as round i
    (1-based, warm-up rounds included, ``total`` = warmup + runs) starts.
    """
    names = list(fns)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(warmup + runs):
        if on_round:
            on_round(round_ + 1, warmup + runs)
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            if sync:
                sync()
            t0 = time.perf_counter()
            fns[name]()
            if sync:
                sync()
            if round_ >= warmup:
                samples[name].append((time.perf_counter() - t0) * 1e3)
    return samples


def paired_ratios(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """a_i / b_i for samples taken in the same round of :func:`time_interleaved`."""
    if len(a) != len(b):
        raise ValueError(f"unpaired samples: {len(a)} vs {len(b)}")
    return [x / y for x, y in zip(a, b)]
