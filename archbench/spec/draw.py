"""Topology pictures in the papers' style: levels as rows, nodes as columns in execution order.

Column 0 holds the cell inputs ``in<L>``; node k of the execution order sits in column k + 1 on
the row of its level (highest level at the top, as in the FPN / BiFPN figures). Edges are
coloured by resampling direction, each node shows its fusion, and output nodes are ringed.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch

from archbench.spec.graph import execution_order
from archbench.spec.schema import NeckSpec, input_level

EDGE_COLOURS = {"up": "#1f77b4", "down": "#d62728", "same": "#7f7f7f"}
EDGE_LABELS = {"up": "top-down (upsample)", "down": "bottom-up (downsample)", "same": "same level"}
FUSE_GLYPHS = {"sum": "+", "weighted": "w+", "softmax": "sm", "concat": "cat", "attention": "gp"}


def _op_label(spec: NeckSpec, node_id: str) -> str:
    op = spec.node_op(spec.node(node_id))
    if op.type == "none":
        return "-"
    return f"{'sep' if op.type == 'sepconv' else 'conv'}{op.kernel}"


def draw_spec(spec: NeckSpec, out: str | Path, repeats: int | None = None) -> Path:
    """Render ``spec`` to a PNG at ``out`` and return the path."""
    order = execution_order(spec)
    pos: dict[str, tuple[float, float]] = {f"in{lvl}": (0.0, float(lvl)) for lvl in spec.levels}
    for col, node in enumerate(order, start=1):
        pos[node.id] = (float(col), float(node.level))
    outputs = set(spec.outputs.values())

    width = max(6.0, 1.1 * (len(order) + 2))
    height = max(3.0, 1.0 * len(spec.levels) + 1.5)
    fig, ax = plt.subplots(figsize=(width, height))
    for node in order:
        x1, y1 = pos[node.id]
        for ref in node.inputs:
            x0, y0 = pos[ref]
            kind = "same" if y0 == y1 else ("up" if y0 > y1 else "down")
            # bend long edges so collinear ones stay visible, less the longer they are (stay in frame)
            rad = min(0.25, 0.8 / (x1 - x0)) if x1 - x0 > 1 else 0.0
            ax.add_patch(
                FancyArrowPatch(
                    (x0, y0),
                    (x1, y1),
                    arrowstyle="-|>",
                    mutation_scale=11,
                    color=EDGE_COLOURS[kind],
                    lw=1.4,
                    shrinkA=12,
                    shrinkB=12,
                    connectionstyle=f"arc3,rad={rad}",
                    zorder=1,
                    clip_on=False,
                )
            )
    for ref, (x, y) in pos.items():
        is_input = input_level(ref) is not None
        face = "#f0f0f0" if is_input else "#fff7d6"
        ring = 2.6 if ref in outputs else 1.0
        ax.scatter([x], [y], s=620, c=face, edgecolors="black", linewidths=ring, zorder=2)
        if is_input:
            glyph = ref
        else:
            node = spec.node(ref)
            glyph = FUSE_GLYPHS[spec.node_fuse(node)] if len(node.inputs) > 1 else "·"
        ax.text(x, y, glyph, ha="center", va="center", fontsize=8, zorder=3)
        if not is_input:
            suffix = " +res" if spec.node(ref).residual else ""
            ax.text(x, y - 0.33, f"{ref}\n{_op_label(spec, ref)}{suffix}", ha="center", va="top", fontsize=6.5)

    ax.set_yticks(list(spec.levels))
    ax.set_yticklabels([f"P{lvl}" for lvl in spec.levels])
    ax.set_xticks([])
    ax.set_xlim(-0.7, len(order) + 0.7)
    ax.set_ylim(spec.min_level - 0.9, spec.max_level + 0.6)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    stack = f"cell x {repeats}" if repeats else ("repeated cell" if spec.repeat else "single pass")
    ax.set_title(
        f"{spec.name}  ({stack}, default fuse {spec.fuse}, op {spec.op.type}{spec.op.kernel}, hash {spec.spec_hash()})",
        fontsize=9,
    )
    handles = [Line2D([0], [0], color=c, lw=2, label=EDGE_LABELS[k]) for k, c in EDGE_COLOURS.items()]
    handles.append(
        Line2D(
            [0],
            [0],
            marker="o",
            color="w",
            markerfacecolor="#fff7d6",
            markeredgecolor="black",
            markeredgewidth=2.4,
            markersize=10,
            label="output node",
        )
    )
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=4, fontsize=7, frameon=False)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
