"""EfficientDet-style class and box nets, shared across pyramid levels: the detection head.

Each net is ``depth`` x (separable 3x3 conv -> BN -> act) followed by a separable 3x3 prediction
conv. Convs are shared by all levels; BatchNorms are per level (as in EfficientDet, whose
statistics differ by level). Conv biases are kept as in the TF models.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from archbench.neck.layers import make_act

#: Focal-loss prior: every anchor's class logits start at p = FOCAL_PRIOR of an object.
FOCAL_PRIOR = 0.01


def _sepconv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False), nn.Conv2d(c_in, c_out, 1))


class HeadNet(nn.Module):
    """list of n_levels [B, width, H_l, W_l] -> list of [B, num_anchors * outputs_per_anchor, H_l, W_l]."""

    def __init__(
        self,
        width: int,
        depth: int,
        n_levels: int,
        num_anchors: int,
        outputs_per_anchor: int,
        act: str = "swish",
        prior_prob: float | None = None,
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_sepconv(width, width) for _ in range(depth))
        self.norms = nn.ModuleList(nn.ModuleList(nn.BatchNorm2d(width) for _ in range(depth)) for _ in range(n_levels))
        self.act = make_act(act, inplace=True)  # on the norm's fresh output
        self.predict = _sepconv(width, num_anchors * outputs_per_anchor)
        if prior_prob is not None:  # focal-loss prior: every anchor starts as background with p = prior_prob
            bias = cast(torch.Tensor, self.predict[1].bias)
            nn.init.constant_(bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        outs = []
        for level, x in enumerate(features):
            for conv, norm in zip(self.convs, cast(nn.ModuleList, self.norms[level])):
                x = self.act(norm(conv(x)))
            outs.append(self.predict(x))
        return outs


class DetectionHead(nn.Module):
    """The class net and the box net on the neck's levels.

    features: n_levels x [B, width, H_l, W_l] -> (class logits: n_levels x [B, A * num_classes, H_l, W_l],
    box deltas: n_levels x [B, A * 4, H_l, W_l]), A = ``num_anchors`` per location. ``size``, the input
    image's (H, W), is accepted so every task's head is called alike; boxes are predicted per level.
    """

    def __init__(self, width: int, depth: int, n_levels: int, num_anchors: int, num_classes: int) -> None:
        super().__init__()
        self.class_net = HeadNet(width, depth, n_levels, num_anchors, num_classes, prior_prob=FOCAL_PRIOR)
        self.box_net = HeadNet(width, depth, n_levels, num_anchors, 4)

    def forward(
        self, features: list[torch.Tensor], size: tuple[int, int] | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return self.class_net(features), self.box_net(features)
