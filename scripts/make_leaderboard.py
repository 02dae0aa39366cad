"""Regenerate the checked-in leaderboard: train every built-in neck at phi 0..2 with 3 seeds, then tabulate.

    python scripts/make_leaderboard.py                  # everything (hours on a 2-core CPU)
    python scripts/make_leaderboard.py --commit         # ... committing each record as it is written
    python scripts/make_leaderboard.py --phi 0          # one phi at a time; re-run to continue

It is `archbench run` followed by `archbench leaderboard`, nothing else. The runs go phi by phi and,
within a phi, seed by seed (every neck at phi 0, seed 0 first, so a partial board already compares
all necks), under equal terms (`--terms efficientdet` by default; `--terms native` for each neck's
own ops) with paired seeds (`archbench run`'s default `--init per-part`), two runs side by side
(`--jobs 2`, one thread each). Each finished run writes its record under RESULTS/runs/, and a re-run
skips configurations that already have an ok record, so an interrupted regeneration continues where
it stopped. `--commit` commits each new record to git within a minute of its writing, so a stopped
session loses at most the runs in flight. The Markdown table and the figures are then derived from
the records alone. With --from-records it only re-derives them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def archbench(*args: str) -> None:
    """Run one archbench command with this interpreter.

    Exit 1 means some run failed (NaN loss, crash): it is recorded and the board lists it apart,
    so the regeneration goes on. Anything else non-zero (2: bad input) stops it.
    """
    command = [sys.executable, "-m", "archbench", *args]
    print("+", " ".join(command[1:]), flush=True)
    code = subprocess.call(command, cwd=ROOT)
    if code not in (0, 1):
        sys.exit(code)


class RecordCommitter(threading.Thread):
    """Commits every new record under ``runs`` to git (only those paths), polling every ``period`` seconds."""

    def __init__(self, runs: Path, period: float = 30.0) -> None:
        super().__init__(daemon=True)
        self.runs, self.period = runs, period
        self.seen = self._records()
        self.done = threading.Event()

    def _records(self) -> set[Path]:
        return {p for p in self.runs.glob("*.json") if not p.name.startswith(".tmp-")}

    def commit_new(self) -> None:
        """Commit the records written since the last call; a failed git call is retried at the next one."""
        new = sorted(self._records() - self.seen)
        if not new:
            return
        paths = [str(p.relative_to(ROOT)) for p in new]
        message = f"board: {len(new)} record(s): " + ", ".join(p.stem.rsplit("-", 1)[0] for p in new)
        added = subprocess.call(["git", "add", "--", *paths], cwd=ROOT)
        if added == 0 and subprocess.call(["git", "commit", "-q", "-m", message, "--", *paths], cwd=ROOT) == 0:
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
    parser.add_argument("--terms", default="efficientdet", help="equal terms of every run (native: own ops)")
    parser.add_argument("--jobs", default="2", help="runs side by side (archbench run --jobs)")
    parser.add_argument("--commit", action="store_true", help="commit each new record to git as it is written")
    parser.add_argument("--from-records", action="store_true", help="only re-derive the table and figures")
    args = parser.parse_args()
    results = Path(args.results)
    if not args.from_records:
        committer = RecordCommitter(ROOT / results / "runs") if args.commit else None
        if committer:
            committer.start()
        try:
            for phi in args.phi.split(","):
                for seed in args.seeds.split(","):
                    archbench(
                        "run", "--neck", args.necks, "--phi", phi, "--seeds", seed, "--terms", args.terms,
                        "--jobs", args.jobs, "--results", str(results),
                    )  # fmt: skip
        finally:
            if committer:
                committer.stop()
    archbench(
        "leaderboard",
        "--results",
        str(results),
        "--task",
        "det",
        "--format",
        "md",
        "-o",
        str(results / "LEADERBOARD.md"),
        "--plot",
        str(results / "figures"),
    )


if __name__ == "__main__":
    main()
