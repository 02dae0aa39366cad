"""Image and box transforms of the detection data layer: RGB loading, letterbox, augmentation.

Conventions: boxes are float32 numpy arrays ``[N, 4]`` in ``(x1, y1, x2, y2)`` pixel
coordinates (pixel (row i, col j) covers ``[j, j+1) x [i, i+1)``). The letterbox resizes an
image keeping its aspect ratio and places it at the *top-left* of an ``R x R`` canvas, so a
box maps by a pure scale (``box * scale``) and padding only ever lies bottom/right. Label maps
(segmentation) take the same flip / resize / crop with nearest-neighbour resampling, so a
class index is never blended with its neighbours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

#: ImageNet channel statistics (RGB, on 0..1 pixel values).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Range of the training scale jitter, as a factor of the letterbox scale.
JITTER_RANGE = (0.8, 1.2)
#: A box cut by the training crop is dropped if less than this fraction of it stays visible ...
MIN_VISIBLE_FRACTION = 0.25
#: ... or if its visible part is narrower or shorter than this (px, resized frame).
MIN_VISIBLE_SIDE = 2.0

_MEAN = np.array(IMAGENET_MEAN, dtype=np.float32) * np.float32(255.0)
_INV_STD = np.float32(1.0) / (np.array(IMAGENET_STD, dtype=np.float32) * np.float32(255.0))
#: float32 ``[3, 256]``: the normalised value of each 8-bit level per channel, ``(v - mean) * inv_std`` in float32.
_NORMALISED = ((np.arange(256, dtype=np.float32)[None, :] - _MEAN[:, None]) * _INV_STD[:, None]).astype(np.float32)


def letterbox_scale(width: int, height: int, resolution: int) -> float:
    """The factor (resized px / original px) that makes the longer side ``resolution`` px."""
    return resolution / max(width, height)


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as an 8-bit RGB PIL image (alpha dropped, palette/CMYK/grey expanded).

    16-bit and float greyscale (modes ``I``, ``I;16``, ``F``) are rescaled by their maximum
    to 0..255 first, since PIL's own conversion clips them at 255.
    """
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float32)
        peak = float(values.max()) if values.size else 0.0
        grey = (values * (255.0 / peak)).round() if peak > 0 else values
        image = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # avoids PIL's palette-transparency warning
    return image.convert("RGB")


def load_rgb(path: str | Path, min_size: tuple[int, int] | None = None) -> Image.Image:
    """Open an image file as RGB; ``min_size`` (w, h) lets JPEG decode at a reduced scale.

    ``draft`` makes the JPEG decoder downscale by 1/2, 1/4 or 1/8 while keeping the result at
    least ``min_size``, which is several times faster when the target is much smaller than
    the file; the caller must still resize to the exact size it wants.
    """
    with Image.open(path) as image:
        if min_size is not None and image.format == "JPEG":
            image.draft("RGB", (max(1, min_size[0]), max(1, min_size[1])))
        image.load()
        return to_rgb(image)


def to_canvas(image: Image.Image, resolution: int) -> torch.Tensor:
    """A normalised float32 ``[3, R, R]`` tensor with ``image`` (RGB, at most R x R) at the top-left.

    Pixels are normalised with :data:`IMAGENET_MEAN` / :data:`IMAGENET_STD`; the padding
    (bottom/right) is 0 *after* normalisation, i.e. the mean colour. Each channel is a lookup in a
    table of the 256 normalised levels (the same float32 values as the arithmetic, twice as fast),
    written straight into the canvas (``np.take`` with ``out``: no temporary, half the time of
    indexing then copying; ``mode="clip"`` writes unbuffered, and a uint8 level is always in the table);
    the work is numpy: on a busy machine torch's intra-op threads make these small ops several times slower.
    """
    pixels = np.asarray(image, dtype=np.uint8)
    h, w = pixels.shape[0], pixels.shape[1]
    canvas = np.zeros((3, resolution, resolution), dtype=np.float32)
    for channel in range(3):
        np.take(_NORMALISED[channel], pixels[:, :, channel], out=canvas[channel, :h, :w], mode="clip")
    return torch.from_numpy(canvas)


def resized_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The integer (w, h) of an image of ``width x height`` px resized by ``scale`` (>= 1 px)."""
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


def resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` resized to ``size`` (w, h) with antialiased bilinear filtering (no-op if equal)."""
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.BILINEAR)


@dataclass(frozen=True)
class Augment:
    """One draw of the training augmentation.

    ``flip``: mirror horizontally; ``jitter``: factor on the letterbox scale (in
    :data:`JITTER_RANGE`); ``crop_x``/``crop_y``: where the R x R crop starts inside an image
    that the jitter made larger than R, as a fraction (0..1) of the excess.
    """

    flip: bool
    jitter: float
    crop_x: float
    crop_y: float


def sample_augment(rng: np.random.Generator) -> Augment:
    """Draw an :class:`Augment` (always the same 4 draws, so streams stay aligned)."""
    flip = bool(rng.random() < 0.5)
    jitter = float(rng.uniform(*JITTER_RANGE))
    crop_x, crop_y = (float(v) for v in rng.random(2))
    return Augment(flip=flip, jitter=jitter, crop_x=crop_x, crop_y=crop_y)


def augment_image(
    image: Image.Image, boxes: np.ndarray, scale: float, size: tuple[int, int], aug: Augment, resolution: int
) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """Apply flip + jittered resize + crop to an RGB image and its boxes.

    ``boxes``: float32 ``[N, 4]`` xyxy in original px; ``scale``: the jittered scale
    (resized px / original px) and ``size`` the (w, h) it gives for the original image (the
    image itself may be smaller, decoded in draft mode). Returns ``(image, boxes, keep)``: the
    image (at most R x R, to go top-left on the canvas), the boxes in its px frame (clipped, only
    the kept ones) and ``keep``, a bool ``[N]`` mask of the input boxes that survive (boxes cut by
    the crop are dropped when less than :data:`MIN_VISIBLE_FRACTION` of them or a side under
    :data:`MIN_VISIBLE_SIDE` px remains).
    """
    image = resize(image, size)
    out = boxes * np.float32(scale)
    if aug.flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out = np.stack([size[0] - out[:, 2], out[:, 1], size[0] - out[:, 0], out[:, 3]], axis=1)
    x0, y0 = crop_origin(size, aug, resolution)
    if size[0] > resolution or size[1] > resolution:
        image = image.crop((x0, y0, x0 + min(resolution, size[0]), y0 + min(resolution, size[1])))
    out = (out - np.array([x0, y0, x0, y0], dtype=np.float32)).astype(np.float32)
    clipped = clip_boxes(out, image.width, image.height)
    keep = _survives(out, clipped)
    return image, clipped[keep], keep


def crop_origin(size: tuple[int, int], aug: Augment, resolution: int) -> tuple[int, int]:
    """(x0, y0) px where the R x R training crop of an image of ``size`` (w, h) starts (0 if it fits)."""
    excess_x, excess_y = max(0, size[0] - resolution), max(0, size[1] - resolution)
    x0 = int(math.floor(aug.crop_x * (excess_x + 1)))
    y0 = int(math.floor(aug.crop_y * (excess_y + 1)))
    return min(x0, excess_x), min(y0, excess_y)


def resize_nearest(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A label map ``[H, W]`` (any integer dtype) resized to ``size`` (w, h) by nearest neighbour.

    Output pixel (i, j) takes input pixel (floor((i + 0.5) * H / h), floor((j + 0.5) * W / w)),
    the pixel whose area holds the output pixel's centre (PIL's NEAREST rule); labels are never mixed.
    """
    h, w = labels.shape
    if (w, h) == tuple(size):
        return labels
    rows = np.minimum(((np.arange(size[1]) + 0.5) * (h / size[1])).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(size[0]) + 0.5) * (w / size[0])).astype(np.int64), w - 1)
    return labels[rows[:, None], cols[None, :]]


def augment_labels(labels: np.ndarray, size: tuple[int, int], aug: Augment, resolution: int) -> np.ndarray:
    """The label map ``[H, W]`` (original px) under the same flip + resize + crop as :func:`augment_image`.

    ``size`` is the jittered (w, h) the image was resized to; the result is at most R x R, aligned
    pixel for pixel with the augmented image.
    """
    out = resize_nearest(labels, size)
    if aug.flip:
        out = out[:, ::-1]
    x0, y0 = crop_origin(size, aug, resolution)
    return np.ascontiguousarray(out[y0 : y0 + resolution, x0 : x0 + resolution])


def to_label_canvas(labels: np.ndarray, resolution: int, fill: int) -> torch.Tensor:
    """An int64 ``[R, R]`` tensor with ``labels`` (at most R x R) at the top-left and ``fill`` elsewhere."""
    canvas = np.full((resolution, resolution), fill, dtype=np.int64)
    canvas[: labels.shape[0], : labels.shape[1]] = labels
    return torch.from_numpy(canvas)


def clip_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """``boxes`` (float32 ``[N, 4]`` xyxy) clipped to ``[0, width] x [0, height]``."""
    limits = np.array([width, height, width, height], dtype=np.float32)
    return np.clip(boxes, 0.0, limits).astype(np.float32)


def _survives(full: np.ndarray, clipped: np.ndarray) -> np.ndarray:
    """Bool ``[N]``: boxes left untouched by clipping, or cut but with enough left visible."""
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    full_area = (full[:, 2] - full[:, 0]) * (full[:, 3] - full[:, 1])
    cut = np.any(full != clipped, axis=1)
    enough = (w >= MIN_VISIBLE_SIDE) & (h >= MIN_VISIBLE_SIDE) & (w * h >= MIN_VISIBLE_FRACTION * full_area)
    return (~cut & (w > 0) & (h > 0)) | (cut & enough)
