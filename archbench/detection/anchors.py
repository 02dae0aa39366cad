"""Anchor boxes for an EfficientDet-style head, and the matching flattening of its outputs.

Conventions (shared by every function here, the loss and the post-processing):

- Boxes are ``xyxy`` in pixels of the network's (square, letterboxed) input frame.
- Level ``l`` has stride ``s_l`` (``2**L`` for pyramid level ``L``) and a feature map of
  ``H_l x W_l`` cells; the centre of cell ``(y, x)`` is ``((x + 0.5) * s_l, (y + 0.5) * s_l)``.
- Each cell has ``A = len(scales) * len(ratios)`` anchors, index ``a = i_scale * len(ratios) + i_ratio``.
  The anchor *side* is ``size * stride * scale`` and ``ratio = h / w`` at constant area:
  ``w = side / sqrt(ratio)``, ``h = side * sqrt(ratio)``.
- The flat anchor index is level-major, then ``(y, x, a)``: level ``l`` occupies a contiguous
  block of ``H_l * W_l * A`` rows and, inside it, row ``(y * W_l + x) * A + a``.
- Head outputs ``[B, A * C, H, W]`` hold anchor ``a``'s ``C`` outputs in channels
  ``a * C .. a * C + C - 1`` (what a ``Conv2d`` with ``A * C`` outputs followed by a view to
  ``[B, A, C, H, W]`` means); :func:`flatten_head_outputs` turns them into ``[B, N, C]`` rows in
  the anchor order above.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AnchorConfig:
    """Anchor shapes per cell: ``len(scales) * len(ratios)`` anchors (scale-major).

    scales: multipliers of the base side (EfficientDet's octave scales 2**(i/3)).
    ratios: ``h / w`` of each anchor; the area ``side**2`` is kept for every ratio.
    size: base side in units of the level's stride (EfficientDet's ``anchor_scale`` = 4).
    """

    scales: tuple[float, ...] = (2**0, 2 ** (1 / 3), 2 ** (2 / 3))
    ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    size: float = 4.0

    @property
    def num_anchors(self) -> int:
        """Anchors per feature-map cell (A)."""
        return len(self.scales) * len(self.ratios)


def cell_anchors(stride: int, cfg: AnchorConfig) -> torch.Tensor:
    """The A anchors of one cell centred at the origin: [A, 4] xyxy in pixels (float64)."""
    rows = []
    for scale in cfg.scales:
        side = cfg.size * stride * scale
        for ratio in cfg.ratios:
            w, h = side / math.sqrt(ratio), side * math.sqrt(ratio)
            rows.append((-w / 2, -h / 2, w / 2, h / 2))
    return torch.tensor(rows, dtype=torch.float64)


@functools.lru_cache(maxsize=64)
def _anchors_cached(
    feature_sizes: tuple[tuple[int, int], ...], strides: tuple[int, ...], cfg: AnchorConfig, device: str
) -> torch.Tensor:
    per_level = []
    for (h, w), stride in zip(feature_sizes, strides):
        ys = (torch.arange(h, dtype=torch.float64) + 0.5) * stride
        xs = (torch.arange(w, dtype=torch.float64) + 0.5) * stride
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")  # [H, W]
        centres = torch.stack([cx, cy, cx, cy], dim=-1)  # [H, W, 4]
        boxes = centres[:, :, None, :] + cell_anchors(stride, cfg)[None, None]  # [H, W, A, 4]
        per_level.append(boxes.reshape(-1, 4))
    out = torch.cat(per_level).to(torch.float32).to(device)
    out.requires_grad_(False)
    return out


def anchors_for(
    feature_sizes: Sequence[tuple[int, int]],
    strides: Sequence[int],
    cfg: AnchorConfig = AnchorConfig(),
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """All anchors of a pyramid: [sum_l H_l * W_l * A, 4] float32 xyxy in input pixels.

    feature_sizes: ``(H_l, W_l)`` per level, in the order of the head outputs.
    strides: pixel stride per level (``2**L``).
    Row order matches :func:`flatten_head_outputs` (level, y, x, a). The result is cached per
    ``(feature_sizes, strides, cfg, device)`` because training asks for it every step: treat
    it as read-only (clone before modifying in place).
    """
    if len(feature_sizes) != len(strides):
        raise ValueError(f"{len(feature_sizes)} feature sizes but {len(strides)} strides")
    sizes = tuple((int(h), int(w)) for h, w in feature_sizes)
    return _anchors_cached(sizes, tuple(int(s) for s in strides), cfg, str(torch.device(device)))


def feature_sizes_of(outputs: Sequence[torch.Tensor]) -> list[tuple[int, int]]:
    """``(H_l, W_l)`` of each per-level head output ``[B, C, H_l, W_l]``."""
    return [(int(o.shape[-2]), int(o.shape[-1])) for o in outputs]


def _flatten(outputs: Sequence[torch.Tensor], per_anchor: int) -> torch.Tensor:
    flat = []
    for o in outputs:
        b, c, h, w = o.shape
        if c % per_anchor:
            raise ValueError(f"head output has {c} channels, not a multiple of {per_anchor}")
        # [B, A*C, H, W] -> [B, H, W, A*C] -> [B, H*W*A, C]: channel a*C + c splits as (a, c)
        flat.append(o.permute(0, 2, 3, 1).reshape(b, h * w * (c // per_anchor), per_anchor))
    return torch.cat(flat, dim=1)


def flatten_head_outputs(
    cls_outs: Sequence[torch.Tensor], box_outs: Sequence[torch.Tensor], num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-level head outputs -> anchor-ordered rows.

    cls_outs: per level [B, A * num_classes, H_l, W_l] logits.
    box_outs: per level [B, A * 4, H_l, W_l] box deltas.
    Returns ``(cls [B, N, num_classes], box [B, N, 4])`` with ``N = sum_l H_l * W_l * A``, rows
    in the order of :func:`anchors_for` for the same feature sizes.
    """
    if len(cls_outs) != len(box_outs):
        raise ValueError(f"{len(cls_outs)} class outputs but {len(box_outs)} box outputs")
    cls, box = _flatten(cls_outs, num_classes), _flatten(box_outs, 4)
    if cls.shape[1] != box.shape[1]:
        raise ValueError(f"class head gives {cls.shape[1]} anchors, box head {box.shape[1]}")
    return cls, box
