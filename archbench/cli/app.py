"""The ``archbench`` command line. Each sub-command is a thin shell over one module.

User errors (``UserError``) print one paragraph on stderr and exit with their code (2 for bad
input) and never a traceback.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from archbench.cli.options import parse_int_range, parse_levels, split_list
from archbench.cli.data import app as data_app
from archbench.errors import UserError

app = typer.Typer(help="Benchmark multi-scale feature-fusion necks on equal terms.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
specs_app = typer.Typer(help="List, show, validate and draw topology specs.", no_args_is_help=True)
app.add_typer(specs_app, name="specs")
app.add_typer(data_app, name="data", help="Make and inspect datasets (the built-in generated COCO-format set).")

# Pipes and CI logs get a wide console so tables and messages are not folded at 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)


@specs_app.command("list")
def specs_list() -> None:
    """List the built-in topologies."""
    from archbench.spec import builtin_names, builtin_spec

    table = Table("name", "family", "nodes", "fuse", "op", "extra levels", "hash")
    for name in builtin_names():
        spec = builtin_spec(name)
        table.add_row(name, spec.family["name"] if spec.family else "", str(len(spec.nodes)), spec.fuse,
                      f"{spec.op.type}{spec.op.kernel}", spec.extra_levels, spec.spec_hash())
    out.print(table)
    out.print("Any of these names, or the path of a spec .yaml file, is accepted wherever a neck is asked for.")


@specs_app.command("show")
def specs_show(
    neck: str = typer.Argument(..., help="built-in name or spec file"),
    levels: Optional[str] = typer.Option(None, "--levels", help="level range for a built-in family, e.g. 3-7"),
) -> None:
    """Print a spec as YAML (edit it and pass the file wherever a neck name is accepted)."""
    from archbench.spec import dump_yaml, resolve_spec

    sys.stdout.write(dump_yaml(resolve_spec(neck, parse_levels(levels))))


@specs_app.command("validate")
def specs_validate(files: list[Path] = typer.Argument(..., help="spec files to check")) -> None:
    """Check spec files; every problem is listed. Exit 0 if all are valid, 2 otherwise."""
    from archbench.spec import check_file

    bad = 0
    for f in files:
        spec, problems = check_file(f)
        errors = [p for p in problems if p.severity == "error"]
        for p in problems:
            (err if p.severity == "error" else out).print(f"{p.severity}: {p}", markup=False, highlight=False)
        if errors or spec is None:
            bad += 1
            err.print(f"{f}: INVALID ({len(errors)} error(s))", markup=False, highlight=False)
        else:
            out.print(f"{f}: ok ({spec.name}, {len(spec.nodes)} nodes, levels {spec.min_level}..{spec.max_level}, "
                      f"hash {spec.spec_hash()})", markup=False, highlight=False)
    if bad:
        raise typer.Exit(2)


@specs_app.command("draw")
def specs_draw(
    neck: str = typer.Argument(..., help="built-in name or spec file"),
    output: Path = typer.Option(..., "-o", "--output", help="PNG file to write"),
    levels: Optional[str] = typer.Option(None, "--levels", help="level range for a built-in family"),
    repeats: Optional[int] = typer.Option(None, "--repeats", help="cell count to state in the title"),
) -> None:
    """Draw a topology: levels as rows, nodes in execution order, edges coloured by direction."""
    from archbench.spec.draw import draw_spec
    from archbench.spec import resolve_spec

    path = draw_spec(resolve_spec(neck, parse_levels(levels)), output, repeats)
    out.print(f"wrote {path}")


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def neck_list(text: str) -> list[str]:
    """'all' -> every built-in; otherwise a comma list of names / spec files."""
    from archbench.spec import builtin_names

    return builtin_names() if text.strip() == "all" else split_list(text)


def equal_terms_overrides(op: str | None, fuse: str | None, act: str | None, norm: str | None) -> dict:
    """Spec-wide defaults to impose on every neck (``None`` keeps each spec's own)."""
    from archbench.spec import model as m

    for value, allowed, flag in ((op, m.OP_TYPES, "--op"), (fuse, m.FUSE_TYPES, "--fuse"),
                                 (act, m.ACT_TYPES, "--act"), (norm, m.NORM_TYPES, "--norm")):
        if value is not None and value not in allowed:
            raise UserError(f"{flag} {value!r}: choose one of {', '.join(allowed)}")
    return {"op_type": op, "fuse": fuse, "act": act, "norm": norm}


@app.command("profile")
def profile_cmd(
    neck: str = typer.Option("all", "--neck", help="'all', or comma list of built-in names / spec files"),
    phi: str = typer.Option("0", "--phi", help="phi values: 0..3, 0,2,5 or 4"),
    preset: str = typer.Option("efficientdet", "--preset", help="scaling rule: efficientdet | proxy"),
    num_classes: int = typer.Option(90, "--num-classes", min=1),
    task: str = typer.Option("det", "--task", help="det (class + box nets) | seg (semantic-FPN head)"),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format"),
    latency: bool = typer.Option(False, "--latency", help="also time the CPU forward (median of --latency-runs)"),
    latency_runs: int = typer.Option(20, "--latency-runs", min=1),
    fuse_bn: bool = typer.Option(False, "--fuse-bn", help="--latency: fold batch norms into convs first"),
    channels_last: bool = typer.Option(False, "--channels-last", help="--latency: NHWC memory format"),
    compile_model: bool = typer.Option(False, "--compile", help="--latency: torch.compile (slow first call)"),
    relative_to: Optional[str] = typer.Option(None, "--relative-to", help="add params/GFLOPs ratios to this neck"),
    op: Optional[str] = typer.Option(None, "--op", help="impose this op type on every neck (sepconv|conv|none)"),
    fuse: Optional[str] = typer.Option(None, "--fuse", help="impose this default fusion on every neck"),
    act: Optional[str] = typer.Option(None, "--act", help="impose this activation on every neck"),
    norm: Optional[str] = typer.Option(None, "--norm", help="impose this norm on every neck"),
) -> None:
    """Params, GFLOPs (fvcore convention: 1 multiply-add = 1 flop) and optional CPU latency per neck and phi.

    Latency uses the harness of scripts/bench_necks.py (warm-up, median of --latency-runs); see
    docs/performance.md.
    """
    from rich.progress import Progress

    from archbench.costs.profile import LatencyOptions, profile
    from archbench.costs.render import render_profile

    if not latency and (fuse_bn or channels_last or compile_model):
        raise UserError("--fuse-bn, --channels-last and --compile change how --latency runs the model; "
                        "add --latency (costs do not depend on them)")
    timing = LatencyOptions(latency_runs, fuse_bn, channels_last, compile_model) if latency else None
    phis = parse_int_range(phi, "--phi")
    necks = neck_list(neck)
    overrides = equal_terms_overrides(op, fuse, act, norm)
    total = len(phis) * len(set(necks + ([relative_to] if relative_to else [])))
    with Progress(console=err, transient=True) as progress:
        bar = progress.add_task("profiling", total=total)

        def advance(label: str) -> None:
            progress.update(bar, advance=1, description=f"profiling {label}")

        rows = profile(necks, phis, preset, num_classes, latency=timing, overrides=overrides,
                       relative_to=relative_to, on_row=advance, task=task)
    render_profile(rows, fmt.value, out)


@app.command("run")
def run_cmd(
    neck: str = typer.Option("bifpn", "--neck", help="comma list of built-in names / spec files, or 'all'"),
    phi: str = typer.Option("0", "--phi", help="phi values: 0..3, 0,2 or 1"),
    task: str = typer.Option("det", "--task", help="det (detection) | seg (semantic segmentation)"),
    data: str = typer.Option("synthetic", "--data", help="synthetic | coco:PATH | segfolder:PATH (seg only)"),
    preset: str = typer.Option("proxy", "--preset", help="scaling rule: proxy (CPU-sized) | efficientdet"),
    seeds: str = typer.Option("0", "--seeds", help="comma list / range of seeds, e.g. 0,1,2"),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="training epochs (default: the task's)"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1,
                                             help="global batch (split across torchrun's processes)"),
    lr: Optional[float] = typer.Option(None, "--lr"),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help="adamw | sgd"),
    ema: bool = typer.Option(False, "--ema", help="evaluate an exponential moving average of the weights"),
    amp: bool = typer.Option(False, "--amp", help="bf16 autocast (CUDA only)"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads"),
    subset: Optional[int] = typer.Option(None, "--subset", min=1, help="train on N images (deterministic)"),
    categories: Optional[str] = typer.Option(None, "--categories", help="comma list of category names or ids"),
    pretrained: bool = typer.Option(False, "--pretrained", help="timm's pretrained backbone weights (needs network)"),
    backbone_weights: Optional[Path] = typer.Option(None, "--backbone-weights", help="local backbone state dict"),
    results: Path = typer.Option(Path("results"), "--results", help="folder for runs/ records and checkpoints"),
    force: bool = typer.Option(False, "--force", help="re-run configurations that already have an ok record"),
    resume: bool = typer.Option(False, "--resume", help="continue interrupted runs from their last epoch checkpoint"),
    scaling: Optional[str] = typer.Option(None, "--scaling",
                                          help="study:NAME[#TRIAL]: a search's coefficients instead of --preset"),
    storage: Optional[str] = typer.Option(None, "--storage", help="--scaling's study database (default: RESULTS/search.db)"),
) -> None:
    """Train and evaluate every (neck, phi, seed); each finished run writes one JSON record under RESULTS/runs/.

    Under `torchrun --nproc_per_node N -m archbench run ...` each run is trained by N processes with
    DistributedDataParallel (gloo on the CPU, nccl on CUDA); rank 0 writes the records.
    """
    from contextlib import nullcontext
    from dataclasses import replace

    from archbench.runs.sweep import RunRequest, SweepObserver, sweep
    from archbench.train.distributed import DistContext
    from archbench.train.trainer import TrainConfig

    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: no CUDA device is available on this machine")
    train_cfg = TrainConfig.for_task(task)
    changes = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer}
    if optimizer is not None and optimizer not in ("adamw", "sgd"):
        raise UserError(f"--optimizer {optimizer!r}: choose adamw or sgd")
    train_cfg = replace(train_cfg, **{k: v for k, v in changes.items() if v is not None}, ema=ema, amp=amp)
    rule = None
    if scaling is not None:
        from archbench.search.command import study_rule

        rule = study_rule(scaling, storage, results)
        preset = rule.name
    requests = [
        RunRequest(neck=n, phi=p, seed=s, task=task, preset=preset, data=data, subset=subset,
                   categories=tuple(split_list(categories)) if categories else None, train=train_cfg,
                   pretrained=pretrained, backbone_weights=str(backbone_weights) if backbone_weights else None,
                   device=device, threads=threads, rule=rule)
        for p in parse_int_range(phi, "--phi") for n in neck_list(neck) for s in parse_int_range(seeds, "--seeds")
    ]
    from archbench.cli.progress import RichObserver

    dist = DistContext.from_env(device)
    try:
        with RichObserver(err) if dist.is_main else nullcontext(SweepObserver()) as observer:
            records = sweep(requests, results, force=force, resume=resume, observer=observer, dist=dist)
    finally:
        dist.close()
    failed = [r for r in records if r.get("status") != "ok"]
    if not dist.is_main:
        raise typer.Exit(1 if failed else 0)
    out.print(f"{len(records)} run(s) recorded under {results / 'runs'}; {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


class BoardFormat(str, Enum):
    table = "table"
    md = "md"
    csv = "csv"
    html = "html"
    json = "json"


@app.command("leaderboard")
def leaderboard_cmd(
    results: Path = typer.Option(Path("results"), "--results", help="folder holding runs/"),
    task: Optional[str] = typer.Option(None, "--task", help="det | seg (default: all tasks)"),
    fmt: BoardFormat = typer.Option(BoardFormat.table, "--format"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="write here instead of stdout"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="folder to write the PNG figures into"),
) -> None:
    """Mean +- std over seeds per (task, data, preset, neck, phi), rank, Pareto front, iso-FLOPs comparison."""
    from archbench.board.leaderboard import build_table, failed_runs, iso_flops, render, require_records, setup_table
    from archbench.board.plots import write_all

    records = require_records(results, task)
    table = build_table(records, task)
    figures = write_all(table, plot) if plot is not None else []
    for path in figures:
        err.print(f"wrote {path}")
    text = render(table, failed_runs(records), iso_flops(table), fmt.value, output, setup=setup_table(records, task),
                  figures=figures)
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        err.print(f"wrote {output}")


class Objective(str, Enum):
    single = "single"
    multi = "multi"


@app.command("search")
def search_cmd(
    neck: Optional[str] = typer.Option(None, "--neck", help="built-in name or spec file"),
    space: Optional[str] = typer.Option(None, "--space", help="search space YAML, or the name of one in "
                                        "search_spaces/ (default: efficientdet_family)"),
    task: str = typer.Option("det", "--task", help="det: maximise AP | seg: maximise mIoU"),
    trials: int = typer.Option(20, "--trials", min=1, help="the study's total number of trials, across all its workers"),
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna RDB URL (default: sqlite:///RESULTS/search.db)"),
    study: Optional[str] = typer.Option(None, "--study", help="study name (default: NECK-SPACE)"),
    phi: Optional[str] = typer.Option(None, "--phi", help="phis each trial trains (default: the space's phis)"),
    objective: Objective = typer.Option(Objective.single, "--objective",
                                        help="single: max accuracy within --gflops-budget | multi: accuracy vs GFLOPs, NSGA-II"),
    gflops_budget: Optional[float] = typer.Option(None, "--gflops-budget", help="refuse costlier configs untrained"),
    pruner: Optional[str] = typer.Option(None, "--pruner", help="median (default) | hyperband | none (single only)"),
    population: int = typer.Option(8, "--population", min=2, help="NSGA-II population size (multi)"),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="training epochs per run (default: TrainConfig)"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1),
    lr: Optional[float] = typer.Option(None, "--lr"),
    data: str = typer.Option("synthetic", "--data", help="synthetic | coco:PATH | segfolder:PATH (seg only)"),
    subset: Optional[int] = typer.Option(None, "--subset", min=1, help="train on N images (deterministic)"),
    seed: int = typer.Option(0, "--seed", help="training seed of every run"),
    sampler_seed: Optional[int] = typer.Option(None, "--sampler-seed", help="sampler seed (give workers different ones)"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads"),
    heartbeat: int = typer.Option(60, "--heartbeat", min=1,
                                  help="seconds between a running trial's heartbeats; 3 missed = worker dead, retried"),
    results: Path = typer.Option(Path("results"), "--results",
                                 help="records go to RESULTS/search/STUDY/runs/; default database RESULTS/search.db"),
    report_only: bool = typer.Option(False, "--report", help="print the study's best coefficients / Pareto set"),
) -> None:
    """Optuna search over a scaling rule's coefficients; each trial trains through the runner and writes records.

    Start one worker per machine with the same --study and --storage: together they run --trials trials.
    """
    from dataclasses import replace

    from archbench.search import command
    from archbench.search.space import DEFAULT_SPACE, resolve_space
    from archbench.train.tasks import get_task
    from archbench.train.trainer import TrainConfig

    get_task(task)
    space_file = resolve_space(space or DEFAULT_SPACE) if neck else None
    name = study or (command.default_study_name(neck, space_file, task) if neck else None)
    if not report_only:
        if neck is None:
            raise UserError("archbench search needs --neck (or --report to print a study)")
        train = replace(TrainConfig.for_task(task), **{k: v for k, v in {"epochs": epochs, "batch_size": batch_size,
                                                             "lr": lr}.items() if v is not None})
        opts = command.SearchOptions(
            neck=neck, space=space_file, trials=trials, train=train, task=task, study=name, storage=storage,
            phis=tuple(parse_int_range(phi, "--phi")) if phi else None, objective=objective.value,
            gflops_budget=gflops_budget, data=data, subset=subset, seed=seed, sampler_seed=sampler_seed,
            pruner=pruner, population=population, results=results, device=device, threads=threads, heartbeat=heartbeat)
        command.run_search(opts, err)
    elif name is None:
        raise UserError("archbench search --report needs --study (or --neck, and --space unless it is the default)")
    command.report(name, storage, results, out)


def main() -> None:
    """Console-script entry point: run the app, turning user errors into a message and exit code."""
    try:
        app()
    except UserError as exc:
        err.print(f"error: {exc.message}", markup=False, highlight=False)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
