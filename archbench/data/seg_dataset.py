"""Semantic segmentation data served in the detection layer's letterbox frame.

:class:`SegmentationDataset` pairs image files with a *label source* (a function from an image's
index to its class-index map at the file's size) and serves ``(image [3, R, R] float32,
labels [R, R] int64, meta)`` with the same letterbox and the same seeded flip / scale-jitter /
crop augmentation as :class:`archbench.data.coco.CocoDetection`: the map follows the image
pixel for pixel (nearest-neighbour resampling, so labels never mix). The canvas padding
(bottom/right) is labelled ``ignore_index``.

Labels are ``0..K-1`` (``class_names[k]`` is class k) or ``ignore_index``. Where the label maps
come from is the job of the readers: :mod:`archbench.data.segfolder` (PNG class-index maps,
also the built-in set's) and :mod:`archbench.data.coco_semantic` (COCO instance masks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from archbench.data.decoded import DECODED_BUDGET_BYTES, decoded_images
from archbench.data.transforms import (
    augment_image,
    augment_labels,
    letterbox_scale,
    resize,
    resize_nearest,
    resized_size,
    sample_augment,
    to_canvas,
    to_label_canvas,
)

#: The ignore label when a data set does not name one (VOC's convention).
DEFAULT_IGNORE_INDEX = 255
_NO_BOXES = np.zeros((0, 4), np.float32)


@dataclass(frozen=True)
class ImageFile:
    """One image of a data set: its file and the file's size in px."""

    path: str
    width: int
    height: int


#: index -> class-index map ``[H, W]`` (the image file's size) of labels 0..K-1 or the ignore index.
LabelSource = Callable[[int], np.ndarray]


class SegmentationDataset(torch.utils.data.Dataset):
    """Images and their class-index maps in an R x R top-left letterbox frame.

    Item ``i`` is ``(image, labels, meta)``: ``image`` float32 ``[3, R, R]`` (ImageNet-normalised,
    padding = mean colour), ``labels`` int64 ``[R, R]`` (padding = ``ignore_index``), ``meta``
    dict: ``index`` (i), ``scale`` (resized px / original px), ``orig_size`` (h, w) px.

    With ``train=True`` items are augmented exactly like detection items, from a generator
    seeded by ``(seed, epoch, index)`` (see :meth:`set_epoch`). :meth:`label_map` gives the
    un-resized map that evaluation compares predictions with. The images are decoded once into the
    folder ``decoded_cache`` when their pixels fit ``decoded_budget`` bytes
    (:func:`archbench.data.decoded.decoded_images`; 0 or no folder reads every item from its file).
    A ``labels`` source must not be a lambda or closure if items are to be served by spawned
    worker processes (it is pickled); the readers' sources are picklable.

    Attributes: ``class_names`` (K names), ``num_classes`` (K), ``ignore_index``, ``fingerprint``
    (of the files and the selection), ``stats`` (what reading found, per reader), ``files``.
    """

    def __init__(
        self,
        files: Sequence[ImageFile],
        labels: LabelSource,
        *,
        class_names: Sequence[str],
        ignore_index: int,
        resolution: int,
        train: bool,
        fingerprint: str,
        stats: dict[str, Any],
        seed: int = 0,
        decoded_budget: int = DECODED_BUDGET_BYTES,
        decoded_cache: Path | None = None,
    ) -> None:
        self.files, self._labels = list(files), labels
        self.class_names, self.ignore_index = list(class_names), int(ignore_index)
        self.resolution, self.train, self.seed, self.epoch = resolution, train, seed, 0
        self.fingerprint, self.stats = fingerprint, stats
        sizes = [(f.width, f.height) for f in self.files]
        self._images = decoded_images([f.path for f in self.files], sizes, decoded_budget, decoded_cache)

    @property
    def num_classes(self) -> int:
        """K: labels are 0..K-1 (plus the ignore index)."""
        return len(self.class_names)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (call before iterating each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.files)

    def label_map(self, index: int) -> torch.Tensor:
        """int64 ``[H, W]``: the class-index map of item ``index`` at the image file's size."""
        return torch.from_numpy(self._labels(index).astype(np.int64))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        file = self.files[index]
        labels = self._labels(index)
        scale = letterbox_scale(file.width, file.height, self.resolution)
        if self.train:
            aug = sample_augment(np.random.default_rng([self.seed, self.epoch, index]))
            scale *= aug.jitter
            size = resized_size(file.width, file.height, scale)
            image, _, _ = augment_image(
                self._images.image(index, file.path, size), _NO_BOXES, scale, size, aug, self.resolution
            )
            labels = augment_labels(labels, size, aug, self.resolution)
        else:
            size = resized_size(file.width, file.height, scale)
            image, labels = resize(self._images.image(index, file.path, size), size), resize_nearest(labels, size)
        meta = {"index": index, "scale": float(scale), "orig_size": (file.height, file.width)}
        return to_canvas(image, self.resolution), to_label_canvas(labels, self.resolution, self.ignore_index), meta


def collate_segmentation(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor, dict[str, Any]]],
) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
    """Batch items of :class:`SegmentationDataset`: (images ``[B, 3, R, R]``, labels ``[B, R, R]``, B metas)."""
    return (
        torch.stack([image for image, _, _ in batch]),
        torch.stack([labels for _, labels, _ in batch]),
        [meta for _, _, meta in batch],
    )
