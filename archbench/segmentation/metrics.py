"""Segmentation metrics from a confusion matrix (the convention of VOC and mmsegmentation).

``confusion[t, p]`` counts pixels of true class t predicted as p, over every pixel whose true
label is not the ignore index. IoU_k = TP / (TP + FP + FN); a class with no pixel in either the
ground truth or the predictions has no IoU (None) and is left out of the mean. mIoU averages
the IoU of every class, background included when the data set has one (as VOC does); pixel
accuracy is the trace over the total; mean accuracy averages per-class recall over classes
present in the ground truth. Confusion matrices add up, so shards evaluated apart (one per
process) sum to exactly the matrix of the whole set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """int64 ``[K, K]`` counts of (true, predicted) class pairs; ``pred``/``target`` int ``[...]`` of equal shape."""
    valid = target != ignore_index
    pairs = target[valid].long() * num_classes + pred[valid].long()
    return torch.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_metrics(confusion: torch.Tensor, class_names: Sequence[str]) -> dict[str, Any]:
    """``mIoU``, ``pixel_accuracy``, ``mean_accuracy`` (floats in 0..1) and ``per_class_IoU`` {name: IoU or None}."""
    conf = confusion.double()
    tp = conf.diag()
    gt, predicted = conf.sum(1), conf.sum(0)
    union = gt + predicted - tp
    iou = [float(t / u) if u > 0 else None for t, u in zip(tp, union)]
    present = [v for v in iou if v is not None]
    recall = [float(t / g) for t, g in zip(tp, gt) if g > 0]
    total = float(conf.sum())
    return {
        "mIoU": sum(present) / len(present) if present else 0.0,
        "pixel_accuracy": float(tp.sum()) / total if total else 0.0,
        "mean_accuracy": sum(recall) / len(recall) if recall else 0.0,
        "per_class_IoU": dict(zip(class_names, iou)),
    }
