"""Regenerate the checked-in leaderboard: train every built-in neck at phi 0..2 with 3 seeds, then tabulate.

    python scripts/make_leaderboard.py                  # everything (hours on a 2-core CPU)
    python scripts/make_leaderboard.py --commit         # ... committing each record as it is written
    python scripts/make_leaderboard.py --phi 0          # one phi at a time; re-run to continue
    python scripts/make_leaderboard.py --epochs 16,32 --necks fpn,bifpn --seeds 0,1   # learning curves
    # one code version for a board trained over many sittings: train with a worktree pinned at one commit
    git worktree add --detach ../board-code COMMIT
    python scripts/make_leaderboard.py --code ../board-code --commit --lock /tmp/cpu.lock

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
regeneration continues where it stopped. With `--executor ray [--address HOST:PORT]` each schedule and phi
is one `archbench run --executor ray` call with every neck and seed, and the cluster runs as many at once as
its nodes hold (docs/cluster.md). `--commit` commits each new record, in the git repository
that holds RESULTS, within a minute of its writing, so a stopped session loses at most the runs in
flight. The Markdown table and the figures are then derived from the records alone. With
--from-records it only re-derives them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from driving import ROOT, add_driver_options, archbench, batches, committing

from archbench.spec import builtin_names


def pending_first(necks: list[str], results: Path, phi: str, seed: str, epochs: int | None, terms: str) -> list[str]:
    """``necks`` with those that seem to have an ok board record of this phi, seed, schedule and terms moved to
    the end, so that batches of ``--jobs`` pair necks that need training instead of leaving a slot idle beside a
    skipped run. Only the order changes: every neck is still passed to ``archbench run``, which decides by config
    hash what is recorded, so a wrong guess here costs time, never a run. ``epochs`` None: any schedule."""
    done = set()
    for path in (results / "runs").glob("*.json"):
        if path.name.startswith(".tmp-"):
            continue
        record = json.loads(path.read_text())
        config = record.get("config") or {}
        if (
            record.get("status") == "ok"
            and str(record.get("phi")) == phi
            and str(record.get("seed")) == seed
            and (epochs is None or record.get("epochs") == epochs)
            and config.get("terms") == terms
            and config.get("data_seed") is None
            and not (config.get("train") or {}).get("ema")
        ):
            done.add(record.get("neck"))
    return [n for n in necks if n not in done] + [n for n in necks if n in done]


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
    parser.add_argument(
        "--executor", choices=["local", "ray"], default="local", help="ray: every run of a phi as a Ray cluster's task"
    )
    parser.add_argument("--address", help="--executor ray: the cluster's HOST:PORT (default: a Ray instance here)")
    parser.add_argument("--threads", type=int, help="--executor ray: CPUs (torch threads) per run (default 1)")
    add_driver_options(parser)
    parser.add_argument("--from-records", action="store_true", help="only re-derive the table and figures")
    args = parser.parse_args()
    results = ROOT / args.results  # an absolute --results stays as it is
    necks = builtin_names() if args.necks == "all" else args.necks.split(",")
    schedules = [["--epochs", e] for e in args.epochs.split(",")] if args.epochs else [[]]
    if args.executor == "ray":  # one call per schedule and phi: the cluster runs as many at once as it holds
        runner = ["--executor", "ray", *(["--address", args.address] if args.address else [])]
        runner += ["--threads", str(args.threads)] if args.threads else []
        blocks = [(args.seeds, necks)]
    else:
        runner = ["--jobs", str(args.jobs)]
    if not args.from_records:
        with committing(results / "runs", args.commit):
            for schedule in schedules:
                for phi in args.phi.split(","):
                    if args.executor == "local":  # batches of --jobs necks that still need training fill every slot
                        epochs = int(schedule[1]) if schedule else None
                        blocks = []
                        for seed in args.seeds.split(","):
                            todo_first = pending_first(necks, results, phi, seed, epochs, args.terms)
                            blocks += [(seed, batch) for batch in batches(todo_first, args.jobs)]
                    for seeds, batch in blocks:
                        archbench(
                            "run", "--neck", ",".join(batch), "--phi", phi, "--seeds", seeds, *schedule,
                            "--terms", args.terms, *runner, "--results", str(results),
                            lock=args.lock, code=args.code.resolve(),
                        )  # fmt: skip
    archbench(
        "leaderboard", "--results", str(results), "--task", "det", "--format", "md",
        "-o", str(results / "LEADERBOARD.md"), "--plot", str(results / "figures"),
        lock=args.lock,
    )  # fmt: skip


if __name__ == "__main__":
    main()
