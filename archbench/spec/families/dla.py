"""Deep Layer Aggregation (Yu et al. 2018) as necks: IDA (DLA-up) and HDA (trees)."""

from __future__ import annotations

from archbench.errors import UserError
from archbench.spec.families.registry import check_levels, family, node
from archbench.spec.schema import DEFAULT_LEVELS, NeckSpec, NodeSpec, OpSpec, ResampleSpec


@family("ida")
def ida(levels: tuple[int, ...] = DEFAULT_LEVELS) -> NeckSpec:
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
            "Iterative deep aggregation as a neck: DLA-up (Yu et al. 2018). Stages run from the deepest level "
            "to the shallowest; the stage at level L aggregates in<L> with the feature one level deeper, then "
            "folds in, one by one, every node of the previous stage (upsampled), so level L ends with a chain "
            "of (top - L) aggregation nodes whose last is the output. Aggregation node = concat -> 3x3 conv -> "
            "BN -> ReLU. Choices the paper leaves open or that we changed: inputs are projected by 1x1 conv + BN "
            "(no ReLU) before upsampling; upsampling is fixed bilinear interpolation to the exact target size "
            "instead of a bilinear-initialised learnable deconvolution (so any input size works); the top level "
            "gets a single 3x3 conv so every level has an output at the neck width (DLA-up only outputs the "
            "finest level). The original applies the aggregation once; this spec is marked repeat: true so the "
            "scaling rule stacks it D times like every other neck (set repeat: false for the single pass)."
        ),
        levels=tuple(levels),
        nodes=tuple(nodes),
        outputs=outputs,
        fuse="concat",
        op=OpSpec(type="conv", kernel=3, norm="bn", act="relu", order="conv_first"),
        resample=ResampleSpec(up="bilinear", down="maxpool"),
        extra_levels="pool",
    )


@family("hda", ("hda_residual", {"residual": True}))
def hda(levels: tuple[int, ...] = DEFAULT_LEVELS, depth: int = 2, residual: bool = False) -> NeckSpec:
    lo, hi = check_levels("hda", levels, min_count=1)
    if depth < 1:
        raise UserError(f"hda: depth must be >= 1, got {depth}")
    nodes: list[NodeSpec] = []

    def tree(lvl: int, x: str, n: int, children: list[str], tag: str) -> str:
        """DLA's T_n on input ``x``; the root takes (last block, previous block, *children)."""
        if n > 1:
            left = tree(lvl, x, n - 1, [], tag + "l")
            return tree(lvl, left, n - 1, children + [left], tag + "r")
        b1, b2 = f"b{lvl}{tag}1", f"b{lvl}{tag}2"
        nodes.append(node(b1, lvl, x))
        nodes.append(node(b2, lvl, b1))
        root = f"root{lvl}{tag}"
        nodes.append(node(root, lvl, b2, b1, *children, op={"kernel": 1}, residual=residual))
        return root

    outputs: dict[int, str] = {}
    above: list[str] = []
    for lvl in range(hi, lo - 1, -1):
        outputs[lvl] = tree(lvl, f"in{lvl}", depth, above, "")
        above = [outputs[lvl]]
    return NeckSpec(
        name="hda",
        description=(
            f"Hierarchical deep aggregation (Yu et al. 2018, DLA) as a neck: at each level a tree T_{depth} of "
            "conv blocks whose aggregation nodes take several children, as DLA's Tree: T_1 = root(B(B(x)), B(x)); "
            "T_n = T_(n-1) applied to the output of a left T_(n-1), whose output also joins the right tree's "
            "root, so a root at depth n takes n+1 children. Aggregation node = concat -> 1x1 conv -> BN "
            "(+ its first child when residual) -> ReLU, DLA's root. Choices we made: a block B is one 3x3 "
            "conv + BN + ReLU (DLA's BasicBlock has two and a skip); trees run from the deepest level to the "
            "shallowest and each level's root also takes the (bilinearly upsampled) root of the level above, "
            f"which is what makes the tree a multi-scale neck. residual={residual} (DLA-34 has none; deeper DLAs do)."
        ),
        levels=tuple(levels),
        nodes=tuple(nodes),
        outputs=outputs,
        fuse="concat",
        op=OpSpec(type="conv", kernel=3, norm="bn", act="relu", order="conv_first"),
        resample=ResampleSpec(up="bilinear", down="maxpool"),
        extra_levels="pool",
    )
