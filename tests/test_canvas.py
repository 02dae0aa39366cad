"""to_canvas: an image of any size at most R x R, normalised by table, at the top-left of a zero canvas."""

from __future__ import annotations

import numpy as np
from PIL import Image

from archbench.data.transforms import IMAGENET_MEAN, IMAGENET_STD, to_canvas


def test_a_narrow_image_is_normalised_at_the_top_left_and_the_rest_is_zero() -> None:
    pixels = np.random.default_rng(3).integers(0, 256, (21, 13, 3), dtype=np.uint8)
    canvas = to_canvas(Image.fromarray(pixels), 32).numpy()
    mean = np.array(IMAGENET_MEAN, dtype=np.float32) * np.float32(255.0)
    inv_std = np.float32(1.0) / (np.array(IMAGENET_STD, dtype=np.float32) * np.float32(255.0))
    expected = ((pixels.astype(np.float32) - mean) * inv_std).transpose(2, 0, 1)
    assert canvas.shape == (3, 32, 32) and canvas.dtype == np.float32
    assert np.array_equal(canvas[:, :21, :13], expected)
    assert not canvas[:, 21:].any() and not canvas[:, :, 13:].any()
