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
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from timm.utils import ModelEmaV3
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from archbench.errors import UserError
from archbench.files import atomic_write
from archbench.neck.compiler import GraphNeck
from archbench.train.allocator import tune_malloc
from archbench.train.distributed import LOCAL, DistContext
from archbench.train.schedule import TrainingDiverged, warmup_cosine

#: ``TrainConfig.amp`` values: no autocast, bf16 autocast, fp16 autocast with a gradient scaler.
AMP_MODES = ("off", "bf16", "fp16")
#: ``TrainConfig.optimizer_impl`` values: torch's fused kernel, its multi-tensor (foreach) path, a loop per tensor.
OPTIMIZER_IMPLS = ("fused", "foreach", "loop")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of a run.

    The fields up to ``amp`` decide what is learned and are part of the run's config hash. The
    fields after it (:data:`SPEED_FIELDS`) only decide how fast a step runs: their defaults are
    the fast path, and ``channels_last=False, optimizer_impl="loop", batched_targets=False`` is
    the step as it ran before issue 16 (``scripts/bench_train.py`` times the two side by side).
    They are left out of :meth:`to_dict`, so records written either way share a config hash.
    """

    epochs: int = 8
    batch_size: int = 16
    optimizer: str = "adamw"  # adamw | sgd (momentum 0.9, nesterov)
    lr: float = 6e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    grad_clip: float = 10.0
    ema: bool = False
    ema_decay: float = 0.999
    #: autocast: "off", "bf16" or "fp16" (with a GradScaler), on CPU and CUDA; True / False read as "bf16" / "off"
    amp: str = "off"
    #: model weights and input images in channels_last (NHWC) memory layout
    channels_last: bool = True
    #: how the optimizer and gradient clipping run over the parameters (see :data:`OPTIMIZER_IMPLS`)
    optimizer_impl: str = "fused"
    #: detection targets assigned for the whole batch at once rather than image by image (same targets)
    batched_targets: bool = True
    #: torch.use_deterministic_algorithms and cuDNN's deterministic mode (set for the whole process)
    deterministic: bool = False
    #: DataLoader worker processes serving the batches (0: this process serves them); the batches are the same
    workers: int = 0
    #: glibc malloc keeps freed memory and backs the heap with huge pages (process-wide, see train.allocator)
    tune_malloc: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.amp, bool):  # records and studies written before amp took a mode
            object.__setattr__(self, "amp", "bf16" if self.amp else "off")
        if self.amp not in AMP_MODES:
            raise UserError(
                f"amp {self.amp!r}: choose one of {', '.join(AMP_MODES)} (bf16: bfloat16 autocast; fp16: float16 "
                "autocast with a gradient scaler; off: float32 throughout)"
            )
        if self.optimizer not in ("adamw", "sgd"):
            raise UserError(f"optimizer {self.optimizer!r}: choose adamw or sgd")
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 0:
            raise UserError(f"workers {self.workers!r}: the number of DataLoader worker processes is an integer >= 0")
        if self.optimizer_impl not in OPTIMIZER_IMPLS:
            raise UserError(
                f"optimizer_impl {self.optimizer_impl!r}: choose one of {', '.join(OPTIMIZER_IMPLS)} (fused: one "
                "kernel over all parameters; foreach: torch's multi-tensor ops; loop: one parameter at a time)"
            )

    def to_dict(self) -> dict[str, Any]:
        """The fields that decide what is learned (what the config hash covers); ``amp`` "off" reads False and
        "bf16" reads True, as before it took a mode, so older records keep their hashes."""
        out = {k: v for k, v in asdict(self).items() if k not in SPEED_FIELDS}
        out["amp"] = {"off": False, "bf16": True}.get(self.amp, self.amp)
        return out

    @classmethod
    def for_task(cls, task: str) -> TrainConfig:
        """The defaults of ``task``: these fields' defaults with :data:`TASK_DEFAULTS`' changes for the task."""
        return replace(cls(), **TASK_DEFAULTS.get(task, {}))

    @classmethod
    def legacy_step(cls, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` with the step run as before issue 16: NCHW, a per-tensor optimizer loop, per-image targets."""
        return replace(cfg, channels_last=False, optimizer_impl="loop", batched_targets=False)


#: TrainConfig fields that change only the speed of a step, not what is learned (outside the config hash).
SPEED_FIELDS = frozenset(
    {"channels_last", "optimizer_impl", "batched_targets", "deterministic", "workers", "tune_malloc"}
)


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


def make_optimizer(params: Any, cfg: TrainConfig, impl: str | None = None) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over ``params``, run as ``impl`` (default ``cfg.optimizer_impl``; the same update, up to
    rounding). It builds exactly that implementation: :func:`resolve_optimizer_impl` says which one this torch runs.

    adamw: AdamW(lr, weight_decay); sgd: SGD(lr, momentum 0.9, nesterov, weight_decay).
    """
    impl = impl or cfg.optimizer_impl
    fused, foreach = impl == "fused", impl == "foreach"
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay, fused=fused, foreach=foreach
        )
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused, foreach=foreach)


def clip_gradients(params: Iterable[torch.Tensor], max_norm: float, impl: str) -> torch.Tensor:
    """Scale the gradients of ``params`` by ``min(1, max_norm / norm)``, ``norm`` being the L2 norm of all of them
    together (torch's ``clip_grad_norm_``), with the multi-tensor kernels unless ``impl`` is "loop" (then torch's
    default, as before issue 16). Returns ``norm`` before clipping (a 0-dim tensor)."""
    return torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=None if impl == "loop" else True)


def optimizer_impl_runs(optimizer: str, impl: str, device: torch.device) -> bool:
    """Whether this torch runs ``optimizer`` ("adamw" or "sgd") as ``impl`` on ``device``: one clipped step of a
    one-element float32 parameter, so every check torch makes (device, dtype, kernel) is the real one.

    Tried rather than read off the version: fused AdamW and SGD run on the CPU only from torch 2.4 (2.3 has them on
    CUDA), and torch says no in different places: 2.4 when the optimizer is built, 2.14 at its first step, 2.3's
    fused SGD only when the missing CPU kernel is called.
    """
    param = torch.zeros(1, device=device, requires_grad=True)
    param.grad = torch.ones(1, device=device)
    try:
        probe = make_optimizer([param], TrainConfig(optimizer=optimizer, optimizer_impl=impl))
        clip_gradients([param], 1.0, impl)
        probe.step()
    except RuntimeError:  # NotImplementedError too: torch 2.3 builds a fused SGD on the CPU but has no kernel
        return False
    return True


def resolve_optimizer_impl(cfg: TrainConfig, device: torch.device) -> str:
    """The implementation a run on ``device`` uses: ``cfg.optimizer_impl`` if this torch runs it there, else the
    first of the slower ones after it (fused -> foreach -> loop) that it runs. "loop" runs everywhere."""
    after = OPTIMIZER_IMPLS[OPTIMIZER_IMPLS.index(cfg.optimizer_impl) :]
    return next(impl for impl in after if impl == "loop" or optimizer_impl_runs(cfg.optimizer, impl, device))


def configure_kernels(device: torch.device, deterministic: bool) -> None:
    """This process's kernel choices for a run on ``device`` (torch's settings are per process).

    ``deterministic``: deterministic kernels wherever torch has one, and cuDNN's deterministic, non-benchmarked
    convolutions; on CUDA cuBLAS also needs ``CUBLAS_WORKSPACE_CONFIG``. An op without a deterministic CUDA kernel
    (the backward of bilinear upsampling, 4-D cross-entropy: every seg run, and specs that resample bilinearly)
    warns instead of failing the run (``warn_only``): the run is as deterministic as torch can make it, and torch's
    warning names the op. Otherwise, on CUDA, cuDNN's autotuner picks each convolution's fastest algorithm for its
    shape (``cudnn.benchmark``: a proxy run has few shapes, timed once each).
    """
    if deterministic:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def check_amp(amp: str, device: torch.device) -> None:
    """A ``UserError`` for bf16 autocast on a CUDA GPU that only emulates bfloat16 (before Ampere: torch runs it,
    slower than float32, and the run would be timed and compared as a bf16 run)."""
    if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise UserError(
            f"--amp bf16 on {torch.cuda.get_device_name(device)}: this GPU has no native bfloat16 (it needs compute "
            "capability 8.0 or later; torch would emulate it, slower than float32). Use --amp-dtype fp16 (with a "
            "gradient scaler) or train in float32"
        )


#: Optimizer steps between two reads of the training loss on the host when training on CUDA: each read waits
#: for the GPU to finish the queued work, so reading every step would stall it. On the CPU every step is read (it
#: costs nothing), before the step's update, so a NaN stops the run before it reaches the weights.
CUDA_LOSS_READ_EVERY = 25


@dataclass(frozen=True)
class _UnreadLoss:
    """A training step's loss not yet read on the host: its 0-based ``step``, the loss summed over the ranks (on
    the device), the images seen once the step is done, and when (``time.perf_counter``) it was computed."""

    step: int
    loss: torch.Tensor
    images_seen: int
    at: float


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
    :meth:`_to_device` (targets), :meth:`_forward` (model outputs) and :meth:`_criterion` (outputs and
    targets -> ``{"loss": scalar, ...}``; :meth:`_loss` is the two together), :meth:`_predict`
    (batches of this rank's shard of the validation split -> a partial result) and :meth:`_score` (partial
    results of all ranks -> metrics). ``cfg.batch_size`` is the global batch: under DDP each of
    the ``dist.world_size`` ranks takes an equal share of it. Built with ``train_ds=None`` it is an
    evaluator: :meth:`evaluate` scores the model as after training, :meth:`train_epoch` refuses.
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
        check_amp(cfg.amp, device)
        configure_kernels(device, cfg.deterministic)
        if cfg.tune_malloc:
            tune_malloc()
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model, self.train_ds, self.cfg, self.seed = model.to(device), train_ds, cfg, seed
        self.device, self.dist = device, dist
        self.rank_batch = dist.per_rank_batch(cfg.batch_size)
        dead = [n for m in self.model.modules() if isinstance(m, GraphNeck) for n in m.dead_nodes]
        self.net = dist.wrap(self.model, unused_parameters=bool(dead))  # the training forward (DDP under torchrun)
        self.steps_per_epoch = len(train_ds) // cfg.batch_size if train_ds is not None else 0
        if train_ds is not None and self.steps_per_epoch == 0:
            raise ValueError(f"{len(train_ds)} training images are fewer than one batch of {cfg.batch_size}")
        self.total_steps = cfg.epochs * self.steps_per_epoch
        #: what the optimizer and clipping run as: cfg.optimizer_impl, or a slower one where this torch lacks it
        self.optimizer_impl_used = resolve_optimizer_impl(cfg, device)
        self.optimizer = make_optimizer(model.parameters(), cfg, self.optimizer_impl_used)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(self.total_steps, cfg.warmup_steps)
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        self.ema = ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=True) if cfg.ema else None
        #: steps whose losses are read on the host together (:data:`CUDA_LOSS_READ_EVERY`; 1 on the CPU)
        self.loss_read_every = CUDA_LOSS_READ_EVERY if device.type == "cuda" else 1
        self.step = 0
        self.epoch = 0  # epochs completed
        self.train_seconds = 0.0
        self.images_seen = 0

    # --- the task's part ---------------------------------------------------------------------
    def _to_device(self, targets: Any) -> Any:
        raise NotImplementedError

    def _forward(self, images: torch.Tensor) -> Any:
        """The training forward of ``images`` (already prepared, see :meth:`_prepare`) under :meth:`_autocast`."""
        raise NotImplementedError

    def _criterion(self, outputs: Any, targets: Any) -> dict[str, torch.Tensor]:
        """``{"loss": scalar, ...}`` of :meth:`_forward`'s ``outputs`` against ``targets`` (in float32)."""
        raise NotImplementedError

    def _loss(self, images: torch.Tensor, targets: Any) -> dict[str, torch.Tensor]:
        return self._criterion(self._forward(images), targets)

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
            collate_fn=self.collate,
            **self._loading(),
        )

    def _loading(self) -> dict[str, Any]:
        """How a DataLoader serves batches: ``cfg.workers`` processes (forked on Linux: they share decoded images;
        every item is seeded by (seed, epoch, index), so which process serves it changes nothing), into pinned
        memory when the device is CUDA."""
        return {"num_workers": self.cfg.workers, "pin_memory": self.device.type == "cuda"}

    def _autocast(self) -> torch.autocast:
        """Autocast to ``cfg.amp``'s dtype on this device (bf16 or fp16); a disabled context when ``amp`` is off."""
        dtype = torch.float16 if self.cfg.amp == "fp16" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype, enabled=self.cfg.amp != "off")

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        """A batch of images [B, 3, R, R] on the device, in the model's memory layout."""
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else images

    def _backward(self, loss: torch.Tensor) -> None:
        """Gradients of ``loss`` (scaled under fp16 AMP); the previous step's are dropped first."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()

    def _optimizer_step(self) -> None:
        """Clip (unscaled) gradients, step the optimizer (skipped by the fp16 scaler on inf), the schedule and EMA."""
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            clip_gradients(self.model.parameters(), self.cfg.grad_clip, self.optimizer_impl_used)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model, step=self.step)

    def train_epoch(self, on_step: Callable[[StepInfo], None] | None = None) -> float:
        """Run epoch ``self.epoch``; returns its mean loss. Raises ``TrainingDiverged`` on NaN/inf.

        The loss checked and reported is the mean over ranks, so every rank stops at the same step.
        """
        if self.train_ds is None:
            raise ValueError("this trainer was built without a training split (train_ds=None): it only evaluates")
        self.model.train()
        start = time.perf_counter()
        values: list[float] = []
        unread: list[_UnreadLoss] = []
        for batch in self._loader(self.epoch):
            images = self._prepare(batch[0])
            out = self._loss(images, self._to_device(batch[1]))
            seen = self.images_seen + images.shape[0] * self.dist.world_size
            unread.append(_UnreadLoss(self.step, self.dist.ranks_sum(out["loss"]), seen, time.perf_counter()))
            if len(unread) >= self.loss_read_every:  # every step on the CPU: before this step's update, as ever
                values += self._read_losses(unread, start, on_step)
                unread.clear()
            self._backward(out["loss"])
            self._optimizer_step()
            self.step += 1
            self.images_seen = seen
        values += self._read_losses(unread, start, on_step)
        self.train_seconds += time.perf_counter() - start
        self.epoch += 1
        total = 0.0
        for value in values:  # in step order, in float64, as the mean of each step's loss has always been summed
            total += value
        return total / max(len(values), 1)

    def _read_losses(
        self, unread: Sequence[_UnreadLoss], start: float, on_step: Callable[[StepInfo], None] | None
    ) -> list[float]:
        """The losses of ``unread`` steps (mean over ranks) read on the host at once; each step reported to
        ``on_step``. ``TrainingDiverged`` at the first that is NaN or infinite."""
        if not unread:
            return []
        read = torch.stack([u.loss.reshape(()) for u in unread]).tolist()  # one wait for the device
        out = []
        for u, summed in zip(unread, read):
            value = summed / self.dist.world_size
            if not math.isfinite(value):
                raise TrainingDiverged(u.step, value)
            out.append(value)
            if on_step:
                elapsed = self.train_seconds + u.at - start
                rate = u.images_seen / elapsed if elapsed > 0 else 0.0
                on_step(StepInfo(self.epoch, u.step + 1, self.total_steps, value, rate))
        return out

    # --- evaluation ----------------------------------------------------------------------------
    def eval_model(self) -> nn.Module:
        """The weights to evaluate: the EMA copy when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    def evaluate(self, val_ds: Any, info: dict[str, Any]) -> dict[str, Any]:
        """Metrics of :meth:`eval_model` on ``val_ds``; under DDP each rank predicts a shard with rank 0's weights."""
        return self._score(self.predict(val_ds), val_ds, info)

    def predict(self, val_ds: Any) -> Any:
        """This rank's partial result on its shard of ``val_ds`` with :meth:`eval_model` (what :meth:`_score`
        consumes: detections per image for detection, a confusion matrix for segmentation)."""
        model = self.eval_model()
        self.dist.sync_module(model)  # BatchNorm statistics differ by rank after training
        was_training = model.training
        model.eval()
        try:
            batches = DataLoader(
                Subset(val_ds, self.dist.shard(len(val_ds))),
                batch_size=self.cfg.batch_size,
                shuffle=False,
                collate_fn=self.collate,
                **self._loading(),
            )
            with torch.no_grad():
                return self._predict(model, batches, val_ds)
        finally:
            model.train(was_training)

    # --- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "scaler": self.scaler.state_dict(),
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
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
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
