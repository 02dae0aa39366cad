"""Building blocks of compiled necks: node ops, projections, resampling, the extra-level stem.

Shapes use B (batch), C (channels), H x W (spatial). Every module works for any H x W,
odd sizes included: up-sampling goes to the exact size of a reference tensor, down-sampling
halves with ceil (3x3 stride 2, padding 1) and is cropped to the reference where a backbone
rounded down instead.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import get_act_layer
from torch import nn

from archbench.spec.schema import OpSpec


def make_norm(kind: str, channels: int) -> nn.Module:
    """``bn`` -> BatchNorm2d, ``gn`` -> GroupNorm with up to 32 groups, ``none`` -> Identity."""
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "gn":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    return nn.Identity()


def make_act(kind: str, inplace: bool = False) -> nn.Module:
    """An activation by name (timm's registry: relu, swish, silu, gelu); ``none`` -> Identity.

    ``inplace`` only where the caller owns its input: a tensor in a neck may be read again by
    other nodes (GELU ignores it).
    """
    return nn.Identity() if kind == "none" else get_act_layer(kind)(inplace=inplace)


class ConvNorm(nn.Sequential):
    """k x k conv (+ norm): [B, C_in, H, W] -> [B, C_out, H', W'], H' = ceil(H / stride).

    The conv carries a bias when there is no norm after it, or when ``bias`` asks for one.
    """

    def __init__(
        self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, norm: str = "bn", bias: bool = False
    ) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=bias or norm == "none"),
            make_norm(norm, c_out),
        )


class NodeOp(nn.Module):
    """The op after a node's fusion: [B, C_in, H, W] -> [B, C_out, H, W].

    ``act_first`` computes norm(conv(act(x))) (+ residual), EfficientDet's order;
    ``conv_first`` computes act(norm(conv(x)) + residual). ``sepconv`` is a depthwise k x k conv
    followed by a pointwise 1x1; type ``none`` is the identity (C_in must equal C_out).
    The activation works in place on tensors this op owns: always after the conv, and on ``x``
    itself only when ``owns_input`` says no one else holds it (the fusion of several inputs).
    """

    def __init__(self, c_in: int, c_out: int, op: OpSpec, owns_input: bool = False) -> None:
        super().__init__()
        self.act_first = op.order == "act_first"
        inplace = owns_input or not self.act_first
        self.act = make_act(op.act, inplace) if op.type != "none" else nn.Identity()
        bias = op.bias or op.norm == "none"
        if op.type == "none":
            if c_in != c_out:
                raise ValueError(f"op 'none' cannot change channels ({c_in} -> {c_out})")
            self.conv: nn.Module = nn.Identity()
        elif op.type == "sepconv":
            self.conv = nn.Sequential(
                nn.Conv2d(c_in, c_in, op.kernel, padding=op.kernel // 2, groups=c_in, bias=False),
                nn.Conv2d(c_in, c_out, 1, bias=bias),
            )
        else:
            self.conv = nn.Conv2d(c_in, c_out, op.kernel, padding=op.kernel // 2, bias=bias)
        self.norm = make_norm(op.norm, c_out) if op.type != "none" else nn.Identity()

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if self.act_first:
            y = self.norm(self.conv(self.act(x)))
            return y if residual is None else y + residual
        y = self.norm(self.conv(x))
        if residual is not None:
            y = y + residual
        return self.act(y)


def upsample_to(x: torch.Tensor, ref: torch.Tensor, mode: str) -> torch.Tensor:
    """[B, C, h, w] -> [B, C, H, W] where (H, W) is ``ref``'s size, by nearest or bilinear interpolation."""
    if mode == "nearest":
        return F.interpolate(x, size=ref.shape[-2:], mode="nearest")
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def crop_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Crop [B, C, h, w] to ``ref``'s (H, W) <= (h, w): a ceil-halving chain can exceed a floored level by 1."""
    return x[:, :, : ref.shape[-2], : ref.shape[-1]]


class PoolDown(nn.Module):
    """Parameter-free down-sampling by 2**steps: 3x3 stride-2 max- or avg-pools (padding 1), cropped to ``ref``."""

    def __init__(self, steps: int, mode: str) -> None:
        super().__init__()
        self.steps, self.max = steps, mode == "maxpool"

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        for _ in range(self.steps):
            x = F.max_pool2d(x, 3, 2, 1) if self.max else F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
        return crop_to(x, ref)


class ConvDown(nn.Module):
    """Learned down-sampling by 2**steps: 3x3 stride-2 conv + norm per step (act between steps).

    [B, C_in, H, W] -> [B, C_out, H / 2**steps, W / 2**steps] cropped to ``ref``. The compiler
    projects an edge to the neck width first, so in practice C_in == C_out.
    """

    def __init__(self, c_in: int, c_out: int, steps: int, op: OpSpec) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(steps):
            if i:
                layers.append(make_act(op.act, inplace=True))
            layers.append(ConvNorm(c_in if i == 0 else c_out, c_out, 3, 2, op.norm, op.bias))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return crop_to(self.body(x), ref)


class ExtraLevels(nn.Module):
    """Makes the pyramid levels past the backbone's last one.

    ``pool`` (EfficientDet): 1x1 conv + norm where channels differ, then 3x3/2 max-pool; each
    further level is a max-pool of the previous one. ``conv`` (RetinaNet): a 3x3 stride-2 conv
    (bias, no norm) on the last backbone feature, then ReLU + 3x3 stride-2 conv per level.
    Input: the last backbone feature [B, C_in, H, W]; output: ``count`` tensors [B, width, ...],
    each half the size (ceil) of the one before.
    """

    def __init__(self, kind: str, c_in: int, width: int, count: int, norm: str, bias: bool) -> None:
        super().__init__()
        self.kind, self.count = kind, count
        if kind == "pool":
            self.proj = ConvNorm(c_in, width, 1, 1, norm, bias) if c_in != width else nn.Identity()
            self.convs = nn.ModuleList()
        else:
            self.proj = nn.Identity()
            self.convs = nn.ModuleList([nn.Conv2d(c_in if i == 0 else width, width, 3, 2, 1) for i in range(count)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out: list[torch.Tensor] = []
        if self.kind == "pool":
            x = self.proj(x)
            for _ in range(self.count):
                x = F.max_pool2d(x, 3, 2, 1)
                out.append(x)
        else:
            for i, conv in enumerate(self.convs):
                x = conv(F.relu(x) if i else x)
                out.append(x)
        return out
