"""EfficientDet's feature-network ablation (Tan, Pang, Le 2020, Table 5 and Fig. 2): the contestants as
EfficientDet built them, with BiFPN's ops.

The paper repeats each network and gives every one of them BiFPN's ops ("replace all convs with
depthwise separable convs, which is the same as BiFPN"); the authors add that the FPN+PANet row also
has BiFPN's shortcut, swish and scaling, and no weighted fusion (google/automl issue #456). So every
spec here is a cell of sum-fusion nodes, each swish -> depthwise-separable 3x3 conv (bias) -> BN,
max-pool down, nearest up, BiFPN's P6/P7 stem and per-edge 1x1 projections of the backbone features in
the first cell. Table 5 runs the top-down FPN at twice the others' repeats, so ``fpn_effdet``'s cell is two
top-down columns; then ``archbench profile --phi 3 --relative-to fpn_effdet`` (default preset) costs them at the
paper's configuration, as ``scripts/efficientdet_table5.py`` does.
"""

from __future__ import annotations

from archbench.spec.families.registry import check_levels, family, node
from archbench.spec.schema import DEFAULT_LEVELS, NeckSpec, NodeSpec, OpSpec, ResampleSpec

_OPS_TEXT = (
    "Every node (EfficientDet's ops, as Table 5 used them): sum of its resampled inputs, then swish -> "
    "depthwise-separable 3x3 conv (bias) -> BN; down-sampling by 3x3/2 max-pool, up-sampling nearest; P6 = "
    "1x1 conv + BN of C5 then max-pool, P7 = max-pool of P6; in the first cell each backbone feature gets its "
    "own 1x1 projection on every edge."
)


def _effdet_spec(
    name: str, description: str, levels: tuple[int, ...], nodes: list[NodeSpec], outputs: dict[int, str]
) -> NeckSpec:
    """A sum-fusion cell with BiFPN's ops, stem and projections (see the module docstring)."""
    return NeckSpec(
        name=name,
        description=f"{description} {_OPS_TEXT}",
        levels=tuple(levels),
        nodes=tuple(nodes),
        outputs=outputs,
        fuse="sum",
        op=OpSpec(type="sepconv", kernel=3, norm="bn", act="swish", order="act_first", bias=True),
        resample=ResampleSpec(up="nearest", down="maxpool"),
        extra_levels="pool",
        input_projection="per_edge",
    )


def _top_down(lo: int, hi: int, prefix: str = "td", source: str = "in") -> list[NodeSpec]:
    """Fig. 2(a)'s top-down column over levels lo..hi, every node a conv: <prefix><hi> <- <source><hi>, then
    <prefix><L> <- (<source><L>, up <prefix><L+1>)."""
    nodes = [node(f"{prefix}{hi}", hi, f"{source}{hi}")]
    return nodes + [
        node(f"{prefix}{lvl}", lvl, f"{source}{lvl}", f"{prefix}{lvl + 1}") for lvl in range(hi - 1, lo - 1, -1)
    ]


@family("fpn_effdet")
def fpn_effdet(levels: tuple[int, ...] = DEFAULT_LEVELS) -> NeckSpec:
    """Repeated top-down FPN of Table 5 (Fig. 2(a)), two columns per cell: td<L> on the cell's inputs, then
    ftd<L> on td<L>; outputs ftd<lo>..ftd<hi>. One cell costs exactly two single-column cells."""
    lo, hi = check_levels("fpn_effdet", levels)
    return _effdet_spec(
        "fpn_effdet",
        "Repeated top-down FPN as EfficientDet's Table 5 built it (Fig. 2(a)), two top-down columns per cell: "
        f"td{hi}..td{lo} on the cell's inputs, then ftd{hi}..ftd{lo} on td{hi}..td{lo}, each column over every "
        f"level {lo}..{hi}, extra levels included, with a conv on every node (the top one has a single input); "
        "the second column's outputs feed the next repeat. Table 5 runs the single-column FPN at twice "
        "FPN+PANet's repeats so that their costs match (both 1.0x); one cell here is two of those cells, with "
        "exactly their params and FLOPs, so at a preset's repeats D it is the single-column FPN repeated 2D "
        "times (see docs/profile.md); only the grouping of two columns into one cell is archbench's.",
        levels,
        _top_down(lo, hi) + _top_down(lo, hi, prefix="ftd", source="td"),
        {lvl: f"ftd{lvl}" for lvl in range(lo, hi + 1)},
    )


@family("panet_effdet")
def panet_effdet(levels: tuple[int, ...] = DEFAULT_LEVELS) -> NeckSpec:
    """Repeated FPN+PANet of Table 5 (Fig. 2(b)): the td column, then bu<lo> <- td<lo> and
    bu<L> <- (in<L>, td<L>, down bu<L-1>) with BiFPN's shortcut in<L>; outputs bu<lo>..bu<hi>."""
    lo, hi = check_levels("panet_effdet", levels)
    bottom_up = [node(f"bu{lo}", lo, f"td{lo}")]
    bottom_up += [node(f"bu{lvl}", lvl, f"in{lvl}", f"td{lvl}", f"bu{lvl - 1}") for lvl in range(lo + 1, hi + 1)]
    return _effdet_spec(
        "panet_effdet",
        "Repeated FPN+PANet as EfficientDet's Table 5 built it (Fig. 2(b)): Fig. 2(a)'s top-down column, "
        f"then a bottom-up column over every level {lo}..{hi}, extra levels included; the single-input end nodes "
        "that BiFPN removes are kept. With BiFPN's shortcut, as the authors describe this row (google/automl "
        "#456), placed where BiFPN places it: every bottom-up node that fuses a bottom-up edge also takes its "
        "level's input (automl's rule: every earlier node of its level, then the bottom-up node below), while "
        f"bu{lo} keeps its single input. efficientdet-pytorch's pan_fa/pan_sum has the same nodes without the "
        "shortcut.",
        levels,
        _top_down(lo, hi) + bottom_up,
        {lvl: f"bu{lvl}" for lvl in range(lo, hi + 1)},
    )


@family("fc_fpn")
def fc_fpn(levels: tuple[int, ...] = DEFAULT_LEVELS) -> NeckSpec:
    """Our reading of Table 5's fully-connected FPN: a<L> <- every input level (hi first), then
    b<L> <- (in<L>, a<lo>..a<hi>); outputs b<lo>..b<hi>."""
    lo, hi = check_levels("fc_fpn", levels)
    inputs = [f"in{lvl}" for lvl in range(lo, hi + 1)]
    first = [node(f"a{lvl}", lvl, *inputs) for lvl in range(hi, lo - 1, -1)]
    second = [node(f"b{lvl}", lvl, f"in{lvl}", *(f"a{src}" for src in range(lo, hi + 1))) for lvl in range(lo, hi + 1)]
    return _effdet_spec(
        "fc_fpn",
        "Fully-connected FPN of EfficientDet's Table 5, in a reading of ours: the paper publishes no node list. "
        "Two columns of one node per level, as FPN+PANet has; every node of the first column fuses every input "
        "level, and every node of the second fuses its level's input (BiFPN's shortcut, as in panet_effdet) and "
        "every node of the first; each edge is resampled to the node's level.",
        levels,
        first + second,
        {lvl: f"b{lvl}" for lvl in range(lo, hi + 1)},
    )
