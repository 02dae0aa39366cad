"""Wall time of a whole ``archbench run`` under two or more arms (commits or settings), alternated, with spreads.

    # the main job at two commits (each checked out in a temporary git worktree), 3 rounds
    python scripts/compare_runs.py --arm before=ac867cb --arm after=HEAD --job main --rounds 3
    # the 4-run sweep (fpn,bifpn x seeds 0,1) with one run at a time against two side by side
    python scripts/compare_runs.py --arm "jobs1=HEAD:--jobs 1" --arm "jobs2=HEAD:--jobs 2" --job sweep
    # a quick check on a small generated set: --data and --epochs go to every arm
    python scripts/compare_runs.py --arm a=HEAD --arm b=. --job sweep --images 256 --epochs 2

An arm is ``NAME=REF[:ARGS]``: ``REF`` a git commit of this checkout (``.`` for the working tree as it is) and
``ARGS`` extra ``archbench run`` arguments of that arm only. Every arm runs the job as a fresh process
(``python -m archbench run``) into a fresh results folder, with the arm's code first on ``PYTHONPATH`` and this
environment's packages; the generated data set comes from the shared cache, which each arm fills once before
timing (``--warmup``). Each round runs every arm once, in rotated order (A B, B A, ...); a ratio is arm / first
arm within one round, so a slow phase of the machine hits both sides of it. The report gives each arm's wall
seconds (median [min, max]), the main metric of each of its runs per round (the same code and settings on one
machine give the same value every round), and the ratios (median [min, max] over rounds). The last line is
``ratios <job>_<arm>=X ...`` for every arm after the first.

Jobs: ``main`` is README's main job, ``archbench run --neck bifpn --phi 0``; ``sweep`` is a 4-run sweep,
``archbench run --neck fpn,bifpn --phi 0 --seeds 0,1``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOBS = {
    "main": ["--neck", "bifpn", "--phi", "0"],
    "sweep": ["--neck", "fpn,bifpn", "--phi", "0", "--seeds", "0,1"],
}


@dataclass(frozen=True)
class Arm:
    """One side of the comparison: its name, the code it runs (a folder holding ``archbench/``) and its arguments."""

    name: str
    ref: str
    code: Path
    args: tuple[str, ...]


def parse_arm(text: str) -> tuple[str, str, tuple[str, ...]]:
    """``NAME=REF[:ARGS]`` -> (name, ref, args)."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise SystemExit(f"--arm {text!r}: write NAME=REF[:ARGS], e.g. before=ac867cb or 'jobs2=HEAD:--jobs 2'")
    ref, _, args = rest.partition(":")
    return name, ref, tuple(shlex.split(args))


@contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """The code of ``ref``: this checkout for ``.``, else a detached temporary worktree (removed afterwards)."""
    if ref == ".":
        yield REPO
        return
    folder = Path(tempfile.mkdtemp(prefix="archbench-arm-"))
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(folder), ref], cwd=REPO, check=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=REPO, check=False)


def run_arm(arm: Arm, job: list[str], common: list[str]) -> tuple[float, dict[str, float]]:
    """Wall seconds of the job under ``arm`` (a fresh process and results folder), and each run's main metric by
    record file name."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(arm.code), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory(prefix="archbench-compare-") as results:
        cmd = [sys.executable, "-W", "ignore", "-m", "archbench", "run", *job, *common, *arm.args]
        start = time.perf_counter()
        # run from the empty results folder: ``-m`` puts the working directory first on sys.path, and from a
        # checkout's root that would import the checkout's own archbench instead of the arm's
        done = subprocess.run([*cmd, "--results", results], env=env, capture_output=True, text=True, cwd=results)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"arm {arm.name}: {shlex.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        metrics = {}
        for path in sorted(Path(results, "runs").glob("*.json")):
            record = json.loads(path.read_text())
            if record.get("status") != "ok":
                raise SystemExit(f"arm {arm.name}: run {path.name} failed: {record.get('reason')}")
            values = record.get("metrics") or {}
            metrics[path.name.rsplit("-", 1)[0]] = values.get("AP", values.get("mIoU", float("nan")))
    return wall, metrics


def spread(values: list[float]) -> str:
    """``median [min, max]`` of ``values``."""
    return f"{statistics.median(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arm", action="append", required=True, help="NAME=REF[:ARGS], two or more")
    parser.add_argument("--job", choices=sorted(JOBS), default="main")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="--epochs for every arm (default: the run's own)")
    parser.add_argument("--images", type=int, default=None, help="train on a generated set of this many images")
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    if len(args.arm) < 2:
        raise SystemExit("give two or more --arm")
    common: list[str] = ["--epochs", str(args.epochs)] if args.epochs else []
    if args.images:
        root = Path(tempfile.gettempdir()) / f"archbench-compare-{args.images}"
        if not (root / "annotations").is_dir():
            from archbench.data import synthetic

            synthetic.generate(root, n_train=args.images, n_val=args.images // 4, size=128, workers=1)
        common += ["--data", f"coco:{root}"]
    job = JOBS[args.job]
    with ExitStack() as stack:
        arms = []
        for name, ref, extra in map(parse_arm, args.arm):
            code = stack.enter_context(checkout(ref))
            head = ["git", "rev-parse", "--short=12", "HEAD"]
            commit = subprocess.run(head, cwd=code, capture_output=True, text=True)
            arms.append(Arm(name, f"{ref} ({commit.stdout.strip()})", code, extra))
            print(f"arm {name}: {arms[-1].ref}, extra args {list(extra)}", flush=True)
        if args.warmup:  # fill the data cache and the OS file cache: 1-epoch runs, not timed
            for arm in arms:
                run_arm(arm, ["--neck", "fpn", "--phi", "0"], [*common, "--epochs", "1"])
        walls: dict[str, list[float]] = {arm.name: [] for arm in arms}
        ratios: dict[str, list[float]] = {arm.name: [] for arm in arms[1:]}
        for round_ in range(args.rounds):
            shift = round_ % len(arms)
            order = arms[shift:] + arms[:shift]
            wall_of = {}
            for arm in order:
                wall_of[arm.name], metrics = run_arm(arm, job, common)
                walls[arm.name].append(wall_of[arm.name])
                shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                print(f"round {round_} {arm.name}: {wall_of[arm.name]:.1f} s wall; {shown}", flush=True)
            for arm in arms[1:]:
                ratios[arm.name].append(wall_of[arm.name] / wall_of[arms[0].name])
    for arm in arms:
        print(f"{arm.name}: wall s {spread(walls[arm.name])} over {args.rounds} rounds")
    for name, values in ratios.items():
        print(f"{name} / {arms[0].name}: {spread(values)}")
    print("ratios " + " ".join(f"{args.job}_{name}={statistics.median(v):.3f}" for name, v in ratios.items()))


if __name__ == "__main__":
    main()
