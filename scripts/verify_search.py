"""Verify a topology search on the board: re-train graphs from its front with the board's headline protocol beside
the built-ins, and measure how well the search's proxy predicts the board.

    python scripts/verify_search.py --study opanas_paths-efficientdet --epochs 32 --commit --lock /tmp/cpu.lock
    python scripts/verify_search.py --study opanas_paths-efficientdet --epochs 32 --analyse-only

1. Picks ``--graphs K`` graphs of the study's front (its Pareto set, reference graphs left out), spread over its
   cost range (cheapest, most expensive, and evenly between), and writes them to RESULTS/graphs/.
2. Trains the built-ins (``--builtins``) under the search's own protocol (its phis, seed, schedule and terms,
   ``--search-threads`` threads a run as its workers trained, as many runs side by side as the cores allow) into
   SEARCH/builtins, so that they have a search AP too, with the code that ran the search (``--search-code``).
   Minutes: it goes first, so that the proxy's column is complete early.
3. Trains the chosen graphs with the headline protocol and the board's code (``--code``): ``--phi`` x ``--seeds``
   at ``--epochs`` under the board's terms, two runs side by side, into RESULTS (default results/verify/STUDY),
   batch by batch as scripts/make_leaderboard.py does.
4. Derives RESULTS/LEADERBOARD.md, the board of ``--board`` and RESULTS pooled (``archbench leaderboard``
   with both folders, Delta against ``--reference``), and RESULTS/VERIFY.md: per neck its search AP, its board AP
   at the first phi, and Kendall tau between the two over every neck that has both (scipy.stats.kendalltau).

Every step skips what is recorded, so an interrupted verification continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from driving import ROOT, add_driver_options, archbench, batches, committing
from optuna import Study

from archbench.files import atomic_write_text
from archbench.search.front import protocol_flags, trials_table
from archbench.search.report import stored_study
from archbench.search.study import COSTS, StudySettings, settings_of


def pick_graphs(front: pd.DataFrame, k: int) -> pd.DataFrame:
    """``k`` rows of ``front`` (one per graph, sorted by cost) spread over its cost range: the cheapest, the
    most expensive and evenly between (all of them when there are ``k`` or fewer)."""
    if len(front) <= k:
        return front
    return front.iloc[sorted({int(round(i)) for i in np.linspace(0, len(front) - 1, k)})]


def study_front(study_name: str, search: Path, storage: str | None) -> tuple[pd.DataFrame, StudySettings, Study]:
    """The study's complete trials (``front.trials_table``), its settings and the study."""
    study, _ = stored_study(study_name, storage, search)
    return trials_table(study), settings_of(study), study


def write_graphs(study: Study, chosen: pd.DataFrame, folder: Path) -> list[Path]:
    """The chosen trials' graphs as spec files under ``folder`` (their specs as the study stored them)."""
    from archbench.spec import dump_yaml
    from archbench.spec.loader import parse_spec, require_valid

    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    paths = []
    for number in chosen.trial:
        spec = require_valid(*parse_spec(by_number[int(number)].user_attrs["spec"], f"#{number}"), f"#{number}")
        path = folder / f"{spec.name}.yaml"
        if not path.is_file():
            atomic_write_text(path, dump_yaml(spec))
        paths.append(path)
    return paths


def train_graphs(args: argparse.Namespace, graphs: list[Path], results: Path) -> None:
    """Step 3: the chosen graphs at the headline tier's phis and seeds, two runs side by side."""
    for phi in args.phi.split(","):
        for seed in args.seeds.split(","):
            for batch in batches([str(p) for p in graphs], 2):
                archbench(
                    "run", "--neck", ",".join(batch), "--phi", phi, "--seeds", seed, "--epochs", str(args.epochs),
                    "--terms", args.terms, "--jobs", "2", "--results", str(results), lock=args.lock,
                    code=args.code.resolve(),
                )  # fmt: skip


def train_builtins(args: argparse.Namespace, settings: StudySettings, search: Path) -> None:
    """Step 2: the built-ins under the search's protocol, into SEARCH/builtins."""
    # The thread count is not part of a study's settings, but it can move the last digits of a run's numerics,
    # so the built-ins train with the threads the search's workers had.
    jobs = max(1, (os.cpu_count() or 1) // args.search_threads)
    archbench(
        "run", "--neck", args.builtins, *protocol_flags(settings), "--threads", str(args.search_threads),
        "--jobs", str(jobs), "--results", str(search / "builtins"), lock=args.lock, code=args.search_code.resolve(),
    )  # fmt: skip


def analyse(args: argparse.Namespace, chosen: pd.DataFrame, settings: StudySettings) -> None:
    from scipy import stats

    from archbench.board.aggregate import pooled_records, seed_rows
    from archbench.runs.records import load_records

    results, search, board = ROOT / args.results, ROOT / args.search, ROOT / args.board
    metric = settings.metric
    first_phi = int(args.phi.split(",")[0])
    proxy_ap = {r.neck: (r.metrics or {})[metric] for r in load_records(search / "builtins") if r.ok}
    proxy_ap.update({row.graph: row[metric] for _, row in chosen.iterrows()})
    rows = seed_rows(pooled_records([board, results], settings.task), settings.task)
    rows = rows[(rows["epochs"] == args.epochs) & (rows["phi"] == first_phi) & (rows["terms"] == args.terms)]
    board_ap = rows.groupby("neck")[metric].agg(["mean", "count"])
    necks = sorted(n for n in proxy_ap if n in board_ap.index)
    tau = stats.kendalltau([proxy_ap[n] for n in necks], [board_ap.at[n, "mean"] for n in necks])
    lines = [
        f"# Verification of search study {args.study}",
        "",
        f"Derived by scripts/verify_search.py from the study ({args.search}), the search-protocol runs of the "
        f"built-ins ({args.search}/builtins) and the board ({args.board} and {args.results}): regenerate it, do "
        f"not edit it. Search AP: phi {list(settings.phis)}, {settings.train['epochs']} epochs, seed "
        f"{settings.seed}; board AP: phi {first_phi}, {args.epochs} epochs, mean over the seeds trained. The "
        f"pooled board with its tests is [LEADERBOARD.md](LEADERBOARD.md) (Delta against {args.reference}).",
        "",
        f"Kendall tau between search AP and board AP over {len(necks)} necks: {tau.statistic:+.2f} "
        f"(p = {tau.pvalue:.3f}).",
        "",
        "| neck | found by the search | search AP | board AP | board seeds |",
        "|---|---|---|---|---|",
    ]
    found = set(chosen.graph)
    for n in sorted(necks, key=lambda n: -board_ap.at[n, "mean"]):
        lines.append(
            f"| {n} | {'yes' if n in found else ''} | {proxy_ap[n]:.4f} | {board_ap.at[n, 'mean']:.4f} "
            f"| {int(board_ap.at[n, 'count'])} |"
        )
    atomic_write_text(results / "VERIFY.md", "\n".join(lines) + "\n")
    summary = {"necks": necks, "tau": tau.statistic, "p": tau.pvalue, "chosen": chosen.to_dict("records")}
    atomic_write_text(results / "verify.json", json.dumps(summary, indent=2, default=float) + "\n")
    archbench(
        "leaderboard", "--results", str(board), "--results", str(results), "--task", settings.task,
        "--reference", args.reference, "--format", "md", "-o", str(results / "LEADERBOARD.md"), lock=args.lock,
    )  # fmt: skip
    print((results / "VERIFY.md").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", required=True, help="the topology study to verify")
    parser.add_argument("--search", default="results/topology", help="the search's results folder (search.db)")
    parser.add_argument("--storage", help="the study's storage URL (default: SEARCH/search.db)")
    parser.add_argument("--graphs", type=int, default=3, help="graphs of the front to re-train")
    parser.add_argument("--results", help="folder of the verification runs (default results/verify/STUDY)")
    parser.add_argument("--board", default="results/board", help="the board the graphs are judged beside")
    parser.add_argument("--phi", default="0,1", help="comma list of phi values (the headline tier's)")
    parser.add_argument("--seeds", default="0,1,2", help="comma list of seeds (the headline tier's)")
    parser.add_argument("--epochs", type=int, required=True, help="the headline tier's schedule")
    parser.add_argument("--terms", default="efficientdet", help="the board's equal terms")
    parser.add_argument("--reference", default="bifpn", help="the neck the pooled board's Delta is taken from")
    parser.add_argument(
        "--builtins", default="fpn,panet,bifpn,nasfpn,hda_residual,fpn_effdet", help="built-ins given a search AP"
    )
    add_driver_options(parser)
    parser.add_argument(
        "--search-code", type=Path, default=ROOT,
        help="the checkout that ran the search (make_search.py's --code): the built-ins' search-protocol runs use it, "
        "so that their search AP compares with the found graphs'",
    )  # fmt: skip
    parser.add_argument(
        "--search-threads", type=int, default=1, help="torch threads of a search run (make_search.py --threads)"
    )
    parser.add_argument("--analyse-only", action="store_true", help="train nothing; analyse what is recorded")
    args = parser.parse_args()
    args.results = args.results or f"results/verify/{args.study}"
    results, search = ROOT / args.results, ROOT / args.search
    table, settings, study = study_front(args.study, search, args.storage)
    front = table[table.on_front & (table.reference == "")].sort_values(COSTS[settings.cost])
    chosen = pick_graphs(front.drop_duplicates("graph"), args.graphs)
    graphs = write_graphs(study, chosen, results / "graphs")
    if not args.analyse_only:
        with committing(search / "builtins" / "runs", args.commit):
            train_builtins(args, settings, search)
        with committing(results / "runs", args.commit):
            train_graphs(args, graphs, results)
    analyse(args, chosen, settings)


if __name__ == "__main__":
    main()
