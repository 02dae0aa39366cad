"""EfficientDet-style class and box nets, shared across pyramid levels.

Each net is ``depth`` x (separable 3x3 conv -> BN -> act) followed by a separable 3x3 prediction
conv. Convs are shared by all levels; BatchNorms are per level (as in EfficientDet, whose
statistics differ by level). Conv biases are kept as in the TF models.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from archbench.neck.layers import make_act


def _sepconv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False), nn.Conv2d(c_in, c_out, 1))


class HeadNet(nn.Module):
    """list of n_levels [B, width, H_l, W_l] -> list of [B, num_anchors * outputs_per_anchor, H_l, W_l]."""

    def __init__(self, width: int, depth: int, n_levels: int, num_anchors: int, outputs_per_anchor: int,
                 act: str = "swish", prior_prob: float | None = None) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_sepconv(width, width) for _ in range(depth))
        self.norms = nn.ModuleList(nn.ModuleList(nn.BatchNorm2d(width) for _ in range(depth)) for _ in range(n_levels))
        self.act = make_act(act, inplace=True)  # on the norm's fresh output
        self.predict = _sepconv(width, num_anchors * outputs_per_anchor)
        if prior_prob is not None:  # focal-loss prior: every anchor starts as background with p = prior_prob
            nn.init.constant_(self.predict[1].bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        outs = []
        for level, x in enumerate(features):
            for conv, norm in zip(self.convs, self.norms[level]):
                x = self.act(norm(conv(x)))
            outs.append(self.predict(x))
        return outs
