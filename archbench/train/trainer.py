"""The epoch loop every task shares, with checkpoints that resume bit-for-bit and optional DDP.

Everything random is derived from (seed, epoch): the model init (seeded before construction
by the runner), the shuffling of each epoch and the augmentation of each sample. A checkpoint
written after epoch e therefore holds everything a fresh process needs to continue exactly:
model, optimizer, scheduler and EMA state plus the step count. The schedule is defined in
optimizer steps, never in wall-clock time.

:class:`Trainer` is the loop; a task's subclass (:mod:`archbench.train.det_trainer`,
:mod:`archbench.train.seg_trainer`) says how a batch becomes a loss and how the validation
split is predicted and scored. Under torchrun (:mod:`archbench.train.distributed`) each rank
draws its slice of the same global batches a single process would draw, gradients are averaged
by ``DistributedDataParallel``, evaluation is sharded across ranks and reduced, and only rank 0
writes checkpoints.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from timm.utils import ModelEmaV3
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from archbench.files import atomic_write
from archbench.train.distributed import LOCAL, DistContext
from archbench.train.schedule import TrainingDiverged, warmup_cosine


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

    @classmethod
    def for_task(cls, task: str) -> TrainConfig:
        """The defaults of ``task``: these fields' defaults with :data:`TASK_DEFAULTS`' changes for the task."""
        return replace(cls(), **TASK_DEFAULTS.get(task, {}))


#: Per-task changes to :class:`TrainConfig`'s defaults (what ``archbench run --task T`` trains with).
#: A segmentation step costs about 60% of a detection step (no anchors, no box loss), and fpn at
#: proxy phi 0 reaches mIoU 0.393 after 8 epochs but 0.526 after 12 (242 s of training, 2 cores).
TASK_DEFAULTS: dict[str, dict[str, Any]] = {"det": {}, "seg": {"epochs": 12}}


def epoch_sampler(dataset: Any, seed: int, epoch: int, dist: DistContext = LOCAL) -> DistributedSampler:
    """The order this rank visits ``dataset`` in during ``epoch``.

    The permutation is ``randperm(n)`` from a generator seeded with ``seed * 100003 + epoch``, the
    same in every process (and the order a single process always used); rank r of N takes items
    r, r + N, ... of it (the tail that N does not divide is dropped), so with a per-rank batch of
    B / N the ranks' b-th batches together are exactly a single process's b-th batch of B.
    """
    sampler: DistributedSampler[Any] = DistributedSampler(
        dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=seed * 100_003, drop_last=True
    )
    sampler.set_epoch(epoch)
    return sampler


@dataclass
class StepInfo:
    """What the progress display shows after each optimizer step."""

    epoch: int
    step: int
    total_steps: int
    loss: float
    images_per_s: float


class Trainer:
    """Trains ``model`` on ``train_ds``, one epoch at a time (the task-independent part).

    Subclasses define :attr:`collate` (batches ``(images [B, 3, R, R], targets, ...)``),
    :meth:`_to_device` (targets), :meth:`_loss` (``{"loss": scalar, ...}``), :meth:`_predict`
    (batches of this rank's shard of the validation split -> a partial result) and :meth:`_score` (partial
    results of all ranks -> metrics). ``cfg.batch_size`` is the global batch: under DDP each of
    the ``dist.world_size`` ranks takes an equal share of it.
    """

    collate: Callable[[Sequence[Any]], Any]

    def __init__(
        self,
        model: nn.Module,
        train_ds: Any,
        cfg: TrainConfig,
        *,
        seed: int,
        device: torch.device,
        dist: DistContext = LOCAL,
    ) -> None:
        self.model, self.train_ds, self.cfg, self.seed = model.to(device), train_ds, cfg, seed
        self.device, self.dist = device, dist
        self.rank_batch = dist.per_rank_batch(cfg.batch_size)
        self.net = dist.wrap(self.model)  # the training forward (DDP-wrapped under torchrun)
        self.steps_per_epoch = len(train_ds) // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{len(train_ds)} training images are fewer than one batch of {cfg.batch_size}")
        self.total_steps = cfg.epochs * self.steps_per_epoch
        if cfg.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
            )
        else:
            self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(self.total_steps, cfg.warmup_steps)
        )
        self.ema = ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=True) if cfg.ema else None
        self.step = 0
        self.epoch = 0  # epochs completed
        self.train_seconds = 0.0
        self.images_seen = 0

    # --- the task's part ---------------------------------------------------------------------
    def _to_device(self, targets: Any) -> Any:
        raise NotImplementedError

    def _loss(self, images: torch.Tensor, targets: Any) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _predict(self, model: nn.Module, batches: DataLoader, val_ds: Any) -> Any:
        raise NotImplementedError

    def _score(self, partial: Any, val_ds: Any, info: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    # --- one epoch ---------------------------------------------------------------------------
    def _loader(self, epoch: int) -> DataLoader:
        """This rank's batches of ``epoch`` (see :func:`epoch_sampler`)."""
        if hasattr(self.train_ds, "set_epoch"):
            self.train_ds.set_epoch(epoch)
        return DataLoader(
            self.train_ds,
            batch_size=self.rank_batch,
            sampler=epoch_sampler(self.train_ds, self.seed, epoch, self.dist),
            drop_last=True,
            num_workers=0,
            collate_fn=self.collate,
        )

    def _autocast(self) -> torch.autocast:
        """bf16 autocast when ``cfg.amp`` on CUDA; a disabled context otherwise."""
        amp = self.cfg.amp and self.device.type == "cuda"
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp)

    def train_epoch(self, on_step: Callable[[StepInfo], None] | None = None) -> float:
        """Run epoch ``self.epoch``; returns its mean loss. Raises ``TrainingDiverged`` on NaN/inf.

        The loss checked and reported is the mean over ranks, so every rank stops at the same step.
        """
        self.model.train()
        start, total, n = time.perf_counter(), 0.0, 0
        for batch in self._loader(self.epoch):
            images = batch[0].to(self.device)
            out = self._loss(images, self._to_device(batch[1]))
            value = self.dist.mean(out["loss"])
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
            self.images_seen += images.shape[0] * self.dist.world_size
            total, n = total + value, n + 1
            if on_step:
                elapsed = self.train_seconds + time.perf_counter() - start
                on_step(
                    StepInfo(
                        self.epoch,
                        self.step,
                        self.total_steps,
                        value,
                        self.images_seen / elapsed if elapsed > 0 else 0.0,
                    )
                )
        self.train_seconds += time.perf_counter() - start
        self.epoch += 1
        return total / max(n, 1)

    # --- evaluation ----------------------------------------------------------------------------
    def eval_model(self) -> nn.Module:
        """The weights to evaluate: the EMA copy when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    def evaluate(self, val_ds: Any, info: dict[str, Any]) -> dict[str, Any]:
        """Metrics of :meth:`eval_model` on ``val_ds``; under DDP each rank predicts a shard with rank 0's weights."""
        model = self.eval_model()
        self.dist.sync_module(model)  # BatchNorm statistics differ by rank after training
        was_training = model.training
        model.eval()
        try:
            batches = DataLoader(
                Subset(val_ds, self.dist.shard(len(val_ds))),
                batch_size=self.cfg.batch_size,
                shuffle=False,
                num_workers=0,
                collate_fn=self.collate,
            )
            with torch.no_grad():
                partial = self._predict(model, batches, val_ds)
        finally:
            model.train(was_training)
        return self._score(partial, val_ds, info)

    # --- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "step": self.step,
            "epoch": self.epoch,
            "train_seconds": self.train_seconds,
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
        """Atomic checkpoint write (temp file + rename) by rank 0: a kill never leaves a half-written file."""
        if not self.dist.is_main:
            return
        state = self.state_dict()
        atomic_write(path, lambda tmp: torch.save(state, tmp))

    def restore(self, path: Path) -> None:
        self.load_state_dict(torch.load(path, map_location=self.device, weights_only=False))
