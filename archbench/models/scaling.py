"""Scaling rules: phi -> the model configuration (backbone, neck width and repeats, head depth, resolution).

``efficientdet`` is the paper's table (the official code hard-codes it: the widths are not a
plain rounding of 64 * 1.35**phi). ``proxy`` has the same shape of growth laws — geometric
width, linear repeats and resolution, one more head layer every 3 phi — with flatter
coefficients (width x1.25 per phi, half a repeat per phi, +16 px per phi) on a narrow
ResNet-10 at 128 px, so the default ``--phi 0..3`` sweep trains in about half an hour on two
CPU cores (bifpn training-step time x1.25 / x1.63 / x1.81 of phi 0, measured). ``CompoundRule``
is the parametric form the Optuna search varies.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from archbench.errors import UserError
from archbench.spec.schema import DEFAULT_LEVELS

#: Proxy images are ~128 px with 8..60 px objects: 16 px anchors at P3 instead of EfficientDet's 32 px.
ANCHOR_SIZE_PROXY = 2.0
BACKBONE_LEVELS = (3, 4, 5)


@dataclass(frozen=True)
class ModelConfig:
    """Everything that sizes a detector or segmenter at one phi. Resolution is the square input side in px."""

    preset: str
    phi: int
    backbone: str
    width: int
    repeats: int
    head_depth: int
    resolution: int
    levels: tuple[int, ...] = DEFAULT_LEVELS
    backbone_levels: tuple[int, ...] = BACKBONE_LEVELS
    #: anchor side at scale 1 = anchor_size * stride (EfficientDet: 4, i.e. 32 px at P3)
    anchor_size: float = 4.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["levels"], d["backbone_levels"] = list(self.levels), list(self.backbone_levels)
        return d


@dataclass(frozen=True)
class TableRule:
    """A rule given as a per-phi table (EfficientDet D0..D7)."""

    name: str
    backbones: tuple[str, ...]
    widths: tuple[int, ...]
    repeats: tuple[int, ...]
    head_depths: tuple[int, ...]
    resolutions: tuple[int, ...]

    @property
    def max_phi(self) -> int:
        return len(self.widths) - 1

    def config(self, phi: int) -> ModelConfig:
        if not 0 <= phi <= self.max_phi:
            raise UserError(f"preset {self.name!r} defines phi 0..{self.max_phi}, got {phi}")
        return ModelConfig(
            self.name,
            phi,
            self.backbones[phi],
            self.widths[phi],
            self.repeats[phi],
            self.head_depths[phi],
            self.resolutions[phi],
        )


@dataclass(frozen=True)
class CompoundRule:
    """EfficientDet's growth laws with free coefficients.

    width = round8(width_base * width_growth**phi); repeats = min(repeats_max, repeats_base +
    repeats_step * phi); head_depth = head_base + floor(phi / head_every); resolution =
    round(resolution_base + resolution_step * phi) to a multiple of ``resolution_multiple``; backbone =
    backbones[min(phi, len - 1)].
    """

    name: str
    backbones: tuple[str, ...]
    width_base: float
    width_growth: float
    repeats_base: int
    repeats_step: float
    repeats_max: int
    head_base: int
    head_every: int
    resolution_base: int
    resolution_step: int
    anchor_size: float = 4.0
    max_phi: int = 7
    resolution_multiple: int = 32

    @staticmethod
    def preset_coefficients(base: TableRule | CompoundRule) -> dict[str, Any]:
        """Every coefficient of the preset ``base`` but its name: what a search does not vary.

        ``base`` must be a compound preset (a per-phi table has no coefficients; search spaces refuse it).
        """
        return {f.name: getattr(base, f.name) for f in fields(CompoundRule) if f.name != "name"}

    def config(self, phi: int) -> ModelConfig:
        if not 0 <= phi <= self.max_phi:
            raise UserError(f"preset {self.name!r} defines phi 0..{self.max_phi}, got {phi}")
        width = max(8, int(round(self.width_base * self.width_growth**phi / 8)) * 8)
        repeats = max(1, min(self.repeats_max, int(math.floor(self.repeats_base + self.repeats_step * phi))))
        head = self.head_base + phi // self.head_every
        step = self.resolution_multiple
        res = max(step, int(round((self.resolution_base + self.resolution_step * phi) / step)) * step)
        return ModelConfig(
            self.name,
            phi,
            self.backbones[min(phi, len(self.backbones) - 1)],
            width,
            repeats,
            head,
            res,
            anchor_size=self.anchor_size,
        )


EFFICIENTDET = TableRule(
    name="efficientdet",
    backbones=tuple(f"efficientnet_b{b}" for b in (0, 1, 2, 3, 4, 5, 6, 6)),
    widths=(64, 88, 112, 160, 224, 288, 384, 384),
    repeats=(3, 4, 5, 6, 7, 7, 8, 8),
    head_depths=(3, 3, 3, 4, 4, 4, 5, 5),
    resolutions=(512, 640, 768, 896, 1024, 1280, 1280, 1536),
)

PROXY = CompoundRule(
    name="proxy",
    backbones=("resnet10t_c24", "resnet10t_c24", "resnet10t_c32"),
    width_base=32,
    width_growth=1.25,
    repeats_base=2,
    repeats_step=0.5,
    repeats_max=6,
    head_base=2,
    head_every=3,
    resolution_base=128,
    resolution_step=16,
    resolution_multiple=16,
    anchor_size=ANCHOR_SIZE_PROXY,
)

PRESETS: dict[str, TableRule | CompoundRule] = {r.name: r for r in (EFFICIENTDET, PROXY)}


def get_rule(name: str) -> TableRule | CompoundRule:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


@dataclass(frozen=True)
class EfficientNetRule:
    """EfficientNet's compound scaling of a base model: depth x alpha**phi, width x beta**phi, resolution x gamma**phi.

    width = round8(width_base * beta**phi); repeats = ceil(repeats_base * alpha**phi) and head depth =
    ceil(head_base * alpha**phi) (EfficientNet rounds layer counts up); resolution = round8(resolution_base *
    gamma**phi); backbone = backbones[min(phi, len - 1)]. ``alpha * beta**2 * gamma**2 ~= 2`` doubles the
    FLOPs of what the coefficients scale (neck cells, head convs, input size) per phi step; the backbone
    grows with the resolution only.

    The rounding makes each coefficient a step function: at phi 1 the depth changes only where
    ``alpha`` crosses ``k / repeats_base`` (``k / head_base``), the width every ``8 / width_base`` of
    ``beta`` and the resolution every ``8 / resolution_base`` of ``gamma``. Values between two steps
    train the same model, so a search space steps the coefficients it searches
    (search_spaces/efficientnet_abg.yaml).
    """

    name: str
    backbones: tuple[str, ...]
    alpha: float
    beta: float
    gamma: float
    width_base: int
    repeats_base: int
    head_base: int
    resolution_base: int
    anchor_size: float = 4.0
    max_phi: int = 7

    @staticmethod
    def preset_coefficients(base: TableRule | CompoundRule) -> dict[str, Any]:
        """The base model of a preset (its phi-0 config) as coefficients, with the preset's backbones."""
        zero = base.config(0)
        return {
            "backbones": tuple(base.backbones),
            "width_base": zero.width,
            "repeats_base": zero.repeats,
            "head_base": zero.head_depth,
            "resolution_base": zero.resolution,
            "anchor_size": zero.anchor_size,
        }

    def config(self, phi: int) -> ModelConfig:
        if not 0 <= phi <= self.max_phi:
            raise UserError(f"preset {self.name!r} defines phi 0..{self.max_phi}, got {phi}")
        width = max(8, int(round(self.width_base * self.beta**phi / 8)) * 8)
        repeats = max(1, math.ceil(self.repeats_base * self.alpha**phi - 1e-9))
        head = max(1, math.ceil(self.head_base * self.alpha**phi - 1e-9))
        res = max(32, int(round(self.resolution_base * self.gamma**phi / 8)) * 8)
        return ModelConfig(
            self.name,
            phi,
            self.backbones[min(phi, len(self.backbones) - 1)],
            width,
            repeats,
            head,
            res,
            anchor_size=self.anchor_size,
        )


ParametricRule = CompoundRule | EfficientNetRule
#: The parametric rule kinds by the name a search space's ``rule:`` and a stored rule's ``kind`` give them.
RULE_KINDS: dict[str, type[ParametricRule]] = {"compound": CompoundRule, "efficientnet": EfficientNetRule}


def rule_to_dict(rule: ParametricRule) -> dict[str, Any]:
    """A parametric rule as plain JSON data, with its ``kind``; :func:`rule_from_dict` reads it back."""
    kind = next(k for k, cls in RULE_KINDS.items() if isinstance(rule, cls))
    d = asdict(rule)
    d["backbones"] = list(rule.backbones)
    return {"kind": kind, **d}


def rule_from_dict(data: dict[str, Any]) -> ParametricRule:
    """The rule that :func:`rule_to_dict` wrote (e.g. into a search trial's attributes)."""
    values = dict(data)
    cls = RULE_KINDS.get(values.pop("kind", None))
    if cls is None:
        raise UserError(f"unknown scaling rule kind {data.get('kind')!r}: expected one of {', '.join(RULE_KINDS)}")
    values["backbones"] = tuple(values["backbones"])
    return cls(**values)
