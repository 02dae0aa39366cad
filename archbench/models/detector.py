"""An EfficientDet-style detector: timm backbone -> compiled neck -> shared class / box nets."""

from __future__ import annotations

import torch
from torch import nn

from archbench.models.heads import DetectionHead
from archbench.models.scaling import ModelConfig
from archbench.models.seeding import part_init
from archbench.models.trunk import build_trunk
from archbench.spec.schema import NeckSpec


class Detector(nn.Module):
    """images [B, 3, H, W] -> (class logits, box deltas), one tensor per pyramid level.

    class logits: [B, A * num_classes, H_l, W_l]; box deltas: [B, A * 4, H_l, W_l], with
    A = ``num_anchors`` per location. Parts are the attributes ``backbone``, ``neck``,
    ``class_net`` and ``box_net`` (what cost reports split by). ``init_seed``: backbone, neck and head each
    drawn from their own stream (:mod:`archbench.models.seeding`), so detectors of one seed share backbone and
    head weights whatever their neck; None: everything from the global stream in build order.
    """

    def __init__(
        self,
        spec: NeckSpec,
        config: ModelConfig,
        num_classes: int,
        num_anchors: int = 9,
        pretrained_backbone: bool = False,
        neck_overrides: dict | None = None,
        init_seed: int | None = None,
    ) -> None:
        super().__init__()
        self.config, self.num_classes, self.num_anchors = config, num_classes, num_anchors
        self.backbone, self.neck = build_trunk(spec, config, pretrained_backbone, neck_overrides, init_seed)
        with part_init(init_seed, "head"):
            head = self.build_head(config, num_classes, num_anchors)
        # The nets sit on the detector itself, so parameters keep the names checkpoints hold (class_net.*, box_net.*).
        self.class_net, self.box_net = head.class_net, head.box_net

    @staticmethod
    def build_head(config: ModelConfig, num_classes: int, num_anchors: int = 9) -> DetectionHead:
        """The detector's head at ``config``: class and box nets of the neck's width, ``config.head_depth`` deep."""
        return DetectionHead(config.width, config.head_depth, len(config.levels), num_anchors, num_classes)

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        feats = self.neck(self.backbone(images))
        return self.class_net(feats), self.box_net(feats)
