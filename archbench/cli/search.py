"""``archbench search``: a search worker on the terminal (its progress on stderr), or a study's report."""

from __future__ import annotations

from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from archbench.cli.consoles import err, out
from archbench.cli.options import (
    act_option,
    fuse_option,
    norm_option,
    op_option,
    parse_int_range,
    quiet_option,
    terms_option,
    verbose_option,
    verbosity,
)
from archbench.cli.progress import SearchDisplay
from archbench.errors import UserError
from archbench.search.spaces import DEFAULT_SPACE, resolve_space, shipped_space_names
from archbench.spec.terms import resolve_terms


class Objective(str, Enum):
    single = "single"
    multi = "multi"


class Cost(str, Enum):
    gflops = "gflops"
    params = "params"
    latency = "latency"


def search_cmd(
    neck: str | None = typer.Option(
        None, "--neck", help="built-in name or spec file a scaling space scales (a topology space searches the neck)"
    ),
    space: str | None = typer.Option(
        None,
        "--space",
        help=f"search space YAML, or a shipped space's name: {' | '.join(shipped_space_names())} "
        f"(default: {DEFAULT_SPACE})",
    ),
    task: str = typer.Option("det", "--task", help="det: maximise AP | seg: maximise mIoU"),
    trials: int = typer.Option(
        20, "--trials", min=1, help="the study's total number of trials, across all its workers"
    ),
    storage: str | None = typer.Option(None, "--storage", help="Optuna RDB URL (default: sqlite:///RESULTS/search.db)"),
    study: str | None = typer.Option(None, "--study", help="study name (default: NECK-SPACE)"),
    phi: str | None = typer.Option(None, "--phi", help="phis each trial trains (default: the space's phis)"),
    objective: Objective = typer.Option(
        Objective.single,
        "--objective",
        help="single: max accuracy within --gflops-budget | multi: accuracy vs GFLOPs, NSGA-II",
    ),
    cost: Cost = typer.Option(
        Cost.gflops,
        "--cost",
        help="multi's cost axis: gflops | params (M) | latency (ms, from the runs' records)",
    ),
    gflops_budget: float | None = typer.Option(None, "--gflops-budget", help="refuse costlier configs untrained"),
    pruner: str | None = typer.Option(None, "--pruner", help="median (default) | hyperband | none (single only)"),
    population: int = typer.Option(8, "--population", min=2, help="NSGA-II population size (multi)"),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="training epochs per run (default: TrainConfig)"),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1),
    lr: float | None = typer.Option(None, "--lr"),
    data: str = typer.Option("synthetic", "--data", help="synthetic | coco:PATH | segfolder:PATH (seg only)"),
    subset: int | None = typer.Option(None, "--subset", min=1, help="train on N images (deterministic)"),
    seed: int = typer.Option(0, "--seed", help="training seed of every run"),
    sampler_seed: int | None = typer.Option(None, "--sampler-seed", help="sampler seed (give workers different ones)"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N"),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch CPU threads"),
    heartbeat: int = typer.Option(
        60, "--heartbeat", min=1, help="seconds between a running trial's heartbeats; 3 missed = worker dead, retried"
    ),
    results: Path = typer.Option(
        Path("results"),
        "--results",
        help="records go to RESULTS/search/STUDY/runs/; default database RESULTS/search.db",
    ),
    report_only: bool = typer.Option(False, "--report", help="print the study's best coefficients / Pareto set"),
    terms: str | None = terms_option(),
    op: str | None = op_option(),
    fuse: str | None = fuse_option(),
    act: str | None = act_option(),
    norm: str | None = norm_option(),
    quiet: bool = quiet_option(),
    verbose: bool = verbose_option(),
) -> None:
    """Optuna search over a scaling rule's coefficients (a scaling space, with --neck) or over neck graphs (a
    topology space); each trial trains through the runner and writes records.

    Start one worker per machine with the same --study and --storage: together they run --trials trials. A
    topology study's report also exports its front: RESULTS/search/STUDY/front/ (table, plot, spec files).
    """
    # Optuna and the training stack load here, so that --help and the other commands start at once
    from archbench.runs.layout import study_results
    from archbench.search.front import export_front
    from archbench.search.report import is_topology, report
    from archbench.search.study import settings_of
    from archbench.search.worker import SearchOptions, default_study_name, run_search
    from archbench.train.tasks import get_task
    from archbench.train.trainer import TrainConfig

    shown = verbosity(quiet, verbose)
    metric = get_task(task).metric
    space_file = resolve_space(space or DEFAULT_SPACE) if neck or space else None
    equal_terms = resolve_terms(terms, op=op, fuse=fuse, act=act, norm=norm)
    name = study or (default_study_name(neck, space_file, task, equal_terms) if space_file else None)
    if not report_only:
        if space_file is None:
            raise UserError(
                "archbench search needs --neck (with a scaling space) or --space (a topology space), "
                "or --report to print a study"
            )
        changes: dict[str, Any] = {"epochs": epochs, "batch_size": batch_size, "lr": lr}
        train = replace(TrainConfig.for_task(task), **{k: v for k, v in changes.items() if v is not None})
        opts = SearchOptions(
            neck=neck,
            space=space_file,
            trials=trials,
            train=train,
            task=task,
            study=name,
            storage=storage,
            phis=tuple(parse_int_range(phi, "--phi")) if phi else None,
            objective=objective.value,
            cost=cost.value,
            gflops_budget=gflops_budget,
            data=data,
            subset=subset,
            seed=seed,
            sampler_seed=sampler_seed,
            pruner=pruner,
            population=population,
            results=results,
            device=device,
            threads=threads,
            heartbeat=heartbeat,
            terms=equal_terms,
        )
        run_search(opts, SearchDisplay(err, trials, metric, shown))
    if name is None:  # --report without --study or --neck
        raise UserError("archbench search --report needs --study (or --space, and --neck for a scaling space)")
    found = report(name, storage, results, out)
    if is_topology(settings_of(found)):
        files = export_front(found, study_results(results, name))
        out.print(f"front: {files.plot}, {files.table}", highlight=False, markup=False)
        for spec, drawing in zip(files.specs, files.drawings):
            out.print(f"  {spec} (drawn: {drawing.name})", highlight=False, markup=False)
        if files.specs:
            out.print("each spec file's first lines give the archbench run command that re-trains it", highlight=False)
