"""What a sweep tells its progress display: the observer hooks and the records they pass, free of torch.

:mod:`archbench.runs.sweep` calls these hooks; the command line's displays (:mod:`archbench.cli.progress`)
implement them. They live apart from the sweep so that a display can be defined without importing the
training stack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from archbench.runs.records import RunRecord
    from archbench.train.trainer import StepInfo


@dataclass(frozen=True)
class EpochInfo:
    """One finished epoch of run ``label``, for a log line: ``epoch`` of ``epochs`` done (counted from 1), its
    mean training loss, the images it trained on (all processes) and its training seconds (the epoch's
    checkpoint and any evaluation excluded)."""

    label: str
    epoch: int
    epochs: int
    loss: float
    images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        """The epoch's training throughput, images per second."""
        return self.images / self.seconds if self.seconds > 0 else 0.0


class SweepObserver:
    """Hooks for progress display; the default does nothing."""

    def run_started(self, label: str, epochs: int, steps: int) -> None: ...

    def step(self, info: StepInfo) -> None: ...

    def run_step(self, label: str, info: StepInfo) -> None:
        """A step of run ``label``, where several runs are in flight (``--jobs``); the default calls :meth:`step`."""
        self.step(info)

    def run_finished(self, label: str, record: RunRecord) -> None: ...

    def skipped(self, label: str, reason: str) -> None: ...

    def data_progress(self, data: str, done: int, total: int) -> None:
        """While the data of reference ``data`` is generated (the built-in set, not cached yet): ``done`` of
        ``total`` images so far."""

    def epoch_summary(self, info: EpochInfo) -> None:
        """After each epoch, before :meth:`epoch_finished`: what a log line shows. Under ``--jobs`` it comes from
        the run's process, as the steps do."""

    def epoch_finished(self, epoch: int, epochs: int, evaluate: Callable[[], dict[str, float]]) -> None:
        """After each epoch's checkpoint; ``evaluate()`` scores the current weights. Raise ``RunStopped`` to stop."""


class RunStopped(Exception):
    """An observer stopped a run early on purpose (e.g. a search pruned it): nothing is recorded for it."""
