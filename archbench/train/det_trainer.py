"""Detection training: focal + box loss on anchors, COCOeval on the decoded detections.

The epoch loop, checkpoints and DDP are :class:`archbench.train.trainer.Trainer`'s; this module
adds what is specific to detection: anchors of a model's outputs, the loss of a batch, the
decoding of a validation shard to detections in the data set's frame and COCOeval with the
data set's size buckets (the shards' detections are gathered before COCOeval runs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import DataLoader

from archbench.data.coco import collate_detection
from archbench.detection import (
    AnchorConfig,
    DetectionLoss,
    anchors_for,
    coco_evaluate,
    decode,
    flatten_head_outputs,
    to_dataset_frame,
)
from archbench.detection.anchors import feature_sizes_of
from archbench.models.detector import Detector
from archbench.models.scaling import ModelConfig
from archbench.train.distributed import LOCAL, DistContext
from archbench.train.trainer import TrainConfig, Trainer

#: Detections scoring below this are not kept for COCOeval.
SCORE_THRESH = 0.05


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


def dense_loss(device: torch.device, batched_targets: bool) -> bool:
    """Whether the loss finds the positives by mask (``DetectionLoss(dense=True)``): on CUDA, where indexing them
    would make the host wait for the device several times a step; not on the CPU, where the indexed form makes
    fewer passes over memory (and is the form the board's CPU records were trained with). Needs batched targets.
    """
    return device.type == "cuda" and batched_targets


def detector_anchors(config: ModelConfig, outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Anchors [N, 4] (xyxy px, on the outputs' device) of a detector at ``config`` for its per-level head
    ``outputs`` (one [B, C, H_l, W_l] per level): stride 2**level, side ``config.anchor_size`` * stride."""
    strides = [2 ** int(level) for level in config.levels]
    cfg = AnchorConfig(size=config.anchor_size)
    return anchors_for(feature_sizes_of(outputs), strides, cfg, device=outputs[0].device)


@torch.no_grad()
def detect(
    model: Detector,
    images: torch.Tensor,
    metas: Sequence[dict[str, Any]],
    cat_ids: Sequence[int],
    *,
    score_thresh: float = SCORE_THRESH,
    anchors: Callable[[Sequence[torch.Tensor]], torch.Tensor] | None = None,
) -> list[dict[str, Any]]:
    """Detections of letterboxed ``images`` [B, 3, R, R] (on the model's device and in its memory layout), each
    in its file's frame (see :func:`~archbench.detection.to_dataset_frame`): ``boxes`` [M, 4] xyxy original px,
    ``scores`` [M], ``labels`` [M] (category ids from ``cat_ids``) and ``image_id``.

    ``metas``: one dict per image with its letterbox ``scale``, ``orig_size`` (h, w) px and ``image_id``.
    ``anchors``: the anchors of the head outputs (default :func:`detector_anchors` at the model's config).
    """
    cls_outs, box_outs = model(images)
    cls, box = flatten_head_outputs(cls_outs, box_outs, model.num_classes)
    dets = decode(
        cls,
        box,
        anchors(cls_outs) if anchors is not None else detector_anchors(model.config, cls_outs),
        image_size=(int(images.shape[-2]), int(images.shape[-1])),
        score_thresh=score_thresh,
    )
    return [
        to_dataset_frame(det, m["scale"], cat_ids, image_id=m["image_id"], orig_size=m["orig_size"])
        for det, m in zip(dets, metas)
    ]


class DetectionTrainer(Trainer):
    """Trains a ``Detector`` on a ``CocoDetection`` split; metrics are COCO's 12 bbox stats."""

    collate = staticmethod(collate_detection)

    def __init__(
        self,
        model: Detector,
        train_ds: Any,
        cfg: TrainConfig,
        *,
        seed: int,
        device: torch.device,
        dist: DistContext = LOCAL,
    ) -> None:
        super().__init__(model, train_ds, cfg, seed=seed, device=device, dist=dist)
        self.num_classes, self.model_config = model.num_classes, model.config
        self.loss_fn = DetectionLoss(
            model.num_classes,
            normaliser=self.dist.normaliser,
            batched=cfg.batched_targets,
            dense=dense_loss(device, cfg.batched_targets),
        )
        self._anchor_cache: dict[tuple[tuple[int, int], ...], torch.Tensor] = {}

    def _anchors(self, outputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Anchors [N, 4] (xyxy px) matching the flattened head ``outputs`` (one [B, C, H_l, W_l] per level).

        Built once per run and feature-map size (they depend on nothing else); read-only.
        """
        sizes = tuple(feature_sizes_of(outputs))
        if sizes not in self._anchor_cache:
            self._anchor_cache[sizes] = detector_anchors(self.model_config, outputs)
        return self._anchor_cache[sizes]

    def _to_device(self, targets: list[dict[str, Any]]) -> list[dict[str, torch.Tensor]]:
        return [{"boxes": t["boxes"].to(self.device), "labels": t["labels"].to(self.device)} for t in targets]

    def _forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per-level class logits [B, A * K, H_l, W_l] and box deltas [B, A * 4, H_l, W_l]."""
        with self._autocast():
            return self.net(images)

    def _criterion(
        self, outputs: tuple[list[torch.Tensor], list[torch.Tensor]], targets: list[dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        cls_outs, box_outs = outputs
        cls, box = flatten_head_outputs([c.float() for c in cls_outs], [b.float() for b in box_outs], self.num_classes)
        return self.loss_fn(cls, box, self._anchors(cls_outs), targets)

    def _predict(self, model: nn.Module, batches: DataLoader, val_ds: Any) -> list[dict[str, Any]]:
        """COCO-format detections (original image frame) of the images in ``batches``."""
        detector, detections = cast(Detector, model), []  # the trained detector or its EMA copy
        for images, targets in batches:
            detections += detect(detector, self._prepare(images), targets, val_ds.cat_ids, anchors=self._anchors)
        return detections

    def _score(self, partial: list[dict[str, Any]], val_ds: Any, info: dict[str, Any]) -> dict[str, float]:
        """The 12 COCO bbox stats of every rank's detections (size buckets from ``info['area_ranges']``)."""
        return coco_evaluate(
            val_ds.coco,
            self.dist.gather(partial),
            area_ranges=size_thresholds(info.get("area_ranges")),
            image_ids=list(val_ds.image_ids),
        )
