"""The progress displays, all on stderr so that stdout holds only results.

How much they say is a :class:`Verbosity` (``--quiet`` / ``--verbose``). On a terminal they draw transient
rich bars; where stderr is not a terminal (nohup, a batch scheduler, a pipe) the bars print nothing, so they
print plain lines instead: one per started run, per finished epoch and per finished run, and one per tenth
of a generated data set. Importing this module loads neither torch nor Optuna (the observer hooks come from
:mod:`archbench.runs.observers` and :mod:`archbench.search.observers`), so commands can build their displays
at no start-up cost.

- :class:`RichObserver`: a sweep's runs, one bar per run (epoch, step, loss, images/s, ETA), one line per finished run;
- :class:`SearchDisplay`: a search worker, one line per finished trial, the study's count, what it waits for;
- :func:`profile_progress`: a transient bar over the rows ``archbench profile`` measures (a line per row elsewhere);
- :class:`DataProgress`: a transient bar (or a line per tenth) over the images ``archbench data synth`` generates
  (a sweep's :class:`RichObserver` shows the built-in set's generation the same way).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from archbench.cli.consoles import Verbosity
from archbench.runs.observers import EpochInfo, SweepObserver
from archbench.runs.records import FAILED, RunRecord
from archbench.search.observers import SearchObserver
from archbench.train.task_names import HEADLINES

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from archbench.train.trainer import StepInfo


def _bars(console: Console, verbosity: Verbosity) -> bool:
    """Whether to draw live bars: on a terminal, unless quiet (elsewhere rich draws nothing, and its stop prints a
    stray blank line)."""
    return verbosity > Verbosity.QUIET and console.is_terminal


def _lines(console: Console, verbosity: Verbosity) -> bool:
    """Whether to print plain progress lines: where ``console`` is not a terminal, or always when verbose."""
    return verbosity is Verbosity.VERBOSE or (verbosity is Verbosity.NORMAL and not console.is_terminal)


class _Tenths:
    """Which counts of one long job deserve a plain line: the first to reach each tenth of the total."""

    def __init__(self) -> None:
        self.said = 0  # tenths already said

    def due(self, done: int, total: int) -> bool:
        tenth = 10 if total <= 0 else min(10, done * 10 // total)
        if tenth <= self.said:
            return False
        self.said = tenth
        return True


def _data_line(data: str, done: int, total: int) -> str:
    return f"generating {data}: {done}/{total} images ({100 * done // max(total, 1)}%)"


class RichObserver(SweepObserver):
    """Shows training progress on ``console`` (stderr, so stdout stays clean) as ``verbosity`` says: a bar per run
    in flight (several under ``--jobs``) on a terminal; plain lines per started run and per epoch where the
    console is not a terminal (or always, when verbose); one line per finished run (failed ones even when
    quiet)."""

    def __init__(self, console: Console, verbosity: Verbosity = Verbosity.NORMAL) -> None:
        self.console, self.verbosity = console, verbosity
        self.bars, self.lines = _bars(console, verbosity), _lines(console, verbosity)
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
        self.data_tenths = _Tenths()

    def __enter__(self) -> RichObserver:
        if self.bars:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bars:
            self.progress.stop()

    def _print(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)

    def run_started(self, label: str, epochs: int, steps: int) -> None:
        self.tasks[label] = self.progress.add_task(label, total=steps, status="")
        self.latest = label
        if self.lines:
            self._print(f"start   {label}: {epochs} epochs, {steps} steps")

    def step(self, info: StepInfo) -> None:
        if self.latest is not None:
            self.run_step(self.latest, info)

    def run_step(self, label: str, info: StepInfo) -> None:
        status = f"epoch {info.epoch + 1} loss {info.loss:.3f} {info.images_per_s:.0f} img/s"
        self.progress.update(self.tasks[label], completed=info.step, status=status)

    def epoch_summary(self, info: EpochInfo) -> None:
        if self.lines:
            self._print(
                f"epoch {info.epoch}/{info.epochs} {info.label}: loss {info.loss:.3f}, "
                f"{info.images_per_s:.0f} img/s, {info.seconds:.1f} s"
            )

    def run_finished(self, label: str, record: RunRecord) -> None:
        if label in self.tasks:
            self.progress.remove_task(self.tasks.pop(label))
        if record.ok and self.verbosity > Verbosity.QUIET:
            m, t = record.metrics or {}, record.timing or {}
            scores = " ".join(f"{name} {m[name]:.3f}" for name in HEADLINES[record.task])
            self._print(f"ok      {label}: {scores} ({t['train_seconds']:.0f}s train, {t['images_per_s']:.0f} img/s)")
            if self.verbosity is Verbosity.VERBOSE:
                self._print(f"        {label}: {_details(record)}")
        elif record.status == FAILED or (not record.ok and self.verbosity > Verbosity.QUIET):
            # failed, or stopped on purpose (a pruned search trial)
            self._print(f"{record.status.upper():7} {label}: {record.reason}")

    def skipped(self, label: str, reason: str) -> None:
        if self.verbosity > Verbosity.QUIET:
            self._print(f"skip    {label}: {reason}")

    def data_progress(self, data: str, done: int, total: int) -> None:
        if self.data_task is None:
            self.data_task = self.progress.add_task(f"generating {data}", total=total, status="")
        self.progress.update(self.data_task, completed=done)
        if self.lines and self.data_tenths.due(done, total):
            self._print(_data_line(data, done, total))
        if done >= total:
            self.progress.remove_task(self.data_task)
            self.data_task, self.data_tenths = None, _Tenths()


def _details(record: RunRecord) -> str:
    """A finished run's config hash, data set (name and fingerprint) and costs, for ``--verbose``."""
    data, costs = record.dataset or {}, record.costs or {}
    text = f"config {record.config_hash}, data {data.get('name', '?')} {str(data.get('fingerprint', '?'))[:12]}"
    if costs:
        text += (
            f", {costs['params_total'] / 1e6:.3f} M params, {costs['gflops']:.4f} GFLOPs, "
            f"{costs['latency_ms']:.1f} ms/image ({costs.get('latency_device', '?')})"
        )
    return text


class SearchDisplay(SearchObserver):
    """A search worker on ``console``: the study it joined, one line per finished trial (an Optuna callback),
    what it waits for, and its trials' training runs (a :class:`RichObserver`). Quiet, it says only which trials
    failed."""

    runs: RichObserver

    def __init__(self, console: Console, target: int, metric: str, verbosity: Verbosity = Verbosity.NORMAL) -> None:
        self.console, self.target, self.metric, self.verbosity = console, target, metric, verbosity
        self.runs = RichObserver(console, verbosity)
        self._waiting_for: list[int] = []

    def __enter__(self) -> SearchDisplay:
        self.runs.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.runs.__exit__(*exc)

    def _print(self, text: str, *, failure: bool = False) -> None:
        if failure or self.verbosity > Verbosity.QUIET:
            self.console.print(text, highlight=False, markup=False)

    def opened(self, study: str, storage: str, existing: int) -> None:
        self._print(
            f"study {study} ({storage}): {self.target} trial(s) in total across workers, {existing} there already"
        )

    def trial_finished(self, study: optuna.Study, trial: FrozenTrial) -> None:
        # imported here: Optuna is loaded by the time a trial ends, and a display that shows none need not load it
        from optuna.trial import TrialState

        from archbench.search.study import counts

        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        graph, reference = trial.user_attrs.get("graph"), trial.user_attrs.get("reference")
        if graph is not None:  # a topology trial: its graph (a spec name) says what it trained
            point = graph + (f", reference {reference}" if reference else "")
        else:  # a scaling trial, or a trial rejected before its graph was built: what it sampled
            sampled = trial.user_attrs.get("coefficients", trial.params)
            point = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sampled.items())
        if trial.state == TrialState.COMPLETE:
            outcome = f"ok      {self.metric} {trial.values[0]:.4f} at {trial.user_attrs['gflops']:.4g} GFLOPs"
        elif trial.state == TrialState.PRUNED:
            outcome = f"pruned  {trial.user_attrs.get('pruned_reason', '')}"
        else:
            outcome = f"FAILED  {trial.user_attrs.get('fail_reason', '')}"
        finished = sum(counts(t) and t.state.is_finished() for t in study.get_trials(deepcopy=False))
        self._print(
            f"trial #{trial.number} {outcome} [{point}] ({seconds:.0f} s; "
            f"{finished}/{self.target} finished in the study)",
            failure=trial.state == TrialState.FAIL,
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
    """Progress over ``total`` profile rows: a transient bar on a terminal, elsewhere a plain line as each row
    starts (``profiling 2/8: bifpn phi=0``); yields the ``on_row(label)`` callback that advances it."""
    lines, started = _lines(console, Verbosity.NORMAL), 0
    with Progress(console=console, transient=True, disable=not _bars(console, Verbosity.NORMAL)) as progress:
        bar = progress.add_task("profiling", total=total)

        def advance(label: str) -> None:
            nonlocal started
            started += 1
            progress.update(bar, advance=1, description=f"profiling {label}")
            if lines:
                console.print(f"profiling {started}/{total}: {label}", highlight=False, markup=False)

        yield advance


class DataProgress:
    """Progress on ``console`` over the images of data set ``data`` as it is generated; call it as
    ``progress(done, total)``: a transient bar on a terminal, a plain line per tenth elsewhere (or also on a
    terminal, when verbose), nothing when quiet.

    Use it as a context manager around the generation: the bar appears at the first call and goes at the exit.
    """

    def __init__(self, console: Console, data: str, verbosity: Verbosity = Verbosity.NORMAL) -> None:
        self.console, self.data = console, data
        self.bars, self.lines, self.tenths = _bars(console, verbosity), _lines(console, verbosity), _Tenths()
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
        if self.bars and self.task is not None:
            self.progress.stop()

    def __call__(self, done: int, total: int) -> None:
        if self.task is None:
            if self.bars:
                self.progress.start()
            self.task = self.progress.add_task(f"generating {self.data}", total=total)
        self.progress.update(self.task, completed=done)
        if self.lines and self.tenths.due(done, total):
            self.console.print(_data_line(self.data, done, total), highlight=False, markup=False)
