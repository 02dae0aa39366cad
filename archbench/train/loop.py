"""A minimal, deterministic detection training + COCO evaluation loop (CPU-friendly).

``train_detector`` trains a :class:`~archbench.models.detector.Detector` with AdamW, a linear
warm-up followed by a cosine decay to 0 (defined in optimizer steps), gradient clipping and a
non-finite-loss check, then evaluates it on the validation split with
:func:`evaluate_detector` (decode -> dataset frame -> COCOeval with the data set's size buckets).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

import torch
from torch import nn

from archbench.data.coco import collate_detection
from archbench.detection import (AnchorConfig, DetectionLoss, anchors_for, coco_evaluate, decode,
                                 flatten_head_outputs, to_dataset_frame)
from archbench.detection.anchors import feature_sizes_of


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite at ``step`` (0-based optimizer step)."""

    def __init__(self, step: int, value: float) -> None:
        super().__init__(f"training diverged at step {step}: loss = {value}")
        self.step, self.value = step, value


def _strides(model: nn.Module) -> list[int]:
    return [2 ** int(level) for level in model.config.levels]


def _anchors(model: nn.Module, outputs: Sequence[torch.Tensor], anchor_cfg: AnchorConfig) -> torch.Tensor:
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
            anchors = _anchors(model, cls_outs, anchor_cfg)
            dets = decode(cls, box, anchors, image_size=(int(images.shape[-2]), int(images.shape[-1])),
                          score_thresh=score_thresh)
            for det, t in zip(dets, targets):
                detections.append(to_dataset_frame(det, t["scale"], val_ds.cat_ids, image_id=t["image_id"],
                                                   orig_size=t["orig_size"]))
    finally:
        model.train(was_training)
    return coco_evaluate(val_ds.coco, detections, area_ranges=size_thresholds(info.get("area_ranges")),
                         image_ids=list(val_ds.image_ids))


def train_detector(model: nn.Module, train_ds: Any, val_ds: Any, info: dict[str, Any], *, epochs: int,
                   batch_size: int = 16, lr: float = 6e-3, weight_decay: float = 1e-4, warmup_steps: int = 50,
                   grad_clip: float = 10.0, seed: int = 0, max_steps: int | None = None,
                   loss: DetectionLoss | None = None, anchor_cfg: AnchorConfig = AnchorConfig(),
                   num_threads: int | None = 2, evaluate: bool = True,
                   log: Callable[[str], None] | None = None, log_every: int = 20) -> dict[str, Any]:
    """Train ``model`` for ``epochs`` (or ``max_steps`` optimizer steps, whichever ends first) and evaluate.

    Returns ``metrics`` (12 COCO stats on ``val_ds``; {} when ``evaluate`` is False),
    ``train_seconds`` (training wall time, without evaluation), ``eval_seconds``,
    ``images_per_s`` (training throughput), ``steps``, ``final_loss`` (mean loss of the last
    epoch's steps, or the last ``log_every`` steps), ``first_loss`` and ``losses`` (per step).
    Raises :class:`TrainingDiverged` on a non-finite loss.
    """
    if num_threads:
        torch.set_num_threads(int(num_threads))
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    loss_fn = loss if loss is not None else DetectionLoss(model.num_classes)
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(train_ds, batch_size=batch_size, shuffle=True, drop_last=True,
                                         num_workers=0, collate_fn=collate_detection, generator=generator)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise ValueError(f"{len(train_ds)} training images are fewer than one batch of {batch_size}")
    total = epochs * steps_per_epoch if max_steps is None else min(epochs * steps_per_epoch, int(max_steps))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, warmup_steps))
    log = log or (lambda msg: None)

    model.train()
    losses: list[float] = []
    step, images_seen = 0, 0
    start = time.perf_counter()
    for epoch in range(epochs):
        if step >= total:
            break
        if hasattr(train_ds, "set_epoch"):
            train_ds.set_epoch(epoch)
        for images, targets in loader:
            if step >= total:
                break
            images = images.to(device)
            targets = [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for t in targets]
            cls_outs, box_outs = model(images)
            cls, box = flatten_head_outputs(cls_outs, box_outs, model.num_classes)
            out = loss_fn(cls, box, _anchors(model, cls_outs, anchor_cfg), targets)
            value = float(out["loss"].detach())
            if not math.isfinite(value):
                raise TrainingDiverged(step, value)
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            scheduler.step()
            losses.append(value)
            images_seen += images.shape[0]
            step += 1
            if step % log_every == 0 or step == total:
                log(f"epoch {epoch} step {step}/{total} loss {value:.4f} cls {float(out['cls_loss']):.4f} "
                    f"box {float(out['box_loss']):.5f} lr {scheduler.get_last_lr()[0]:.2e} "
                    f"{time.perf_counter() - start:.1f}s")
    train_seconds = time.perf_counter() - start
    tail = losses[-min(len(losses), steps_per_epoch, log_every):] if losses else []

    eval_start = time.perf_counter()
    metrics = evaluate_detector(model, val_ds, info, batch_size, anchor_cfg=anchor_cfg) if evaluate else {}
    eval_seconds = time.perf_counter() - eval_start
    return {
        "metrics": metrics,
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "images_per_s": images_seen / train_seconds if train_seconds > 0 else float("nan"),
        "steps": step,
        "first_loss": losses[0] if losses else float("nan"),
        "final_loss": sum(tail) / len(tail) if tail else float("nan"),
        "losses": losses,
    }
