"""Faster R-CNN box coding: boxes <-> deltas (dx, dy, dw, dh) relative to anchors.

    dx = wx * (cx - cx_a) / w_a     dy = wy * (cy - cy_a) / h_a
    dw = ww * log(w / w_a)          dh = wh * log(h / h_a)

Written here rather than taken from torchvision: its ``BoxCoder`` lives in the private
``torchvision.models.detection._utils`` module and works on per-image lists; these two
functions broadcast over any leading dims (``[..., 4]``), which the batched loss needs.
"""

from __future__ import annotations

import math

import torch

#: Cap on decoded log-scale deltas (as in torchvision / Detectron): exp(dw) <= 1000/16.
DELTA_CLAMP = math.log(1000.0 / 16)
Weights = tuple[float, float, float, float]


def _centre_size(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * w, boxes[..., 1] + 0.5 * h, w, h


def encode_boxes(
    anchors: torch.Tensor, boxes: torch.Tensor, weights: Weights = (1.0, 1.0, 1.0, 1.0), min_size: float = 1e-3
) -> torch.Tensor:
    """Target deltas of ``boxes`` w.r.t. ``anchors``: [..., 4] xyxy px (broadcastable) -> [..., 4].

    Box widths / heights below ``min_size`` px are clamped so degenerate boxes give finite
    (large negative) dw / dh instead of -inf.
    """
    acx, acy, aw, ah = _centre_size(anchors)
    cx, cy, w, h = _centre_size(boxes)
    w, h = w.clamp(min=min_size), h.clamp(min=min_size)
    wx, wy, ww, wh = weights
    return torch.stack(
        [wx * (cx - acx) / aw, wy * (cy - acy) / ah, ww * torch.log(w / aw), wh * torch.log(h / ah)], dim=-1
    )


def decode_boxes(
    anchors: torch.Tensor, deltas: torch.Tensor, weights: Weights = (1.0, 1.0, 1.0, 1.0), clamp: float = DELTA_CLAMP
) -> torch.Tensor:
    """Boxes from deltas: anchors [..., 4] xyxy px, deltas [..., 4] -> boxes [..., 4] xyxy px.

    dw / dh are clamped at ``clamp`` (log(1000/16)) before ``exp`` so a wild prediction can not
    overflow. Computed in the deltas' dtype promoted with the anchors' (float32 under AMP).
    """
    acx, acy, aw, ah = _centre_size(anchors)
    wx, wy, ww, wh = weights
    dx, dy = deltas[..., 0] / wx, deltas[..., 1] / wy
    dw, dh = (deltas[..., 2] / ww).clamp(max=clamp), (deltas[..., 3] / wh).clamp(max=clamp)
    cx, cy = acx + dx * aw, acy + dy * ah
    w, h = aw * torch.exp(dw), ah * torch.exp(dh)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)
