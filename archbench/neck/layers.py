"""Building blocks of compiled necks: node ops, projections, resampling, the extra-level stem.

Shapes use B (batch), C (channels), H x W (spatial). Every module works for any H x W,
odd sizes included: up-sampling (nearest, bilinear, or a learned transposed conv) goes to the
exact size of a reference tensor; down-sampling halves with ceil per level, whether by 3x3
stride-2 pools or convs (padding 1) or by one 2**k pool with TF-'same' padding, and is cropped to
the reference where a backbone rounded down instead.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import get_act_layer
from torch import nn

from archbench.spec.schema import LATERAL_EXTRA_LEVELS, OpSpec


def make_norm(kind: str, channels: int) -> nn.Module:
    """``bn`` -> BatchNorm2d, ``gn`` -> GroupNorm with up to 32 groups, ``none`` -> Identity."""
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "gn":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    return nn.Identity()


#: Activations whose gradient autograd computes from their input: run in place, autograd must first
#: copy that input (a clone in every training step), a pass over memory more than running out of place.
CLONED_IN_PLACE = (nn.SiLU, nn.Hardswish, nn.Mish)


def out_of_place_where_cloned(module: nn.Module) -> nn.Module:
    """Turn ``inplace`` off on every activation of :data:`CLONED_IN_PLACE` in ``module`` (itself included);
    ReLU-like ones, whose gradient needs only their output, stay in place. Returns ``module``."""
    for m in module.modules():
        if isinstance(m, CLONED_IN_PLACE):
            m.inplace = False
    return module


def make_act(kind: str, inplace: bool = False) -> nn.Module:
    """An activation by name (timm's registry: relu, swish, silu, gelu); ``none`` -> Identity.

    ``inplace`` only where the caller owns its input: a tensor in a neck may be read again by
    other nodes (GELU ignores it, and so do swish / silu, hard-swish and Mish: see
    :func:`out_of_place_where_cloned`).
    """
    return nn.Identity() if kind == "none" else out_of_place_where_cloned(get_act_layer(kind)(inplace=inplace))


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
    With ``op.convs`` = n > 1, n - 1 stages of the same order run first (conv_first: conv -> norm
    -> act), so conv_first with a residual is a ResNet BasicBlock for n = 2. Those leading stages
    are the attribute ``stem`` (None for n = 1; the name is kept for existing state-dict keys and
    has nothing to do with the extra-level stem, :class:`ExtraLevels`).
    The activation works in place on tensors this op owns: always after the conv, and on ``x``
    itself only when ``owns_input`` says no one else holds it (the fusion of several inputs).
    """

    def __init__(self, c_in: int, c_out: int, op: OpSpec, owns_input: bool = False) -> None:
        super().__init__()
        self.act_first = op.order == "act_first"
        inplace = owns_input or not self.act_first
        self.act = make_act(op.act, inplace) if op.type != "none" else nn.Identity()
        self.stem: nn.Module | None = None
        if op.type == "none":
            if c_in != c_out:
                raise ValueError(f"op 'none' cannot change channels ({c_in} -> {c_out})")
            self.conv: nn.Module = nn.Identity()
        else:
            if op.convs > 1:
                self.stem = _leading_stages(c_in, c_out, op, owns_input)
                c_in = c_out
            self.conv = make_conv(c_in, c_out, op)
        self.norm = make_norm(op.norm, c_out) if op.type != "none" else nn.Identity()

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if self.stem is not None:
            x = self.stem(x)
        if self.act_first:
            y = self.norm(self.conv(self.act(x)))
            return y if residual is None else y + residual
        y = self.norm(self.conv(x))
        if residual is not None:
            y = y + residual
        return self.act(y)


def make_conv(c_in: int, c_out: int, op: OpSpec) -> nn.Module:
    """The k x k conv of an op (``conv`` or ``sepconv``): [B, C_in, H, W] -> [B, C_out, H, W].

    A conv carries a bias when ``op.bias`` asks for one or no norm follows it.
    """
    bias = op.bias or op.norm == "none"
    if op.type == "sepconv":
        return nn.Sequential(
            nn.Conv2d(c_in, c_in, op.kernel, padding=op.kernel // 2, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=bias),
        )
    return nn.Conv2d(c_in, c_out, op.kernel, padding=op.kernel // 2, bias=bias)


def _leading_stages(c_in: int, c_out: int, op: OpSpec, owns_input: bool) -> nn.Sequential:
    """The first ``op.convs - 1`` conv stages of a multi-conv op: [B, C_in, H, W] -> [B, C_out, H, W].

    conv_first stages are conv -> norm -> act, act_first ones act -> conv -> norm (the first act
    in place only on an input the op owns).
    """
    layers: list[nn.Module] = []
    for i in range(op.convs - 1):
        conv, norm = make_conv(c_in if i == 0 else c_out, c_out, op), make_norm(op.norm, c_out)
        if op.order == "act_first":
            layers += [make_act(op.act, inplace=owns_input or i > 0), conv, norm]
        else:
            layers += [conv, norm, make_act(op.act, inplace=True)]
    return nn.Sequential(*layers)


def upsample_to(x: torch.Tensor, ref: torch.Tensor, mode: str) -> torch.Tensor:
    """[B, C, h, w] -> [B, C, H, W] where (H, W) is ``ref``'s size, by ``nearest`` or ``bilinear`` interpolation.

    (``deconv``, the learned mode, is the module :class:`DeconvUp`.) ValueError for any other mode.
    """
    if mode == "nearest":
        return F.interpolate(x, size=ref.shape[-2:], mode="nearest")
    if mode == "bilinear":
        return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)
    raise ValueError(f"upsample_to: unknown mode {mode!r} (nearest or bilinear; deconv is DeconvUp)")


def crop_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Crop [B, C, h, w] to ``ref``'s (H, W) <= (h, w): a ceil-halving chain can exceed a floored level by 1."""
    return x[:, :, : ref.shape[-2], : ref.shape[-1]]


def bilinear_kernel(size: int) -> torch.Tensor:
    """[size, size] bilinear interpolation weights of a stride size/2 transposed conv (FCN / DLA init)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(size, dtype=torch.float32) - center).abs() / factor
    return ramp[:, None] * ramp[None, :]


class DeconvUp(nn.Module):
    """Learned up-sampling by f = 2**steps: a depthwise transposed conv, kernel 2f, stride f, padding f/2.

    DLA's IDAUp ``up``: no bias, weights initialised to bilinear interpolation and trained.
    [B, C, h, w] -> [B, C, f*h, f*w], then cropped to ``ref``'s (H, W), or edge-padded where a
    backbone floored an odd size (f*h < H).
    """

    def __init__(self, channels: int, steps: int) -> None:
        super().__init__()
        f = 2**steps
        self.up = nn.ConvTranspose2d(channels, channels, 2 * f, f, f // 2, groups=channels, bias=False)
        with torch.no_grad():
            self.up.weight.copy_(bilinear_kernel(2 * f).expand_as(self.up.weight))

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        y = crop_to(self.up(x), ref)
        # a zero-width pad where sizes agree keeps the traced graph free of shape-dependent branches
        return F.pad(y, (0, ref.shape[-1] - y.shape[-1], 0, ref.shape[-2] - y.shape[-2]), mode="replicate")


def pool_same(x: torch.Tensor, stride: int, use_max: bool = True) -> torch.Tensor:
    """One pool with kernel = stride = s and TF's ``same`` padding: [B, C, H, W] -> [B, C, ceil(H/s), ceil(W/s)].

    Where s does not divide a size, TF pads ceil(H/s) * s - H in all, the smaller half before;
    the padding never wins a max and is not counted in an average.
    """
    h, w = x.shape[-2:]
    pad = ((-h % stride) // 2, (-w % stride) // 2)
    if use_max:
        return F.max_pool2d(x, stride, stride, pad, ceil_mode=True)
    return F.avg_pool2d(x, stride, stride, pad, ceil_mode=True, count_include_pad=False)


class PoolDown(nn.Module):
    """Parameter-free down-sampling by 2**steps with max- or avg-pools, cropped to ``ref``.

    ``single`` False: ``steps`` 3x3 stride-2 pools with padding 1 (EfficientDet's chain);
    True: one pool with kernel = stride = 2**steps (NAS-FPN's, see :func:`pool_same`).
    """

    def __init__(self, steps: int, mode: str, single: bool = False) -> None:
        super().__init__()
        self.steps, self.max, self.single = steps, mode == "maxpool", single

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        if self.single:
            return crop_to(pool_same(x, 2**self.steps, self.max), ref)
        for _ in range(self.steps):
            x = F.max_pool2d(x, 3, 2, 1) if self.max else F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
        return crop_to(x, ref)


class ConvDown(nn.Module):
    """Learned down-sampling by 2**steps: 3x3 stride-2 conv + norm per step (act between steps).

    ``act_last`` also applies the activation after the last step (resample ``down: conv_act``:
    PANet's conv -> norm -> ReLU). [B, C_in, H, W] -> [B, C_out, H / 2**steps, W / 2**steps]
    cropped to ``ref``. The compiler projects an edge to the neck width first, so in practice C_in == C_out.
    """

    def __init__(self, c_in: int, c_out: int, steps: int, op: OpSpec, act_last: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(steps):
            if i:
                layers.append(make_act(op.act, inplace=True))
            layers.append(ConvNorm(c_in if i == 0 else c_out, c_out, 3, 2, op.norm, op.bias))
        if act_last:
            layers.append(make_act(op.act, inplace=True))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return crop_to(self.body(x), ref)


class ExtraLevels(nn.Module):
    """Makes the pyramid levels past the backbone's last one, and owns that level's projection.

    Input: the last backbone feature [B, C_in, H, W]. Output: (that level's tensor for the cells,
    ``count`` extra-level tensors [B, width, ...], each half the size (ceil) of the one before).
    The first is the input itself, except for the ``lateral_*`` kinds, which share their projection
    with the cells and return it.

    ``pool`` (EfficientDet): ``proj`` (1x1 conv + norm where channels differ), then 3x3/2 max-pool;
    each further level is a max-pool of the previous one. ``conv`` (RetinaNet): a 3x3 stride-2 conv
    (bias, no norm) on the last backbone feature, then ReLU + 3x3 stride-2 conv per level.
    ``lateral_pool`` (TF NAS-FPN) and ``lateral_conv_pool`` (mmdetection NAS-FPN): ``proj`` (1x1 conv
    + norm where channels differ) makes the lateral, which is both the cells' input at that level and
    the source of the extra levels; each extra level is a 2x2/2 max-pool (TF ``same`` padding) of the
    one before, after its own 1x1 conv + norm in ``lateral_conv_pool``.
    """

    def __init__(self, kind: str, c_in: int, width: int, count: int, norm: str, bias: bool) -> None:
        super().__init__()
        self.kind, self.count = kind, count
        self.shares_lateral = kind in LATERAL_EXTRA_LEVELS
        if kind == "pool" or self.shares_lateral:
            self.proj = ConvNorm(c_in, width, 1, 1, norm, bias) if c_in != width else nn.Identity()
            per_level = kind == "lateral_conv_pool"
            self.convs = nn.ModuleList(
                [ConvNorm(width, width, 1, 1, norm, bias) for _ in range(count if per_level else 0)]
            )
        else:
            self.proj = nn.Identity()
            self.convs = nn.ModuleList([nn.Conv2d(c_in if i == 0 else width, width, 3, 2, 1) for i in range(count)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        out: list[torch.Tensor] = []
        if self.shares_lateral:
            last = y = self.proj(x)
            for i in range(self.count):
                y = pool_same(self.convs[i](y) if self.convs else y, 2)
                out.append(y)
            return last, out
        if self.kind == "pool":
            y = self.proj(x)
            for _ in range(self.count):
                y = F.max_pool2d(y, 3, 2, 1)
                out.append(y)
            return x, out
        y = x
        for i, conv in enumerate(self.convs):
            y = conv(F.relu(y) if i else y)
            out.append(y)
        return x, out
