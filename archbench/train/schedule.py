"""Pieces of training every task shares: the LR schedule and the divergence error.

The epoch loop itself is :mod:`archbench.train.trainer`.
"""

from __future__ import annotations

import math
from collections.abc import Callable


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite at ``step`` (0-based optimizer step)."""

    def __init__(self, step: int, value: float) -> None:
        super().__init__(f"training diverged at step {step}: loss = {value}")
        self.step, self.value = step, value


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR multiplier of step s: linear (s+1)/warmup for s < warmup, then cosine from 1 to 0 at ``total_steps``."""
    total_steps, warmup_steps = max(1, int(total_steps)), max(0, min(int(warmup_steps), int(total_steps)))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        decay = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / decay)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
