"""``archbench predict``: a trained run's predictions on image files, drawn and as COCO results."""

from __future__ import annotations

from pathlib import Path

import typer

from archbench.cli.consoles import err, out
from archbench.cli.options import check_device
from archbench.runs.predict_defaults import SCORE_THRESHOLD


def predict_cmd(
    run: Path = typer.Argument(..., help="a run record (RESULTS/runs/*.json) or its weights (RESULTS/weights/*.pt)"),
    images: list[Path] = typer.Argument(..., help="image files to predict"),
    out_dir: Path = typer.Option(..., "-o", "--out", help="folder for the drawn images, masks and detections.json"),
    score_threshold: float = typer.Option(
        SCORE_THRESHOLD, "--score-threshold", min=0.0, max=1.0, help="det: the score a box needs to be kept"
    ),
    coco_ann: Path | None = typer.Option(
        None, "--coco-ann", help="det: COCO annotations whose image ids (by file name) detections.json uses"
    ),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N"),
) -> None:
    """Predict each image with a trained run; write it drawn (boxes or class masks) under -o, plus the predictions.

    det: <image>.png with boxes, classes and scores, and detections.json (COCO results, in the images' pixels).
    seg: <image>.png with the classes overlaid and <image>_mask.png (class k = value k). An unreadable image is
    named, skipped, and the command exits with status 1 once the others are written.
    """
    # torch and the model stack load here, so that --help and the other commands start at once
    from archbench.runs.predict import coco_image_ids, predict_images
    from archbench.runs.trained import load_trained

    check_device(device)
    trained = load_trained(run)
    ids = coco_image_ids(coco_ann) if coco_ann is not None else None
    done = predict_images(
        trained,
        images,
        out_dir,
        score_threshold=score_threshold,
        image_ids=ids,
        device=device,
        warn=lambda message: err.print(f"warning: {message}", markup=False, highlight=False),
    )
    out.print(
        f"{len(done.drawn)} image(s) predicted into {out_dir}"
        + (f" (and {', '.join(p.name for p in done.files)})" if trained.task.name == "det" else "")
        + (f"; {len(done.skipped)} skipped" if done.skipped else ""),
        markup=False,
        highlight=False,
    )
    if done.skipped:
        raise typer.Exit(1)
