"""What the scripts that train many runs share: a lock to take turns with other work, one ``archbench`` call
per batch, and a committer that puts each new record into git as it is written.

Imported by ``scripts/make_leaderboard.py`` and ``scripts/noise_budget.py`` (a script's own folder is first on
``sys.path``). ``archbench`` runs with this interpreter from ``ROOT``, the checkout these scripts lie in, so a
pinned worktree's copy of a script trains with that worktree's code.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

#: The checkout whose code trains: ``python -m archbench`` runs from here, so it imports this copy.
ROOT = Path(__file__).resolve().parent.parent


#: Seconds a driver waits after releasing the lock before it asks again: flock does not queue its waiters, so
#: without the pause the driver would take the lock straight back and starve a test waiting for its turn.
YIELD_S = 5.0


@contextlib.contextmanager
def holding(lock: Path | None) -> Iterator[None]:
    """An exclusive flock on ``lock`` for the block (nothing when None), released even on Ctrl-C."""
    if lock is None:
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def archbench(*args: str, lock: Path | None = None, code: Path = ROOT) -> None:
    """Run one archbench command with this interpreter from the checkout ``code`` (whose archbench it then
    imports), holding ``lock`` while it runs and pausing ``YIELD_S`` after it when there is a lock.

    Exit 1 means some run failed (NaN loss, crash): it is recorded and the board lists it apart,
    so the regeneration goes on. Anything else non-zero (2: bad input) stops it.
    """
    archbench_together([list(args)], lock=lock, code=code)


def archbench_together(commands: list[list[str]], lock: Path | None = None, code: Path = ROOT) -> None:
    """Run several archbench commands side by side (e.g. search workers on one study), as :func:`archbench`
    runs one: the lock held until all have ended, the driver stopped by any exit status but 0 and 1; on Ctrl-C
    the rest are killed (their runs resume or are retried from their checkpoints)."""
    full = [[sys.executable, "-m", "archbench", *args] for args in commands]
    with holding(lock):
        for command in full:
            print("+", " ".join(command[1:]), flush=True)
        processes = [subprocess.Popen(command, cwd=code) for command in full]
        try:
            statuses = [process.wait() for process in processes]
        finally:
            for process in processes:
                process.kill()
    if lock is not None:
        time.sleep(YIELD_S)
    stop = max((s for s in statuses if s not in (0, 1)), default=0)
    if stop:
        sys.exit(stop)


T = TypeVar("T")


def batches(items: list[T], size: int) -> list[list[T]]:
    """``items`` in consecutive batches of ``size`` (the last may be shorter)."""
    return [items[i : i + size] for i in range(0, len(items), size)]


class RecordCommitter(threading.Thread):
    """Commits every new record under ``runs`` to git (only those paths), polling every ``period`` seconds.

    The commits go to the repository that holds ``runs``, which need not be the one whose code trains.
    """

    def __init__(self, runs: Path, period: float = 30.0) -> None:
        super().__init__(daemon=True)
        self.runs, self.period = runs.resolve(), period
        self.repo = Path(
            subprocess.run(
                ["git", "rev-parse", "--show-toplevel"], cwd=self.runs, capture_output=True, text=True, check=True
            ).stdout.strip()
        )
        self.seen = self._records()
        self.done = threading.Event()

    def _records(self) -> set[Path]:
        return {p for p in self.runs.glob("*.json") if not p.name.startswith(".tmp-")}

    def commit_new(self) -> None:
        """Commit the records written since the last call; a failed git call is retried at the next one."""
        new = sorted(self._records() - self.seen)
        if not new:
            return
        paths = [str(p.relative_to(self.repo)) for p in new]
        message = f"board: {len(new)} record(s): " + ", ".join(p.stem.rsplit("-", 1)[0] for p in new)
        added = subprocess.call(["git", "add", "--", *paths], cwd=self.repo)
        if added == 0 and subprocess.call(["git", "commit", "-q", "-m", message, "--", *paths], cwd=self.repo) == 0:
            self.seen.update(new)

    def run(self) -> None:
        while not self.done.wait(self.period):
            self.commit_new()

    def stop(self) -> None:
        self.done.set()
        self.join()
        self.commit_new()


def commit_paths(paths: list[Path], message: str) -> None:
    """Commit ``paths`` (files or folders; what git ignores in them stays out) to the repository that holds
    this checkout, only those paths; nothing when none exists."""
    names = [str(p.resolve().relative_to(ROOT)) for p in paths if p.exists()]
    if names:
        subprocess.call(["git", "add", "--", *names], cwd=ROOT)
        subprocess.call(["git", "commit", "-q", "-m", message, "--", *names], cwd=ROOT)


def add_driver_options(parser: argparse.ArgumentParser) -> None:
    """The options every training script shares: ``--lock``, ``--code`` and ``--commit``."""
    parser.add_argument("--lock", type=Path, help="hold an exclusive flock on this file during each archbench run")
    parser.add_argument(
        "--code", type=Path, default=ROOT, help="the checkout whose archbench trains (a worktree pinned at a commit)"
    )
    parser.add_argument("--commit", action="store_true", help="commit each new record to git as it is written")


@contextlib.contextmanager
def committing(runs: Path, enabled: bool) -> Iterator[None]:
    """Creates ``runs`` and, when ``enabled``, commits every record written there during the block (and the last
    ones at its end, also on Ctrl-C)."""
    runs.mkdir(parents=True, exist_ok=True)
    committer = RecordCommitter(runs) if enabled else None
    if committer:
        committer.start()
    try:
        yield
    finally:
        if committer:
            committer.stop()
