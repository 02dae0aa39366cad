"""What running a sweep as Ray tasks costs on this machine: wall time and peak memory against the local executor.

    python scripts/ray_overhead.py                      # 8 tiny runs (4 necks x 2 seeds), 2 at a time, 1 thread each
    python scripts/ray_overhead.py --epochs 4 --lock /tmp/cpu.lock

The same sweep runs twice into fresh results folders: `archbench run --jobs 2 --threads 1` (local processes),
then `archbench run --executor ray --threads 1` (a Ray instance started by the command on this machine, which
runs as many 1-CPU tasks at once as the machine has cores). Each is timed from start to exit, and the resident
memory of its whole process tree (the command, its run processes, and for Ray the GCS, raylet, workers and the
rest) is sampled every 0.2 s; the peak of that sum is reported. The overhead per run is the difference of the
two wall times divided by the runs; the memory Ray adds is the difference of the two peaks. The records of both
must agree (same config hashes, bit-identical losses), else the comparison would not be of the same work.
Writes a JSON line to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from driving import holding

from archbench.data import synthetic
from archbench.runs.records import load_records

NECKS = "fpn,bifpn,panet,nasfpn"


def tree_rss_bytes(root: int) -> int:
    """Resident memory of ``root`` and all its descendants (Linux /proc), in bytes."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            pages = int((entry / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):  # the process ended meanwhile
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = pages * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def timed(cmd: list[str]) -> tuple[float, int]:
    """Run ``cmd``; its wall seconds and the peak resident memory (bytes) of its process tree."""
    start = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_bytes(process.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = process.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if process.returncode:
        raise SystemExit(f"{' '.join(cmd)} exited {process.returncode}:\n{err[-3000:]}")
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run (tiny data: 16 images of 64 px)")
    parser.add_argument("--lock", type=Path, help="hold an exclusive flock on this file while timing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, holding(args.lock):
        root = Path(tmp)
        synthetic.generate(root / "data", n_train=16, n_val=8, size=64, workers=1)
        sweep = [sys.executable, "-m", "archbench", "run", "--neck", NECKS, "--seeds", "0,1", "--data"]
        sweep += [f"coco:{root / 'data'}", "--epochs", str(args.epochs), "--batch-size", "8", "--threads", "1"]
        local_s, local_peak = timed([*sweep, "--jobs", "2", "--results", str(root / "local")])
        ray_s, ray_peak = timed([*sweep, "--executor", "ray", "--results", str(root / "ray")])
        local, ray = ({r.config_hash: r for r in load_records(root / name)} for name in ("local", "ray"))
        if local.keys() != ray.keys() or any(local[h].epoch_losses != ray[h].epoch_losses for h in local):
            raise SystemExit("the two sweeps' records differ: the timings would not compare the same work")
        runs = len(local)
        print(
            json.dumps(
                {
                    "runs": runs,
                    "epochs": args.epochs,
                    "cores": os.cpu_count(),
                    "local_s": round(local_s, 1),
                    "ray_s": round(ray_s, 1),
                    "ray_overhead_s_per_run": round((ray_s - local_s) / runs, 2),
                    "local_peak_mib": round(local_peak / 2**20),
                    "ray_peak_mib": round(ray_peak / 2**20),
                    "ray_adds_mib": round((ray_peak - local_peak) / 2**20),
                }
            )
        )


if __name__ == "__main__":
    main()
