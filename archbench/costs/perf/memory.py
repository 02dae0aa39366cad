"""Peak memory of one call (e.g. a training step): tensor bytes allocated on top of what already existed.

On CUDA this is the caching allocator's own peak. The CPU allocator keeps no statistics, so
there every tensor an operator returns is seen at the dispatcher: a storage no one had before
(outputs that alias an input — views, in-place and ``out=`` results — are not new) is added to
the live total when it is made and taken off when it is freed. Autograd's saved tensors and
gradients count; parameters, inputs and anything made before the call do not.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary


class _LiveBytes(TorchDispatchMode):
    """Tracks the bytes of storages created while active, and their peak."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        returns = func._schema.returns
        outs = out if isinstance(out, (tuple, list)) else (out,)
        for i, t in enumerate(tree_leaves(list(outs))):
            aliased = i < len(returns) and returns[i].alias_info is not None
            if not isinstance(t, torch.Tensor) or aliased or t.device.type == "meta":
                continue
            storage = t.untyped_storage()
            if storage in self._seen:
                continue
            self._seen[storage] = True
            nbytes = storage.nbytes()
            self.live += nbytes
            weakref.finalize(storage, self._free, nbytes)
        self.peak = max(self.peak, self.live)
        return out


def peak_bytes(fn: Callable[[], Any], device: torch.device | str = "cpu") -> int:
    """Highest number of bytes held at once by tensors that ``fn()`` allocated (see the module doc)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    tracker = _LiveBytes()
    with tracker:
        fn()
    return tracker.peak
