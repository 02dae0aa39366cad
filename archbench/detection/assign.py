"""Anchor -> ground-truth assignment by IoU thresholds (RetinaNet / EfficientDet rule).

Per anchor, with ``iou`` its best IoU over the image's GT boxes:

- ``iou >= pos_iou``            positive, matched to that GT (label = its class)
- ``neg_iou <= iou < pos_iou``  ignored (no classification or box loss)
- ``iou < neg_iou``             background

plus the *best-anchor rule*: every GT whose best anchor IoU is at least ``min_best_iou``
makes that anchor positive (overriding ignore / background). Without it a small or oddly
shaped object whose best anchor IoU is below ``pos_iou`` would never be a positive anywhere
(with the default anchors the smallest side is 32 px: a 12 x 12 px object reaches IoU 0.14),
so small objects would get no training signal. Only *one* anchor per GT is forced; ties in
IoU (a tiny box lies fully inside several same-shaped anchors, all with the same IoU) are
broken by the nearest anchor centre, so the forced positive is the well-centred one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torchvision.ops import box_iou

#: Label of an anchor excluded from the classification loss.
IGNORE = -1
#: Label of a background (negative) anchor.
BACKGROUND = -2


class Assignment(NamedTuple):
    """Per-anchor targets of one image.

    labels: [N] int64; class index 0..K-1 for positives, :data:`BACKGROUND` (-2) for negatives,
        :data:`IGNORE` (-1) for ignored anchors.
    matched: [N] int64; index into the image's GT boxes for positives, -1 elsewhere.
    """

    labels: torch.Tensor
    matched: torch.Tensor

    @property
    def positive(self) -> torch.Tensor:
        """[N] bool, anchors with a class target."""
        return self.labels >= 0


def _centre(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[..., :2] + boxes[..., 2:]) / 2


def _first_per_group(group: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each distinct ``group`` id, the ``value`` of its smallest ``key`` (first on ties).

    group, key, value: [P]. Returns ``(value [G], group [G])``, one row per distinct group.
    """
    order = torch.argsort(key, stable=True)
    order = order[torch.argsort(group[order], stable=True)]  # by group, then key
    g = group[order]
    first = torch.ones_like(g, dtype=torch.bool)
    first[1:] = g[1:] != g[:-1]
    return value[order[first]], g[first]


def assign(
    anchors: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    pos_iou: float = 0.5,
    neg_iou: float = 0.4,
    min_best_iou: float = 0.01,
) -> Assignment:
    """Assign anchors [N, 4] to GT boxes [M, 4] (both xyxy px) with GT classes [M] in 0..K-1.

    See the module docstring for the rule. ``M = 0`` gives all background. If two GTs share
    the same best anchor, the one with the larger IoU to it keeps it.
    """
    if not 0.0 <= neg_iou <= pos_iou:
        raise ValueError(f"need 0 <= neg_iou <= pos_iou, got {neg_iou}, {pos_iou}")
    n, device = anchors.shape[0], anchors.device
    labels = torch.full((n,), BACKGROUND, dtype=torch.int64, device=device)
    matched = torch.full((n,), -1, dtype=torch.int64, device=device)
    if gt_boxes.numel() == 0:
        return Assignment(labels, matched)
    gt_boxes = gt_boxes.to(device=device, dtype=anchors.dtype)
    gt_labels = gt_labels.to(device=device, dtype=torch.int64)

    iou = box_iou(anchors, gt_boxes)  # [N, M]
    best_iou, best_gt = iou.max(dim=1)  # per anchor
    labels[best_iou >= neg_iou] = IGNORE
    positive = best_iou >= pos_iou

    # best-anchor rule: the anchor of highest IoU per GT, ties -> nearest centre
    gt_best_iou = iou.max(dim=0).values  # [M]
    ok = gt_best_iou >= max(min_best_iou, 1e-12)  # a GT with IoU 0 everywhere (degenerate) forces nothing
    ties = (iou >= gt_best_iou[None, :] * (1 - 1e-5)) & ok[None, :]  # [N, M], few True
    tie_anchor, tie_gt = torch.nonzero(ties, as_tuple=True)
    if tie_gt.numel():
        dist = (_centre(anchors[tie_anchor]) - _centre(gt_boxes[tie_gt])).square().sum(dim=1)
        forced_anchor, forced_gt = _first_per_group(tie_gt, dist, tie_anchor)  # one anchor per GT
        # an anchor forced by several GTs goes to the one of larger IoU with it
        forced_iou = iou[forced_anchor, forced_gt]
        forced_gt, forced_anchor = _first_per_group(forced_anchor, -forced_iou, forced_gt)
        best_gt[forced_anchor] = forced_gt
        positive[forced_anchor] = True

    labels[positive] = gt_labels[best_gt[positive]]
    matched[positive] = best_gt[positive]
    return Assignment(labels, matched)


def pad_targets(
    targets: Sequence[dict[str, torch.Tensor]], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """B images' GT as padded tensors: boxes [B, M, 4] float32 xyxy px, labels [B, M] int64, valid [B, M] bool.

    ``M`` is the largest GT count of the batch (at least 1); padded rows are zero boxes, label -1, not valid.
    """
    m = max([1] + [int(t["boxes"].shape[0]) for t in targets])
    boxes = torch.zeros(len(targets), m, 4, dtype=torch.float32, device=device)
    labels = torch.full((len(targets), m), -1, dtype=torch.int64, device=device)
    valid = torch.zeros(len(targets), m, dtype=torch.bool, device=device)
    for i, t in enumerate(targets):
        k = int(t["boxes"].shape[0])
        boxes[i, :k] = t["boxes"].reshape(k, 4)
        labels[i, :k] = t["labels"]
        valid[i, :k] = True
    return boxes, labels, valid


def _batched_iou(anchors: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """IoU [B, N, M] of anchors [N, 4] with each image's GT [B, M, 4]: torchvision's ``box_iou`` arithmetic,
    one coordinate at a time (broadcasting over a trailing dim of 2 is several times slower on the CPU)."""
    a = [anchors[None, :, None, i] for i in range(4)]  # 4 x [1, N, 1]
    g = [gt[:, None, :, i] for i in range(4)]  # 4 x [B, 1, M]
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_g = (g[2] - g[0]) * (g[3] - g[1])
    w = (torch.min(a[2], g[2]) - torch.max(a[0], g[0])).clamp(min=0)
    h = (torch.min(a[3], g[3]) - torch.max(a[1], g[1])).clamp(min=0)
    inter = w * h
    return inter / (area_a + area_g - inter)


def assign_batch(
    anchors: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    valid: torch.Tensor,
    pos_iou: float = 0.5,
    neg_iou: float = 0.4,
    min_best_iou: float = 0.01,
    dense: bool = False,
) -> Assignment:
    """:func:`assign` for a whole batch at once: the same labels and matches, without a loop over images.

    anchors [N, 4] and padded GT ``gt_boxes`` [B, M, 4] (xyxy px), ``gt_labels`` [B, M], ``valid`` [B, M]
    (see :func:`pad_targets`). Returns an :class:`Assignment` of [B, N] tensors (``matched`` indexes the
    image's own GT rows). Holds a few [B, N, M] float tensors: callers with large ``B * N * M`` split the batch.
    dense: apply the best-anchor rule with [B, N, M] masks instead of listing the ties (no host
    synchronisation, what CUDA wants; the same result).
    """
    if not 0.0 <= neg_iou <= pos_iou:
        raise ValueError(f"need 0 <= neg_iou <= pos_iou, got {neg_iou}, {pos_iou}")
    b = valid.shape[0]
    n = anchors.shape[0]
    iou = _batched_iou(anchors, gt_boxes.to(anchors.dtype)).masked_fill(~valid[:, None, :], -1.0)  # [B, N, M]
    best_iou, best_gt = iou.max(dim=2)  # per anchor, [B, N]
    labels = torch.full((b, n), BACKGROUND, dtype=torch.int64, device=anchors.device)
    labels.masked_fill_(best_iou >= neg_iou, IGNORE)
    positive = best_iou >= pos_iou

    gt_best_iou = iou.max(dim=1).values  # [B, M]
    ok = (gt_best_iou >= max(min_best_iou, 1e-12)) & valid
    ties = (iou >= gt_best_iou[:, None, :] * (1 - 1e-5)) & ok[:, None, :]  # [B, N, M], few True
    force = _force_dense if dense else _force_listed
    forced, forced_gt = force(anchors, gt_boxes.to(anchors.dtype), iou, ties)
    best_gt = torch.where(forced, forced_gt, best_gt)
    positive |= forced

    labels = torch.where(positive, gt_labels.gather(1, best_gt), labels)
    matched = torch.where(positive, best_gt, torch.full_like(best_gt, -1))
    return Assignment(labels, matched)


def _force_listed(
    anchors: torch.Tensor, gt_boxes: torch.Tensor, iou: torch.Tensor, ties: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The best-anchor rule of :func:`assign_batch` on the listed ties (``nonzero``: few elements, a host sync).

    anchors [N, 4], gt_boxes [B, M, 4] (xyxy px), iou [B, N, M], ties [B, N, M] bool: the anchors within rounding
    of each GT's best IoU. Per GT the tie of the nearest centre (then the lowest anchor index) is forced; an
    anchor forced by several GTs of its image takes the one of larger IoU (then the lower GT index).
    Returns ``forced`` [B, N] bool and ``forced_gt`` [B, N] int64 (meaningful where forced).
    """
    b, n, m = iou.shape
    forced = torch.zeros(b, n, dtype=torch.bool, device=iou.device)
    forced_gt = torch.zeros(b, n, dtype=torch.int64, device=iou.device)
    tie_img, tie_anchor, tie_gt = torch.nonzero(ties, as_tuple=True)
    if tie_gt.numel():
        dist = (_centre(anchors[tie_anchor]) - _centre(gt_boxes[tie_img, tie_gt])).square().sum(1)
        rows = torch.arange(tie_gt.numel(), device=iou.device)
        first, _ = _first_per_group(tie_img * m + tie_gt, dist, rows)  # one anchor per (image, GT)
        f_img, f_anchor, f_gt = tie_img[first], tie_anchor[first], tie_gt[first]
        keep, _ = _first_per_group(
            f_img * n + f_anchor, -iou[f_img, f_anchor, f_gt], torch.arange(first.numel(), device=iou.device)
        )
        forced_gt[f_img[keep], f_anchor[keep]] = f_gt[keep]
        forced[f_img[keep], f_anchor[keep]] = True
    return forced, forced_gt


def _force_dense(
    anchors: torch.Tensor, gt_boxes: torch.Tensor, iou: torch.Tensor, ties: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_force_listed` with [B, N, M] masks and ``argmin`` / ``argmax`` (first index on ties, as the
    listed form's stable sorts): no host synchronisation."""
    dist = (_centre(anchors)[None, :, None, :] - _centre(gt_boxes)[:, None, :, :]).square().sum(-1)  # [B, N, M]
    nearest = dist.masked_fill(~ties, float("inf")).argmin(dim=1, keepdim=True)  # [B, 1, M] anchor per GT
    chosen = torch.zeros_like(ties).scatter_(1, nearest, ties.any(dim=1, keepdim=True))  # [B, N, M]
    forced_gt = iou.masked_fill(~chosen, -2.0).argmax(dim=2)  # IoU >= -1 everywhere; -2 marks "not forced"
    return chosen.any(dim=2), forced_gt
