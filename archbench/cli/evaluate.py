"""``archbench eval``: a trained run scored again, on its own data or another data set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from archbench.cli.consoles import err, out
from archbench.cli.options import check_device, split_list


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value) of each metric, nested ones (per-class IoU) as ``name.key``; None as ``-``."""
    rows = []
    for name, value in metrics.items():
        if isinstance(value, dict):
            rows += [(f"{name}.{k}", "-" if v is None else f"{v:.4f}") for k, v in value.items()]
        else:
            rows.append((name, "-" if value is None else f"{value:.4f}"))
    return rows


def eval_cmd(
    run: Path = typer.Argument(..., help="a run record (RESULTS/runs/*.json) or its weights (RESULTS/weights/*.pt)"),
    data: str | None = typer.Option(
        None, "--data", help="synthetic | coco:PATH | segfolder:PATH (seg only); default: the run's own data"
    ),
    categories: str | None = typer.Option(
        None, "--categories", help="comma list of category names or ids to keep (default: the run's selection)"
    ),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N"),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch CPU threads"),
) -> None:
    """Score a trained run on the validation split of --data; writes RESULTS/evals/<run>-on-<data>-<fp>.json.

    The data needs the run's number of classes; it is read at the run's resolution and scored as the run was.
    """
    # torch and the model stack load here, so that --help and the other commands start at once
    import torch

    from archbench.runs.evaluation import evaluate_run
    from archbench.runs.trained import load_trained

    check_device(device)
    if threads:
        torch.set_num_threads(threads)
    trained = load_trained(run)
    ref = data if data is not None else ((trained.record.config or {}).get("data") or {}).get("ref", "synthetic")
    path, content = evaluate_run(trained, ref, categories=split_list(categories) if categories else None, device=device)
    names = content["dataset"]["class_names"]
    if names != trained.class_names:
        err.print(
            f"warning: the classes of {ref} ({', '.join(names)}) are named unlike the run's "
            f"({', '.join(trained.class_names)}); class k of the data is scored as the run's class k",
            markup=False,
        )
    out.print(f"{trained.stem} on {content['dataset']['name']} ({content['dataset']['n_val']} images)", markup=False)
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metric_rows(content["metrics"]):
        table.add_row(name, value)
    out.print(table)
    out.print(f"evaluation record: {path}", markup=False, highlight=False)
