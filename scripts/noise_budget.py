"""The noise budget: where the seed-to-seed variance of AP (and of paired differences) comes from.

    python scripts/noise_budget.py --epochs 32 --commit --lock /tmp/cpu.lock   # train (resumable), then analyse
    python scripts/noise_budget.py --epochs 32 --analyse-only                 # only the analysis

For each of ``--necks`` at phi 0, under the board's terms, ``--seeds K`` runs per source, one source varied at
a time (runs into RESULTS, default results/noise, kept apart from the board, except the ``seed`` source's):

- ``seed``: the board's protocol, seeds 0..K-1; a seed sets the initial weights and the data order together.
  These runs are board runs (the same configuration), so they train into and are read from ``--board`` (default
  results/board), where the headline tier uses them too;
- ``init``: seeds 0..K-1 with ``--data-seed 0``: only the initial weights (and torch's global generator) vary;
- ``order``: seed 0 with ``--data-seed 0..K-1``: only the order of the training images varies (augmentation
  draws are seeded by (epoch, image), the same for every seed, so they are not a source here);
- ``val``: the sample of validation images: a bootstrap over the validation images (``--resamples`` draws, one
  set shared by all necks, so paired differences see the same images) of each neck's seed-0 run, from its
  kept weights;
- ``ema`` (a lever, not a source): the ``seed`` runs again with ``--ema``, evaluated with an exponential moving
  average of the weights, as EfficientDet trains.

Seed 0 with data seed 0 trains exactly what plain seed 0 trains (same weights, same order), so the ``init`` and
``order`` sources take the ``seed`` source's seed-0 run as their first run instead of training it again.

Per source the analysis gives each neck's sd of AP and each pair's sd of the per-run paired difference (runs
paired by the index that varies), in AP units, and the share of the ``seed`` source's variance, and writes
RESULTS/budget.json and RESULTS/BUDGET.md (derived from the records and kept weights alone).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from driving import ROOT, add_driver_options, archbench, batches, committing
from scipy.stats import chi2

SOURCES = ("seed", "init", "order", "val")
#: The run sources trained by ``archbench run`` (``val`` is computed from the ``seed`` source's runs).
TRAINED = ("seed", "init", "order", "ema")


def source_of(record: Mapping[str, Any]) -> tuple[str, int] | None:
    """(source, index that varies) of a noise-budget record; None for a record of another design.

    ``seed``/``ema``: plain seeds (index = seed); ``init``: data seed 0 (index = seed); ``order``: seed 0 with a
    data seed (index = data seed). A plain seed-0 run also stands for index 0 of ``init`` and ``order``:
    :func:`per_source` adds it there.
    """
    config = record.get("config") or {}
    ema = bool((config.get("train") or {}).get("ema"))
    data_seed = config.get("data_seed")
    seed = int(record["seed"])
    if data_seed is None:
        return ("ema" if ema else "seed"), seed
    if ema:
        return None
    if int(data_seed) == 0 and seed > 0:
        return "init", seed
    if seed == 0 and int(data_seed) > 0:
        return "order", int(data_seed)
    return None


def per_source(records: Sequence[Mapping[str, Any]], epochs: int, metric: str = "AP") -> pd.DataFrame:
    """One row per (source, neck, index): the run's ``metric`` (AP units), from ok phi-0 records of ``epochs``.

    The ``seed`` source's index-0 runs are copied into ``init`` and ``order`` (the same training, see the
    module docstring).
    """
    rows = []
    for r in records:
        if r.get("status") != "ok" or r.get("phi") != 0 or int(r.get("epochs", -1)) != epochs:
            continue
        found = source_of(r)
        if found is None:
            continue
        source, index = found
        row = {"source": source, "neck": r["neck"], "index": index, metric: float((r.get("metrics") or {})[metric])}
        rows.append(row)
        if source == "seed" and index == 0:
            rows += [{**row, "source": "init"}, {**row, "source": "order"}]
    return pd.DataFrame(rows, columns=["source", "neck", "index", metric])


def spreads(values: pd.DataFrame, metric: str = "AP") -> pd.DataFrame:
    """Per source: each neck's sd of ``metric`` and each pair's sd of paired differences, over its runs.

    ``values``: columns source, neck, index and ``metric`` (e.g. :func:`per_source`, or one row per bootstrap
    draw for ``val``). One row per (source, item) with ``item`` a neck or ``a-b``, ``n`` runs (pairs: indices
    both have), ``sd`` (ddof 1, metric units; NaN below 2) and its 95 % interval ``sd_low`` .. ``sd_high`` (the
    chi-square interval of a normal sample's sd, n - 1 degrees of freedom: with 4 runs it spans 0.57 to 3.7
    times the sd).
    """
    out = []
    for source, sub in values.groupby("source", sort=False):
        table = sub.pivot(index="index", columns="neck", values=metric)
        columns = {neck: table[neck] for neck in sorted(table.columns)}
        columns.update({f"{a}-{b}": table[a] - table[b] for a, b in itertools.combinations(sorted(table.columns), 2)})
        for item, column in columns.items():
            x = column.dropna().to_numpy()
            sd = float(np.std(x, ddof=1)) if x.size >= 2 else math.nan
            low, high = _sd_interval(sd, x.size)
            out.append({"source": source, "item": item, "n": x.size, "sd": sd, "sd_low": low, "sd_high": high})
    return pd.DataFrame(out, columns=["source", "item", "n", "sd", "sd_low", "sd_high"])


def _sd_interval(sd: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` interval of a standard deviation ``sd`` estimated from ``n`` normal values (NaN below 2)."""
    if n < 2 or math.isnan(sd):
        return math.nan, math.nan
    tail = (1 - level) / 2
    return sd * math.sqrt((n - 1) / chi2.ppf(1 - tail, n - 1)), sd * math.sqrt((n - 1) / chi2.ppf(tail, n - 1))


def shares(table: pd.DataFrame, whole: str = "seed") -> pd.DataFrame:
    """``table`` (:func:`spreads`) with ``share``: each source's variance over the ``whole`` source's for the same
    item (dimensionless). The sources are measured one at a time, so the shares need not add up to 1."""
    base = table[table["source"] == whole].set_index("item")["sd"]
    return table.assign(share=[sd**2 / base.get(item, math.nan) ** 2 for item, sd in zip(table["item"], table["sd"])])


def bootstrap_values(board: Path, records: Sequence[Mapping[str, Any]], resamples: int, seed: int) -> pd.DataFrame:
    """The ``val`` source: AP of each neck's seed-0 run (the ``seed`` source's, kept in ``board``) on ``resamples``
    bootstrap samples of the validation images, the same draws for every neck; rows as :func:`per_source`
    (index = draw)."""
    import torch  # the analysis of records alone needs no torch; the bootstrap predicts with the kept weights

    from archbench.detection.evaluate import resampled_ap
    from archbench.runs import layout
    from archbench.runs.trained import load_trained
    from archbench.train.det_trainer import size_thresholds
    from archbench.train.trainer import TrainConfig

    firsts = [r for r in records if source_of(r) == ("seed", 0)]
    rows, draws = [], None
    for record in sorted(firsts, key=lambda r: r["neck"]):
        trained = load_trained(layout.record_path(board, "det", record["neck"], 0, 0, record["config_hash"]))
        val, info = trained.task.open_val(
            (record["config"]["data"])["ref"],
            resolution=trained.model_config.resolution,
            categories=None,
            seed=0,
            cache_root=layout.cache_root(),
        )
        evaluator = trained.task.trainer(
            trained.model, None, TrainConfig.for_task("det"), seed=0, device=torch.device("cpu")
        )
        detections = evaluator.predict(val)
        ids = list(val.image_ids)
        if draws is None:
            draws = np.random.default_rng(seed).integers(0, len(ids), size=(resamples, len(ids)))
        ap = resampled_ap(val.coco, detections, draws, size_thresholds(info.get("area_ranges")), ids)
        print(f"val bootstrap {record['neck']}: AP {np.mean(ap):.4f} sd {np.std(ap, ddof=1):.4f}", flush=True)
        rows += [{"source": "val", "neck": record["neck"], "index": b, "AP": v} for b, v in enumerate(ap)]
    return pd.DataFrame(rows, columns=["source", "neck", "index", "AP"])


def markdown(table: pd.DataFrame, ema: pd.DataFrame, header: str) -> str:
    """BUDGET.md: the sd per source and item, with its 95 % interval (trained sources: the bootstrap's ``val`` sd
    rests on 1000 draws and its interval would only show their Monte Carlo error) and its share of the seed
    source's variance."""
    cell = table.set_index(["item", "source"])
    lines = [header, "", "| item | " + " | ".join(f"sd {s} [95 % CI] (share)" for s in SOURCES) + " |"]
    lines.append("|---" * (len(SOURCES) + 1) + "|")
    for item in sorted(table["item"].unique()):
        cells = []
        for s in SOURCES:
            if (item, s) not in cell.index or math.isnan(cell.at[(item, s), "sd"]):
                cells.append("-")
                continue
            row = cell.loc[(item, s)]
            interval = "" if s == "val" else f" [{row['sd_low']:.4f}, {row['sd_high']:.4f}]"
            cells.append(f"{row['sd']:.4f}{interval} ({row['share']:.2f})")
        lines.append(f"| {item} | " + " | ".join(cells) + " |")
    if not ema.empty:
        lines += ["", "EMA of the weights against the plain weights, the same seeds (sd in AP):", ""]
        lines += ["| item | sd plain [95 % CI] | sd EMA [95 % CI] | EMA / plain variance |", "|---|---|---|---|"]
        for rec in ema.itertuples(index=False):
            plain = f"{rec.sd_plain:.4f} [{rec.sd_plain_low:.4f}, {rec.sd_plain_high:.4f}]"
            averaged = f"{rec.sd_ema:.4f} [{rec.sd_ema_low:.4f}, {rec.sd_ema_high:.4f}]"
            lines.append(f"| {rec.item} | {plain} | {averaged} | {rec.ratio:.2f} |")
    return "\n".join(lines) + "\n"


def ema_effect(runs: pd.DataFrame) -> pd.DataFrame:
    """Per neck and pair: the sd over seeds without and with EMA (the ``seed`` and ``ema`` sources, seeds both
    have) and the ratio of the variances (< 1: EMA makes the comparison less noisy)."""
    both = spreads(runs[runs["source"].isin(["seed", "ema"])])
    plain = both[both["source"] == "seed"].set_index("item")
    ema = both[both["source"] == "ema"].set_index("item")
    items = [i for i in plain.index if i in ema.index]
    columns: dict[str, list[Any]] = {"item": items}
    for name, frame in (("plain", plain), ("ema", ema)):
        for column in ("sd", "sd_low", "sd_high"):
            columns[column.replace("sd", f"sd_{name}", 1)] = [frame.at[i, column] for i in items]
    columns["ratio"] = [ema.at[i, "sd"] ** 2 / plain.at[i, "sd"] ** 2 for i in items]
    return pd.DataFrame(columns)


def train(args: argparse.Namespace, results: Path, board: Path) -> None:
    """Every run of the design (``archbench run`` skips those already recorded); the seed source's in ``board``.

    One ``archbench run`` call per source and two indices (the necks x two runs, two at a time), so that with
    ``--lock`` the lock is held for a few runs at a time, never for a whole source."""
    protocol = ["--phi", "0", "--epochs", str(args.epochs), "--terms", args.terms, "--jobs", "2"]
    common = [*protocol, "--results", str(results)]
    necks, code = args.necks, args.code.resolve()
    seeds = [str(s) for s in range(args.seeds)]
    for pair in batches(seeds, 2):  # seed: board runs
        archbench("run", "--neck", necks, "--seeds", ",".join(pair), *protocol, "--results", str(board),
                  lock=args.lock, code=code)  # fmt: skip
    for pair in batches(seeds[1:], 2):  # init (index 0 is the seed source's seed 0)
        archbench("run", "--neck", necks, "--seeds", ",".join(pair), "--data-seed", "0", *common,
                  lock=args.lock, code=code)  # fmt: skip
    for d in seeds[1:]:  # order: one data seed per call (data seed 0 is the seed source's seed 0)
        archbench("run", "--neck", necks, "--seeds", "0", "--data-seed", d, *common, lock=args.lock, code=code)
    if args.ema:
        for pair in batches(seeds, 2):
            archbench("run", "--neck", necks, "--seeds", ",".join(pair), "--ema", *common, lock=args.lock,
                      code=code)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results/noise", help="folder of the noise-budget runs")
    parser.add_argument("--board", default="results/board", help="the board's folder: the seed source's runs")
    parser.add_argument("--necks", default="fpn,bifpn,hda_residual", help="comma list of necks")
    parser.add_argument("--epochs", type=int, required=True, help="the schedule (the board's headline tier's)")
    parser.add_argument("--seeds", type=int, default=4, help="runs per source and neck")
    parser.add_argument("--terms", default="efficientdet", help="equal terms, as the board's")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap draws of the validation images")
    parser.add_argument("--no-ema", dest="ema", action="store_false", help="skip the EMA lever's runs")
    add_driver_options(parser)
    parser.add_argument("--analyse-only", action="store_true", help="train nothing; analyse the records there are")
    args = parser.parse_args()
    results, board = ROOT / args.results, ROOT / args.board
    if not args.analyse_only:
        with committing(results / "runs", args.commit), committing(board / "runs", args.commit):
            train(args, results, board)
    analyse(args, results, board)


def analyse(args: argparse.Namespace, results: Path, board: Path) -> None:
    from driving import holding

    from archbench.board.aggregate import as_dict
    from archbench.runs.records import load_records
    from archbench.spec.terms import terms_of

    necks = set(args.necks.split(","))
    mine = [r for r in map(as_dict, load_records(results)) if r.get("neck") in necks]
    on_board = [r for r in map(as_dict, load_records(board)) if r.get("neck") in necks]
    records = mine + [r for r in on_board if (source_of(r) or ("",))[0] == "seed"]  # the seed source's runs
    # the design's runs only: the board also holds other schedules and terms of the same necks and seeds
    records = [
        r
        for r in records
        if r.get("status") == "ok"
        and r.get("phi") == 0
        and int(r.get("epochs", -1)) == args.epochs
        and terms_of(r.get("config")) == args.terms
    ]
    runs = per_source(records, args.epochs)
    with holding(args.lock):
        val = bootstrap_values(board, records, args.resamples, seed=0)
    table = shares(spreads(pd.concat([runs[runs["source"] != "ema"], val], ignore_index=True)))
    ema = ema_effect(runs)
    header = (
        f"# Noise budget: phi 0, {args.epochs} epochs, terms {args.terms}, up to {args.seeds} runs per source, "
        f"{args.resamples} bootstrap draws of the validation images\n\nDerived by scripts/noise_budget.py from "
        "the records under runs/ and their kept weights: regenerate it, do not edit it. sd in AP; share: the "
        "source's variance over the seed source's (sources measured one at a time: shares need not add to 1)."
    )
    (results / "BUDGET.md").write_text(markdown(table, ema, header))
    summary = {"table": table.to_dict("records"), "ema": ema.to_dict("records"), "epochs": args.epochs}
    (results / "budget.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    print((results / "BUDGET.md").read_text())


if __name__ == "__main__":
    main()
