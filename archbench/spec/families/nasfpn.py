"""NAS-FPN (Ghiasi, Lin, Le 2019): the published searched cell, TF and mmdetection gates."""

from __future__ import annotations

from archbench.errors import UserError
from archbench.spec.families.registry import family, node
from archbench.spec.schema import DEFAULT_LEVELS, AttentionSpec, NeckSpec, OpSpec, ResampleSpec


@family("nasfpn", ("nasfpn_mmdet", {"gate": "second", "pool": "avg"}))
def nasfpn(levels: tuple[int, ...] = DEFAULT_LEVELS, gate: str = "coarser", pool: str = "max") -> NeckSpec:
    if tuple(levels) != DEFAULT_LEVELS:
        raise UserError(f"nasfpn: the published NAS-FPN cell is defined on levels 3..7 only, got {list(levels)}")
    att, s = {"fuse": "attention"}, {"fuse": "sum"}
    nodes = [
        node("p4_1", 4, "in6", "in4", **att),
        node("p4_2", 4, "p4_1", "in4", **s),
        node("out3", 3, "p4_2", "in3", **s),
        node("out4", 4, "out3", "p4_2", **s),
        node("out5", 5, "out4", "out3", "in5", **att),
        node("out7", 7, "out5", "p4_2", "in7", **att),
        node("out6", 6, "out7", "out5", **att),
    ]
    gate_text = (
        "the TensorFlow reference's gate: out = coarser + finer * sigmoid(global max-pool of the coarser input)"
        if gate == "coarser"
        else "mmdetection's gate: out = second + first * sigmoid(global pool of the second input)"
    )
    return NeckSpec(
        name="nasfpn",
        description=(
            "NAS-FPN (Ghiasi, Lin, Le 2019): the published 7-cell topology found by search, with sum and "
            f"global-pooling attention cells. Attention uses {gate_text}, pool={pool} (the spec's attention "
            "section switches between the TF default and mmdetection's avg-pool-of-the-second-input). Inputs are "
            "listed in mmdetection's argument order. Output nodes at levels 5 and 7 also add the same-level "
            "input that no cell consumed, inside the node, before the node's conv (as both the TF reference and "
            "mmdetection do). Each cell: ReLU -> 3x3 conv -> BN; max-pool down, nearest up; P6/P7 by 1x1 conv "
            "+ BN and 3x3/2 max-pools (mmdetection gives each extra level its own 1x1 conv and 2x2 pool). "
            "The paper stacks 7 cells at 256 channels."
        ),
        levels=DEFAULT_LEVELS,
        nodes=tuple(nodes),
        outputs={3: "out3", 4: "out4", 5: "out5", 6: "out6", 7: "out7"},
        fuse="sum",
        op=OpSpec(type="conv", kernel=3, norm="bn", act="relu", order="act_first"),
        attention=AttentionSpec(pool=pool, gate=gate),
        resample=ResampleSpec(up="nearest", down="maxpool"),
        extra_levels="pool",
    )
