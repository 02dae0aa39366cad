"""Pieces of detection training shared by the trainer: the LR schedule, anchors of a model's
outputs, the divergence error and :func:`evaluate_detector` (decode -> dataset frame -> COCOeval
with the data set's size buckets). The epoch loop itself is :mod:`archbench.train.trainer`.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
from torch import nn

from archbench.data.coco import collate_detection
from archbench.detection import (AnchorConfig, anchors_for, coco_evaluate, decode,
                                 flatten_head_outputs, to_dataset_frame)
from archbench.detection.anchors import feature_sizes_of


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite at ``step`` (0-based optimizer step)."""

    def __init__(self, step: int, value: float) -> None:
        super().__init__(f"training diverged at step {step}: loss = {value}")
        self.step, self.value = step, value


def _strides(model: nn.Module) -> list[int]:
    return [2 ** int(level) for level in model.config.levels]


def anchors_of(model: nn.Module, outputs: Sequence[torch.Tensor], anchor_cfg: AnchorConfig) -> torch.Tensor:
    """Anchors [N, 4] (xyxy px) matching the flattened head ``outputs`` of ``model``."""
    return anchors_for(feature_sizes_of(outputs), _strides(model), anchor_cfg, device=outputs[0].device)


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR multiplier of step s: linear (s+1)/warmup for s < warmup, then cosine from 1 to 0 at ``total_steps``."""
    total_steps, warmup_steps = max(1, int(total_steps)), max(0, min(int(warmup_steps), int(total_steps)))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        decay = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / decay)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def size_thresholds(area_ranges: Any) -> tuple[float, float] | None:
    """``(small_max, medium_max)`` for :func:`coco_evaluate` from the data set's ``area_ranges``.

    Accepts the COCOeval ``areaRng`` form the data sets give (``[[0, max], [0, s], [s, m], [m, max]]``)
    or an already reduced ``(s, m)``; None stays None (COCO's default 32**2 / 96**2).
    """
    if area_ranges is None:
        return None
    rows = list(area_ranges)
    if len(rows) == 2 and all(isinstance(v, (int, float)) for v in rows):
        return float(rows[0]), float(rows[1])
    if len(rows) == 4:
        return float(rows[1][1]), float(rows[2][1])
    raise ValueError(f"area_ranges must be (small_max, medium_max) or 4 COCOeval ranges, got {area_ranges!r}")


@torch.no_grad()
def evaluate_detector(model: nn.Module, val_ds: Any, info: dict[str, Any], batch_size: int = 16, *,
                      anchor_cfg: AnchorConfig = AnchorConfig(), score_thresh: float = 0.05) -> dict[str, float]:
    """The 12 COCO bbox stats of ``model`` on ``val_ds`` (size buckets from ``info['area_ranges']``)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loader = torch.utils.data.DataLoader(val_ds, batch_size=batch_size, shuffle=False, num_workers=0,
                                         collate_fn=collate_detection)
    detections = []
    try:
        for images, targets in loader:
            images = images.to(device)
            cls_outs, box_outs = model(images)
            cls, box = flatten_head_outputs(cls_outs, box_outs, model.num_classes)
            anchors = anchors_of(model, cls_outs, anchor_cfg)
            dets = decode(cls, box, anchors, image_size=(int(images.shape[-2]), int(images.shape[-1])),
                          score_thresh=score_thresh)
            for det, t in zip(dets, targets):
                detections.append(to_dataset_frame(det, t["scale"], val_ds.cat_ids, image_id=t["image_id"],
                                                   orig_size=t["orig_size"]))
    finally:
        model.train(was_training)
    return coco_evaluate(val_ds.coco, detections, area_ranges=size_thresholds(info.get("area_ranges")),
                         image_ids=list(val_ds.image_ids))
