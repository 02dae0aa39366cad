"""A semantic segmenter: timm backbone -> compiled neck -> semantic-FPN head, per-pixel class logits."""

from __future__ import annotations

import torch
from torch import nn

from archbench.models.scaling import ModelConfig
from archbench.models.seeding import part_init
from archbench.models.seg_head import SemanticFPNHead
from archbench.models.trunk import build_trunk
from archbench.spec.schema import NeckSpec


class Segmenter(nn.Module):
    """images [B, 3, H, W] -> class logits [B, num_classes, H, W].

    Built exactly like :class:`archbench.models.detector.Detector` up to the neck (same backbone,
    levels, width and repeats from the scaling rule); the head is a :class:`SemanticFPNHead` of the
    neck's width (the rule's head depth does not apply). Parts are the attributes ``backbone``,
    ``neck`` and ``head`` (what cost reports split by).
    """

    def __init__(
        self,
        spec: NeckSpec,
        config: ModelConfig,
        num_classes: int,
        pretrained_backbone: bool = False,
        neck_overrides: dict | None = None,
        init_seed: int | None = None,
    ) -> None:
        super().__init__()
        self.config, self.num_classes = config, num_classes
        self.backbone, self.neck = build_trunk(spec, config, pretrained_backbone, neck_overrides, init_seed)
        with part_init(init_seed, "head"):
            self.head = self.build_head(config, num_classes)

    @staticmethod
    def build_head(config: ModelConfig, num_classes: int) -> SemanticFPNHead:
        """The segmenter's head at ``config``: a semantic-FPN head of the neck's width over ``config.levels``."""
        return SemanticFPNHead(config.width, len(config.levels), num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.neck(self.backbone(images)), images.shape[-2:])
