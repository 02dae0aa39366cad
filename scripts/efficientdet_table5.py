"""EfficientDet's feature-network ablation (Tan, Pang, Le 2020, Table 5) beside archbench's costs of it.

Table 5 gives each feature network's params and FLOPs as ratios to repeated top-down FPN. This script
runs exactly

    archbench profile --neck panet_effdet,nasfpn,fc_fpn,bifpn_sum,bifpn --phi 3 --relative-to fpn_effdet \
        --op sepconv --act swish

(default ``efficientdet`` preset, 90 classes) through ``archbench.costs.profile.profile``, prints paper vs
ours, and ends with one line:

    table5 panet=<p>/<f> nasfpn=<p>/<f> fc_fpn=<p>/<f> bifpn=<p>/<f>

(neck params ratio / neck FLOPs ratio, 2 decimals). The only numbers written here are the paper's.

The configuration (the paper states the ops and that FPN and PANet are repeated, not the scale, the
repeat counts, or the fully-connected FPN's nodes; docs/profile.md gives the reasons for each reading):

- Scale: EfficientDet-D3 (``--preset efficientdet --phi 3``: EfficientNet-B3 features, width 160,
  896 px, 6 repeats, 90 classes). Table 4's "EfficientNet-B3 + BiFPN" row (44.4 AP) is Table 5's BiFPN
  row (44.39 AP), which is D3.
- Contestants: ``fpn_effdet`` (Fig. 2(a)), ``panet_effdet`` (Fig. 2(b), with BiFPN's shortcut),
  ``fc_fpn`` (our reading of the fully-connected FPN), ``bifpn_sum`` / ``bifpn`` (without / with
  weighted fusion), and ``nasfpn`` with BiFPN's node op imposed by ``--op sepconv --act swish`` (its
  cells already carry a bias; its graph, attention cells, P6/P7 stem and laterals stay its own). The
  flags change nothing in the other contestants, which have BiFPN's op already.
- Repeats: 6 cells for every contestant. Table 5 gives FPN and FPN+PANet the same cost (1.0x / 1.0x)
  by running the single-column FPN twice as often; ``fpn_effdet``'s cell is two top-down columns, i.e.
  two of those cells, so 6 of its cells are the 12 single-column cells.
"""

from __future__ import annotations

from typing import Any

from archbench.costs.profile import profile

PHI = 3
NUM_CLASSES = 90
BASELINE = "fpn_effdet"
CONTESTANTS = ("panet_effdet", "nasfpn", "fc_fpn", "bifpn_sum", "bifpn")
#: ``--op sepconv --act swish``: BiFPN's node op, imposed on every contestant (only NAS-FPN's changes).
OVERRIDES: dict[str, Any] = {"op_type": "sepconv", "act": "swish"}
#: Table 5 rows: (label, our neck, paper params ratio, paper FLOPs ratio, key of the last line or None).
PAPER = (
    ("repeated top-down FPN", BASELINE, 1.0, 1.0, None),
    ("repeated FPN+PANet", "panet_effdet", 1.0, 1.0, "panet"),
    ("NAS-FPN", "nasfpn", 0.71, 0.72, "nasfpn"),
    ("fully-connected FPN", "fc_fpn", 1.24, 1.21, "fc_fpn"),
    ("BiFPN w/o weighted", "bifpn_sum", 0.88, 0.67, None),
    ("BiFPN (weighted)", "bifpn", 0.88, 0.68, "bifpn"),
)


def profile_rows() -> list[dict[str, Any]]:
    """The rows of the module docstring's ``archbench profile`` call: one per contestant, with its ratios
    to the baseline (``neck_params_ratio``, ``neck_gflops_ratio``)."""
    return profile(CONTESTANTS, [PHI], "efficientdet", NUM_CLASSES, overrides=OVERRIDES, relative_to=BASELINE)


def costs_and_ratios(rows: list[dict[str, Any]]) -> dict[str, tuple[float, float, float, float]]:
    """Per neck, baseline included: (neck params, neck GFLOPs, params ratio, FLOPs ratio). The baseline's
    costs are the first row's divided by its ratios (the call prints no baseline row)."""
    out = {
        r["neck"]: (r["params_neck"], r["gflops_neck"], r["neck_params_ratio"], r["neck_gflops_ratio"]) for r in rows
    }
    p, f, rp, rf = out[CONTESTANTS[0]]
    out[BASELINE] = (round(p / rp), f / rf, 1.0, 1.0)
    return out


def table(rows: list[dict[str, Any]]) -> list[str]:
    """The printed lines: paper vs ours per Table-5 row, then the one-line summary."""
    ours = costs_and_ratios(rows)
    lines = [
        f"EfficientDet Table 5 at D{PHI}: neck params / FLOPs relative to repeated top-down FPN",
        f"{'network':22} {'neck':13} {'params M':>8} {'GFLOPs':>7} {'paper':>9} {'ours':>11} {'ours - paper':>13}",
    ]
    for label, neck, pp, pf, _ in PAPER:
        p, f, rp, rf = ours[neck]
        diff = f"{rp - pp:+.3f}/{rf - pf:+.3f}"
        lines.append(f"{label:22} {neck:13} {p / 1e6:8.3f} {f:7.3f} {pp:4.2f}/{pf:4.2f} {rp:5.3f}/{rf:5.3f} {diff:>13}")
    cells = [f"{key}={ours[neck][2]:.2f}/{ours[neck][3]:.2f}" for _, neck, _, _, key in PAPER if key]
    return [*lines, "table5 " + " ".join(cells)]


def main() -> None:
    print("\n".join(table(profile_rows())))


if __name__ == "__main__":
    main()
