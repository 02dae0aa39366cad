"""Regenerate the checked-in leaderboard: train every built-in neck at phi 0..2 with 3 seeds, then tabulate.

    python scripts/make_leaderboard.py                  # everything (hours on a 2-core CPU)
    python scripts/make_leaderboard.py --commit         # ... committing each record as it is written
    python scripts/make_leaderboard.py --phi 0          # one phi at a time; re-run to continue
    python scripts/make_leaderboard.py --epochs 16,32 --necks fpn,bifpn --seeds 0,1   # learning curves
    # one code version for a board trained over many sittings: run a pinned worktree's copy of this script
    git worktree add --detach ../board-code COMMIT
    cd ../board-code && python scripts/make_leaderboard.py --results /abs/path/results/board --commit \
        --lock /tmp/cpu.lock

It is `archbench run` followed by `archbench leaderboard`, nothing else. The runs go schedule by
schedule (`--epochs`, each its own full schedule; default the task's), phi by phi and, within a phi,
seed by seed (every neck at phi 0, seed 0 first, so a partial board already compares all necks),
under equal terms (`--terms efficientdet` by default; `--terms native` for each neck's own ops) with
paired seeds (`archbench run`'s default `--init per-part`), two runs side by side (`--jobs 2`, one
thread each). Each `archbench run` call trains one batch of `--jobs` necks of one seed (with 13 necks
and 2 jobs the last batch of a seed runs alone); with `--lock FILE` it
holds an exclusive flock on FILE, so other work on the machine (tests, timings) can take turns with
the board by taking the same lock (`flock FILE pytest ...` waits for the batch in flight, and the
board waits for it): nothing runs beside a timed run. Each finished run writes its record under
RESULTS/runs/, and a re-run skips configurations that already have an ok record, so an interrupted
regeneration continues where it stopped. `--commit` commits each new record, in the git repository
that holds RESULTS, within a minute of its writing, so a stopped session loses at most the runs in
flight. The Markdown table and the figures are then derived from the records alone. With
--from-records it only re-derives them.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from archbench.spec import builtin_names

#: The checkout whose code trains the board: ``python -m archbench`` runs from here, so it imports this copy.
ROOT = Path(__file__).resolve().parent.parent


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


def archbench(*args: str, lock: Path | None = None) -> None:
    """Run one archbench command with this interpreter, from ROOT, holding ``lock`` while it runs.

    Exit 1 means some run failed (NaN loss, crash): it is recorded and the board lists it apart,
    so the regeneration goes on. Anything else non-zero (2: bad input) stops it.
    """
    command = [sys.executable, "-m", "archbench", *args]
    with holding(lock):
        print("+", " ".join(command[1:]), flush=True)
        code = subprocess.call(command, cwd=ROOT)
    if code not in (0, 1):
        sys.exit(code)


def batches(names: list[str], size: int) -> list[list[str]]:
    """``names`` in consecutive batches of ``size`` (the last may be shorter)."""
    return [names[i : i + size] for i in range(0, len(names), size)]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Not results/ itself: a fresh clone's `archbench run` would find the board's records there and skip.
    parser.add_argument(
        "--results",
        default="results/board",
        help="folder of the board: records under RESULTS/runs/, LEADERBOARD.md, figures/",
    )
    parser.add_argument("--necks", default="all", help="comma list of necks, or all")
    parser.add_argument("--phi", default="0,1,2", help="comma list of phi values, run in this order")
    parser.add_argument("--seeds", default="0,1,2", help="comma list of seeds, run one after the other")
    parser.add_argument("--epochs", help="comma list of schedules in epochs, each its own run (default: the task's)")
    parser.add_argument("--terms", default="efficientdet", help="equal terms of every run (native: own ops)")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (archbench run --jobs)")
    parser.add_argument("--lock", type=Path, help="hold an exclusive flock on this file during each archbench run")
    parser.add_argument("--commit", action="store_true", help="commit each new record to git as it is written")
    parser.add_argument("--from-records", action="store_true", help="only re-derive the table and figures")
    args = parser.parse_args()
    results = ROOT / args.results  # an absolute --results stays as it is
    necks = builtin_names() if args.necks == "all" else args.necks.split(",")
    schedules = [["--epochs", e] for e in args.epochs.split(",")] if args.epochs else [[]]
    if not args.from_records:
        (results / "runs").mkdir(parents=True, exist_ok=True)
        committer = RecordCommitter(results / "runs") if args.commit else None
        if committer:
            committer.start()
        try:
            for schedule in schedules:
                for phi in args.phi.split(","):
                    for seed in args.seeds.split(","):
                        for batch in batches(necks, args.jobs):
                            archbench(
                                "run", "--neck", ",".join(batch), "--phi", phi, "--seeds", seed, *schedule,
                                "--terms", args.terms, "--jobs", str(args.jobs), "--results", str(results),
                                lock=args.lock,
                            )  # fmt: skip
        finally:
            if committer:
                committer.stop()
    archbench(
        "leaderboard", "--results", str(results), "--task", "det", "--format", "md",
        "-o", str(results / "LEADERBOARD.md"), "--plot", str(results / "figures"),
        lock=args.lock,
    )  # fmt: skip


if __name__ == "__main__":
    main()
