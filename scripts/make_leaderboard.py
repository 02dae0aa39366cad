"""Regenerate the checked-in leaderboard: train every built-in neck at phi 0..2 with 2 seeds, then tabulate.

    python scripts/make_leaderboard.py                  # everything (hours on a 2-core CPU)
    python scripts/make_leaderboard.py --phi 0          # one phi at a time; re-run to continue

It is `archbench run` followed by `archbench leaderboard`, nothing else: the runs go phi by phi
(every neck at phi 0 first, so a partial board already compares all necks), each finished run
writes its record under RESULTS/runs/, and a re-run skips configurations that already have an ok
record, so an interrupted regeneration continues where it stopped. The Markdown table and the
figures are then derived from the records alone. With --from-records it only re-derives them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
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
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--from-records", action="store_true", help="only re-derive the table and figures")
    args = parser.parse_args()
    results = Path(args.results)
    if not args.from_records:
        for phi in args.phi.split(","):
            archbench("run", "--neck", args.necks, "--phi", phi, "--seeds", args.seeds, "--results", str(results))
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
