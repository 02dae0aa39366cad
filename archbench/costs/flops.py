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
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable
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
    """Flops of one run: ``fvcore`` (the headline, FMA = 1) and ``elementwise`` (ops fvcore skips)."""

    fvcore: int = 0
    elementwise: int = 0
    by_op: Counter = field(default_factory=Counter)


class _CountingMode(TorchDispatchMode):
    def __init__(self, result: FlopCount) -> None:
        super().__init__()
        self.result = result

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        packet = func.overloadpacket
        if packet in FVCORE_RULES:
            n = FVCORE_RULES[packet](args, out)
            self.result.fvcore += n
            self.result.by_op[packet.__name__] += n
        elif packet in ELEMENTWISE_RULES:
            self.result.elementwise += ELEMENTWISE_RULES[packet](args, out)
        return out


def count_flops(fn: Callable[..., Any], *inputs: Any) -> tuple[FlopCount, Any]:
    """Run ``fn(*inputs)`` without autograd, counting flops; returns (counts, fn's output).

    Works on real and on meta tensors; use meta tensors (``torch.device('meta')``) to cost big
    models without computing anything.
    """
    result = FlopCount()
    with torch.no_grad(), _CountingMode(result):
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
