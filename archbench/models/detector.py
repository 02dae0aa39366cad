"""An EfficientDet-style detector: timm backbone -> compiled neck -> shared class / box nets."""

from __future__ import annotations

import torch
from torch import nn

from archbench.models.heads import HeadNet
from archbench.models.trunk import build_trunk
from archbench.models.scaling import ModelConfig
from archbench.spec.model import NeckSpec

FOCAL_PRIOR = 0.01


class Detector(nn.Module):
    """images [B, 3, H, W] -> (class logits, box deltas), one tensor per pyramid level.

    class logits: [B, A * num_classes, H_l, W_l]; box deltas: [B, A * 4, H_l, W_l], with
    A = ``num_anchors`` per location. Parts are the attributes ``backbone``, ``neck``,
    ``class_net`` and ``box_net`` (what cost reports split by).
    """

    def __init__(self, spec: NeckSpec, config: ModelConfig, num_classes: int, num_anchors: int = 9,
                 pretrained_backbone: bool = False, neck_overrides: dict | None = None) -> None:
        super().__init__()
        self.config, self.num_classes, self.num_anchors = config, num_classes, num_anchors
        self.backbone, self.neck = build_trunk(spec, config, pretrained_backbone, neck_overrides)
        n_levels = len(config.levels)
        self.class_net = HeadNet(config.width, config.head_depth, n_levels, num_anchors, num_classes,
                                 prior_prob=FOCAL_PRIOR)
        self.box_net = HeadNet(config.width, config.head_depth, n_levels, num_anchors, 4)

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        feats = self.neck(self.backbone(images))
        return self.class_net(feats), self.box_net(feats)
