"""Wall time of one sweep with ``--jobs 1`` against ``--jobs N``, alternated on the same machine (issue #16).

    python scripts/bench_jobs.py                                 # 4 runs (fpn,bifpn x seeds 0,1), tiny data
    python scripts/bench_jobs.py --data synthetic --epochs 8     # the real proxy sweep (long)

Each round runs ``archbench run --neck NECKS --phi 0 --seeds SEEDS --data DATA --jobs J`` as a fresh process
into a fresh results folder for every J, in alternating order, and reads each run's training images/s from
the records. Without ``--data`` a small set (``--images`` training images of 128 px, a quarter as many for
validation) is generated once under /tmp. The last line is ``ratios sweep_wall=X`` (the median over rounds
of wall(--jobs N) / wall(--jobs 1)).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from archbench.data import synthetic
from archbench.runs.records import load_records


def sweep_seconds(args: argparse.Namespace, data: str, jobs: int) -> tuple[float, list[float]]:
    """Wall seconds of one sweep with ``--jobs jobs``, and its runs' training images/s."""
    with tempfile.TemporaryDirectory() as results:
        cmd = [sys.executable, "-m", "archbench", "run", "--neck", args.necks, "--phi", "0", "--seeds", args.seeds]
        cmd += ["--data", data, "--epochs", str(args.epochs), "--jobs", str(jobs), "--results", results]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        rates = [r.timing["images_per_s"] for r in load_records(Path(results)) if r.timing]
    return wall, rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--necks", default="fpn,bifpn")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--data", default=None, help="a --data reference (default: a small generated set)")
    parser.add_argument("--images", type=int, default=256, help="training images of the generated set")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    data = args.data
    if data is None:
        root = Path(tempfile.gettempdir()) / f"archbench-bench-jobs-{args.images}"
        if not (root / "annotations").is_dir():
            synthetic.generate(root, n_train=args.images, n_val=args.images // 4, size=128, workers=1)
        data = f"coco:{root}"
    ratios = []
    for round_ in range(args.rounds):
        order = (1, args.jobs) if round_ % 2 == 0 else (args.jobs, 1)
        walls = {}
        for jobs in order:
            walls[jobs], rates = sweep_seconds(args, data, jobs)
            print(f"round {round_} --jobs {jobs}: {walls[jobs]:.1f} s wall, img/s per run {[round(r) for r in rates]}")
        ratios.append(walls[args.jobs] / walls[1])
    print(f"ratios sweep_wall={statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
