"""FPN (Lin et al. 2017): the top-down path with lateral connections."""

from __future__ import annotations

from archbench.spec.families.registry import check_levels, family, node
from archbench.spec.schema import DEFAULT_LEVELS, NeckSpec, OpSpec, ResampleSpec


@family("fpn")
def fpn(levels: tuple[int, ...] = DEFAULT_LEVELS, top_down_from: int = 5) -> NeckSpec:
    """FPN over ``levels``: laterals lat<L> summed top-down from ``top_down_from`` (no conv on the path),
    one conv out<L> per lateral; levels above it are the extra-level stem's, passed to the outputs."""
    lo, hi = check_levels("fpn", levels)
    top = max(lo + 1, min(top_down_from, hi))
    nodes = [node(f"lat{top}", top, f"in{top}", op={"type": "none"})]
    for lvl in range(top - 1, lo - 1, -1):
        nodes.append(node(f"lat{lvl}", lvl, f"in{lvl}", f"lat{lvl + 1}", op={"type": "none"}))
    nodes += [node(f"out{lvl}", lvl, f"lat{lvl}") for lvl in range(lo, top + 1)]
    outputs = {lvl: (f"out{lvl}" if lvl <= top else f"in{lvl}") for lvl in range(lo, hi + 1)}
    return NeckSpec(
        name="fpn",
        description=(
            "Feature Pyramid Network (Lin et al. 2017) with RetinaNet's extra levels. Laterals are the "
            f"1x1 projections of in{lo}..in{top} (none where a level's channels already equal the neck width; "
            "FPN always has one); the top-down path sums each lateral with the nearest-"
            "upsampled coarser merge (no conv on the path), and a 3x3 conv (bias, no norm, no activation, "
            f"as in the paper) smooths each merge into an output. Levels above {top} are RetinaNet's P6/P7: "
            "3x3 stride-2 convs on the last backbone feature (ReLU between them, as the paper and Detectron; "
            "mmdetection's RetinaNet config leaves it out) passed straight to the outputs, outside the top-down "
            "path. Lin et al. run the path once (D = 1); repeating the cell re-runs it on its own outputs."
        ),
        levels=tuple(levels),
        nodes=tuple(nodes),
        outputs=outputs,
        fuse="sum",
        op=OpSpec(type="conv", kernel=3, norm="none", act="none", order="conv_first", bias=True),
        resample=ResampleSpec(up="nearest", down="maxpool"),
        extra_levels="conv",
    )
