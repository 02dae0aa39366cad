"""Run a shipped demo topology search as a long job that survives stopped sessions.

    python scripts/make_search.py --space opanas_paths --commit --lock /tmp/cpu.lock
    python scripts/make_search.py --space opanas_paths --sampler-seed 1 --commit --lock /tmp/cpu.lock  # the repeat

It is `archbench search` called again and again with a growing `--trials` (the study's total: `--step` more
trials per call, up to `--trials`), nothing else. Each call starts `--workers` workers on the same study (one
thread each by default: on this project's 2-core machine an epoch of the fpn reference took 14.5 s alone with two
threads and 17-18 s with two one-thread trials side by side, about 1.6x the throughput; not one sitting) and holds
`--lock` until they finish, so tests and timings can take turns with the search. With `--commit` the study's
database, its trials' records, graphs and exported front are committed after each call, so a stopped session loses
at most one step. A re-run continues where the study stops: a call whose total is already reached trains nothing,
and a trial killed mid-run is retried from its checkpoint (docs/topology_search.md).

The study is `SPACE-TERMS` for sampler seed 0 and `SPACE-TERMS-sampler<S>` for another seed S, in `--results`
(default results/topology, the folder `scripts/verify_search.py` reads). Worker k of a call samples with seed
S + 1000 k (workers need different seeds). The samplers are seeded anew at every call and the two workers'
trials interleave as their trainings end, so a study's sequence of points depends on `--step`, `--workers` and
timing as well as on S: a repeat search is another draw of the same procedure, not a replay.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from driving import ROOT, add_driver_options, archbench_together, commit_paths

#: Sampler seeds of the workers of one search lie this far apart.
WORKER_SEED_STRIDE = 1000


def study_name(space: str, terms: str, sampler_seed: int) -> str:
    """The demo study's name: the default name of a topology study under equal terms, with the sampler seed."""
    base = f"{space}-{terms}"
    return base if sampler_seed == 0 else f"{base}-sampler{sampler_seed}"


def totals(trials: int, step: int) -> list[int]:
    """The study totals the calls ask for: ``step``, ``2 * step``, ... and ``trials`` last."""
    return [*range(step, trials, step), trials]


def worker_seeds(sampler_seed: int, workers: int) -> list[int]:
    """Each worker's sampler seed: ``sampler_seed``, ``sampler_seed + 1000``, ..."""
    return [sampler_seed + WORKER_SEED_STRIDE * k for k in range(workers)]


def search_step(args: argparse.Namespace, study: str, total: int, results: Path) -> None:
    """One call: ``--workers`` `archbench search` workers on ``study`` until it has ``total`` trials, side by
    side under the lock (:func:`driving.archbench_together`)."""
    base = ["search", "--space", args.space, "--study", study, "--objective", "multi", "--trials", str(total)]
    base += ["--epochs", str(args.epochs), "--terms", args.terms, "--threads", str(args.threads)]
    base += ["--results", str(results)]
    commands = [[*base, "--sampler-seed", str(seed)] for seed in worker_seeds(args.sampler_seed, args.workers)]
    archbench_together(commands, lock=args.lock, code=args.code.resolve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", required=True, help="a shipped topology space's name, or a space file")
    parser.add_argument("--trials", type=int, default=150, help="the study's total number of trials")
    parser.add_argument("--step", type=int, default=20, help="trials per call (one commit each)")
    parser.add_argument("--sampler-seed", type=int, default=0, help="the search's NSGA-II sampler seed")
    parser.add_argument("--workers", type=int, default=2, help="workers per call, each training one trial at a time")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--epochs", type=int, default=4, help="training epochs per trial (docs/topology_search.md)")
    parser.add_argument("--terms", default="efficientdet", help="equal terms every graph trains under")
    parser.add_argument("--results", type=Path, default=Path("results/topology"), help="the search's results folder")
    add_driver_options(parser)
    args = parser.parse_args()
    results = (ROOT / args.results).resolve()
    study = study_name(Path(args.space).stem, args.terms, args.sampler_seed)
    for total in totals(args.trials, args.step):
        search_step(args, study, total, results)
        if args.commit:  # the study's storage and its results folder
            commit_paths([results / "search.db", results / "search" / study], f"search: {study}, {total} trials asked")


if __name__ == "__main__":
    main()
