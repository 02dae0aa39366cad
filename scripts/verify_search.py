"""Verify a topology search on the board: re-train graphs from its front with the board's headline protocol beside
the built-ins, and measure how well the search's proxy predicts the board.

    python scripts/verify_search.py --study opanas_paths-efficientdet --epochs 32 --commit --lock /tmp/cpu.lock
    python scripts/verify_search.py --study opanas_paths-efficientdet --epochs 32 --analyse-only

1. Picks ``--graphs K`` graphs of the study's front (its Pareto set, reference graphs left out, one per network:
   ``spec.graph.network_key``), spread over its cost range (cheapest, most expensive, and evenly between), and
   writes them to RESULTS/graphs/.
2. Trains the built-ins (``--builtins``) under the search's own protocol (its phis, seed, schedule and terms,
   ``--search-threads`` threads a run as its workers trained, as many runs side by side as the cores allow) into
   SEARCH/builtins, so that they have a search AP too, with the code that ran the search (``--search-code``).
   Minutes: it goes first, so that the proxy's column is complete early.
3. Trains the chosen graphs with the headline protocol and the board's code (``--code``): ``--phi`` x ``--seeds``
   at ``--epochs`` under the board's terms, two runs side by side, into RESULTS (default results/verify/STUDY),
   batch by batch as scripts/make_leaderboard.py does. At a phi where the board's runs of a rival (``--rivals``)
   name another CPU model than this machine's, that rival is trained again beside them, every seed the board
   holds of it there (:func:`rivals_to_retrain`); with ``--rival-runs FOLDER`` the runs of them that another
   verification trained on this CPU model are copied from there instead (:func:`reuse_rivals`). Runs go two by
   two, a neck left over at one seed beside its own run at another (:func:`paired_calls`).
4. Derives RESULTS/VERIFY.md and verify.json: per neck its search AP and its board AP at every phi, Kendall tau
   between the two per phi over every neck that has both (scipy.stats.kendalltau), and each graph against each
   rival at equal phi (:func:`rival_tests`) and at the graph's GFLOPs (:func:`rival_cost_tests`); the board is
   RESULTS, then ``--board`` without the (neck, phi)s RESULTS trained again (:func:`verification_pool`). And
   RESULTS/LEADERBOARD.md, the board of both folders (``archbench leaderboard``, RESULTS first, Delta against
   ``--reference``) with its equal-cost tables.
   With ``--commit`` the records are committed as they are written and the derived files at the end.

Every step skips what is recorded, so an interrupted verification continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from driving import ROOT, add_driver_options, archbench, batches, commit_paths, committing
from optuna import Study

from archbench.files import atomic_write_text
from archbench.runs.records import RunRecord, load_records
from archbench.search.front import protocol_flags, trial_spec, trials_table
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

    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    paths = []
    for number in chosen.trial:
        spec = trial_spec(by_number[int(number)])
        path = folder / f"{spec.name}.yaml"
        if not path.is_file():
            atomic_write_text(path, dump_yaml(spec))
        paths.append(path)
    return paths


def rivals_to_retrain(
    board_records: Iterable[RunRecord], rivals: Iterable[str], phi: int, epochs: int, here: str | None
) -> dict[int, list[str]]:
    """Seed -> the ``rivals`` to train again at ``phi`` beside the graphs: those with a board run at ``phi`` and
    ``epochs`` that names another CPU model than ``here``, with every seed the board holds of them there.

    Two CPU models train one configuration to different numbers (docs/board.md), so a found graph trained here
    is compared with rivals trained here; a rival is re-trained whole, so that none mixes machines in its seeds."""
    wanted = set(rivals)
    runs = [r for r in board_records if r.ok and r.neck in wanted and r.phi == phi and r.epochs == epochs]
    foreign = {r.neck for r in runs if (r.environment or {}).get("cpu_model") != here}
    by_seed: dict[int, list[str]] = {}
    for r in sorted(runs, key=lambda r: (r.seed, r.neck)):
        if r.neck in foreign and r.neck not in by_seed.get(r.seed, []):
            by_seed.setdefault(r.seed, []).append(r.neck)
    return by_seed


def in_tier(record: RunRecord, phi: int, epochs: int, terms: str) -> bool:
    """Whether ``record`` is an ok run at ``phi``, ``epochs`` and ``terms``: one of the verification's runs there."""
    from archbench.spec.terms import terms_of

    return record.ok and (record.phi, record.epochs, terms_of(record.config)) == (phi, epochs, terms)


def reuse_rivals(
    source: Path, results: Path, wanted: Mapping[int, list[str]], phi: int, epochs: int, terms: str, here: str | None
) -> list[Path]:
    """Copy into ``results`` the ok runs that another verification (its results folder ``source``) trained of the
    rivals ``wanted`` (seed -> necks, :func:`rivals_to_retrain`) at ``phi``, ``epochs`` and ``terms`` on this CPU
    model ``here``: the record unchanged, its weights file beside it when present. ``archbench run`` then skips
    them as recorded, so one machine trains a rival once for every search it verifies, and each verification
    folder still holds all its runs. Returns the records copied (none already in ``results``)."""
    copied = []
    for path in sorted((source / "runs").glob("*.json")):
        record = RunRecord.load(path)
        target = record.path(results)
        if (
            target.exists()
            or not in_tier(record, phi, epochs, terms)
            or record.neck not in wanted.get(record.seed, [])
            or (record.environment or {}).get("cpu_model") != here
        ):
            continue
        weights = (record.weights or {}).get("path")
        if weights and (source / weights).is_file():
            target_weights = results / weights
            target_weights.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / weights, target_weights)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copied.append(target)
    return copied


def recorded_runs(results: Path, phi: int, epochs: int, terms: str) -> set[tuple[str, int]]:
    """(neck, seed) of the ok runs recorded under ``results`` at ``phi``, ``epochs`` and ``terms``: left out of the
    calls, so that a pair is never one run beside a skipped one."""
    return {(r.neck, r.seed) for r in load_records(results) if in_tier(r, phi, epochs, terms)}


def paired_calls(necks_by_seed: Mapping[int, list[str]]) -> list[tuple[list[str], list[int]]]:
    """The runs ``necks_by_seed`` names (seed -> necks) as ``archbench run`` calls of two runs each, (necks, seeds):
    each seed's necks in pairs, then a neck left over at one seed paired with its own run at another seed, so
    that both cores work in every call but (at most) one per neck (3 necks x 3 seeds: 5 calls, not 6)."""
    calls: list[tuple[list[str], list[int]]] = []
    left: dict[str, list[int]] = {}  # neck -> the seeds where it was left over
    for seed in sorted(necks_by_seed):
        for batch in batches(necks_by_seed[seed], 2):
            if len(batch) == 2:
                calls.append((batch, [seed]))
            else:
                left.setdefault(batch[0], []).append(seed)
    return calls + [([neck], pair) for neck, seeds in left.items() for pair in batches(seeds, 2)]


def train_graphs(args: argparse.Namespace, graphs: list[Path], results: Path) -> None:
    """Step 3: the chosen graphs at the headline tier's phis and seeds, two runs side by side, with the rivals
    that :func:`rivals_to_retrain` names at each phi (those another verification trained here first copied from
    ``--rival-runs``: :func:`reuse_rivals`)."""
    from archbench.runs.environment import cpu_model

    board_records, here = load_records(ROOT / args.board), cpu_model()
    seeds = [int(s) for s in args.seeds.split(",")]
    for phi in [int(p) for p in args.phi.split(",")]:
        rivals = rivals_to_retrain(board_records, args.rivals.split(","), phi, args.epochs, here)
        for source in args.rival_runs:
            for path in reuse_rivals(ROOT / source, results, rivals, phi, args.epochs, args.terms, here):
                print(f"reused  {path.relative_to(ROOT)} (trained by {source} on this CPU model)", flush=True)
        done = recorded_runs(results, phi, args.epochs, args.terms)
        necks = {
            s: [
                n
                for n in ([str(p) for p in graphs] if s in seeds else []) + rivals.get(s, [])
                if (Path(n).stem, s) not in done
            ]
            for s in set(seeds) | set(rivals)
        }
        for batch, pair in paired_calls(necks):
            archbench(
                "run", "--neck", ",".join(batch), "--phi", str(phi), "--seeds", ",".join(map(str, pair)), "--epochs",
                str(args.epochs), "--terms", args.terms, "--jobs", "2", "--results", str(results),
                lock=args.lock, code=args.code.resolve(),
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


def builtins_search_ap(builtins: Path, trials: Path, settings: StudySettings) -> dict[str, float]:
    """Each built-in's search AP, made as a trial's is: its runs under ``builtins`` in the comparison group and
    seed of the study's trial runs (under ``trials``), averaged over the study's phis."""
    from archbench.board.aggregate import GROUP_KEYS, pooled_records, seed_rows

    protocol = seed_rows(pooled_records([trials], settings.task), settings.task)[GROUP_KEYS].iloc[0]
    rows = seed_rows(pooled_records([builtins], settings.task), settings.task)
    keep = (rows[GROUP_KEYS] == protocol).all(axis=1) & (rows["seed"] == settings.seed)
    keep &= rows["phi"].isin(settings.phis)
    return {str(k): float(v) for k, v in rows[keep].groupby("neck")[settings.metric].mean().items()}


def verification_pool(results: Path, board: Path, task: str) -> list[Mapping[str, Any]]:
    """The verification's records, then the board's but those of a neck at a phi and in a comparison group that
    it trained again (a rival re-trained on this machine replaces the board's runs there whole)."""
    from archbench.board.aggregate import group_of, pooled_records

    def where(r: Mapping[str, Any]) -> tuple[Any, ...]:
        return (r.get("neck"), r.get("phi"), *group_of(r).values())

    own, theirs = pooled_records([results], task), pooled_records([board], task)
    hashes = {(*where(r), r.get("seed")): r.get("config_hash") for r in own}
    if any(hashes.get((*where(r), r.get("seed")), r.get("config_hash")) != r.get("config_hash") for r in theirs):
        print(
            "warning: runs trained again here differ in configuration from the board's of the same neck, phi and "
            "seed (another --code?); VERIFY.md uses this machine's, LEADERBOARD.md pools both",
            file=sys.stderr,
        )
    again = {where(r) for r in own}
    return own + [r for r in theirs if where(r) not in again]


def family_tests(
    blocks: list[tuple[dict[str, Any], pd.DataFrame]], pairs: list[tuple[str, str]], metric: str
) -> pd.DataFrame:
    """The board's per-pair paired tests (``pairs.paired_tests``) of ``pairs`` in each block of seed rows (its
    labels added as columns; a pair where either side has no rows in the block is left out), Holm over every pair
    of every block together, and each pair's minimum detectable difference at its seeds (80 % power at Holm's first
    level over the whole family, ``power.min_detectable_difference``), metric units."""
    from archbench.board.pairs import paired_tests
    from archbench.board.power import min_detectable_difference
    from archbench.board.stats import ALPHA, holm

    parts = []
    for labels, rows in blocks:
        present = set(rows["neck"])
        family = [(a, b) for a, b in pairs if a in present and b in present]
        if family:
            parts.append(paired_tests(rows, metric, family).assign(**labels))
    if not parts:
        return pd.DataFrame()
    tests = pd.concat(parts, ignore_index=True)
    tests["p_adj"] = holm(tests["p"].tolist())
    tests["different"] = (tests["p_adj"] < ALPHA).astype(bool)
    tests["mdd"] = [
        min_detectable_difference(sd, int(n), ALPHA, len(tests)) for sd, n in zip(tests.diff_sd, tests.n_pairs)
    ]
    return tests


def rival_tests(rows: pd.DataFrame, graphs: list[str], rivals: list[str], metric: str) -> pd.DataFrame:
    """Each found graph against each rival at one phi (``rows``: one group's seed rows at that phi): paired tests
    over the seeds both ran, Holm over the graphs x rivals family (:func:`family_tests`)."""
    return family_tests([({}, rows)], [(g, r) for g in graphs for r in rivals], metric)


def rival_cost_tests(
    rows: pd.DataFrame, graphs: list[str], rivals: list[str], phi: int, metric: str, axis: str = "gflops"
) -> pd.DataFrame:
    """Each found graph at ``phi`` against each rival at the graph's own cost there (``rows``: one group's seed
    rows, every phi): the graph's per-seed metric as measured, the rival's read off that seed's curve over phi at
    the graph's cost (``equal_cost.seed_curves``, piecewise linear in log cost, never extrapolated: a rival whose
    curve does not reach the cost has no pair). Paired tests over the seeds both have, Holm over the graphs x
    rivals family (:func:`family_tests`); column ``budget``: the graph's cost (``axis`` units)."""
    from archbench.board.equal_cost import LOG_COST, interpolate, point_costs, seed_curves

    costs = point_costs(rows, axis)
    curves = seed_curves(rows[rows["neck"].isin(rivals)], axis, metric)
    blocks = []
    for graph in graphs:
        if (graph, phi) not in costs.index:
            continue
        budget = float(costs[graph, phi])
        measured = rows[(rows["neck"] == graph) & (rows["phi"] == phi)][["neck", "seed", metric]]
        read = [
            {"neck": neck, "seed": seed, metric: interpolate(xs, ys, budget, LOG_COST)}
            for (neck, seed), (xs, ys) in curves.items()
        ]
        at_budget = pd.concat([measured, pd.DataFrame(read, columns=measured.columns)], ignore_index=True)
        blocks.append(({"budget": budget}, at_budget.dropna(subset=[metric])))
    return family_tests(blocks, [(g, r) for g in graphs for r in rivals], metric)


def test_cells(t: Any) -> str:
    """One paired test's table cells (a row of :func:`family_tests`): seeds, difference ± interval, p (Holm),
    resolved, MDD."""
    resolved = "yes" if t.different else "no"
    return f"{t.n_pairs} | {t.diff_mean:+.4f} ± {t.diff_ci:.4f} | {t.p_adj:.3f} | {resolved} | {t.mdd:.4f} |"


def analyse(args: argparse.Namespace, chosen: pd.DataFrame, settings: StudySettings) -> None:
    from scipy import stats

    from archbench.board.aggregate import seed_rows

    results, search, board = ROOT / args.results, ROOT / args.search, ROOT / args.board
    metric = settings.metric
    phis = [int(p) for p in args.phi.split(",")]
    graphs = list(chosen.graph)
    proxy_ap = builtins_search_ap(search / "builtins", search / "search" / args.study, settings)
    proxy_ap.update({row.graph: row[metric] for _, row in chosen.iterrows()})
    rows = seed_rows(verification_pool(results, board, settings.task), settings.task)
    rows = rows[(rows["epochs"] == args.epochs) & (rows["terms"] == args.terms)]
    board_ap = {phi: rows[rows["phi"] == phi].groupby("neck")[metric].agg(["mean", "count"]) for phi in phis}
    lines = [
        f"# Verification of search study {args.study}",
        "",
        f"Derived by scripts/verify_search.py from the study ({args.search}), the search-protocol runs of the "
        f"built-ins ({args.search}/builtins) and the board ({args.results} pooled with {args.board}, the former's "
        f"runs first): regenerate it, do not edit it. Search AP: phi {list(settings.phis)}, "
        f"{settings.train['epochs']} epochs, seed {settings.seed}, the search's own protocol; board AP: "
        f"{args.epochs} epochs, mean over the seeds trained. The pooled board with its tests and equal-cost tables is "
        f"[LEADERBOARD.md](LEADERBOARD.md) (Delta against {args.reference}).",
        "",
        "## Does the search's proxy predict the board?",
        "",
    ]
    taus: dict[str, dict[str, object]] = {}
    for phi in phis:
        necks = sorted(n for n in proxy_ap if n in board_ap[phi].index)
        if len(necks) < 2:
            continue
        tau = stats.kendalltau([proxy_ap[n] for n in necks], [board_ap[phi].at[n, "mean"] for n in necks])
        lines.append(
            f"- Board phi {phi}: Kendall tau {tau.statistic:+.2f} over {len(necks)} necks (p = {tau.pvalue:.3f})."
        )
        taus[str(phi)] = {"necks": necks, "tau": tau.statistic, "p": tau.pvalue}
    head = " | ".join(f"board AP phi {phi} (seeds)" for phi in phis)
    lines += ["", f"| neck | found by the search | search AP | {head} |", "|---|---|---|" + "---|" * len(phis)]

    def board_cell(phi: int, neck: str) -> str:
        table = board_ap[phi]
        return f"{table.at[neck, 'mean']:.4f} ({int(table.at[neck, 'count'])})" if neck in table.index else "-"

    listed = sorted(proxy_ap, key=lambda n: -proxy_ap[n])
    for n in listed:
        cells = " | ".join(board_cell(phi, n) for phi in phis)
        lines.append(f"| {n} | {'yes' if n in graphs else ''} | {proxy_ap[n]:.4f} | {cells} |")
    rivals = args.rivals.split(",")
    lines += [
        "",
        "## The found graphs against the rivals at equal phi",
        "",
        "Per-pair paired t-tests over the seeds both ran (Holm over the graph x rival pairs of a phi where both "
        "ran, 5 %); the interval is the pair's 95 % Student-t interval of the mean difference, the MDD the "
        "difference its test detects with 80 % power at Holm's first level. The whole board at equal cost: "
        "LEADERBOARD.md.",
        "",
        "| phi | graph | rival | seeds | graph - rival | p (Holm) | resolved | MDD |",
        "|---|---|---|---|---|---|---|---|",
    ]
    versus: dict[str, list[dict[str, object]]] = {}
    for phi in phis:
        tests = rival_tests(rows[rows["phi"] == phi], graphs, rivals, metric)
        for t in tests.itertuples():
            lines.append(f"| {phi} | {t.a} | {t.b} | {test_cells(t)}")
        versus[str(phi)] = tests.to_dict("records")
    lines += [
        "",
        "## The found graphs against the rivals at equal GFLOPs",
        "",
        "Each graph at each phi against each rival at the graph's own GFLOPs there: the rival's AP read off each "
        "seed's curve over phi (piecewise linear in log GFLOPs, never extrapolated: a rival whose curve does not "
        "reach the graph's cost is left out), the graph's as measured; paired t-tests over the seeds both have, "
        "Holm over the graph x rival pairs of a phi, 5 %, interval and MDD as above.",
        "",
        "| phi | graph | GFLOPs | rival | seeds | graph - rival | p (Holm) | resolved | MDD |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    at_cost: dict[str, list[dict[str, object]]] = {}
    for phi in phis:
        tests = rival_cost_tests(rows, graphs, rivals, phi, metric)
        for t in tests.itertuples():
            lines.append(f"| {phi} | {t.a} | {t.budget:.4f} | {t.b} | {test_cells(t)}")
        at_cost[str(phi)] = tests.to_dict("records")
    atomic_write_text(results / "VERIFY.md", "\n".join(lines) + "\n")
    summary = {"chosen": chosen.to_dict("records"), "tau": taus, "rivals": versus, "rivals_equal_gflops": at_cost}
    atomic_write_text(results / "verify.json", json.dumps(summary, indent=2, default=float) + "\n")
    archbench(
        "leaderboard", "--results", str(results), "--results", str(board), "--task", settings.task,
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
    parser.add_argument(
        "--rivals", default="fpn,panet,bifpn",
        help="built-ins trained again beside the graphs at a phi whose board runs of them name another CPU model",
    )  # fmt: skip
    parser.add_argument(
        "--rival-runs", action="append", default=[], metavar="FOLDER",
        help="another verification's results folder: the rival runs it trained on this CPU model at a phi, schedule "
        "and terms of this one are copied in and not trained again (repeatable)",
    )  # fmt: skip
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
    front = table[table.on_front & (table.reference == "")].sort_values([COSTS[settings.cost], "trial"])
    chosen = pick_graphs(front.drop_duplicates("network"), args.graphs)
    graphs = write_graphs(study, chosen, results / "graphs")
    if not args.analyse_only:
        with committing(search / "builtins" / "runs", args.commit):
            train_builtins(args, settings, search)
        with committing(results / "runs", args.commit):
            train_graphs(args, graphs, results)
    analyse(args, chosen, settings)
    if args.commit:  # the graphs, VERIFY.md, verify.json and LEADERBOARD.md (the records went in as written)
        commit_paths([results, search / "builtins"], f"verify: {args.study}, VERIFY.md and LEADERBOARD.md derived")


if __name__ == "__main__":
    main()
