"""What a search worker tells its progress display: the observer hooks, free of torch and Optuna at import.

:mod:`archbench.search.worker` calls these hooks; ``archbench.cli.progress`` implements them on the terminal.
They live apart from the worker so that a display can be defined without importing the training stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archbench.runs.observers import SweepObserver

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


class SearchObserver:
    """Hooks for a search worker's progress display; the default shows nothing.

    ``runs`` hears each trial's training run. The worker enters the observer (a context manager) while it
    runs trials, after it has opened the study.
    """

    runs: SweepObserver = SweepObserver()

    def __enter__(self) -> SearchObserver:
        return self

    def __exit__(self, *exc: object) -> None: ...

    def opened(self, study: str, storage: str, existing: int) -> None:
        """The worker opened ``study`` in ``storage`` (its URL without the password), which has ``existing`` trials."""

    def trial_finished(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """A trial ended (complete, pruned or failed); an Optuna study callback."""

    def waiting(self, running: list[int]) -> None:
        """Nothing is left to start: the worker waits for the ``running`` trials of other workers."""
