"""Head outputs -> per-image detections: top-k over all classes, score threshold, NMS.

Follows EfficientDet's evaluation path: the ``topk`` highest (anchor, class) logits per image
are kept before NMS (over all classes at once, not per class), decoded, clipped to the input
image, thresholded, then ``torchvision.ops.batched_nms`` (per class) or ``nms``
(class-agnostic) and the best ``max_det`` remain.
"""

from __future__ import annotations

import torch
from torchvision.ops import batched_nms, clip_boxes_to_image, nms

from archbench.detection.coding import decode_boxes


@torch.no_grad()
def decode(
    cls: torch.Tensor,
    box: torch.Tensor,
    anchors: torch.Tensor,
    *,
    image_size: int | tuple[int, int],
    score_thresh: float = 0.05,
    topk: int = 1000,
    iou_thresh: float = 0.5,
    max_det: int = 100,
    class_agnostic: bool = False,
) -> list[dict[str, torch.Tensor]]:
    """Detections of a batch.

    cls: [B, N, K] logits; box: [B, N, 4] deltas; anchors: [N, 4] xyxy px.
    image_size: R or (H, W) of the network input in px; boxes are clipped to it (the
    letterboxed R x R frame, so boxes may still cover padding).
    Returns B dicts: ``boxes`` [M, 4] float32 xyxy px in the input frame, ``scores`` [M]
    (sigmoid probabilities, descending), ``labels`` [M] int64 in 0..K-1; M <= max_det.
    """
    b, n, k = cls.shape
    hw = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    anchors = anchors.to(device=cls.device, dtype=torch.float32)
    n_top = min(topk, n * k)
    # flat index n * K + k; sigmoid is monotone so top-k on logits is top-k on scores
    top_logits, top_idx = cls.reshape(b, n * k).float().topk(n_top, dim=1)
    top_scores = top_logits.sigmoid()
    out = []
    for i in range(b):
        keep = top_scores[i] > score_thresh
        scores, idx = top_scores[i][keep], top_idx[i][keep]
        anchor_idx, labels = idx // k, idx % k
        boxes = decode_boxes(anchors[anchor_idx], box[i, anchor_idx].float())
        boxes = clip_boxes_to_image(boxes, hw)
        kept = nms(boxes, scores, iou_thresh) if class_agnostic else batched_nms(boxes, scores, labels, iou_thresh)
        kept = kept[:max_det]  # both return indices by decreasing score
        out.append({"boxes": boxes[kept], "scores": scores[kept], "labels": labels[kept]})
    return out
