"""Detection math shared by training and evaluation: anchors, box coding, target assignment,
loss, post-processing and COCO evaluation. Each submodule has one job:

- :mod:`.anchors`      anchor grid + flattening of the per-level head outputs (same order)
- :mod:`.coding`       Faster R-CNN box deltas (encode / decode)
- :mod:`.assign`       IoU-threshold anchor -> ground-truth assignment
- :mod:`.focal`        torchvision's sigmoid focal loss, bit for bit, in fewer passes
- :mod:`.loss`         focal classification + box regression loss
- :mod:`.postprocess`  top-k, score threshold, NMS -> per-image detections
- :mod:`.evaluate`     pycocotools COCOeval wrapper with configurable size buckets
"""

from archbench.detection.anchors import AnchorConfig, anchors_for, flatten_head_outputs
from archbench.detection.assign import BACKGROUND, IGNORE, Assignment, assign
from archbench.detection.coding import decode_boxes, encode_boxes
from archbench.detection.evaluate import coco_evaluate, to_dataset_frame
from archbench.detection.loss import DetectionLoss
from archbench.detection.postprocess import decode

__all__ = [
    "AnchorConfig",
    "anchors_for",
    "flatten_head_outputs",
    "BACKGROUND",
    "IGNORE",
    "Assignment",
    "assign",
    "encode_boxes",
    "decode_boxes",
    "DetectionLoss",
    "decode",
    "coco_evaluate",
    "to_dataset_frame",
]
