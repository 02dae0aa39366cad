"""PANet (Liu et al. 2018): FPN's top-down path followed by a bottom-up path augmentation."""

from __future__ import annotations

from archbench.spec.families.registry import check_levels, family, node
from archbench.spec.schema import DEFAULT_LEVELS, NeckSpec, OpSpec, ResampleSpec


@family("panet")
def panet(levels: tuple[int, ...] = DEFAULT_LEVELS, top_down_from: int = 5) -> NeckSpec:
    """PANet over ``levels``; both paths run over the backbone levels up to ``top_down_from``.

    Nodes: laterals ``lat<L>`` (sums, no conv), FPN outputs ``p<L>`` (3x3 conv + BN), and the
    bottom-up nodes ``n<L>`` (3x3 conv + BN + ReLU on p<L> + down(n<L-1>)), N_lo being P_lo.
    """
    lo, hi = check_levels("panet", levels)
    top = max(lo + 1, min(top_down_from, hi))
    fpn_conv = {"act": "none"}
    nodes = [node(f"lat{top}", top, f"in{top}", op={"type": "none"})]
    nodes += [
        node(f"lat{lvl}", lvl, f"in{lvl}", f"lat{lvl + 1}", op={"type": "none"}) for lvl in range(top - 1, lo - 1, -1)
    ]
    nodes += [node(f"p{lvl}", lvl, f"lat{lvl}", op=fpn_conv) for lvl in range(lo, top + 1)]
    below = {lo + 1: f"p{lo}", **{lvl: f"n{lvl - 1}" for lvl in range(lo + 2, top + 1)}}
    nodes += [node(f"n{lvl}", lvl, f"p{lvl}", below[lvl]) for lvl in range(lo + 1, top + 1)]
    outputs = {lo: f"p{lo}", **{lvl: (f"n{lvl}" if lvl <= top else f"in{lvl}") for lvl in range(lo + 1, hi + 1)}}
    return NeckSpec(
        name="panet",
        description=(
            "PANet (Liu et al. 2018; ShuLiu1993/PANet and mmdetection PAFPN): FPN's top-down path, then a "
            "bottom-up path augmentation. Top-down: 1x1 lateral + BN of each backbone feature, summed with the "
            "nearest-upsampled coarser sum (no conv on the path); a 3x3 conv + BN (no activation) on each sum "
            f"gives P_l. Bottom-up: N{lo} = P{lo} unprocessed; N_l = 3x3 conv + BN + ReLU of "
            "(P_l + ReLU(BN(3x3 stride-2 conv of N_{l-1}))), so the path runs through both convs. Norm: the "
            "official code's GN is BN here (the paper trains with synchronized BN; `archbench profile --norm gn`, "
            "or a spec file with op.norm: gn for training, gives GN), and the bottom-up convs drop the official "
            "code's bias before the norm. A backbone level whose channels equal the neck width gets no lateral "
            "(PANet and mmdetection always have one). "
            f"Levels above {top}: RetinaNet's P6/P7 (3x3 stride-2 convs on the last backbone feature, a ReLU "
            "before P7's conv as the RetinaNet paper and Detectron have it, which mmdetection's default "
            "relu_before_extra_convs=False leaves out; bias, no norm), passed straight to the outputs outside "
            "both paths, as mmdetection's add_extra_convs='on_input' does (the paper defines no P7; the "
            "official code's RPN P6 is a stride-2 subsample of N5). Repeating the cell re-runs both paths on "
            "its own outputs."
        ),
        levels=tuple(levels),
        nodes=tuple(nodes),
        outputs=outputs,
        fuse="sum",
        op=OpSpec(type="conv", kernel=3, norm="bn", act="relu", order="conv_first"),
        resample=ResampleSpec(up="nearest", down="conv_act"),
        extra_levels="conv",
    )
