"""``archbench profile``: params, GFLOPs and optional CPU latency per neck and phi."""

from __future__ import annotations

from enum import Enum

import typer

from archbench.cli.consoles import err, out
from archbench.cli.options import (
    act_option,
    fuse_option,
    neck_list,
    norm_option,
    op_option,
    parse_int_range,
    terms_option,
)
from archbench.cli.progress import profile_progress
from archbench.errors import UserError
from archbench.spec.terms import resolve_terms

#: ``--by-module``'s default depth: the parts, then backbone stages, neck cells and head nets, then
#: the cells' nodes (and the stages' and nets' own children).
DEFAULT_DEPTH = 3


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


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
    relative_to: str | None = typer.Option(None, "--relative-to", help="add params/GFLOPs ratios to this neck"),
    terms: str | None = terms_option(),
    op: str | None = op_option(),
    fuse: str | None = fuse_option(),
    act: str | None = act_option(),
    norm: str | None = norm_option(),
    by_module: bool = typer.Option(
        False, "--by-module", help="also params and GFLOPs per module (backbone stages, neck cells and nodes, heads)"
    ),
    depth: int | None = typer.Option(
        None, "--depth", min=1, help=f"--by-module: module levels shown (1: the parts; default {DEFAULT_DEPTH})"
    ),
) -> None:
    """Params, GFLOPs (fvcore convention: 1 multiply-add = 1 flop) and optional CPU latency per neck and phi.

    Latency: the median of --latency-runs timed calls after a few warm-up calls (the harness that
    scripts/bench_necks.py uses in a checkout; docs/performance.md in the repository says more).
    --by-module adds params and GFLOPs per module of each model, in every --format (docs/profile.md).
    """
    # torch, fvcore and pandas load here, so that --help and the other commands start at once
    from archbench.costs.profile import LatencyOptions, profile
    from archbench.costs.render import render_profile

    if not latency and (fuse_bn or channels_last or compile_model):
        raise UserError(
            "--fuse-bn, --channels-last and --compile change how --latency runs the model; "
            "add --latency (costs do not depend on them)"
        )
    if depth is not None and not by_module:
        raise UserError("--depth sets how deep --by-module breaks the model down; add --by-module")
    if by_module and latency:
        raise UserError(
            "--by-module breaks params and FLOPs down by module, but --latency times only the whole model "
            "(there is no per-module timing); run --latency in a separate call without --by-module"
        )
    timing = LatencyOptions(latency_runs, fuse_bn, channels_last, compile_model) if latency else None
    phis = parse_int_range(phi, "--phi")
    necks = neck_list(neck)
    overrides = dict(resolve_terms(terms, op=op, fuse=fuse, act=act, norm=norm).overrides)
    total = len(phis) * len(set(necks + ([relative_to] if relative_to else [])))
    with profile_progress(err, total) as advance:
        rows = profile(
            necks,
            phis,
            preset,
            num_classes,
            latency=timing,
            overrides=overrides,
            relative_to=relative_to,
            on_row=advance,
            task=task,
            by_module=(depth or DEFAULT_DEPTH) if by_module else None,
        )
    render_profile(rows, fmt.value, out)
