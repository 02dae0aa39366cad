"""Epoch-wise detection training with checkpoints that resume bit-for-bit.

Everything random is derived from (seed, epoch): the model init (seeded before construction
by the runner), the shuffling of each epoch and the augmentation of each sample. A checkpoint
written after epoch e therefore holds everything a fresh process needs to continue exactly:
model, optimizer, scheduler and EMA state plus the step count. The schedule is defined in
optimizer steps, never in wall-clock time.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from timm.utils import ModelEmaV3
from torch import nn

from archbench.data.coco import collate_detection
from archbench.detection import AnchorConfig, DetectionLoss, flatten_head_outputs
from archbench.train.loop import TrainingDiverged, anchors_of, evaluate_detector, warmup_cosine


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of a run (all part of its config hash)."""

    epochs: int = 8
    batch_size: int = 16
    optimizer: str = "adamw"  # adamw | sgd (momentum 0.9, nesterov)
    lr: float = 6e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    grad_clip: float = 10.0
    ema: bool = False
    ema_decay: float = 0.999
    amp: bool = False  # bf16 autocast, CUDA only

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StepInfo:
    """What the progress display shows after each optimizer step."""

    epoch: int
    step: int
    total_steps: int
    loss: float
    images_per_s: float


class DetectionTrainer:
    """Trains a ``Detector`` on a ``CocoDetection`` split, one epoch at a time."""

    def __init__(self, model: nn.Module, train_ds: Any, cfg: TrainConfig, *, seed: int,
                 device: torch.device) -> None:
        self.model, self.train_ds, self.cfg, self.seed = model.to(device), train_ds, cfg, seed
        self.device = device
        self.anchor_cfg = AnchorConfig(size=model.config.anchor_size)
        self.loss_fn = DetectionLoss(model.num_classes)
        self.steps_per_epoch = len(train_ds) // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{len(train_ds)} training images are fewer than one batch of {cfg.batch_size}")
        self.total_steps = cfg.epochs * self.steps_per_epoch
        if cfg.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           warmup_cosine(self.total_steps, cfg.warmup_steps))
        self.ema = ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=True) if cfg.ema else None
        self.step = 0
        self.epoch = 0  # epochs completed
        self.train_seconds = 0.0
        self.images_seen = 0

    # --- one epoch ---------------------------------------------------------------------------
    def _loader(self, epoch: int) -> torch.utils.data.DataLoader:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        if hasattr(self.train_ds, "set_epoch"):
            self.train_ds.set_epoch(epoch)
        return torch.utils.data.DataLoader(self.train_ds, batch_size=self.cfg.batch_size, shuffle=True,
                                           drop_last=True, num_workers=0, collate_fn=collate_detection,
                                           generator=generator)

    def _loss(self, images: torch.Tensor, targets: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        amp = self.cfg.amp and self.device.type == "cuda"
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            cls_outs, box_outs = self.model(images)
        cls, box = flatten_head_outputs([c.float() for c in cls_outs], [b.float() for b in box_outs],
                                        self.model.num_classes)
        return self.loss_fn(cls, box, anchors_of(self.model, cls_outs, self.anchor_cfg), targets)

    def train_epoch(self, on_step: Callable[[StepInfo], None] | None = None) -> float:
        """Run epoch ``self.epoch``; returns its mean loss. Raises ``TrainingDiverged`` on NaN/inf."""
        self.model.train()
        start, total, n = time.perf_counter(), 0.0, 0
        for images, targets in self._loader(self.epoch):
            images = images.to(self.device)
            targets = [{"boxes": t["boxes"].to(self.device), "labels": t["labels"].to(self.device)} for t in targets]
            out = self._loss(images, targets)
            value = float(out["loss"].detach())
            if not math.isfinite(value):
                raise TrainingDiverged(self.step, value)
            self.optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            if self.cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update(self.model, step=self.step)
            self.step += 1
            self.images_seen += images.shape[0]
            total, n = total + value, n + 1
            if on_step:
                elapsed = self.train_seconds + time.perf_counter() - start
                on_step(StepInfo(self.epoch, self.step, self.total_steps, value,
                                 self.images_seen / elapsed if elapsed > 0 else 0.0))
        self.train_seconds += time.perf_counter() - start
        self.epoch += 1
        return total / max(n, 1)

    def eval_model(self) -> nn.Module:
        """The weights to evaluate: the EMA copy when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    def evaluate(self, val_ds: Any, info: dict[str, Any]) -> dict[str, float]:
        return evaluate_detector(self.eval_model(), val_ds, info, self.cfg.batch_size, anchor_cfg=self.anchor_cfg)

    # --- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "ema": self.ema.state_dict() if self.ema else None,
            "step": self.step, "epoch": self.epoch, "train_seconds": self.train_seconds,
            "images_seen": self.images_seen,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.train_seconds, self.images_seen = state["train_seconds"], state["images_seen"]

    def save(self, path: Path) -> None:
        """Atomic checkpoint write (temp file + rename): a kill never leaves a half-written file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pt")
        os.close(fd)
        try:
            torch.save(self.state_dict(), tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def restore(self, path: Path) -> None:
        self.load_state_dict(torch.load(path, map_location=self.device, weights_only=False))
