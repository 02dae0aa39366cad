"""Faster stand-ins for any model, generic over topology: BN folded into convs, channels_last, torch.compile.

Nothing here knows about necks. ``fold_batchnorm`` works on the FX graph of a whole model
(our compiled necks, our heads and timm backbones alike): every eval-mode batch norm whose
input is the output of a plain ``nn.Conv2d`` that nothing else reads becomes part of that
conv. A conv shared by several call sites with a different norm at each (EfficientDet's head:
one conv, one BN per level) gets one folded copy per call site, so sharing is never broken.
"""

from __future__ import annotations

import copy
import inspect
from typing import cast

import torch
from timm.layers import BatchNormAct2d
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


class _Tracer(fx.Tracer):
    """Keeps every batch norm (subclasses such as timm's BatchNormAct2d included) as one node."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, nn.BatchNorm2d) or super().is_leaf_module(m, module_qualified_name)


def to_graph(module: nn.Module, list_input: int | None = None) -> fx.GraphModule:
    """``module`` as a flat FX graph (Python control flow unrolled; sizes stay symbolic).

    ``list_input``: the forward takes one list of this many tensors (a neck) instead of tensors.
    """
    concrete = None
    if list_input is not None:
        first = next(iter(inspect.signature(module.forward).parameters))
        concrete = {first: [fx.PH] * list_input}
    graph = _Tracer().trace(module, concrete_args=concrete)
    return fx.GraphModule(module, graph, class_name=type(module).__name__)


def _post_norm(bn: nn.BatchNorm2d) -> list[nn.Module] | None:
    """What ``bn`` does after normalising: [] for a plain BatchNorm2d, None when unknown (not folded)."""
    if type(bn) is nn.BatchNorm2d:
        return []
    if type(bn) is BatchNormAct2d:
        return [bn.drop, bn.act]
    return None


def fold_batchnorm(gm: fx.GraphModule) -> int:
    """Fold eval-mode conv -> batch norm pairs of ``gm`` in place; returns how many were folded.

    The norm's node becomes the folded conv (followed by a norm-act module's activation) reading
    the conv's input; the unfolded conv is dropped once no call site uses it.
    """
    modules = dict(gm.named_modules())
    folded = 0
    for node in list(gm.graph.nodes):
        bn = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(bn, nn.BatchNorm2d) or bn.training or bn.running_mean is None:
            continue
        post = _post_norm(bn)
        src = node.args[0]
        if (
            post is None
            or not isinstance(src, fx.Node)
            or src.op != "call_module"
            or len(src.users) != 1
            or type(modules[src.target]) is not nn.Conv2d
        ):
            continue
        conv = fuse_conv_bn_eval(modules[src.target], bn)
        gm.add_submodule(node.target, nn.Sequential(conv, *post) if post else conv)
        node.args, node.kwargs = src.args, src.kwargs
        gm.graph.erase_node(src)
        folded += 1
    gm.delete_all_unused_submodules()
    gm.recompile()
    return folded


def fold_constants(gm: fx.GraphModule) -> int:
    """Compute once, in place of every call, what depends on parameters and buffers alone.

    E.g. the normalised weights of a weighted fusion: ReLU, sum, divide and one select per
    input, a handful of tiny ops per node that cost more in dispatch than in arithmetic.
    Returns how many values were stored; only valid while the parameters do not change.
    """
    constant: set[fx.Node] = set()
    interpreter = fx.Interpreter(gm)
    stored = 0
    with torch.no_grad():
        for node in gm.graph.nodes:
            inputs = node.all_input_nodes
            target = str(getattr(node.target, "__name__", node.target))
            pure = node.op in ("call_function", "call_method") and not target.endswith("_")
            if node.op == "get_attr" or (pure and inputs and all(n in constant for n in inputs)):
                constant.add(node)
                interpreter.env[node] = interpreter.run_node(node)
        for node in constant:
            value = interpreter.env[node]
            if node.op == "get_attr" or not isinstance(value, torch.Tensor) or all(u in constant for u in node.users):
                continue
            name = f"_folded_{stored}"
            gm.register_buffer(name, value.detach())
            with gm.graph.inserting_before(node):
                node.replace_all_uses_with(gm.graph.get_attr(name))
            stored += 1
    for node in reversed(gm.graph.nodes):  # not eliminate_dead_code(): it drops unread in-place ops
        if node in constant and not node.users:
            gm.graph.erase_node(node)
    gm.recompile()
    return stored


def prepare(
    module: nn.Module,
    *,
    fuse: bool = False,
    channels_last: bool = False,
    compile: bool = False,
    list_input: int | None = None,
) -> nn.Module:
    """A copy of ``module`` that computes the same outputs (to float rounding), faster.

    ``fuse``: batch norms folded into convs and parameter-only values precomputed (``module``
    must be in eval mode and its parameters must not change afterwards; the result is an FX
    ``GraphModule``). ``channels_last``: 4-D weights in NHWC order, so convs read and write NHWC
    and the ops between them follow (inputs may stay NCHW: the first conv converts).
    ``compile``: ``torch.compile`` (inductor); the first call compiles. ``list_input``: see
    :func:`to_graph`. ``module`` itself is not modified.
    """
    if fuse and module.training:
        raise ValueError("batch norms fold only in eval mode: call .eval() first")
    out = copy.deepcopy(module)
    if fuse:
        out = to_graph(out, list_input)
        fold_batchnorm(out)
        fold_constants(out)
    if channels_last:
        out = out.to(memory_format=torch.channels_last)
    if compile:
        out = cast(nn.Module, torch.compile(out))  # typed as a callable; a module compiles to an OptimizedModule
    return out
