"""The decoded-images file: a data set split's decoded pixels in one file that processes map read-only.

Layout, little-endian: a 48-byte header (magic ``ABDECODE``, :data:`FORMAT_VERSION` u32, image count u32,
the split's 32-byte key), one 16-byte entry per image (offset u64, height u32, width u32; all 0 for an
image that is not kept), then the pixels: image i as uint8 ``[height, width, 3]`` RGB at its offset, the
kept images back to back in order, the file ending with the last of them.

A file is trusted only when its header has the magic, this version, the expected count and key, and its
entries tile the file exactly up to its size: a truncated file, one of another format version or one of
other files is refused. The pixels are not read to check them; they are trusted because a file only ever
gets its name complete (written under a temp name, synced to disk, then renamed).
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from archbench.files import atomic_write

MAGIC = b"ABDECODE"
#: Bumped whenever the layout, or what a kept image holds (:func:`archbench.data.transforms.load_rgb`), changes.
FORMAT_VERSION = 1
#: magic, format version, image count, key.
_HEADER = struct.Struct("<8sII32s")
#: Per image: where its pixels start (bytes from the file's start) and their height and width in px.
_ENTRY = np.dtype([("offset", "<u8"), ("height", "<u4"), ("width", "<u4")])


def _data_start(count: int) -> int:
    """Offset of the first image's pixels in a file of ``count`` images."""
    return _HEADER.size + count * _ENTRY.itemsize


def write_images(path: Path, key: bytes, count: int, images: Iterable[np.ndarray | None]) -> None:
    """Write the ``count`` ``images`` (uint8 ``[H, W, 3]``, or None: not kept) as the file ``path``, atomically.

    The images are written one at a time as they come, so only one is ever held here.
    """

    def write(tmp: str) -> None:
        table = np.zeros(count, _ENTRY)
        with open(tmp, "wb") as f:
            f.seek(_data_start(count))
            offset, written = _data_start(count), 0
            for i, pixels in enumerate(images):
                written += 1
                if pixels is None:
                    continue
                height, width, channels = pixels.shape
                if channels != 3 or pixels.dtype != np.uint8:
                    raise ValueError(f"image {i}: uint8 [H, W, 3] expected, got {pixels.dtype} {pixels.shape}")
                table[i] = (offset, height, width)
                f.write(np.ascontiguousarray(pixels).data)
                offset += pixels.nbytes
            if written != count:
                raise ValueError(f"{count} images announced, {written} given")
            f.seek(0)
            f.write(_HEADER.pack(MAGIC, FORMAT_VERSION, count, key))
            f.write(table.tobytes())
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def _trusted(head: bytes, size: int, count: int, key: bytes) -> np.ndarray | None:
    """The entry table of a file of ``size`` bytes that starts with ``head``, or None unless it is trusted."""
    if len(head) != _data_start(count) or _HEADER.unpack_from(head) != (MAGIC, FORMAT_VERSION, count, key):
        return None
    table = np.frombuffer(head, _ENTRY, count, _HEADER.size)
    nbytes = table["height"].astype(np.int64) * table["width"].astype(np.int64) * 3
    expected = _data_start(count) + np.concatenate(([0], np.cumsum(nbytes)[:-1])).astype(np.int64)
    kept = nbytes > 0
    tiled = np.array_equal(table["offset"][kept].astype(np.int64), expected[kept])
    empty = not table["offset"][~kept].any() and not table["height"][~kept].any() and not table["width"][~kept].any()
    return table if tiled and empty and size == _data_start(count) + int(nbytes.sum()) else None


def map_images(path: Path, count: int, key: bytes) -> list[np.ndarray | None] | None:
    """The ``count`` images of the file ``path`` as read-only views of its memory map (None: not kept).

    None when the file is missing or not trusted (see the module docstring). The header is checked and the
    file mapped through one open handle, so a file renamed into place meanwhile cannot be mixed in.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(_data_start(count))
            table = _trusted(head, os.fstat(f.fileno()).st_size, count, key)
            if table is None:
                return None
            buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        return None
    return [
        np.frombuffer(buffer, np.uint8, int(h) * int(w) * 3, int(offset)).reshape(int(h), int(w), 3) if h else None
        for offset, h, w in table.tolist()
    ]
