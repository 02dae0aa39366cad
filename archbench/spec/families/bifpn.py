"""BiFPN (Tan, Pang, Le 2020, EfficientDet) and its fusion ablations."""

from __future__ import annotations

from archbench.spec.families.registry import check_levels, family, node
from archbench.spec.schema import DEFAULT_LEVELS, NeckSpec, OpSpec, ResampleSpec


@family("bifpn", ("bifpn_softmax", {"fuse": "softmax"}), ("bifpn_sum", {"fuse": "sum"}))
def bifpn(levels: tuple[int, ...] = DEFAULT_LEVELS, fuse: str = "weighted") -> NeckSpec:
    lo, hi = check_levels("bifpn", levels)
    nodes, prev = [], f"in{hi}"
    for lvl in range(hi - 1, lo, -1):
        nodes.append(node(f"td{lvl}", lvl, f"in{lvl}", prev))
        prev = f"td{lvl}"
    nodes.append(node(f"out{lo}", lo, f"in{lo}", prev))
    nodes += [node(f"out{lvl}", lvl, f"in{lvl}", f"td{lvl}", f"out{lvl - 1}") for lvl in range(lo + 1, hi)]
    nodes.append(node(f"out{hi}", hi, f"in{hi}", f"out{hi - 1}"))
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
