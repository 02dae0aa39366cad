"""The part every task model shares: a timm backbone and the compiled neck on its features."""

from __future__ import annotations

from torch import nn

from archbench.models.backbone import Backbone
from archbench.neck.compiler import compile_neck
from archbench.scaling import ModelConfig
from archbench.spec.model import NeckSpec


def build_trunk(spec: NeckSpec, config: ModelConfig, pretrained_backbone: bool = False,
                neck_overrides: dict | None = None) -> tuple[Backbone, nn.Module]:
    """(backbone, neck) sized by ``config``; the neck maps the backbone's levels to ``config.levels``."""
    if tuple(spec.levels) != tuple(config.levels):
        raise ValueError(f"neck {spec.name!r} has levels {list(spec.levels)}, the model config {list(config.levels)}")
    backbone = Backbone(config.backbone, config.backbone_levels, pretrained_backbone)
    neck = compile_neck(spec, backbone.channels, config.width, config.repeats, **(neck_overrides or {}))
    return backbone, neck
