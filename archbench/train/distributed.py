"""One run over several processes: ``torchrun --nproc_per_node N -m archbench run ...``.

torchrun starts N copies of the command with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous address in the environment. :meth:`DistContext.from_env` joins the process group
(``nccl`` for CUDA, ``gloo`` for the CPU) and every rank then runs the same sweep: the model is
wrapped in ``DistributedDataParallel``, each rank trains on its slice of every global batch,
evaluation is sharded and reduced, and only rank 0 writes checkpoints and records. On CUDA the
BatchNorms become SyncBatchNorms (global-batch statistics); on the CPU (gloo) they stay per rank. Without
torchrun (``WORLD_SIZE`` unset or 1) :data:`LOCAL` stands in and every method is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from archbench.errors import UserError

T = TypeVar("T")
#: How long a rank waits for the others (rank 0 alone measures costs and writes records meanwhile).
TIMEOUT = timedelta(minutes=60)


def launched_world_size() -> int:
    """The number of processes torchrun started for this job (``WORLD_SIZE``; 1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank_gpu(local_rank: int, visible: int) -> int:
    """The CUDA device index a rank trains on: its local rank where it sees every GPU of its machine (torchrun),
    0 where its launcher shows each rank its own GPU alone (Slurm's ``--gpus-per-task=1``, a per-rank
    ``CUDA_VISIBLE_DEVICES``); a ``UserError`` where it sees several GPUs but not one for its rank."""
    if local_rank < visible:
        return local_rank
    if visible == 1:
        return 0
    raise UserError(
        f"local rank {local_rank} has no GPU ({visible} visible); start at most one process per GPU "
        "(torchrun --nproc_per_node), or show each rank its own GPU alone"
    )


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    #: the CUDA device index this rank trains on (:func:`rank_gpu`); 0 on the CPU
    gpu: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this rank writes checkpoints, records and progress (rank 0)."""
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str) -> DistContext:
        """Join torchrun's process group if ``WORLD_SIZE`` > 1 (``device``: cpu | cuda[:N]); else :data:`LOCAL`."""
        world = launched_world_size()
        if world <= 1:
            return LOCAL
        cuda = torch.device(device).type == "cuda"
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        gpu = rank_gpu(local_rank, torch.cuda.device_count()) if cuda else 0
        if cuda:
            torch.cuda.set_device(gpu)
        backend = "nccl" if cuda else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=TIMEOUT)
        return cls(dist.get_rank(), dist.get_world_size(), local_rank, backend, gpu)

    def device(self, requested: str) -> str:
        """The device of this rank: ``cuda:<its GPU>`` for CUDA under torchrun, else ``requested``."""
        return f"cuda:{self.gpu}" if self.enabled and torch.device(requested).type == "cuda" else requested

    def per_rank_batch(self, batch_size: int) -> int:
        """This rank's share of a global batch; UserError unless the world size divides it."""
        if batch_size % self.world_size:
            raise UserError(
                f"--batch-size {batch_size} is the global batch and must be divisible by the "
                f"{self.world_size} processes"
            )
        return batch_size // self.world_size

    @property
    def syncs_batchnorm(self) -> bool:
        """Whether training uses SyncBatchNorm: under DDP on CUDA (nccl) only; it has no CPU (gloo) kernels."""
        return self.enabled and self.backend == "nccl"

    def convert_norms(self, model: nn.Module) -> nn.Module:
        """``model`` with every BatchNorm as a SyncBatchNorm when :attr:`syncs_batchnorm`, else unchanged.

        The statistics of a training batch are then those of the global batch, as in one process. timm's converter
        keeps a ``BatchNormAct2d``'s activation; the converted layers share the old ones' parameters and buffers,
        and the children are replaced in place (the returned module is ``model`` unless ``model`` is itself a
        BatchNorm), so optimizers and references made from ``model`` still see the trained tensors.
        """
        if not self.syncs_batchnorm:
            return model
        from timm.layers import convert_sync_batchnorm

        return convert_sync_batchnorm(model)

    def wrap(self, model: nn.Module, *, unused_parameters: bool = False) -> nn.Module:
        """``model`` in ``DistributedDataParallel`` (the training forward), or itself when not distributed.

        Under CUDA DDP its BatchNorms become SyncBatchNorms first (:meth:`convert_norms`, in place).
        ``unused_parameters``: some parameters get no gradient (a spec's dead nodes); DDP then looks for them
        after each forward instead of waiting for their gradients for ever.
        """
        if not self.enabled:
            return model
        model = self.convert_norms(model)
        device_ids = [self.gpu] if self.backend == "nccl" else None
        return nn.parallel.DistributedDataParallel(
            model, device_ids=device_ids, find_unused_parameters=unused_parameters
        )

    def ranks_sum(self, value: torch.Tensor) -> torch.Tensor:
        """A scalar tensor summed over the ranks (itself, detached, when not distributed), left on its device:
        reading it on the host is the caller's synchronisation; divided by ``world_size`` it is the mean over the
        ranks (the same float on every rank)."""
        if not self.enabled:
            return value.detach()
        total = value.detach().float().reshape(1).clone()
        dist.all_reduce(total)
        return total

    def normaliser(self, count: torch.Tensor) -> torch.Tensor:
        """The divisor of a per-rank loss sum: max(1, ``count`` summed over the ranks) / world_size.

        DDP averages gradients over ranks, so dividing each rank's sum by this makes the averaged
        gradient the single process's on the whole global batch (whose loss is its sum divided by
        max(1, count)), instead of a mean of per-rank normalisations. Float 0-dim, no gradient.
        """
        total = count.detach().float().reshape(()).clone()
        if self.enabled:
            dist.all_reduce(total)
        return total.clamp(min=1.0) / self.world_size

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the ranks (in place, also returned)."""
        if self.enabled:
            dist.all_reduce(tensor)
        return tensor

    def gather(self, items: list[T]) -> list[T]:
        """Every rank's ``items`` (picklable) concatenated in rank order, on every rank."""
        if not self.enabled:
            return items
        parts: list[Any] = [None] * self.world_size
        dist.all_gather_object(parts, items)
        return [item for part in parts for item in part]

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` (picklable) on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sync_module(self, module: nn.Module) -> None:
        """Copy rank 0's parameters and buffers (BatchNorm statistics) to every rank."""
        if self.enabled:
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def shard(self, n: int) -> list[int]:
        """This rank's indices of ``n`` evaluation items: ``rank, rank + world, ...`` (no padding, no repeats)."""
        return list(range(self.rank, n, self.world_size))

    def close(self) -> None:
        """Leave the process group (no-op when not distributed)."""
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


LOCAL = DistContext()
