"""Rich progress display for sweeps: one bar per run with epoch, step, loss, images/s and ETA."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from archbench.runs.sweep import SweepObserver
from archbench.train.tasks import get_task
from archbench.train.trainer import StepInfo


class RichObserver(SweepObserver):
    """Shows training progress on ``console`` (stderr, so stdout stays clean) and one line per finished run."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
        )
        self.task: Any = None

    def __enter__(self) -> RichObserver:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def run_started(self, label: str, epochs: int, steps: int) -> None:
        self.task = self.progress.add_task(label, total=steps, status="")

    def step(self, info: StepInfo) -> None:
        status = f"epoch {info.epoch + 1} loss {info.loss:.3f} {info.images_per_s:.0f} img/s"
        self.progress.update(self.task, completed=info.step, status=status)

    def run_finished(self, label: str, record: dict[str, Any]) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
        if record.get("status") == "ok":
            m, t = record["metrics"], record["timing"]
            scores = " ".join(f"{name} {m[name]:.3f}" for name in get_task(record["task"]).headline)
            self.console.print(f"ok      {label}: {scores} "
                               f"({t['train_seconds']:.0f}s train, {t['images_per_s']:.0f} img/s)", highlight=False)
        else:  # failed, or stopped on purpose (a pruned search trial)
            self.console.print(f"{record['status'].upper():7} {label}: {record.get('reason')}", highlight=False)

    def skipped(self, label: str, reason: str) -> None:
        self.console.print(f"skip    {label}: {reason}", highlight=False)
