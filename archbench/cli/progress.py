"""The terminal's progress displays, all on stderr so that stdout holds only results.

- :class:`RichObserver`: a sweep's runs, one bar per run (epoch, step, loss, images/s, ETA), one line per finished run;
- :class:`SearchDisplay`: a search worker, one line per finished trial, the study's count, what it waits for;
- :func:`profile_progress`: a transient bar over the rows ``archbench profile`` measures;
- :class:`DataProgress`: a transient bar over the images ``archbench data synth`` generates (a sweep's
  :class:`RichObserver` shows the built-in set's generation as one more bar).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from archbench.runs.records import RunRecord
from archbench.runs.sweep import SweepObserver
from archbench.search.study import counts
from archbench.search.worker import SearchObserver
from archbench.train.tasks import get_task
from archbench.train.trainer import StepInfo


class RichObserver(SweepObserver):
    """Shows training progress on ``console`` (stderr, so stdout stays clean): a bar per run in flight (several
    under ``--jobs``) on a terminal, a line per started run elsewhere, and one line per finished run."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.tasks: dict[str, Any] = {}  # the bar of each run in flight, by label
        self.latest: str | None = None  # the run that ``step`` (one run at a time) updates
        self.data_task: Any = None

    def __enter__(self) -> RichObserver:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def run_started(self, label: str, epochs: int, steps: int) -> None:
        self.tasks[label] = self.progress.add_task(label, total=steps, status="")
        self.latest = label
        if not self.console.is_terminal:  # no live bars in a log: say what started
            self.console.print(f"start   {label}: {epochs} epochs, {steps} steps", highlight=False)

    def step(self, info: StepInfo) -> None:
        if self.latest is not None:
            self.run_step(self.latest, info)

    def run_step(self, label: str, info: StepInfo) -> None:
        status = f"epoch {info.epoch + 1} loss {info.loss:.3f} {info.images_per_s:.0f} img/s"
        self.progress.update(self.tasks[label], completed=info.step, status=status)

    def run_finished(self, label: str, record: RunRecord) -> None:
        if label in self.tasks:
            self.progress.remove_task(self.tasks.pop(label))
        if record.ok:
            m, t = record.metrics or {}, record.timing or {}
            scores = " ".join(f"{name} {m[name]:.3f}" for name in get_task(record.task).headline)
            self.console.print(
                f"ok      {label}: {scores} ({t['train_seconds']:.0f}s train, {t['images_per_s']:.0f} img/s)",
                highlight=False,
            )
        else:  # failed, or stopped on purpose (a pruned search trial)
            self.console.print(f"{record.status.upper():7} {label}: {record.reason}", highlight=False)

    def skipped(self, label: str, reason: str) -> None:
        self.console.print(f"skip    {label}: {reason}", highlight=False)

    def data_progress(self, data: str, done: int, total: int) -> None:
        if self.data_task is None:
            self.data_task = self.progress.add_task(f"generating {data}", total=total, status="")
        self.progress.update(self.data_task, completed=done)
        if done >= total:
            self.progress.remove_task(self.data_task)
            self.data_task = None


class SearchDisplay(SearchObserver):
    """A search worker on ``console``: the study it joined, one line per finished trial (an Optuna callback),
    what it waits for, and its trials' training runs (a :class:`RichObserver`)."""

    runs: RichObserver

    def __init__(self, console: Console, target: int, metric: str) -> None:
        self.console, self.target, self.metric = console, target, metric
        self.runs = RichObserver(console)
        self._waiting_for: list[int] = []

    def __enter__(self) -> SearchDisplay:
        self.runs.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.runs.__exit__(*exc)

    def _print(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)

    def opened(self, study: str, storage: str, existing: int) -> None:
        self._print(
            f"study {study} ({storage}): {self.target} trial(s) in total across workers, {existing} there already"
        )

    def trial_finished(self, study: optuna.Study, trial: FrozenTrial) -> None:
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        sampled = trial.user_attrs.get("coefficients", trial.params)  # a rejected trial has only what it sampled
        coefficients = ", ".join(f"{k}={v:.4g}" for k, v in sampled.items())
        if trial.state == TrialState.COMPLETE:
            outcome = f"ok      {self.metric} {trial.values[0]:.4f} at {trial.user_attrs['gflops']:.4f} GFLOPs"
        elif trial.state == TrialState.PRUNED:
            outcome = f"pruned  {trial.user_attrs.get('pruned_reason', '')}"
        else:
            outcome = f"FAILED  {trial.user_attrs.get('fail_reason', '')}"
        finished = sum(counts(t) and t.state.is_finished() for t in study.get_trials(deepcopy=False))
        self._print(
            f"trial #{trial.number} {outcome} [{coefficients}] ({seconds:.0f} s; "
            f"{finished}/{self.target} finished in the study)"
        )

    def waiting(self, running: list[int]) -> None:
        """Say once (per set of trials) that this worker waits for other workers' running trials."""
        if running != self._waiting_for:
            self._waiting_for = running
            self._print(
                f"no trial left to start; waiting for running trial(s) {', '.join(f'#{n}' for n in running)} "
                "(a trial whose worker died is retried here)"
            )


@contextmanager
def profile_progress(console: Console, total: int) -> Iterator[Callable[[str], None]]:
    """A transient bar over ``total`` profile rows; yields the ``on_row(label)`` callback that advances it."""
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task("profiling", total=total)

        def advance(label: str) -> None:
            progress.update(bar, advance=1, description=f"profiling {label}")

        yield advance


class DataProgress:
    """A transient bar on ``console`` over the images of a generated data set; call it as ``progress(done, total)``.

    Use it as a context manager around the generation: the bar appears at the first call and goes at the exit.
    """

    def __init__(self, console: Console, description: str) -> None:
        self.description = description
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.task: Any = None

    def __enter__(self) -> DataProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.progress.stop()

    def __call__(self, done: int, total: int) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task(self.description, total=total)
        self.progress.update(self.task, completed=done)
