"""Fusions: combine a node's inputs, already resampled to its level, into one tensor.

Every fusion takes a list of n tensors [B, C, H, W] (same shape) and returns [B, C_out, H, W];
C_out = C except for ``concat`` (n * C, or C after its 1x1 projection when no op follows).
With two or more inputs the result is a new tensor that no one else holds: sums accumulate in
place into it (one pass over memory per extra input instead of a temporary per term), and the
node's op may overwrite it (``NodeOp``'s in-place activation). Inputs are never modified.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archbench.neck.layers import ConvNorm

#: EfficientDet's epsilon of fast normalized fusion.
FAST_FUSION_EPS = 1e-4


class SumFusion(nn.Module):
    """Plain sum (also the identity for a single input)."""

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        if len(xs) == 1:
            return xs[0]
        out = xs[0] + xs[1]
        for x in xs[2:]:
            out = out.add_(x)  # assigned, so graph passes (FX) see the data flow
        return out


class _LearnedWeightFusion(nn.Module):
    """sum_i w_i x_i with one learned scalar per input (init 1); subclasses say how w is normalised."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))

    def normalized_weights(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        w = self.normalized_weights()
        out = xs[0] * w[0]
        for i in range(1, len(xs)):
            out = out.addcmul_(xs[i], w[i])
        return out


class WeightedFusion(_LearnedWeightFusion):
    """EfficientDet's fast normalized fusion: w_i = ReLU(p_i) / (sum_j ReLU(p_j) + 1e-4)."""

    def normalized_weights(self) -> torch.Tensor:
        w = F.relu(self.weight)
        return w / (w.sum() + FAST_FUSION_EPS)


class SoftmaxFusion(_LearnedWeightFusion):
    """Softmax-weighted sum, w = softmax(p) (EfficientDet's ablation)."""

    def normalized_weights(self) -> torch.Tensor:
        return torch.softmax(self.weight, dim=0)


class ConcatFusion(nn.Module):
    """Channel concatenation; followed by a 1x1 conv + norm to ``c_out`` when ``project`` is set.

    DLA's aggregation nodes concatenate and let the node's own conv reduce the channels, so
    the projection is only needed when the node has no op.
    """

    def __init__(self, n: int, channels: int, project: bool, norm: str, bias: bool) -> None:
        super().__init__()
        self.proj = ConvNorm(n * channels, channels, 1, 1, norm, bias) if project else nn.Identity()

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return self.proj(torch.cat(xs, dim=1))


class AttentionFusion(nn.Module):
    """NAS-FPN's global-pooling attention on the first two inputs, plus the sum of the rest.

    out = g + o * sigmoid(global_pool(g)) + sum(xs[2:]), with g = xs[gate], o = the other of the
    first two; ``pool`` is ``max`` or ``avg`` over H x W, giving a per-channel gate [B, C, 1, 1].
    """

    def __init__(self, gate: int, pool: str) -> None:
        super().__init__()
        self.gate, self.other, self.max = gate, 1 - gate, pool == "max"

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        g, o = xs[self.gate], xs[self.other]
        pooled = torch.amax(g, dim=(2, 3), keepdim=True) if self.max else g.mean(dim=(2, 3), keepdim=True)
        out = torch.addcmul(g, o, torch.sigmoid(pooled))
        for x in xs[2:]:
            out = out.add_(x)
        return out


def make_fusion(
    kind: str, n: int, channels: int, *, has_op: bool, gate: int, pool: str, norm: str, bias: bool
) -> tuple[nn.Module, int]:
    """The fusion module for ``kind`` over n inputs of ``channels``, and its output channels."""
    if kind == "weighted":
        return WeightedFusion(n), channels
    if kind == "softmax":
        return SoftmaxFusion(n), channels
    if kind == "concat":
        fused = ConcatFusion(n, channels, project=not has_op, norm=norm, bias=bias)
        return fused, channels if not has_op else n * channels
    if kind == "attention":
        return AttentionFusion(gate, pool), channels
    return SumFusion(), channels
