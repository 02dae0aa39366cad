"""One latency sitting: every configuration of a board timed in one process, interleaved, with fixed threads.

    flock /tmp/cpu.lock python scripts/measure_latency.py --results results/board
    python scripts/measure_latency.py --results results/board --threads 2 --rounds 100

The records' latencies were each measured as its run finished, beside whatever else ran then; comparing necks
by latency needs them measured alike. This script reads the board's ``ok`` records, rebuilds each distinct model
they trained (the record's spec as trained, model config and class count; fresh weights, eval mode: timing does
not depend on the weights' values), and times one forward of one random image at the model's resolution
(batch 1, fp32, eager, inference mode) for all of them in one process with ``--threads`` torch threads. Each
round times every model once, the order rotated by one each round (``archbench.costs.perf.timing``), so a slow
spell of the machine hits all necks alike; ``--warmup`` rounds run first and are not kept. Per model: the median
over ``--rounds`` and its quartiles and extremes.

It writes ``RESULTS/latency/<UTC stamp>.json`` atomically (format: ``archbench.board.latency``): the environment
(``archbench.runs.environment.environment``), threads, rounds, batch, and one entry per (group, neck, phi) of the
board, which the board matches to its rows by the model's hash. Run it with the CPU to itself (under the shared
lock where there is one). Progress lines go to stderr, also when it is not a terminal.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from archbench.board.aggregate import require_records
from archbench.board.latency import board_configurations, identified_rows, model_hash, write_sitting
from archbench.costs.perf.timing import Spread, time_interleaved
from archbench.errors import UserError
from archbench.runs.environment import environment
from archbench.runs.records import RunRecord
from archbench.runs.trained import rebuild_model

BATCH = 1


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def measure(results: Path, task: str | None, threads: int, rounds: int, warmup: int) -> Path:
    """Time every configuration of the board under ``results`` (its ``task`` records only, if given) in one sitting
    and write it; returns the sitting's path. See the module docstring."""
    torch.set_num_threads(threads)
    records = require_records(results, task)
    configs = board_configurations(identified_rows(records, task))
    missing = configs[configs["model_hash"].isna()]
    if not missing.empty:
        first = missing.iloc[0]
        raise UserError(
            f"{len(missing)} configuration(s) lack the spec, model config or class count a model is rebuilt from "
            f"(first: {first['neck']} phi {first['phi']}); records written before these fields cannot be timed"
        )
    by_hash: dict[str | None, dict[str, Any]] = {}
    for r in records:
        by_hash.setdefault(model_hash(r), dict(r))
    models = list(dict.fromkeys(configs["model_hash"]))
    fns, resolution = {}, {}
    torch.manual_seed(0)
    for i, key in enumerate(models, 1):
        record = RunRecord.from_dict(by_hash[key])
        _say(f"building {i}/{len(models)}: {record.task} {record.neck} phi={record.phi}")
        _, cfg, model = rebuild_model(record, f"{results} record {record.neck} phi {record.phi}")
        model.eval()
        image = torch.randn(BATCH, 3, cfg.resolution, cfg.resolution)
        fns[key] = lambda model=model, image=image: model(image)
        resolution[key] = cfg.resolution

    def on_round(i: int, total: int) -> None:
        _say(f"round {i}/{total}" + (" (warm-up)" if i <= warmup else ""))

    with torch.inference_mode():
        samples = time_interleaved(fns, runs=rounds, warmup=warmup, on_round=on_round)
    entries = []
    for entry in configs.to_dict("records"):
        key = entry["model_hash"]
        spread, times = Spread.of(samples[key]), samples[key]
        entries.append(
            {
                **{k: _plain(v) for k, v in entry.items()},
                "resolution": resolution[key],
                "latency_ms": spread.median,
                "latency_q1_ms": spread.q1,
                "latency_q3_ms": spread.q3,
                "latency_min_ms": min(times),
                "latency_max_ms": max(times),
                "n": spread.n,
            }
        )
    sitting = {
        "results": str(results),
        "environment": environment("cpu", jobs=1),
        "threads": threads,
        "rounds": rounds,
        "warmup": warmup,
        "batch": BATCH,
        "mode": "eager",
        "entries": entries,
    }
    return write_sitting(results, sitting)


def _plain(value: Any) -> Any:
    """A JSON-ready scalar: numpy numbers as Python numbers, NaN (a missing key) as None."""
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and value != value else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, required=True, help="the board's results folder (its runs/)")
    parser.add_argument("--task", default=None, help="time only this task's records (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--rounds", type=int, default=50, help="timed rounds, each every model once (default 50)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("--threads and --rounds must be at least 1, --warmup at least 0")
    try:
        path = measure(args.results, args.task, args.threads, args.rounds, args.warmup)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
