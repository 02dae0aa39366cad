"""Semantic-segmentation training: per-pixel cross-entropy, mIoU from a confusion matrix.

The epoch loop, checkpoints and DDP are :class:`archbench.train.trainer.Trainer`'s. Predictions
are scored in each image's original frame: the logits of the letterboxed region are cropped,
upsampled bilinearly to the file's size and arg-maxed, then compared with the un-resized label
map. Each rank's confusion matrix is summed over the ranks before the metrics are computed.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from archbench.data.seg_dataset import collate_segmentation
from archbench.data.transforms import resized_size
from archbench.segmentation import confusion_matrix, segmentation_metrics
from archbench.train.trainer import Trainer


def original_frame_predictions(logits: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
    """Class indices ``[n, H, W]`` in the files' frame from letterbox logits ``[n, K, R, R]`` of n images that
    share ``meta``'s file size ``orig_size`` and ``scale``."""
    height, width = meta["orig_size"]
    w, h = resized_size(width, height, meta["scale"])
    region = logits[:, :, :h, :w]
    if (h, w) != (height, width):
        region = F.interpolate(region, size=(height, width), mode="bilinear", align_corners=False)
    return region.argmax(1)


def original_frame_prediction(logits: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
    """Class indices ``[H, W]`` in the file's frame from one image's letterbox logits ``[K, R, R]``."""
    return original_frame_predictions(logits[None], meta)[0]


def same_frame_runs(metas: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """``[start, stop)`` index ranges of consecutive items sharing ``orig_size`` and ``scale`` (in order)."""
    runs: list[tuple[int, int]] = []
    for i, meta in enumerate(metas):
        if runs and (meta["orig_size"], meta["scale"]) == (metas[i - 1]["orig_size"], metas[i - 1]["scale"]):
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


class SegmentationTrainer(Trainer):
    """Trains a ``Segmenter`` on a ``SegmentationDataset`` split; metrics are mIoU, per-class IoU and pixel accuracy.

    The loss is cross-entropy averaged over the pixels not labelled ``train_ds.ignore_index``
    (a batch with none contributes 0).
    """

    collate = staticmethod(collate_segmentation)

    def _to_device(self, labels: torch.Tensor) -> torch.Tensor:
        return labels.to(self.device)

    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits [B, K, R, R]."""
        with self._autocast():
            return self.net(images)

    def _criterion(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        ignore = self.train_ds.ignore_index
        total = F.cross_entropy(logits.float(), labels, ignore_index=ignore, reduction="sum")
        return {"loss": total / self.dist.normaliser((labels != ignore).sum())}

    def _predict(self, model: nn.Module, batches: DataLoader, val_ds: Any) -> torch.Tensor:
        """int64 ``[K, K]`` confusion matrix (true, predicted) of the images in ``batches``.

        Consecutive images of one file size are scored together (one upsampling, one count): the same
        counts as image by image, since each output pixel is computed alone and counts add up.
        """
        k = val_ds.num_classes
        confusion = torch.zeros(k, k, dtype=torch.int64, device=self.device)
        for images, _, metas in batches:
            logits = model(self._prepare(images)).float()
            for start, stop in same_frame_runs(metas):
                truth = torch.stack([val_ds.label_map(meta["index"]) for meta in metas[start:stop]]).to(self.device)
                pred = original_frame_predictions(logits[start:stop], metas[start])
                confusion += confusion_matrix(pred, truth, k, val_ds.ignore_index)
        return confusion

    def _score(self, partial: torch.Tensor, val_ds: Any, info: dict[str, Any]) -> dict[str, Any]:
        return segmentation_metrics(self.dist.sum(partial).cpu(), val_ds.class_names)
