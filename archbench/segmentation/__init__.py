"""Semantic-segmentation maths: :mod:`.metrics` (confusion matrix, IoU, pixel accuracy)."""

from archbench.segmentation.metrics import confusion_matrix, segmentation_metrics

__all__ = ["confusion_matrix", "segmentation_metrics"]
