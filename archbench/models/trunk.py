"""The part every task model shares: a timm backbone and the compiled neck on its features."""

from __future__ import annotations

from torch import nn

from archbench.errors import UserError
from archbench.models.backbone import Backbone
from archbench.models.scaling import ModelConfig
from archbench.models.seeding import part_init
from archbench.neck.compiler import compile_neck
from archbench.spec.schema import NeckSpec


def check_levels(spec: NeckSpec, config: ModelConfig) -> None:
    """UserError unless ``spec`` is defined on exactly the levels ``config`` builds (its outputs feed the heads).

    Checked once where a spec is paired with a config from the user's choices (a run's preparation,
    ``archbench profile``), before any data is opened or any model built; the builders trust the pair.
    """
    if tuple(spec.levels) != tuple(config.levels):
        levels = f"{config.levels[0]}-{config.levels[-1]}"
        raise UserError(
            f"neck {spec.name!r} is defined on levels {list(spec.levels)} but preset {config.preset!r} "
            f"builds levels {list(config.levels)}; generate the spec for those levels "
            f"(archbench specs show FAMILY --levels {levels}) or set its `levels:` to them"
        )


def build_trunk(
    spec: NeckSpec,
    config: ModelConfig,
    pretrained_backbone: bool = False,
    neck_overrides: dict | None = None,
    init_seed: int | None = None,
) -> tuple[Backbone, nn.Module]:
    """(backbone, neck) sized by ``config``; the neck maps the backbone's levels to ``config.levels``.

    ``spec`` must be defined on ``config.levels`` (see :func:`check_levels`). ``init_seed``: each part is
    initialised from its own stream (:func:`archbench.models.seeding.part_init`); None: from the global one.
    """
    with part_init(init_seed, "backbone"):
        backbone = Backbone(config.backbone, config.backbone_levels, pretrained_backbone)
    with part_init(init_seed, "neck"):
        neck = compile_neck(spec, backbone.channels, config.width, config.repeats, **(neck_overrides or {}))
    return backbone, neck
