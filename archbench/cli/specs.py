"""``archbench specs ...``: list, show, validate and draw topology specs."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from archbench.cli.consoles import err, out
from archbench.cli.options import parse_levels
from archbench.spec import builtin_names, builtin_spec, check_file, dump_yaml, resolve_spec

app = typer.Typer(help="List, show, validate and draw topology specs.", no_args_is_help=True)


@app.command("list")
def specs_list() -> None:
    """List the built-in topologies."""
    table = Table("name", "family", "nodes", "fuse", "op", "extra levels", "hash")
    for name in builtin_names():
        spec = builtin_spec(name)
        table.add_row(
            name,
            spec.family["name"] if spec.family else "",
            str(len(spec.nodes)),
            spec.fuse,
            f"{spec.op.type}{spec.op.kernel}",
            spec.extra_levels,
            spec.spec_hash(),
        )
    out.print(table)
    out.print("Any of these names, or the path of a spec .yaml file, is accepted wherever a neck is asked for.")


@app.command("show")
def specs_show(
    neck: str = typer.Argument(..., help="built-in name or spec file"),
    levels: str | None = typer.Option(None, "--levels", help="level range for a built-in family, e.g. 3-7"),
) -> None:
    """Print a spec as YAML (edit it and pass the file wherever a neck name is accepted)."""
    sys.stdout.write(dump_yaml(resolve_spec(neck, parse_levels(levels))))


@app.command("validate")
def specs_validate(files: list[Path] = typer.Argument(..., help="spec files to check")) -> None:
    """Check spec files; every problem is listed. Exit 0 if all are valid, 2 otherwise."""
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
            out.print(
                f"{f}: ok ({spec.name}, {len(spec.nodes)} nodes, levels {spec.min_level}..{spec.max_level}, "
                f"hash {spec.spec_hash()})",
                markup=False,
                highlight=False,
            )
    if bad:
        raise typer.Exit(2)


@app.command("draw")
def specs_draw(
    neck: str = typer.Argument(..., help="built-in name or spec file"),
    output: Path = typer.Option(..., "-o", "--output", help="PNG file to write"),
    levels: str | None = typer.Option(None, "--levels", help="level range for a built-in family"),
    repeats: int | None = typer.Option(None, "--repeats", help="cell count to state in the title"),
) -> None:
    """Draw a topology: levels as rows, nodes in execution order, edges coloured by direction."""
    from archbench.spec.draw import draw_spec  # matplotlib: loaded by this command alone

    path = draw_spec(resolve_spec(neck, parse_levels(levels)), output, repeats)
    out.print(f"wrote {path}")
