"""Published comparisons of the board's necks: the one home of the papers' rankings and their numbers.

Each :class:`Comparison` is one paper's ordering of feature networks that the board also trains, with the
board's neck standing for each network. ``archbench.board.transfer`` sets the board's ranking against them.
The numbers are COCO box AP in percent, as printed (``None`` where only the direction is used here).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """One network of a published comparison.

    ``label``: the paper's name for it; ``necks``: the board's necks that can stand for it, best match first
    (the first one present in a comparison group is used); ``ap``: its published COCO AP in percent, or None.
    """

    label: str
    necks: tuple[str, ...]
    ap: float | None = None


@dataclass(frozen=True)
class Comparison:
    """A paper's comparison: ``source`` (paper and table), ``setting`` (what was held equal), ``entries`` best
    first (a published ranking; the order of ``ap`` where it is given), ``note`` (how the board's necks differ)."""

    name: str
    source: str
    setting: str
    entries: tuple[Entry, ...]
    note: str


PUBLISHED: tuple[Comparison, ...] = (
    Comparison(
        name="EfficientDet Table 5",
        source="Tan, Pang, Le, EfficientDet (CVPR 2020, arXiv 1911.09070), Table 5",
        setting="COCO val2017 AP; same backbone, head and training; every network repeated, separable convs for all",
        entries=(
            Entry("BiFPN (weighted)", ("bifpn",), 44.39),
            Entry("repeated FPN+PANet", ("panet_effdet", "panet"), 44.08),
            Entry("BiFPN w/o weights", ("bifpn_sum",), 43.94),
            Entry("NAS-FPN", ("nasfpn",), 43.16),
            Entry("fully-connected FPN", ("fc_fpn",), 43.06),
            Entry("repeated top-down FPN", ("fpn_effdet", "fpn"), 42.29),
        ),
        note=(
            "fpn_effdet / panet_effdet / fc_fpn are Table 5's networks with its ops; where a group lacks them, "
            "the board's own fpn / panet (their papers' ops) stand in. nasfpn is TF Model Garden's NAS-FPN."
        ),
    ),
    Comparison(
        name="NAS-FPN vs FPN",
        source="Ghiasi, Lin, Le, NAS-FPN (CVPR 2019, arXiv 1904.07392)",
        setting="COCO AP, RetinaNet ResNet-50 at 640 px: NAS-FPN (7 cells @ 256) 39.9 AP, above the FPN baseline",
        entries=(Entry("NAS-FPN", ("nasfpn",), 39.9), Entry("FPN", ("fpn",))),
        note="Direction only: NAS-FPN above FPN.",
    ),
    Comparison(
        name="PANet vs FPN",
        source="Liu, Qi, Qin, Shi, Jia, Path Aggregation Network (CVPR 2018, arXiv 1803.01534), ablation",
        setting="COCO, Mask R-CNN ResNet-50: bottom-up path augmentation on top of FPN raises box AP",
        entries=(Entry("FPN + bottom-up path (PANet)", ("panet",)), Entry("FPN", ("fpn",))),
        note="Direction only: PANet above FPN.",
    ),
)
