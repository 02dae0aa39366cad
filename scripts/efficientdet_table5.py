"""EfficientDet's feature-network ablation (Tan, Pang, Le 2020, Table 5) beside archbench's costs of it.

Table 5 gives each feature network's params and FLOPs as ratios to repeated top-down FPN. This script
costs the contestants with archbench's profile code (``archbench.costs.profile.profile``) at the
configuration below, prints paper vs ours, and ends with one line:

    table5 panet=<p>/<f> nasfpn=<p>/<f> fc_fpn=<p>/<f> bifpn=<p>/<f>

(neck params ratio / neck FLOPs ratio, 2 decimals). The only numbers written here are the paper's.

The configuration (the paper states the ops and that FPN and PANet are repeated, not the scale, the
repeat counts, or the fully-connected FPN's nodes; docs/profile.md gives the reasons for each reading):

- Scale: EfficientDet-D3 (``--preset efficientdet --phi 3``: EfficientNet-B3 features, width 160,
  896 px, 6 repeats, 90 classes). Table 4's "EfficientNet-B3 + BiFPN" row (44.4 AP) is Table 5's BiFPN
  row (44.39 AP), which is D3.
- Contestants: ``fpn_effdet`` (Fig. 2(a)), ``panet_effdet`` (Fig. 2(b), with BiFPN's shortcut),
  ``fc_fpn`` (our reading of the fully-connected FPN), ``bifpn_sum`` / ``bifpn`` (without / with
  weighted fusion), and ``nasfpn`` with BiFPN's node op imposed (``NASFPN_OVERRIDES``: swish,
  separable conv with bias; its graph, attention cells, P6/P7 stem and laterals stay its own).
- Repeats: 6 for every contestant but repeated top-down FPN, which runs ``FPN_REPEAT_FACTOR`` = 2
  times as many (12). Table 5 gives FPN and FPN+PANet the same cost (1.0x / 1.0x), and a PANet cell is
  an FPN cell plus a bottom-up column of the same size, so equal cost needs twice the FPN cells.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from archbench.costs.profile import profile
from archbench.models.scaling import EFFICIENTDET

PHI = 3
NUM_CLASSES = 90
FPN_REPEAT_FACTOR = 2
BASELINE = "fpn_effdet"
#: BiFPN's node op imposed on NAS-FPN's cells (its own: ReLU -> dense 3x3 conv -> BN); its graph, stem and
#: projections stay. The TF NAS-FPN the authors had offers separable convs (``use_separable_conv``).
NASFPN_OVERRIDES: dict[str, Any] = {"op_type": "sepconv", "act": "swish", "bias": True}
#: Table 5 rows: (label, our neck, paper params ratio, paper FLOPs ratio, key of the last line or None).
PAPER = (
    ("repeated top-down FPN", BASELINE, 1.0, 1.0, None),
    ("repeated FPN+PANet", "panet_effdet", 1.0, 1.0, "panet"),
    ("NAS-FPN", "nasfpn", 0.71, 0.72, "nasfpn"),
    ("fully-connected FPN", "fc_fpn", 1.24, 1.21, "fc_fpn"),
    ("BiFPN w/o weighted", "bifpn_sum", 0.88, 0.67, None),
    ("BiFPN (weighted)", "bifpn", 0.88, 0.68, "bifpn"),
)


def neck_costs() -> dict[str, tuple[int, float]]:
    """Neck params and neck GFLOPs of every contestant at the configuration of the module docstring."""
    doubled = replace(EFFICIENTDET, repeats=tuple(FPN_REPEAT_FACTOR * r for r in EFFICIENTDET.repeats))
    runs: list[tuple[list[str], Any, dict[str, Any]]] = [
        ([BASELINE], doubled, {}),
        (["panet_effdet", "fc_fpn", "bifpn_sum", "bifpn"], EFFICIENTDET, {}),
        (["nasfpn"], EFFICIENTDET, NASFPN_OVERRIDES),
    ]
    rows = [row for necks, rule, ov in runs for row in profile(necks, [PHI], rule, NUM_CLASSES, overrides=ov)]
    return {r["neck"]: (r["params_neck"], r["gflops_neck"]) for r in rows}


def ratios(costs: dict[str, tuple[int, float]]) -> dict[str, tuple[float, float]]:
    """Each neck's (params, FLOPs) relative to the baseline's."""
    base_p, base_f = costs[BASELINE]
    return {name: (p / base_p, f / base_f) for name, (p, f) in costs.items()}


def table(costs: dict[str, tuple[int, float]]) -> list[str]:
    """The printed lines: paper vs ours per Table-5 row, then the one-line summary."""
    ours = ratios(costs)
    lines = [
        f"EfficientDet Table 5 at D{PHI}: neck params / FLOPs relative to repeated top-down FPN",
        f"{'network':22} {'neck':13} {'params M':>8} {'GFLOPs':>7} {'paper':>9} {'ours':>11} {'ours - paper':>13}",
    ]
    for label, neck, pp, pf, _ in PAPER:
        (p, f), (rp, rf) = costs[neck], ours[neck]
        diff = f"{rp - pp:+.3f}/{rf - pf:+.3f}"
        lines.append(f"{label:22} {neck:13} {p / 1e6:8.3f} {f:7.3f} {pp:4.2f}/{pf:4.2f} {rp:5.3f}/{rf:5.3f} {diff:>13}")
    cells = [f"{key}={ours[neck][0]:.2f}/{ours[neck][1]:.2f}" for _, neck, _, _, key in PAPER if key]
    return [*lines, "table5 " + " ".join(cells)]


def main() -> None:
    print("\n".join(table(neck_costs())))


if __name__ == "__main__":
    main()
