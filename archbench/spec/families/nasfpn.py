"""NAS-FPN (Ghiasi, Lin, Le 2019): the published searched cell, as TF Model Garden and mmdetection build it."""

from __future__ import annotations

from archbench.errors import UserError
from archbench.spec.families.registry import family, node
from archbench.spec.schema import DEFAULT_LEVELS, AttentionSpec, NeckSpec, NodeSpec, OpSpec, ResampleSpec

_REFERENCES = ("tf", "mmdet")

_COMMON_TEXT = (
    "NAS-FPN (Ghiasi, Lin, Le 2019): the published 7-cell topology found by search, with sum and "
    "global-pooling attention cells. The output nodes at levels 5 and 7 also add the same-level input that no "
    "cell consumed, inside the node, before its conv (as both references do). Each cell: ReLU -> 3x3 conv "
    "(bias) -> BN; a jump of k levels down is one max-pool with kernel = stride = 2^k, up-sampling nearest. "
    "Repeats and width come from the scaling preset (the paper stacks 7 cells at 256 channels). "
)
_TF_TEXT = (
    "Follows TF Model Garden (official/vision/modeling/decoders/nasfpn.py): inputs in its block-spec order; "
    "attention out = coarser + finer * sigmoid(global max-pool of the coarser input); the backbone levels "
    "get a 1x1 conv (bias) + BN where their channels differ from the width, and P6 = 2x2/2 max-pool of the "
    "P5 lateral (shared with the cells), P7 = 2x2/2 max-pool of P6. Deviations: BN keeps PyTorch's eps 1e-5 "
    "and momentum 0.1 (TF: 1e-3 and 0.99, i.e. 0.01 in PyTorch's convention); convs keep PyTorch's default "
    "init (TF: VarianceScaling(2, fan_out), zero bias); sizes that 2^k does not divide, which TF does not "
    "support for up-sampling, are handled by ceil-halving and exact-size nearest up-sampling."
)
_MMDET_TEXT = (
    "Follows mmdetection's NASFPN (mmdet/models/necks/nas_fpn.py with mmcv's merge cells): inputs in its "
    "argument order; attention out = second + first * sigmoid(global average pool of the second input); the "
    "cell convs carry a bias (mmcv's out_conv_cfg bias=True) while the 1x1 laterals and extra-level convs do "
    "not (ConvModule with BN); P6 = 2x2/2 max-pool of 1x1 conv + BN of the P5 lateral (shared with the "
    "cells), P7 the same on P6, each extra level with its own 1x1 conv. Deviations: a backbone level whose "
    "channels equal the width gets no lateral (mmdetection always has one); convs keep PyTorch's default "
    "init (mmdetection: Caffe2Xavier); where 2^k does not divide a size, pools use TF-'same' padding, which "
    "never wins a max, and the extra levels round up, where mmcv zero-pads and mmdetection's 2x2 extra pools "
    "round down (mmdetection pads images to a multiple of 128, so its configs never meet this; the proxy "
    "preset's 144 and 160 px inputs do)."
)


def _tf_nodes() -> list[NodeSpec]:
    """TF's NASFPN_BLOCK_SPECS decoded, inputs in (input_offset0, input_offset1) order, unconsumed input last."""
    att, s = {"fuse": "attention"}, {"fuse": "sum"}
    return [
        node("p4_1", 4, "in4", "in6", **att),
        node("p4_2", 4, "in4", "p4_1", **s),
        node("out3", 3, "in3", "p4_2", **s),
        node("out4", 4, "p4_2", "out3", **s),
        node("out5", 5, "out3", "out4", "in5", **att),
        node("out7", 7, "p4_2", "out5", "in7", **att),
        node("out6", 6, "out5", "out7", **att),
    ]


def _mmdet_nodes() -> list[NodeSpec]:
    """mmdetection's stage, inputs in its cells' (x1, x2) order; sum_55_5 / sum_77_7's p5 / p7 last."""
    bias = {"op": {"bias": True}}
    att, s = {"fuse": "attention", **bias}, {"fuse": "sum", **bias}
    return [
        node("p4_1", 4, "in6", "in4", **att),
        node("p4_2", 4, "p4_1", "in4", **s),
        node("out3", 3, "p4_2", "in3", **s),
        node("out4", 4, "out3", "p4_2", **s),
        node("out5", 5, "out4", "out3", "in5", **att),
        node("out7", 7, "out5", "p4_2", "in7", **att),
        node("out6", 6, "out7", "out5", **att),
    ]


@family("nasfpn", ("nasfpn_mmdet", {"reference": "mmdet"}))
def nasfpn(levels: tuple[int, ...] = DEFAULT_LEVELS, reference: str = "tf") -> NeckSpec:
    """NAS-FPN as TF Model Garden (``reference="tf"``) or mmdetection (``"mmdet"``) builds it, levels 3..7."""
    if tuple(levels) != DEFAULT_LEVELS:
        raise UserError(f"nasfpn: the published NAS-FPN cell is defined on levels 3..7 only, got {list(levels)}")
    if reference not in _REFERENCES:
        raise UserError(f"nasfpn: reference must be one of {', '.join(_REFERENCES)}, got {reference!r}")
    tf = reference == "tf"
    return NeckSpec(
        name="nasfpn",
        description=_COMMON_TEXT + (_TF_TEXT if tf else _MMDET_TEXT),
        levels=DEFAULT_LEVELS,
        nodes=tuple(_tf_nodes() if tf else _mmdet_nodes()),
        outputs={3: "out3", 4: "out4", 5: "out5", 6: "out6", 7: "out7"},
        fuse="sum",
        op=OpSpec(type="conv", kernel=3, norm="bn", act="relu", order="act_first", bias=tf),
        attention=AttentionSpec(pool="max", gate="coarser") if tf else AttentionSpec(pool="avg", gate="second"),
        resample=ResampleSpec(up="nearest", down="maxpool", down_pool="single"),
        extra_levels="lateral_pool" if tf else "lateral_conv_pool",
        input_projection="shared",
    )
