"""Decoded images kept in memory: each file of a small data set split is decoded once per process.

Decoding a 128 px PNG of the built-in set costs about 0.5 ms, half of what serving a training item
costs; the whole built-in set decoded is 2048 + 512 images x 48 KiB = 120 MiB. A split whose
images need at most :data:`DECODED_BUDGET_BYTES` of pixels (width x height x 3 bytes, from the
file headers) is decoded when it opens; a larger one (COCO, for instance) is read from disk item
by item as before. Splits opened more than once in a process (a sweep over phi opens one per
resolution; detection and segmentation of the built-in set read the same files) share one copy
while any of them is alive.

Items are the same bit for bit either way: a kept image is exactly what :func:`load_rgb` gives.
JPEG files are never kept, because :func:`load_rgb` decodes them in PIL's draft mode at a scale
that depends on each sample's jittered size, which one full-size decode cannot reproduce.
DataLoader workers forked from the process share the kept pixels (copy-on-write, never written).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from archbench.data.transforms import load_rgb, to_rgb
from archbench.errors import UserError

#: The most bytes of decoded pixels (w x h x 3 per image) one data set split keeps in memory.
DECODED_BUDGET_BYTES = 512 * 2**20


class DecodedImages:
    """The images of a data set split by index, from memory where kept and from their files otherwise.

    ``pixels[i]``: read-only uint8 ``[H, W, 3]`` RGB of image i, or None when it is read from its file.
    """

    def __init__(self, pixels: list[np.ndarray | None]) -> None:
        self.pixels = pixels

    @property
    def nbytes(self) -> int:
        """Bytes of pixels kept in memory."""
        return sum(p.nbytes for p in self.pixels if p is not None)

    def image(self, index: int, path: str, min_size: tuple[int, int] | None = None) -> Image.Image:
        """RGB image ``index`` (file ``path``): :func:`load_rgb` ``(path, min_size)``, from memory if kept."""
        pixels = self.pixels[index]
        return Image.fromarray(pixels) if pixels is not None else load_rgb(path, min_size)


#: The kept splits of this process by their files' (path, mtime ns, size), alive while a data set holds them.
_KEPT: weakref.WeakValueDictionary[tuple[tuple[str, int, int], ...], DecodedImages] = weakref.WeakValueDictionary()


def _decode(path: str) -> np.ndarray | None:
    """Read-only uint8 ``[H, W, 3]`` RGB of the file at ``path`` as :func:`load_rgb` decodes it; None for JPEG.

    UserError naming the file if it cannot be decoded (a truncated file, say).
    """
    try:
        with Image.open(path) as image:
            if image.format == "JPEG":
                return None
            image.load()
            pixels = np.array(to_rgb(image), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as err:
        raise UserError(f"{path}: cannot decode the image ({err})") from None
    pixels.flags.writeable = False
    return pixels


def _identity(path: str) -> tuple[str, int, int]:
    """(path, modification time ns, size) of a file: a kept copy is reused only while its file is unchanged."""
    stat = os.stat(path)
    return str(path), stat.st_mtime_ns, stat.st_size


def decoded_images(
    paths: Sequence[str], sizes: Sequence[tuple[int, int]], budget: int = DECODED_BUDGET_BYTES
) -> DecodedImages:
    """The images at ``paths`` (``sizes``: (w, h) px of each, from the headers), kept in memory if they fit.

    All non-JPEG files are decoded now when ``sum(w * h * 3) <= budget``; otherwise (or with
    ``budget=0``) every image is read from its file when served.
    """
    if not paths or sum(w * h * 3 for w, h in sizes) > budget:
        return DecodedImages([None] * len(paths))
    key = tuple(_identity(str(p)) for p in paths)
    kept = _KEPT.get(key)
    if kept is None:
        kept = DecodedImages([_decode(str(p)) for p in paths])
        _KEPT[key] = kept
    return kept
