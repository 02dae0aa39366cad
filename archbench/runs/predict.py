"""``archbench predict``: a trained run's predictions on image files, drawn on the images and kept as data.

Each image goes through the evaluation's own preprocessing (:mod:`archbench.data.transforms`: RGB, the
letterbox resize to the run's resolution, ImageNet normalisation) and the task's own prediction path
(:func:`archbench.train.det_trainer.detect`, :func:`archbench.train.seg_trainer.original_frame_prediction`),
which maps the result back to the file's pixels.

- det: ``<stem>.png``, the image with its boxes, class names and scores drawn (enlarged by a whole factor
  when smaller than :data:`DRAW_MIN_SIDE`, so labels stay legible), and one ``detections.json`` in COCO's
  results format, ``[{"image_id", "file_name", "category_id", "bbox": [x, y, w, h], "score"}]`` in the
  files' pixels; image ids number the images 1.. in the order given, or come from a COCO annotation file.
- seg: ``<stem>.png``, the image with each predicted class but background overlaid, and ``<stem>_mask.png``,
  the class-index map (8-bit PNG, class k = value k).

An image that cannot be read is named in a warning and skipped; the others are still written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

from archbench.data.coco_semantic import BACKGROUND
from archbench.data.transforms import letterbox_scale, load_rgb, resize, resized_size, to_canvas
from archbench.errors import UserError
from archbench.files import atomic_write, atomic_write_text
from archbench.models.detector import Detector
from archbench.runs.predict_defaults import SCORE_THRESHOLD
from archbench.runs.trained import TrainedRun
from archbench.train.det_trainer import detect
from archbench.train.seg_trainer import original_frame_prediction

#: Drawings of images whose longer side is shorter than this (px) are enlarged by a whole factor.
DRAW_MIN_SIDE = 512
#: The COCO results file of a detection run's predictions.
DETECTIONS_FILE = "detections.json"


@dataclass
class Predicted:
    """What :func:`predict_images` wrote: the drawn images, the other files (masks, COCO results) and the
    images it skipped with why."""

    drawn: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def class_colors(num_classes: int) -> list[tuple[int, int, int]]:
    """One RGB colour per class index, from matplotlib's ``tab10`` (repeating after 10)."""
    rgb = [colormaps["tab10"](k % 10)[:3] for k in range(num_classes)]
    return [(round(255 * r), round(255 * g), round(255 * b)) for r, g, b in rgb]


def letterboxed(path: Path, resolution: int) -> tuple[Image.Image, torch.Tensor, dict[str, Any]]:
    """(the file as RGB, its network input float32 ``[3, R, R]``, its meta: ``scale``, ``orig_size`` (h, w)).

    The input is what evaluation serves for the file: decoded at the resized size (JPEG draft mode), resized
    keeping the aspect ratio so the longer side is R, at the top-left of the normalised R x R canvas.
    """
    original = load_rgb(path)
    width, height = original.size
    scale = letterbox_scale(width, height, resolution)
    size = resized_size(width, height, scale)
    canvas = to_canvas(resize(load_rgb(path, size), size), resolution)
    return original, canvas, {"scale": scale, "orig_size": (height, width)}


def coco_image_ids(ann_file: Path) -> dict[str, int]:
    """The image ids of a COCO annotation file by file name (without folders); UserError if it has none."""
    try:
        data = json.loads(Path(ann_file).read_text())
        return {Path(img["file_name"]).name: int(img["id"]) for img in data["images"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"--coco-ann {ann_file}: not a readable COCO annotation file with images ({exc})") from None


def _check_out_dir(out_dir: Path, images: Sequence[Path]) -> None:
    """UserError if ``out_dir`` cannot be a folder, or two images would write the same output names."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"-o {out_dir}: a file, not a folder; give a folder for the predicted images")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"-o {out_dir}: cannot make the folder ({exc.strerror or exc})") from None
    stems: dict[str, Path] = {}
    for path in images:
        if path.stem in stems and stems[path.stem] != path:
            raise UserError(
                f"{stems[path.stem]} and {path} would both be written as {out_dir / path.stem}.png; "
                "predict them into different folders"
            )
        stems[path.stem] = path


def _save_png(image: Image.Image, path: Path) -> Path:
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def _draw_detections(
    original: Image.Image, det: dict[str, Any], names: dict[int, str], colors: dict[int, tuple[int, int, int]]
) -> Image.Image:
    """``original`` (enlarged below :data:`DRAW_MIN_SIDE`) with each box, ``<class> <score>`` and class colour."""
    zoom = max(1, math.ceil(DRAW_MIN_SIDE / max(original.size)))
    image = original.resize((original.width * zoom, original.height * zoom), Image.Resampling.NEAREST)
    labels = [int(c) for c in det["labels"]]
    drawn = draw_bounding_boxes(
        pil_to_tensor(image),
        det["boxes"] * zoom,
        labels=[f"{names[c]} {float(s):.2f}" for c, s in zip(labels, det["scores"])],
        colors=[colors[c] for c in labels],
        width=2,
        label_colors="white",
        label_background_colors=[colors[c] for c in labels],
        fill_labels=True,
    )
    return Image.fromarray(drawn.permute(1, 2, 0).numpy())


def _draw_classes(original: Image.Image, pred: torch.Tensor, class_names: Sequence[str]) -> Image.Image:
    """``original`` with each predicted class but background (``[H, W]`` indices ``pred``) overlaid in its colour."""
    shown = [k for k, name in enumerate(class_names) if name != BACKGROUND]
    masks = pred[None] == torch.tensor(shown, dtype=pred.dtype)[:, None, None]
    colors = class_colors(len(class_names))
    drawn = draw_segmentation_masks(pil_to_tensor(original), masks, alpha=0.5, colors=[colors[k] for k in shown])
    return Image.fromarray(drawn.permute(1, 2, 0).numpy())


def _results(image_id: int, file_name: str, det: dict[str, Any]) -> list[dict[str, Any]]:
    """One image's detections (original px xyxy) as COCO result entries (bbox [x, y, w, h])."""
    return [
        {
            "image_id": image_id,
            "file_name": file_name,
            "category_id": int(c),
            "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
            "score": round(float(s), 4),
        }
        for (x1, y1, x2, y2), c, s in zip(det["boxes"].tolist(), det["labels"], det["scores"])
    ]


def predict_images(
    trained: TrainedRun,
    images: Sequence[Path],
    out_dir: Path,
    *,
    score_threshold: float = SCORE_THRESHOLD,
    image_ids: dict[str, int] | None = None,
    device: str = "cpu",
    warn: Callable[[str], None] = lambda message: None,
) -> Predicted:
    """Predict each image with ``trained`` and write the results under ``out_dir`` (see the module docstring).

    ``image_ids``: COCO image ids by file name (:func:`coco_image_ids`; default: 1.. in the order given). An image
    that cannot be read, or that ``image_ids`` lacks, is skipped, and ``warn`` hears why. UserError, before
    anything is written, if ``out_dir`` is a file or two images share a name.
    """
    images = [Path(p) for p in images]
    _check_out_dir(out_dir, images)
    model = trained.model.to(device).eval()
    detector = model if isinstance(model, Detector) else None
    resolution = trained.model_config.resolution
    class_names = trained.class_names
    # det records name the data set's category id of each class; seg predictions are class indices
    cat_ids = list((trained.record.dataset or {}).get("cat_ids") or range(trained.num_classes))
    names = dict(zip(cat_ids, class_names))
    colors = dict(zip(cat_ids, class_colors(len(cat_ids))))
    done, results = Predicted(), []
    for number, path in enumerate(images, start=1):
        try:
            original, canvas, meta = letterboxed(path, resolution)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:  # missing, not an image, too large
            done.skipped.append((path, f"{path}: skipped: not a readable image ({exc})"))
            warn(done.skipped[-1][1])
            continue
        if image_ids is not None and path.name not in image_ids:
            done.skipped.append((path, f"{path}: skipped: --coco-ann has no image named {path.name}"))
            warn(done.skipped[-1][1])
            continue
        batch = canvas[None].to(device)
        if detector is not None:
            image_id = image_ids[path.name] if image_ids is not None else number
            (det,) = detect(detector, batch, [{**meta, "image_id": image_id}], cat_ids, score_thresh=score_threshold)
            results += _results(image_id, path.name, det)
            drawn = _draw_detections(original, det, names, colors)
        else:
            with torch.no_grad():
                pred = original_frame_prediction(model(batch).float()[0], meta).cpu()
            mask = Image.fromarray(pred.numpy().astype(np.uint8 if trained.num_classes <= 256 else np.uint16))
            done.files.append(_save_png(mask, out_dir / f"{path.stem}_mask.png"))
            drawn = _draw_classes(original, pred, class_names)
        done.drawn.append(_save_png(drawn, out_dir / f"{path.stem}.png"))
    if detector is not None:
        text = "[\n" + ",\n".join(json.dumps(entry) for entry in results) + ("\n]\n" if results else "]\n")
        done.files.append(atomic_write_text(out_dir / DETECTIONS_FILE, text))
    return done
