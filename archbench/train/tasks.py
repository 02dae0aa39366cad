"""The tasks ``archbench run --task`` trains, each as its data opener, model, trainer and record summary.

``det``: COCO-format boxes -> :class:`~archbench.models.detector.Detector` -> COCO's 12 AP/AR
numbers. ``seg``: class-index maps -> :class:`~archbench.models.segmenter.Segmenter` -> mIoU,
per-class IoU and pixel accuracy. Everything else (specs, scaling, the epoch loop, records,
sweeps, DDP) is shared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from archbench.data.coco import open_detection_data, open_detection_val
from archbench.data.seg_sources import open_segmentation_data, open_segmentation_val
from archbench.models.detector import Detector
from archbench.models.scaling import ModelConfig
from archbench.models.segmenter import Segmenter
from archbench.train.det_trainer import DetectionTrainer
from archbench.train.seg_trainer import SegmentationTrainer
from archbench.train.task_names import HEADLINES, check_task
from archbench.train.trainer import Trainer


def _detection_summary(info: dict[str, Any]) -> dict[str, Any]:
    buckets = (
        "COCO's 32^2 / 96^2 px^2" if info["area_ranges"] is None else "scaled to the image size (see area_ranges, px^2)"
    )
    # cat_ids: the data set's category id of each class index (what predictions on new images are labelled with)
    return {"area_ranges": info["area_ranges"], "size_buckets": buckets, "cat_ids": info["cat_ids"]}


def _segmentation_summary(info: dict[str, Any]) -> dict[str, Any]:
    return {"ignore_index": info["ignore_index"]}


@dataclass(frozen=True)
class Task:
    """One task: ``open_data(ref, resolution=, subset=, categories=, seed=, cache_root=, progress=) -> (train, val,
    info)`` (``progress(done, total)`` hears of the images of a data set generated on the way),
    ``open_val(ref, resolution=, categories=, seed=, cache_root=) -> (val, info)`` (the validation split alone:
    the train split is not read; ``info`` without n_train and fingerprint), its model class (``model(spec,
    config, num_classes, pretrained_backbone=, neck_overrides=)``), its trainer class (built with ``train_ds=None``
    to evaluate only), the task-specific fields of a record's ``dataset`` and its headline metrics
    (:data:`~archbench.train.task_names.HEADLINES`)."""

    name: str
    open_data: Callable[..., tuple[Any, Any, dict[str, Any]]]
    open_val: Callable[..., tuple[Any, dict[str, Any]]]
    model: type[Detector] | type[Segmenter]
    trainer: type[Trainer]
    data_summary: Callable[[dict[str, Any]], dict[str, Any]]
    headline: tuple[str, ...]

    @property
    def metric(self) -> str:
        """The accuracy a search maximises and a record's first headline: AP (det) or mIoU (seg)."""
        return self.headline[0]

    def head(self, config: ModelConfig, num_classes: int) -> nn.Module:
        """The head the task's model builds at ``config``, alone (what cost reports count as ``head``).

        Its forward takes the neck's outputs (n_levels x [B, width, H_l, W_l]) and the input size (H, W).
        """
        return self.model.build_head(config, num_classes)


TASKS: dict[str, Task] = {
    "det": Task(
        "det", open_detection_data, open_detection_val, Detector, DetectionTrainer, _detection_summary, HEADLINES["det"]
    ),
    "seg": Task(
        "seg",
        open_segmentation_data,
        open_segmentation_val,
        Segmenter,
        SegmentationTrainer,
        _segmentation_summary,
        HEADLINES["seg"],
    ),
}


def get_task(name: str) -> Task:
    """The task called ``name``; UserError listing the tasks otherwise."""
    return TASKS[check_task(name)]
