"""Detection loss: sigmoid focal classification + box regression, normalised by positives.

Choices (EfficientDet's, so results compare with the reference implementation):

- classification: ``torchvision.ops.sigmoid_focal_loss`` (alpha 0.25, gamma 1.5) summed over
  every non-ignored anchor and class, divided by the number of positive anchors in the batch
  (at least 1; under DDP, in the global batch, see ``normaliser``). It is computed by
  :func:`~archbench.detection.focal.focal_loss_sum`: the same value and gradient bit for bit, without
  building the one-hot target or autograd's chain of elementwise ops.
- box (default ``box_loss="huber"``): Huber loss (delta 0.1) on Faster R-CNN deltas (weights
  1, 1, 1, 1) of positive anchors, summed and divided by ``4 * num_pos``; the total is
  ``cls_loss + box_weight * box_loss`` with ``box_weight = 50``. The alternative
  ``box_loss="giou"`` applies ``torchvision.ops.generalized_box_iou_loss`` to the decoded
  boxes (summed / num_pos); use ``box_weight`` around 1..2 with it.

Assignment is :func:`archbench.detection.assign.assign` (IoU >= 0.5 positive, < 0.4 background,
in between ignored, plus the best anchor of every GT). By default it runs on the whole batch at
once (:func:`~archbench.detection.assign.assign_batch` on GT padded to the batch's largest count,
in chunks of images whose ``[B, N, M]`` IoU stays under :data:`ASSIGN_CHUNK_ELEMENTS`);
``batched=False`` keeps the loop over images, which gives the same targets. The losses are
computed on the whole batch at once.

Finding the positives (``nonzero``, boolean-mask indexing) makes the host wait for the device several times a
step. ``dense=True`` (what the trainer picks on CUDA) computes targets and losses over every anchor with masks
instead: no host synchronisation (but one inside torchvision's GIoU loss, with ``box_loss="giou"``), the same
targets and the same classification loss and gradient bit for bit; only the box-loss sum rounds differently (it
adds the non-positive anchors' zeros in between). The default, indexed form touches only the positives and is
the faster one on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import generalized_box_iou_loss

from archbench.detection.assign import assign, assign_batch, pad_targets
from archbench.detection.coding import decode_boxes, encode_boxes
from archbench.detection.focal import focal_loss_sum

# re-exported: the box coding is part of this module's public contract
__all__ = ["DetectionLoss", "encode_boxes", "decode_boxes", "assign"]


#: Largest IoU tensor (images x anchors x GT, elements) the batched assignment builds at once.
ASSIGN_CHUNK_ELEMENTS = 2**24


def _at_least_one(count: torch.Tensor) -> torch.Tensor:
    return count.clamp(min=1).to(torch.float32)


class DetectionLoss(nn.Module):
    """``forward(cls, box, anchors, targets) -> dict(loss, cls_loss, box_loss, num_pos)``.

    num_classes: K. alpha, gamma: focal-loss parameters. box_weight: multiplier of the box
    loss in the total. box_loss: ``"huber"`` (on deltas, ``huber_delta``) or ``"giou"`` (on
    decoded boxes). pos_iou, neg_iou, min_best_iou: assignment thresholds (see
    :mod:`archbench.detection.assign`). normaliser: maps the batch's positive count (int64, 0-dim)
    to the float divisor of the summed losses; the default is max(1, count), and DDP training
    passes :meth:`archbench.train.distributed.DistContext.normaliser` (the count over all ranks).
    batched: assign targets for the whole batch at once (default) rather than image by image;
    both give the same targets. dense: masks instead of indexing the positives (see the module docstring;
    needs ``batched``).
    """

    def __init__(
        self,
        num_classes: int,
        alpha: float = 0.25,
        gamma: float = 1.5,
        box_weight: float = 50.0,
        box_loss: Literal["huber", "giou"] = "huber",
        huber_delta: float = 0.1,
        pos_iou: float = 0.5,
        neg_iou: float = 0.4,
        min_best_iou: float = 0.01,
        normaliser: Callable[[torch.Tensor], torch.Tensor] = _at_least_one,
        batched: bool = True,
        dense: bool = False,
    ) -> None:
        super().__init__()
        if dense and not batched:
            raise ValueError("dense=True needs batched=True (the per-image assignment lists each image's positives)")
        self.normaliser, self.batched, self.dense = normaliser, batched, dense
        if box_loss not in ("huber", "giou"):
            raise ValueError(f"box_loss must be 'huber' or 'giou', not {box_loss!r}")
        self.num_classes, self.alpha, self.gamma = num_classes, alpha, gamma
        self.box_weight, self.box_loss, self.huber_delta = box_weight, box_loss, huber_delta
        self.pos_iou, self.neg_iou, self.min_best_iou = pos_iou, neg_iou, min_best_iou

    def forward(
        self, cls: torch.Tensor, box: torch.Tensor, anchors: torch.Tensor, targets: Sequence[dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        """Loss of one batch.

        cls: [B, N, K] logits; box: [B, N, 4] deltas (rows in anchor order, see
        :func:`archbench.detection.anchors.flatten_head_outputs`); anchors: [N, 4] xyxy px;
        targets: B dicts with ``boxes`` [M_i, 4] float xyxy px (input frame) and ``labels``
        [M_i] int64 in 0..K-1.

        Returns 0-dim tensors: ``loss`` (cls_loss + box_weight * box_loss, differentiable),
        ``cls_loss``, ``box_loss`` (unweighted) and ``num_pos`` (int64, positives in the batch).
        """
        b, n, k = cls.shape
        if k != self.num_classes:
            raise ValueError(f"cls has {k} classes, the loss {self.num_classes}")
        if box.shape != (b, n, 4) or anchors.shape != (n, 4) or len(targets) != b:
            raise ValueError(
                f"shape mismatch: cls {tuple(cls.shape)}, box {tuple(box.shape)}, "
                f"anchors {tuple(anchors.shape)}, {len(targets)} targets"
            )
        anchors = anchors.to(device=cls.device, dtype=torch.float32)
        cls, box = cls.float(), box.float()  # loss in fp32 even under autocast

        targets_of = self._targets_batched if self.batched else self._targets_per_image
        labels_b, gt = targets_of(anchors, targets)  # [B, N] labels; GT box of each positive [P, 4] (dense [B, N, 4])
        positive = labels_b >= 0
        num_pos = positive.sum()
        norm = self.normaliser(num_pos)

        # classification: target 1 in a positive's class, 0 elsewhere, ignored anchors left out
        cls_loss = focal_loss_sum(cls, labels_b, alpha=self.alpha, gamma=self.gamma, dense=self.dense) / norm

        # box regression on positives: indexed, boolean-mask order (b-major, n ascending) is the order of gt;
        # dense, every anchor (a non-positive one regresses onto itself, finite) with its term zeroed in the sum
        if self.dense:
            pred, box_anchors = box, anchors.expand(b, n, 4)
            gt = torch.where(positive.unsqueeze(-1), gt, box_anchors)
        else:
            pred, box_anchors = box[positive], anchors[torch.nonzero(positive, as_tuple=True)[1]]  # [P, 4]
        if self.box_loss == "huber":
            terms = F.huber_loss(pred, encode_boxes(box_anchors, gt), reduction="none", delta=self.huber_delta)
            box_loss = self._positives_sum(terms, positive) / (4.0 * norm)
        else:
            terms = generalized_box_iou_loss(decode_boxes(box_anchors, pred), gt, reduction="none")
            box_loss = self._positives_sum(terms, positive) / norm
        return {
            "loss": cls_loss + self.box_weight * box_loss,
            "cls_loss": cls_loss.detach(),
            "box_loss": box_loss.detach(),
            "num_pos": num_pos,
        }

    def _positives_sum(self, terms: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
        """Sum of the positives' loss terms: ``terms`` [P, ...] (indexed) or [B, N, ...] (dense: only where
        ``positive`` [B, N])."""
        if self.dense:
            terms = torch.where(positive.view(*positive.shape, *[1] * (terms.dim() - 2)), terms, 0.0)
        return terms.sum()

    def _targets_per_image(
        self, anchors: torch.Tensor, targets: Sequence[dict[str, torch.Tensor]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels [B, N] and the GT boxes [P, 4] of the positives (b-major, n ascending), one image at a time."""
        labels, gt_per_pos = [], []
        for t in targets:
            a = assign(anchors, t["boxes"], t["labels"], self.pos_iou, self.neg_iou, self.min_best_iou)
            labels.append(a.labels)
            gt_per_pos.append(t["boxes"].to(device=anchors.device, dtype=torch.float32)[a.matched[a.positive]])
        return torch.stack(labels), torch.cat(gt_per_pos)

    def _targets_batched(
        self, anchors: torch.Tensor, targets: Sequence[dict[str, torch.Tensor]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What :meth:`_targets_per_image` returns, from padded GT assigned a chunk of images at a time; dense,
        the GT box matched by every anchor [B, N, 4] (GT row 0 of its image where it has none)."""
        boxes, gt_labels, valid = pad_targets(targets, anchors.device)  # [B, M, 4], [B, M], [B, M]
        chunk = max(1, ASSIGN_CHUNK_ELEMENTS // (anchors.shape[0] * boxes.shape[1]))
        labels, matched = [], []
        for start in range(0, len(targets), chunk):
            part = slice(start, start + chunk)
            thresholds = (self.pos_iou, self.neg_iou, self.min_best_iou)
            a = assign_batch(anchors, boxes[part], gt_labels[part], valid[part], *thresholds, dense=self.dense)
            labels.append(a.labels)
            matched.append(a.matched)
        labels_b, matched_b = torch.cat(labels), torch.cat(matched)
        if self.dense:
            return labels_b, boxes.gather(1, matched_b.clamp(min=0).unsqueeze(-1).expand(-1, -1, 4))
        pb, pn = torch.nonzero(labels_b >= 0, as_tuple=True)
        return labels_b, boxes[pb, matched_b[pb, pn]]
