"""What paired seeds buy on a board: the sd of each neck pair's per-seed difference, paired and unpaired.

    python scripts/pairing_gain.py --results results/board
    python scripts/pairing_gain.py --results results/board --pairs panet:fpn,bifpn:fpn --csv gain.csv

Paired seeds (`archbench run --init per-part`, the default) give every neck of one seed the same data
order, augmentation and backbone and head weights, so that what the necks share cancels in their
difference. For each comparison group (task, dataset, preset, terms, phi) and each pair of necks ``a:b``
with at least ``--min-seeds`` seeds in common, on the task's main metric (metric units):

- ``paired_sd``: the sample sd of this pair's own per-seed differences a - b;
- ``pooled_sd``: the sd of one per-seed difference as the board's block model estimates it from all necks
  of the group (``archbench.board.stats.BlockFit.diff_sd``; what the board's intervals and tie tests use);
  a pair far from it strains the model's assumption of equally noisy pairs (docs/board.md);
- ``unpaired_sd``: sqrt(sd_a^2 + sd_b^2), the sd one difference would have if the two runs were drawn
  independently (``archbench.board.stats.welch``);
- ``ratio`` = unpaired_sd / paired_sd (above 1: pairing narrows the interval by that factor), and ``corr``,
  the correlation of the two necks' per-seed values (ratio^2 = 1 / (1 - corr * 2 sd_a sd_b / (sd_a^2 + sd_b^2))).

With n seeds each sd has n - 1 degrees of freedom, so a ratio from 3 seeds is rough (an sd from 3 values
falls between about 0.16x and 1.9x the true one 95 % of the time); the summary line per group gives the
medians over all pairs and the pooled ratio, unpaired / pooled. It reads the records only (no torch), like
the board.
"""

from __future__ import annotations

import argparse
import math
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from archbench.board.aggregate import require_records, seed_rows
from archbench.board.stats import block_fit, seed_table, welch
from archbench.board.verdicts import comparison_groups

COLUMNS = ["group", "phi", "pair", "n_seeds", "diff_mean", "paired_sd", "pooled_sd", "unpaired_sd", "ratio", "corr"]


def pair_gains(rows: pd.DataFrame, pairs: list[tuple[str, str]] | None, min_seeds: int) -> pd.DataFrame:
    """One row per (comparison group, neck pair) with ``min_seeds`` or more common seeds; see the module doc."""
    out = []
    for keys, metric, sub in comparison_groups(rows):
        table = seed_table(sub, metric)
        pooled = block_fit(sub, metric).diff_sd
        wanted = pairs or list(combinations(sorted(table.columns), 2))
        for a, b in wanted:
            if a not in table.columns or b not in table.columns:
                continue
            both = table[[a, b]].dropna()
            if len(both) < min_seeds:
                continue
            d = (both[a] - both[b]).to_numpy()
            paired = float(np.std(d, ddof=1))
            _, unpaired, _ = welch(both[a], both[b])
            out.append(
                {
                    "group": " / ".join(str(keys[k]) for k in keys if k != "phi"),
                    "phi": keys["phi"],
                    "pair": f"{a}:{b}",
                    "n_seeds": len(both),
                    "diff_mean": float(d.mean()),
                    "paired_sd": paired,
                    "pooled_sd": pooled,
                    "unpaired_sd": unpaired,
                    "ratio": unpaired / paired if paired > 0 else math.inf,
                    "corr": float(np.corrcoef(both[a], both[b])[0, 1]),
                }
            )
    return pd.DataFrame(out, columns=COLUMNS)


def parse_pairs(text: str) -> list[tuple[str, str]] | None:
    """'a:b,c:d' as [(a, b), (c, d)]; '' as None (every pair). A colon, since neck names may hold '-'."""
    if not text:
        return None
    pairs = []
    for item in text.split(","):
        a, sep, b = item.strip().partition(":")
        if not (sep and a and b):
            sys.exit(f"--pairs: {item!r} is not NECK:NECK (e.g. panet:fpn)")
        pairs.append((a, b))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results/board", help="folder with the board's runs/")
    parser.add_argument("--task", default="det", help="task of the records to read")
    parser.add_argument("--pairs", default="", help="comma list of NECK:NECK pairs (default: every pair)")
    parser.add_argument("--min-seeds", type=int, default=3, help="seeds a pair needs in common")
    parser.add_argument("--csv", type=Path, help="also write every pair's row to this CSV file")
    args = parser.parse_args()
    gains = pair_gains(
        seed_rows(require_records(Path(args.results), args.task)), parse_pairs(args.pairs), args.min_seeds
    )
    if gains.empty:
        sys.exit(f"no neck pair with {args.min_seeds} or more common seeds under {args.results}")
    with pd.option_context("display.width", 200, "display.max_rows", 500, "display.float_format", "{:.4f}".format):
        print(gains.to_string(index=False))
    for (group, phi), sub in gains.groupby(["group", "phi"], sort=True):
        reached = int((sub["ratio"] >= 1.5).sum())
        print(
            f"{group}, phi {phi}: {len(sub)} pairs, median ratio {sub['ratio'].median():.2f}, "
            f"median corr {sub['corr'].median():+.2f}, {reached} of {len(sub)} pairs at 1.5x or more; "
            f"pooled sd {sub['pooled_sd'].iloc[0]:.4f}, median unpaired sd / pooled sd "
            f"{(sub['unpaired_sd'] / sub['pooled_sd']).median():.2f}"
        )
    if args.csv:
        gains.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
