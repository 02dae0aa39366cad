"""Built-in topologies as small generators over a contiguous level range.

Each generator returns plain spec data (``NeckSpec``), the same thing a YAML file holds:
``archbench specs show NAME --levels 3-7`` prints it, and the printed file loads back. The
``description`` of each spec states the choices its paper leaves open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from archbench.errors import UserError
from archbench.spec.schema import DEFAULT_LEVELS, AttentionSpec, NeckSpec, NodeSpec, OpSpec, ResampleSpec

Generator = Callable[..., NeckSpec]
_FAMILIES: dict[str, Generator] = {}
#: Built-in neck names -> (family, fixed generator arguments).
_BUILTINS: dict[str, tuple[str, dict[str, Any]]] = {}


def family(name: str, *variants: tuple[str, dict[str, Any]]) -> Callable[[Generator], Generator]:
    """Register a generator as family ``name`` and as built-in neck ``name`` (+ named variants)."""

    def register(fn: Generator) -> Generator:
        _FAMILIES[name] = fn
        _BUILTINS[name] = (name, {})
        for variant, kwargs in variants:
            _BUILTINS[variant] = (name, kwargs)
        return fn

    return register


def builtin_names() -> list[str]:
    """Names accepted wherever a neck is asked for, besides spec file paths."""
    return list(_BUILTINS)


def builtin_spec(name: str, levels: tuple[int, ...] | None = None) -> NeckSpec:
    """The built-in spec ``name`` generated over ``levels`` (default 3..7)."""
    if name not in _BUILTINS:
        raise UserError(
            f"unknown neck {name!r}: built-in necks are {', '.join(_BUILTINS)}, or give the path of a spec .yaml file"
        )
    fam, kwargs = _BUILTINS[name]
    lv = tuple(levels) if levels else DEFAULT_LEVELS
    spec = _FAMILIES[fam](levels=lv, **kwargs)
    args = {"levels": list(lv), **kwargs}
    return replace(spec, name=name, family={"name": fam, "args": args})


def _check_levels(name: str, levels: tuple[int, ...], min_count: int = 2) -> tuple[int, int]:
    if len(levels) < min_count or list(levels) != list(range(levels[0], levels[0] + len(levels))) or levels[0] < 1:
        raise UserError(
            f"{name}: levels must be a contiguous range of at least {min_count} levels >= 1, got {list(levels)}"
        )
    return levels[0], levels[-1]


def _node(nid: str, level: int, *inputs: str, **kw: Any) -> NodeSpec:
    return NodeSpec(id=nid, level=level, inputs=tuple(inputs), **kw)


@family("fpn")
def fpn(levels: tuple[int, ...] = DEFAULT_LEVELS, top_down_from: int = 5) -> NeckSpec:
    lo, hi = _check_levels("fpn", levels)
    top = max(lo + 1, min(top_down_from, hi))
    nodes = [_node(f"lat{top}", top, f"in{top}", op={"type": "none"})]
    for lvl in range(top - 1, lo - 1, -1):
        nodes.append(_node(f"lat{lvl}", lvl, f"in{lvl}", f"lat{lvl + 1}", op={"type": "none"}))
    nodes += [_node(f"out{lvl}", lvl, f"lat{lvl}") for lvl in range(lo, top + 1)]
    outputs = {lvl: (f"out{lvl}" if lvl <= top else f"in{lvl}") for lvl in range(lo, hi + 1)}
    return NeckSpec(
        name="fpn",
        description=(
            "Feature Pyramid Network (Lin et al. 2017) with RetinaNet's extra levels. Laterals are the "
            f"1x1 projections of in{lo}..in{top}; the top-down path sums each lateral with the nearest-"
            "upsampled coarser merge (no conv on the path), and a 3x3 conv (bias, no norm, no activation, "
            f"as in the paper) smooths each merge into an output. Levels above {top} are RetinaNet's P6/P7: "
            "3x3 stride-2 convs on the last backbone feature (ReLU between them) passed straight to the "
            "outputs, outside the top-down path. Repeating the cell re-runs the top-down path on its own outputs."
        ),
        levels=tuple(levels),
        nodes=tuple(nodes),
        outputs=outputs,
        fuse="sum",
        op=OpSpec(type="conv", kernel=3, norm="none", act="none", order="conv_first", bias=True),
        resample=ResampleSpec(up="nearest", down="maxpool"),
        extra_levels="conv",
    )


@family("panet")
def panet(levels: tuple[int, ...] = DEFAULT_LEVELS) -> NeckSpec:
    lo, hi = _check_levels("panet", levels)
    nodes = [_node(f"td{hi}", hi, f"in{hi}")]
    nodes += [_node(f"td{lvl}", lvl, f"in{lvl}", f"td{lvl + 1}") for lvl in range(hi - 1, lo - 1, -1)]
    nodes.append(_node(f"out{lo}", lo, f"td{lo}"))
    nodes += [_node(f"out{lvl}", lvl, f"td{lvl}", f"out{lvl - 1}") for lvl in range(lo + 1, hi + 1)]
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


@family("bifpn", ("bifpn_softmax", {"fuse": "softmax"}), ("bifpn_sum", {"fuse": "sum"}))
def bifpn(levels: tuple[int, ...] = DEFAULT_LEVELS, fuse: str = "weighted") -> NeckSpec:
    lo, hi = _check_levels("bifpn", levels)
    nodes, prev = [], f"in{hi}"
    for lvl in range(hi - 1, lo, -1):
        nodes.append(_node(f"td{lvl}", lvl, f"in{lvl}", prev))
        prev = f"td{lvl}"
    nodes.append(_node(f"out{lo}", lo, f"in{lo}", prev))
    nodes += [_node(f"out{lvl}", lvl, f"in{lvl}", f"td{lvl}", f"out{lvl - 1}") for lvl in range(lo + 1, hi)]
    nodes.append(_node(f"out{hi}", hi, f"in{hi}", f"out{hi - 1}"))
    return NeckSpec(
        name="bifpn",
        description=(
            "BiFPN (Tan, Pang, Le 2020, EfficientDet): one top-down and one bottom-up pass with a skip "
            "from each input to the same-level output node; the top and bottom levels have no top-down node. "
            f"Fusion '{fuse}' (weighted = fast normalized ReLU(w_i) / (sum_j ReLU(w_j) + 1e-4), weights "
            "initialised to 1; 'softmax' and 'sum' are the paper's ablations). Each node: swish -> "
            "depthwise-separable 3x3 conv -> BN, conv biases kept as in the TF models. Down-sampling by "
            "3x3/2 max-pool, up-sampling nearest; P6 = 1x1 conv + BN of C5 then max-pool, P7 = max-pool "
            "of P6; in the first cell each backbone feature gets its own 1x1 projection on every edge."
        ),
        levels=tuple(levels),
        nodes=tuple(nodes),
        outputs={lvl: f"out{lvl}" for lvl in range(lo, hi + 1)},
        fuse=fuse,
        op=OpSpec(type="sepconv", kernel=3, norm="bn", act="swish", order="act_first", bias=True),
        resample=ResampleSpec(up="nearest", down="maxpool"),
        extra_levels="pool",
        input_projection="per_edge",
    )


@family("nasfpn", ("nasfpn_mmdet", {"gate": "second", "pool": "avg"}))
def nasfpn(levels: tuple[int, ...] = DEFAULT_LEVELS, gate: str = "coarser", pool: str = "max") -> NeckSpec:
    if tuple(levels) != DEFAULT_LEVELS:
        raise UserError(f"nasfpn: the published NAS-FPN cell is defined on levels 3..7 only, got {list(levels)}")
    att, s = {"fuse": "attention"}, {"fuse": "sum"}
    nodes = [
        _node("p4_1", 4, "in6", "in4", **att),
        _node("p4_2", 4, "p4_1", "in4", **s),
        _node("out3", 3, "p4_2", "in3", **s),
        _node("out4", 4, "out3", "p4_2", **s),
        _node("out5", 5, "out4", "out3", "in5", **att),
        _node("out7", 7, "out5", "p4_2", "in7", **att),
        _node("out6", 6, "out7", "out5", **att),
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


@family("ida")
def ida(levels: tuple[int, ...] = DEFAULT_LEVELS) -> NeckSpec:
    lo, hi = _check_levels("ida", levels)
    nodes: list[NodeSpec] = []
    chain_above: list[str] = []  # the aggregation chain of the level above, in order
    outputs = {}
    for lvl in range(hi - 1, lo - 1, -1):
        chain: list[str] = []
        prev = f"in{lvl}"
        for k, deeper in enumerate([f"in{lvl + 1}"] + chain_above, start=1):
            nid = f"ida{lvl}_{k}"
            nodes.append(_node(nid, lvl, prev, deeper))
            chain.append(nid)
            prev = nid
        outputs[lvl] = chain[-1]
        chain_above = chain
    nodes.append(_node(f"top{hi}", hi, f"in{hi}"))
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
    lo, hi = _check_levels("hda", levels, min_count=1)
    if depth < 1:
        raise UserError(f"hda: depth must be >= 1, got {depth}")
    nodes: list[NodeSpec] = []

    def tree(lvl: int, x: str, n: int, children: list[str], tag: str) -> str:
        """DLA's T_n on input ``x``; the root takes (last block, previous block, *children)."""
        if n > 1:
            left = tree(lvl, x, n - 1, [], tag + "l")
            return tree(lvl, left, n - 1, children + [left], tag + "r")
        b1, b2 = f"b{lvl}{tag}1", f"b{lvl}{tag}2"
        nodes.append(_node(b1, lvl, x))
        nodes.append(_node(b2, lvl, b1))
        root = f"root{lvl}{tag}"
        nodes.append(_node(root, lvl, b2, b1, *children, op={"kernel": 1}, residual=residual))
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
