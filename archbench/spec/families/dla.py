"""Deep Layer Aggregation (Yu et al. 2018) as necks: IDA (DLA-up) and HDA (trees)."""

from __future__ import annotations

from archbench.errors import UserError
from archbench.spec.families.registry import check_levels, family, node
from archbench.spec.schema import DEFAULT_LEVELS, NeckSpec, NodeSpec, OpSpec, ResampleSpec


@family("ida")
def ida(levels: tuple[int, ...] = DEFAULT_LEVELS) -> NeckSpec:
    """DLA-up over ``levels``: a chain of ida<L>_k nodes per level below the top, deepest first; each
    level's last node is its output, and top<hi> (one conv on in<hi>) the top level's."""
    lo, hi = check_levels("ida", levels)
    nodes: list[NodeSpec] = []
    chain_above: list[str] = []  # the aggregation chain of the level above, in order
    outputs = {}
    for lvl in range(hi - 1, lo - 1, -1):
        chain: list[str] = []
        prev = f"in{lvl}"
        for k, deeper in enumerate([f"in{lvl + 1}"] + chain_above, start=1):
            nid = f"ida{lvl}_{k}"
            nodes.append(node(nid, lvl, prev, deeper))
            chain.append(nid)
            prev = nid
        outputs[lvl] = chain[-1]
        chain_above = chain
    nodes.append(node(f"top{hi}", hi, f"in{hi}"))
    outputs[hi] = f"top{hi}"
    return NeckSpec(
        name="ida",
        description=(
            "Iterative deep aggregation as a neck: DLA-up (Yu et al. 2018; ucbdrive/dla dla_up.py DLAUp/IDAUp). "
            "Stages run from the deepest level to the shallowest; the stage at level L aggregates in<L> with "
            "in<L+1>, then folds in, one by one, every node of the previous stage, so level L ends with a chain "
            "of (top - L) aggregation nodes, inputs in IDAUp's order (aggregate so far, deeper input). Node = "
            "concat -> 3x3 conv -> BN -> ReLU. Upsampling is IDAUp's learned depthwise transposed conv (kernel "
            "4, stride 2, padding 1, no bias, bilinear init; up: deconv). Deviations: one width at every level "
            "(DLA-up keeps each level at the backbone's width and re-projects deeper inputs to it by 1x1 "
            "conv + BN + ReLU; here backbone features are projected once to the neck width by 1x1 conv + BN, "
            "no ReLU, and not at all where their channels already equal it, so the heads can be shared); every "
            "level is an output (DLA-up returns only the finest; "
            "CenterNet's DLAUp returns each level's last node, as here) and the top level, which DLA-up leaves "
            "as is, gets one 3x3 conv node so it has an output at the neck width; P6/P7 come from the pool "
            "stem; the deconvolution is cropped (or edge-padded) to the exact target size so any input size "
            "works. The original applies the aggregation once; this spec is marked repeat: true so the "
            "scaling rule stacks it D times like every other neck (set repeat: false for the single pass)."
        ),
        levels=tuple(levels),
        nodes=tuple(nodes),
        outputs=outputs,
        fuse="concat",
        op=OpSpec(type="conv", kernel=3, norm="bn", act="relu", order="conv_first"),
        resample=ResampleSpec(up="deconv", down="maxpool"),
        extra_levels="pool",
    )


#: DLA-34's tree depth per stage (ucbdrive/dla ``dla34``: ``levels``); stage k has stride 2**k, so
#: entry L is pyramid level L's depth. Stages 0 and 1 are plain convs in DLA, not trees.
DLA34_DEPTHS = (1, 1, 1, 2, 2, 1)


@family("hda", ("hda_residual", {"residual": True}))
def hda(
    levels: tuple[int, ...] = DEFAULT_LEVELS, depths: tuple[int, ...] = DLA34_DEPTHS, residual: bool = False
) -> NeckSpec:
    """DLA's stages as a neck: level L gets a tree of depth ``depths[L]`` (the last entry past the end)."""
    lo, hi = check_levels("hda", levels, min_count=1)
    if not depths or min(depths) < 1:
        raise UserError(f"hda: depths must be a non-empty list of integers >= 1, got {list(depths)}")
    nodes: list[NodeSpec] = []

    def tree(lvl: int, x: str, n: int, children: list[str], tag: str) -> str:
        """DLA's Tree of depth n on ``x``; a leaf's root takes (last block, previous block, *children)."""
        if n > 1:
            left = tree(lvl, x, n - 1, [], tag + "l")
            return tree(lvl, left, n - 1, children + [left], tag + "r")
        b1, b2 = f"b{lvl}{tag}1", f"b{lvl}{tag}2"
        nodes.append(node(b1, lvl, x, op={"convs": 2}, residual=True))
        nodes.append(node(b2, lvl, b1, op={"convs": 2}, residual=True))
        root = f"root{lvl}{tag}"
        nodes.append(node(root, lvl, b2, b1, *children, op={"kernel": 1}, residual=residual))
        return root

    outputs: dict[int, str] = {}
    bottom: list[str] = []
    for lvl in range(lo, hi + 1):
        outputs[lvl] = tree(lvl, f"in{lvl}", depths[min(lvl, len(depths) - 1)], bottom, "")
        bottom = [outputs[lvl]]
    depth_text = ", ".join(f"P{lvl}: {depths[min(lvl, len(depths) - 1)]}" for lvl in range(lo, hi + 1))
    return NeckSpec(
        name="hda",
        description=(
            "Hierarchical deep aggregation (Yu et al. 2018; ucbdrive/dla dla.py Tree/Root/BasicBlock) as a "
            f"neck. DLA's stage k (stride 2**k) is pyramid level k, and level L is a tree of depth depths[L] "
            f"(depths {list(depths)}, DLA-34's being {list(DLA34_DEPTHS)}; levels past the list take its last "
            f"entry: {depth_text}). Tree: T_1 = root(B(B(x)), B(x), *children); T_n = T_(n-1) on the root of a left "
            "T_(n-1), which also joins the right tree's root, so a depth-n root takes n+1 children. Block B = "
            "DLA's BasicBlock: 3x3 conv-BN-ReLU, 3x3 conv-BN, + its input, ReLU (op convs: 2, residual). "
            "Root = concat -> 1x1 conv -> BN (+ its first child, the last block, when residual: DLA-102/169's "
            f"residual_root) -> ReLU; residual={residual}. As in DLA, stages run from the finest level to the "
            "coarsest and each level's final root also takes DLA's 'bottom', the 2x2/2 max-pooled output of "
            "the level below. Deviations: the lowest level's root has no 'bottom' (in DLA-34 level3 is a "
            "level_root stage and takes the pooled output of level2, which the neck does not have); the "
            "2x2/2 pools use TF-'same' padding and round odd sizes up (DLA's MaxPool2d(2, 2) rounds down), "
            "then crop to the level's size; a level's blocks start from the backbone feature in<L> "
            "(projected to the neck width by 1x1 conv + BN in the first cell, and not at all where the "
            "channels already equal the width), where DLA's first block is a stride-2 conv on the stage "
            "below with the pooled, projected 'bottom' as its skip; so fine levels never see coarser ones "
            "(DLA adds IDA-up for that); one width at every level where DLA widens per stage; P6/P7 (absent "
            "in DLA) come from the pool stem, with depth-1 trees; the spec repeats D times (DLA runs once)."
        ),
        levels=tuple(levels),
        nodes=tuple(nodes),
        outputs=outputs,
        fuse="concat",
        op=OpSpec(type="conv", kernel=3, norm="bn", act="relu", order="conv_first"),
        resample=ResampleSpec(down="maxpool", down_pool="single"),
        extra_levels="pool",
    )
