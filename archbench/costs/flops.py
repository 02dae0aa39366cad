"""Model costs: parameters, FLOPs in fvcore's convention, and CPU latency.

FLOP convention (fvcore's, which is the EfficientDet paper's): one fused multiply-add counts
as one flop. Counted as fvcore counts them: convolutions and matmuls (MACs), batch / group /
layer norm (2 per element at inference, 5 in training; 4 without affine), nearest upsampling
(1 per output element), bilinear upsampling (4 per output element), adaptive average pooling
(1 per input element). NOT in that number, and reported separately as ``elementwise``:
add, mul, div (a fused ``addcmul`` counts as its multiply and its add), activations (ReLU,
SiLU/swish, sigmoid, hard-swish, GELU), max/avg pooling (kernel area per output element),
global max / mean reductions and softmax — so fusion weights, attention gates and the
extra-level max-pools show up there, not in the headline number.

Why not ``fvcore.nn.FlopCountAnalysis`` directly: it counts by running a ``torch.jit`` trace
on real tensors, and a phi-7 sweep of dense necks would mean executing trillions of MACs on a
CPU; the jit tracer also cannot run on meta tensors. ``count_flops`` applies fvcore's per-op
formulas at the dispatcher instead, so it runs on meta tensors (shapes only, milliseconds);
``tests/test_costs.py`` checks that it equals FlopCountAnalysis on real tensors.

Given ``modules=``, ``count_flops`` also attributes every counted op to the innermost submodule
running it (forward hooks keep a stack of module names), as ``FlopCountAnalysis.by_module`` does
with its trace scopes; ``archbench.costs.modules`` turns that into the per-module table of
``archbench profile --by-module``.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from archbench.costs.perf.timing import time_interleaved

aten = torch.ops.aten


def _numel(t: Any) -> int:
    return math.prod(t.shape) if isinstance(t, torch.Tensor) else 0


def _first(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


def _conv(args: tuple, out: Any) -> int:
    x, w, transposed = args[0], args[1], bool(args[6])
    spatial = (x.shape if transposed else _first(out).shape)[2:]
    return x.shape[0] * math.prod(w.shape) * math.prod(spatial)


def _batch_norm(training: bool) -> Callable[[tuple, Any], int]:
    def count(args: tuple, out: Any) -> int:
        affine = args[1] is not None
        if training:
            return _numel(args[0]) * (5 if affine else 4)
        return _numel(args[0]) * (2 if affine else 1)

    return count


def _native_batch_norm(args: tuple, out: Any) -> int:
    return _batch_norm(bool(args[5]))(args, out)


def _norm(affine_index: int) -> Callable[[tuple, Any], int]:
    return lambda args, out: _numel(args[0]) * (5 if args[affine_index] is not None else 4)


def _matmul(args: tuple, out: Any) -> int:
    a, b = args[-2], args[-1]
    return math.prod(a.shape) * b.shape[-1]


#: fvcore's default handlers, keyed by the aten op packets the dispatcher sees.
FVCORE_RULES: dict[Any, Callable[[tuple, Any], int]] = {
    aten.convolution: _conv,
    aten.native_batch_norm: _native_batch_norm,
    aten._native_batch_norm_legit: _batch_norm(True),
    aten._native_batch_norm_legit_no_training: _batch_norm(False),
    aten.native_group_norm: _norm(1),
    aten.native_layer_norm: _norm(2),
    aten.upsample_nearest2d: lambda args, out: _numel(_first(out)),
    aten.upsample_bilinear2d: lambda args, out: 4 * _numel(_first(out)),
    aten._adaptive_avg_pool2d: lambda args, out: _numel(args[0]),
    aten.mm: _matmul,
    aten.addmm: _matmul,
    aten.bmm: _matmul,
}


def _pool(args: tuple, out: Any) -> int:
    kernel = args[1] if len(args) > 1 else (1, 1)
    return _numel(_first(out)) * math.prod(kernel)


_POINTWISE = (
    "add",
    "sub",
    "mul",
    "div",
    "relu",
    "silu",
    "sigmoid",
    "hardswish",
    "hardsigmoid",
    "gelu",
    "tanh",
    "softmax",
    "_softmax",
)
#: What fvcore leaves out, counted for the separate ``elementwise`` figure.
ELEMENTWISE_RULES: dict[Any, Callable[[tuple, Any], int]] = {
    **{getattr(aten, n): (lambda args, out: _numel(_first(out))) for n in _POINTWISE if hasattr(aten, n)},
    **{getattr(aten, n + "_"): (lambda args, out: _numel(_first(out))) for n in _POINTWISE if hasattr(aten, n + "_")},
    aten.addcmul: lambda args, out: 2 * _numel(_first(out)),
    aten.addcmul_: lambda args, out: 2 * _numel(_first(out)),
    aten.max_pool2d_with_indices: _pool,
    aten.avg_pool2d: _pool,
    aten.amax: lambda args, out: _numel(args[0]),
    aten.mean: lambda args, out: _numel(args[0]),
    aten.sum: lambda args, out: _numel(args[0]),
}


@dataclass
class FlopCount:
    """Flops of one run: ``fvcore`` (the headline, FMA = 1) and ``elementwise`` (ops fvcore skips).

    ``by_module`` / ``elementwise_by_module`` split the two by the innermost module that ran each op,
    keyed by its name in ``modules.named_modules()`` ('' for ops of the root's own forward, or of
    ``fn`` outside it); they are empty unless :func:`count_flops` was given ``modules``. Their values
    sum to ``fvcore`` / ``elementwise``.
    """

    fvcore: int = 0
    elementwise: int = 0
    by_op: Counter = field(default_factory=Counter)
    by_module: Counter = field(default_factory=Counter)
    elementwise_by_module: Counter = field(default_factory=Counter)


class _CountingMode(TorchDispatchMode):
    def __init__(self, result: FlopCount, scopes: list[str] | None) -> None:
        super().__init__()
        self.result = result
        self.scopes = scopes  # names of the modules running now, innermost last; None: not attributed

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        packet = func.overloadpacket
        where = None if self.scopes is None else (self.scopes[-1] if self.scopes else "")
        if packet in FVCORE_RULES:
            n = FVCORE_RULES[packet](args, out)
            self.result.fvcore += n
            self.result.by_op[packet.__name__] += n
            if where is not None:
                self.result.by_module[where] += n
        elif packet in ELEMENTWISE_RULES:
            n = ELEMENTWISE_RULES[packet](args, out)
            self.result.elementwise += n
            if where is not None:
                self.result.elementwise_by_module[where] += n
        return out


@contextmanager
def _module_scopes(root: nn.Module, scopes: list[str]) -> Iterator[None]:
    """While open, ``scopes`` holds the names (as in ``root.named_modules()``) of the modules whose
    forward is running, innermost last."""

    def leave(_module: nn.Module, _args: Any, _out: Any) -> None:  # a hook returning a value replaces the output
        scopes.pop()

    handles = []
    for name, module in root.named_modules():
        handles.append(module.register_forward_pre_hook(lambda _m, _args, name=name: scopes.append(name)))
        handles.append(module.register_forward_hook(leave))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def count_flops(fn: Callable[..., Any], *inputs: Any, modules: nn.Module | None = None) -> tuple[FlopCount, Any]:
    """Run ``fn(*inputs)`` without autograd, counting flops; returns (counts, fn's output).

    Works on real and on meta tensors; use meta tensors (``torch.device('meta')``) to cost big
    models without computing anything. ``modules``: also split the counts by the submodules of
    this module (``FlopCount.by_module``); ``fn`` is usually the module itself or calls it.
    """
    result = FlopCount()
    scopes: list[str] = []
    tracking = _module_scopes(modules, scopes) if modules is not None else nullcontext()
    with tracking, torch.no_grad(), _CountingMode(result, scopes if modules is not None else None):
        out = fn(*inputs)
    return result, out


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def cpu_latency_ms(fn: Callable[[], Any], *, runs: int = 10, warmup: int = 2) -> dict[str, float]:
    """Median and spread (min, max) of ``fn()`` wall time in ms after ``warmup`` calls, under inference mode.

    On a GPU, ``fn`` must synchronise itself, or only the kernel launches are timed.
    """
    with torch.inference_mode():
        times = time_interleaved({"fn": fn}, runs=runs, warmup=warmup)["fn"]
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "runs": runs}
