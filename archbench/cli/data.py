"""``archbench data ...``: commands that make data sets (mounted by archbench.cli)."""

from __future__ import annotations

from pathlib import Path

import typer

from archbench.cli.consoles import err
from archbench.cli.options import quiet_option, verbose_option, verbosity
from archbench.cli.progress import DataProgress
from archbench.data import synthetic
from archbench.errors import UserError

app = typer.Typer(
    help="Data sets: generate the built-in synthetic COCO-format set.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _group() -> None:
    """Data sets: generate the built-in synthetic COCO-format set."""


@app.command()
def synth(
    out: Path = typer.Option(
        ..., "--out", help="Folder to write the data set into (absent, empty, or an earlier synthetic set)."
    ),
    seed: int = typer.Option(
        synthetic.DEFAULT_SEED, "--seed", help="Random seed; the same arguments give bit-identical files."
    ),
    train: int = typer.Option(synthetic.DEFAULT_N_TRAIN, "--train", help="Number of training images."),
    val: int = typer.Option(synthetic.DEFAULT_N_VAL, "--val", help="Number of validation images."),
    size: int = typer.Option(
        synthetic.DEFAULT_SIZE, "--size", help=f"Image side in px ({synthetic.MIN_SIZE}..{synthetic.MAX_SIZE})."
    ),
    quiet: bool = quiet_option(),
    verbose: bool = verbose_option(),
) -> None:
    """Generate the synthetic COCO-format data set (shapes x textures at three scales)."""
    shown = verbosity(quiet, verbose)
    try:
        with DataProgress(err, out.name, shown) as progress:
            info = synthetic.generate(out, seed=seed, n_train=train, n_val=val, size=size, progress=progress)
    except UserError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(exc.exit_code) from None
    _print_summary(info)


def _print_summary(info: synthetic.SyntheticInfo) -> None:
    """Print a generated data set's path, image/annotation counts and fingerprint to stdout."""
    n_ann = info.num_annotations
    typer.echo(f"synthetic data set: {info.path}")
    typer.echo(f"  size: {info.size} px, classes: {', '.join(info.classes)}")
    typer.echo(f"  train: {info.n_train} images, {n_ann.get('train', '?')} annotations")
    typer.echo(f"  val: {info.n_val} images, {n_ann.get('val', '?')} annotations")
    typer.echo(f"  fingerprint: {info.fingerprint}")
