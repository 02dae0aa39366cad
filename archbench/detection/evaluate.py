"""COCO box AP / AR with pycocotools, with size buckets that can be re-defined.

COCO's small / medium / large buckets (area < 32**2, < 96**2, rest; areas are the
annotations' ``area`` field, in original-image px**2) are meaningless for 128 px images,
so ``area_ranges=(small_max, medium_max)`` replaces the two thresholds.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torchvision.ops import box_convert

#: Names of COCOeval.stats, in its order.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
_MAX_AREA = 1e5**2  # COCO's upper bound of the "all" and "large" ranges


def to_dataset_frame(
    det: dict[str, torch.Tensor],
    scale: float,
    cat_ids: Sequence[int],
    *,
    image_id: int | None = None,
    orig_size: tuple[int, int] | None = None,
) -> dict:
    """One image's detections from the network frame to the dataset's.

    det: ``boxes`` [M, 4] xyxy px in the resized (letterboxed) frame, ``scores`` [M],
    ``labels`` [M] contiguous class indices 0..K-1 (what :func:`~archbench.detection.postprocess.decode`
    returns). scale: resized / original size factor used by the letterbox (the image sits at
    the top-left, so there is no offset). cat_ids: dataset category id of each contiguous index.
    orig_size: optional original ``(H, W)``; boxes are clipped to it (they may reach into padding).
    Returns ``boxes`` (original px, xyxy), ``scores``, ``labels`` (category ids), plus
    ``image_id`` when given; all tensors on CPU.
    """
    boxes = det["boxes"].detach().float().cpu() / scale
    if orig_size is not None:
        h, w = orig_size
        boxes = torch.stack(
            [boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h), boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)], dim=1
        )
    labels = torch.as_tensor(list(cat_ids), dtype=torch.int64)[det["labels"].detach().cpu().long()]
    out: dict[str, Any] = {"boxes": boxes, "scores": det["scores"].detach().float().cpu(), "labels": labels}
    if image_id is not None:
        out["image_id"] = int(image_id)
    return out


def _results(detections: Sequence[dict], image_ids: set[int] | None) -> list[dict]:
    """Per-image detection dicts -> COCO result records (bbox xywh)."""
    records = []
    for det in detections:
        image_id = int(det["image_id"])
        if image_ids is not None and image_id not in image_ids:
            continue
        boxes = box_convert(torch.as_tensor(det["boxes"], dtype=torch.float64).reshape(-1, 4), "xyxy", "xywh")
        scores = torch.as_tensor(det["scores"]).reshape(-1).tolist()
        labels = torch.as_tensor(det["labels"]).reshape(-1).tolist()
        for bb, s, c in zip(boxes.tolist(), scores, labels):
            records.append({"image_id": image_id, "category_id": int(c), "bbox": bb, "score": float(s)})
    return records


def _empty_results(coco_gt: COCO) -> COCO:
    """A result set with no detections (``loadRes`` indexes the first record, so can not)."""
    dt = COCO()
    dt.dataset = {
        "images": list(coco_gt.dataset["images"]),
        "categories": list(coco_gt.dataset["categories"]),
        "annotations": [],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        dt.createIndex()
    return dt


def coco_evaluate(
    coco_gt: COCO,
    detections: Sequence[dict],
    area_ranges: tuple[float, float] | None = None,
    image_ids: Sequence[int] | None = None,
) -> dict[str, float]:
    """COCO bbox metrics of ``detections`` against ``coco_gt``.

    detections: one dict per image: ``image_id``, ``boxes`` [M, 4] xyxy in ORIGINAL image px,
    ``scores`` [M], ``labels`` [M] dataset category ids (tensors or array-likes).
    area_ranges: ``(small_max, medium_max)`` in px**2 replacing COCO's 32**2 / 96**2.
    image_ids: evaluate on these images only (default: every image of ``coco_gt``);
    detections of other images are dropped.

    Returns the 12 COCOeval stats as floats under :data:`STAT_NAMES` (AP = AP@[.5:.95], AR at
    1 / 10 / 100 detections per image, s / m / l the size buckets). As in COCO, a value is -1
    when nothing is evaluable for it (e.g. APs when no GT falls in the small bucket). With no
    detections at all the stats are 0 (-1 for buckets without GT), computed by COCOeval on an
    empty result set rather than special-cased. pycocotools' prints are silenced.
    """
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        ev = _matched(coco_gt, detections, area_ranges, image_ids)
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, np.asarray(ev.stats, dtype=float))}


def _matched(
    coco_gt: COCO,
    detections: Sequence[dict],
    area_ranges: tuple[float, float] | None,
    image_ids: Sequence[int] | None,
) -> COCOeval:
    """A COCOeval of ``detections`` with every image's detections matched to its ground truth
    (``evaluate()`` run, ``accumulate()`` not); arguments as :func:`coco_evaluate`'s. Call it with stdout
    redirected: pycocotools prints."""
    ids = None if image_ids is None else {int(i) for i in image_ids}
    records = _results(detections, ids)
    coco_dt = coco_gt.loadRes(records) if records else _empty_results(coco_gt)
    ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
    if ids is not None:
        ev.params.imgIds = sorted(ids)
    if area_ranges is not None:
        small, medium = (float(a) for a in area_ranges)
        if not 0 < small < medium:
            raise ValueError(f"area_ranges must be 0 < small_max < medium_max, got {area_ranges}")
        ev.params.areaRng = [[0.0, _MAX_AREA], [0.0, small], [small, medium], [medium, _MAX_AREA]]
    ev.evaluate()
    return ev


def resampled_ap(
    coco_gt: COCO,
    detections: Sequence[dict],
    draws: np.ndarray,
    area_ranges: tuple[float, float] | None = None,
    image_ids: Sequence[int] | None = None,
) -> np.ndarray:
    """AP@[.5:.95] of ``detections`` on resamples of the evaluated images (a bootstrap over images).

    ``draws``: int [B, m], each row a resample given as positions into the sorted evaluated image ids
    (``image_ids``, default every image of ``coco_gt``), repeats allowed. Returns float [B] (AP, a fraction;
    -1 where a resample has no ground truth). Each image's detections are matched to its ground truth once;
    every resample then only re-accumulates the matches of its images, a repeated image counting as often
    as drawn, which is what evaluating a copy of the data set holding those images would give (COCOeval
    matches per image, so copies of an image do not interact). The order of a row does not matter: COCOeval
    breaks ties between equal detection scores by image order, so every resample is taken in id order.
    pycocotools has no resampling of its own; this reuses its per-image results (``evalImgs``, laid out
    category-major, then area range, then image).
    """
    with contextlib.redirect_stdout(io.StringIO()):
        ev = _matched(coco_gt, detections, area_ranges, image_ids)
        matched, params = ev.evalImgs, ev._paramsEval
        ids = list(params.imgIds)
        n_cat, n_area, n_img = len(params.catIds) if params.useCats else 1, len(params.areaRng), len(ids)
        out = np.empty(len(draws))
        # sorted: COCOeval breaks ties between equal scores by image order, so a resample keeps the ids' order
        for b, draw in enumerate(np.sort(np.asarray(draws, dtype=np.int64), axis=1)):
            ev.evalImgs = [
                matched[(k * n_area + a) * n_img + i] for k in range(n_cat) for a in range(n_area) for i in draw
            ]
            ev.params.imgIds = params.imgIds = [ids[i] for i in draw]
            ev.accumulate()
            # COCOeval.summarize's AP: the mean precision over IoU thresholds, recall thresholds and categories,
            # area "all", 100 detections, of the defined (> -1) entries
            precision = ev.eval["precision"][:, :, :, 0, -1]
            defined = precision[precision > -1]
            out[b] = float(defined.mean()) if defined.size else -1.0
    return out
