"""The semantic-FPN head (Kirillov et al., "Panoptic Feature Pyramid Networks", 2019).

Every pyramid level is brought to the finest level by stages of 3x3 conv -> BN -> ReLU, each
followed by a bilinear upsampling to the next finer level's exact size (a level i steps above
the finest gets i stages; the finest gets one stage and no upsampling); the levels are summed,
a 1x1 conv classifies each pixel, and the logits are upsampled bilinearly to the input size.
The paper normalises with GroupNorm for its 2-image GPU batches; archbench's batches are large
enough for BatchNorm, which the necks and detection heads use too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn


def _stage(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())


class SemanticFPNHead(nn.Module):
    """list of n_levels [B, width, H_l, W_l] (finest first) -> logits [B, num_classes, H, W] at ``size``."""

    def __init__(self, width: int, n_levels: int, num_classes: int) -> None:
        super().__init__()
        self.levels = nn.ModuleList(nn.ModuleList(_stage(width) for _ in range(max(1, i))) for i in range(n_levels))
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        merged = None
        for i, (x, stages) in enumerate(zip(features, cast(Iterable[nn.ModuleList], self.levels))):
            for step, stage in enumerate(stages):
                x = stage(x)
                if i > 0:  # up one level, to that level's exact size (odd input sizes included)
                    x = F.interpolate(x, size=features[i - 1 - step].shape[-2:], mode="bilinear", align_corners=False)
            merged = x if merged is None else merged + x
        return F.interpolate(self.classifier(merged), size=size, mode="bilinear", align_corners=False)
