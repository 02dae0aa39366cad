"""How close a forward pass gets to the hardware: dense matmul GFLOP/s, memory bandwidth, and a
profile of a forward split into depthwise convs, other convs / matmuls, and everything else.

Here a FLOP is a multiply or an add (a multiply-add is 2), the hardware convention; fvcore's
GFLOPs elsewhere in archbench count a multiply-add as 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

_CONVS = ("aten::conv2d", "aten::convolution", "aten::_convolution")
_MATMULS = ("aten::mm", "aten::addmm", "aten::matmul", "aten::linear", "aten::bmm")


def _best_seconds(fn: Callable[[], Any], repeats: int, sync: Callable[[], None] | None) -> float:
    """The fastest of ``repeats`` calls after a warm-up: a ceiling is what the machine can do."""
    fn()
    times = []
    for _ in range(repeats):
        if sync:
            sync()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def _sync(device: torch.device) -> Callable[[], None] | None:
    return torch.cuda.synchronize if device.type == "cuda" else None


def matmul_gflops(
    n: int = 2048, repeats: int = 5, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> float:
    """GFLOP/s of an n x n x n matrix product (2 n^3 FLOPs): the machine's dense compute ceiling."""
    device = torch.device(device)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / _best_seconds(lambda: a @ b, repeats, _sync(device)) / 1e9


def copy_gbs(mbytes: int = 256, repeats: int = 5, device: str | torch.device = "cpu") -> float:
    """GB/s moved by copying a ``mbytes`` MB float32 tensor (bytes read + bytes written)."""
    device = torch.device(device)
    src = torch.randn(mbytes * 2**20 // 4, device=device)
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / _best_seconds(lambda: dst.copy_(src), repeats, _sync(device)) / 1e9


@dataclass(frozen=True)
class Ceilings:
    """A machine's two roofs: dense matmul GFLOP/s (compute) and copy GB/s (memory)."""

    matmul_gflops: float
    copy_gbs: float

    @classmethod
    def measure(cls, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> Ceilings:
        return cls(matmul_gflops(device=device, dtype=dtype), copy_gbs(device=device))

    def attainable_gflops(self, flops: float, nbytes: float) -> float:
        """The roofline: min(compute roof, memory roof x arithmetic intensity flops / nbytes)."""
        return min(self.matmul_gflops, self.copy_gbs * flops / nbytes)


@dataclass
class OpClass:
    """Time, FLOPs and minimum bytes moved (inputs + outputs + weights) by one class of ops, per call."""

    ms: float = 0.0
    flops: float = 0.0
    bytes: float = 0.0
    calls: int = 0

    def gflops_per_s(self) -> float:
        return self.flops / self.ms / 1e6 if self.ms else 0.0

    def gbytes_per_s(self) -> float:
        return self.bytes / self.ms / 1e6 if self.ms else 0.0


@dataclass
class Breakdown:
    """A profiled forward: wall ms per call, and the top-level ops by class (``classes``)."""

    wall_ms: float
    classes: dict[str, OpClass] = field(default_factory=dict)

    @property
    def overhead_ms(self) -> float:
        """Wall time outside every top-level op: Python, module calls, the profiler's own cost."""
        return self.wall_ms - sum(c.ms for c in self.classes.values())


def _conv_class_and_bytes(evt: Any, itemsize: int) -> tuple[str, float]:
    x, w = evt.input_shapes[0], evt.input_shapes[1]
    stride = evt.concrete_inputs[3] if len(evt.concrete_inputs) > 3 and evt.concrete_inputs[3] else [1, 1]
    groups = evt.concrete_inputs[-1] or 1
    n, c, h, wd = x
    out = n * w[0] * -(-h // stride[0]) * -(-wd // stride[-1])
    moved = (n * c * h * wd + out + torch.Size(w).numel()) * itemsize
    return ("depthwise conv" if groups > 1 and w[1] == 1 else "dense conv / matmul"), moved


def op_breakdown(fn: Callable[[], Any], runs: int = 5, itemsize: int = 4) -> Breakdown:
    """Profile ``runs`` calls of ``fn`` (after one warm-up) and split the time of its top-level ops.

    Classes: ``depthwise conv`` (groups == channels), ``dense conv / matmul``, and ``other``
    (norms, activations, fusions, resampling, copies: memory-bound element-wise work). Bytes are
    the least each op must move at ``itemsize`` bytes per element (fp32 by default): a conv's
    input, output and weights; for ``other`` an estimate (inputs read once, an output the size of
    the largest input written; none for matmuls). FLOPs are the profiler's (2 per multiply-add,
    and it counts few element-wise ops). Profiling adds a few microseconds per op.
    """
    fn()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
        t0 = time.perf_counter()
        for _ in range(runs):
            fn()
        wall = (time.perf_counter() - t0) * 1e3 / runs
    out = Breakdown(wall, {"depthwise conv": OpClass(), "dense conv / matmul": OpClass(), "other": OpClass()})
    for evt in prof.events():
        if evt.cpu_parent is not None or not evt.name.startswith("aten::"):
            continue
        if evt.name in _CONVS:
            name, moved = _conv_class_and_bytes(evt, itemsize)
        elif evt.name in _MATMULS:
            name, moved = "dense conv / matmul", 0.0
        else:  # estimate: every tensor input read once, an output as large as the largest input written
            sizes = [torch.Size(shape).numel() for shape in evt.input_shapes if shape]
            name, moved = "other", (sum(sizes) + max(sizes, default=0)) * itemsize
        c = out.classes[name]
        c.ms += evt.cpu_time_total / 1e3 / runs
        c.flops += (evt.flops or 0) / runs
        c.bytes += moved / runs
        c.calls += 1
    for c in out.classes.values():
        c.calls //= runs
    return out
