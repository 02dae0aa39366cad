"""PANet (Liu et al. 2018): FPN's top-down path followed by a bottom-up path augmentation."""

from __future__ import annotations

from archbench.spec.families.registry import check_levels, family, node
from archbench.spec.schema import DEFAULT_LEVELS, NeckSpec, OpSpec, ResampleSpec


@family("panet")
def panet(levels: tuple[int, ...] = DEFAULT_LEVELS) -> NeckSpec:
    lo, hi = check_levels("panet", levels)
    nodes = [node(f"td{hi}", hi, f"in{hi}")]
    nodes += [node(f"td{lvl}", lvl, f"in{lvl}", f"td{lvl + 1}") for lvl in range(hi - 1, lo - 1, -1)]
    nodes.append(node(f"out{lo}", lo, f"td{lo}"))
    nodes += [node(f"out{lvl}", lvl, f"td{lvl}", f"out{lvl - 1}") for lvl in range(lo + 1, hi + 1)]
    return NeckSpec(
        name="panet",
        description=(
            "PANet (Liu et al. 2018): an FPN top-down path followed by a bottom-up path augmentation. "
            "Every node is sum fusion then 3x3 conv + BN + ReLU (single-input nodes are plain convs); the "
            "bottom-up path goes down with 3x3 stride-2 convs as in the paper. All levels, extra ones "
            "included, take part in both paths, which is the repeated FPN+PANet of EfficientDet's Table 5; "
            "extra levels come from RetinaNet-style stride-2 convs."
        ),
        levels=tuple(levels),
        nodes=tuple(nodes),
        outputs={lvl: f"out{lvl}" for lvl in range(lo, hi + 1)},
        fuse="sum",
        op=OpSpec(type="conv", kernel=3, norm="bn", act="relu", order="conv_first"),
        resample=ResampleSpec(up="nearest", down="conv"),
        extra_levels="conv",
    )
