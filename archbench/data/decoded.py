"""Decoded images shared between processes: each small data set split is decoded once, into one file.

Decoding a 128 px PNG of the built-in set costs about 0.5 ms, half of what serving a training item
costs; the whole built-in set decoded is 2048 + 512 images x 48 KiB = 120 MiB. A split whose
images need at most :data:`DECODED_BUDGET_BYTES` of pixels (width x height x 3 bytes, from the
file headers) is decoded into one file of the decoded cache folder (``<cache root>/decoded``,
:mod:`archbench.data.decoded_file`), which every process then maps read-only: the pages are the
OS page cache's, so the parent of ``archbench run --jobs N``, its N children and their DataLoader
workers hold one copy between them, and the kernel can drop and re-read those pages under memory
pressure instead of running out. A larger split (COCO, for instance) is read from disk item by
item, and so is every split when no folder is given or the folder cannot be written.

The file of a split is found by its image paths and trusted only for the same contents: its key is a
SHA-256 of every image file's bytes (and the PIL version, which decodes them). Size, mtime, ctime
and inode are not enough: a same-size rewrite within one tick of a coarse file clock keeps them all,
and ``cp -p`` / ``rsync -t`` / tar restore the mtime. Hashing the built-in set's 2560 files (77 MiB)
takes about 70 ms, against 1.6 s to decode them. A changed file gives a new key, and the split's
file is written again (one writer at a time, under a lock file; the others wait, then map it).

Items are the same bit for bit either way: a kept image is exactly what :func:`load_rgb` gives.
JPEG files are never kept, because :func:`load_rgb` decodes them in PIL's draft mode at a scale
that depends on each sample's jittered size, which one full-size decode cannot reproduce.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, UnidentifiedImageError

from archbench.data.decoded_file import map_images, write_images
from archbench.data.transforms import load_rgb, to_rgb
from archbench.errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so two writers may both write (the last rename wins)
    fcntl = None  # type: ignore[assignment]

#: The most bytes of decoded pixels (w x h x 3 per image) one data set split keeps decoded.
DECODED_BUDGET_BYTES = 512 * 2**20
#: The decoded cache folder's name under the data cache root.
DECODED_DIR = "decoded"
#: The most bytes the decoded cache folder keeps: past it, the files used longest ago are removed.
CACHE_CAP_BYTES = 4 * DECODED_BUDGET_BYTES
#: Free disk space a new file must leave behind; with less, the split is read from its files.
DISK_RESERVE_BYTES = 2**30
#: Decoded arrays a process keeps in its own memory get at most this fraction of the memory available.
OWN_MEMORY_SHARE = 0.25


def decoded_folder(cache_root: Path) -> Path:
    """The decoded cache folder under the data cache root ``cache_root``."""
    return Path(cache_root) / DECODED_DIR


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux: MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # no such sysconf names on this OS
        return None


def own_memory_budget(budget: int) -> int:
    """``budget``, lowered to :data:`OWN_MEMORY_SHARE` of the memory available now.

    The most bytes of decoded arrays one process should keep in its own (unshared) memory: each
    ``--jobs`` child may keep as much, and training needs the rest.
    """
    available = available_memory()
    return budget if available is None else min(budget, int(available * OWN_MEMORY_SHARE))


class DecodedImages:
    """The images of a data set split by index, from the mapped decoded file where kept and from their files otherwise.

    ``pixels[i]``: read-only uint8 ``[H, W, 3]`` RGB of image i, or None when it is read from its file.
    ``source``: the decoded file mapped (None: none), ``key``: the split's key it was mapped for.
    Pickled (for spawned DataLoader workers), it maps the file again instead of copying the pixels.
    """

    def __init__(self, pixels: list[np.ndarray | None], source: Path | None = None, key: bytes = b"") -> None:
        self.pixels, self.source, self.key = pixels, source, key

    @property
    def nbytes(self) -> int:
        """Bytes of pixels served from the decoded file."""
        return sum(p.nbytes for p in self.pixels if p is not None)

    def image(self, index: int, path: str, min_size: tuple[int, int] | None = None) -> Image.Image:
        """RGB image ``index`` (file ``path``): :func:`load_rgb` ``(path, min_size)``, from the decoded file if kept."""
        pixels = self.pixels[index]
        return Image.fromarray(pixels) if pixels is not None else load_rgb(path, min_size)

    def __reduce__(self) -> tuple[object, tuple[Path | None, bytes, int]]:
        return _mapped_again, (self.source, self.key, len(self.pixels))


def _mapped_again(source: Path | None, key: bytes, count: int) -> DecodedImages:
    """A pickled :class:`DecodedImages` restored: ``source`` mapped again, or every image from its file if it
    is gone or now holds other contents."""
    pixels = map_images(source, count, key) if source is not None else None
    return DecodedImages(pixels, source, key) if pixels is not None else DecodedImages([None] * count)


#: The mapped splits of this process by key, alive while a data set holds them.
_KEPT: weakref.WeakValueDictionary[bytes, DecodedImages] = weakref.WeakValueDictionary()


def _decode(path: str) -> np.ndarray | None:
    """uint8 ``[H, W, 3]`` RGB of the file at ``path`` as :func:`load_rgb` decodes it; None for JPEG.

    UserError naming the file if it cannot be decoded (a truncated file, say).
    """
    try:
        with Image.open(path) as image:
            if image.format == "JPEG":
                return None
            image.load()
            return np.asarray(to_rgb(image), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as err:
        raise UserError(f"{path}: cannot decode the image ({err})") from None


def split_key(paths: Sequence[str]) -> bytes:
    """32-byte SHA-256 of the PIL version and, in order, each path and its file's bytes."""
    digest = hashlib.sha256(f"PIL {PIL.__version__}\0".encode())
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as err:
            raise UserError(f"{path}: cannot read the image ({err.strerror or err})") from None
        digest.update(f"{path}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.digest()


def _file_of(folder: Path, paths: Sequence[str]) -> Path:
    """The decoded file of the split of ``paths`` in ``folder`` (named by the paths: one file per split)."""
    return folder / f"{hashlib.sha256(chr(0).join(paths).encode()).hexdigest()[:32]}.rgb"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the lock file ``path`` (created if needed) meanwhile.

    The OS releases it when the process ends, killed or not, so a crashed writer never blocks the others.
    """
    with open(path, "ab") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


def _prune(folder: Path, keep: Path) -> None:
    """Remove decoded files, least recently used (atime) first, until ``folder`` holds at most :data:`CACHE_CAP_BYTES`.

    ``keep`` stays. A process that still maps a removed file keeps its pages; the next one to open that
    split writes it again. A file's lock file goes with it: at worst two processes then write the same
    split at once, each to a temp file renamed into place, so the result is whole either way.
    """
    files = []
    for path in folder.glob("*.rgb"):
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed by another process meanwhile
            continue
        files.append((stat.st_atime_ns, stat.st_size, path))
    total = sum(size for _, size, _ in files)
    for _, size, path in sorted(files):
        if total <= CACHE_CAP_BYTES:
            break
        if path != keep:
            path.unlink(missing_ok=True)
            path.with_suffix(".lock").unlink(missing_ok=True)
            total -= size


def _written_and_mapped(file: Path, paths: Sequence[str], key: bytes, nbytes: int) -> list[np.ndarray | None]:
    """Decode ``paths`` into ``file`` unless another process has just done so, and map it.

    OSError when the folder cannot be written or the disk would keep less than :data:`DISK_RESERVE_BYTES`.
    """
    file.parent.mkdir(parents=True, exist_ok=True)
    with _locked(file.with_suffix(".lock")):
        pixels = map_images(file, len(paths), key)  # written by another process while this one waited
        if pixels is None:
            free = shutil.disk_usage(file.parent).free
            if free - nbytes < DISK_RESERVE_BYTES:
                raise OSError(f"{free / 2**30:.1f} GiB free, {nbytes / 2**20:.0f} MiB needed plus the reserve")
            write_images(file, key, len(paths), (_decode(p) for p in paths))
            _prune(file.parent, keep=file)
            pixels = map_images(file, len(paths), key)
    if pixels is None:
        raise OSError(f"{file} was written but cannot be read back")
    return pixels


def decoded_images(
    paths: Sequence[str],
    sizes: Sequence[tuple[int, int]],
    budget: int = DECODED_BUDGET_BYTES,
    folder: Path | None = None,
) -> DecodedImages:
    """The images at ``paths`` (``sizes``: (w, h) px of each, from the headers), kept decoded if they fit.

    When ``folder`` is given and ``sum(w * h * 3) <= budget``, every non-JPEG file is decoded once into
    the split's file in ``folder`` (see the module docstring), or that file is mapped if it is there for
    these contents already; otherwise (``budget=0``, no folder, a folder that cannot be written: the last
    with a warning) every image is read from its file when served.
    """
    paths = [str(p) for p in paths]
    nbytes = sum(w * h * 3 for w, h in sizes)
    if folder is None or not paths or nbytes > budget:
        return DecodedImages([None] * len(paths))
    key = split_key(paths)
    kept = _KEPT.get(key)
    if kept is not None:
        return kept
    file = _file_of(Path(folder), paths)
    try:
        pixels = map_images(file, len(paths), key)
        if pixels is None:
            pixels = _written_and_mapped(file, paths, key, nbytes)
    except OSError as err:
        warnings.warn(
            f"decoded images: cannot use {folder} ({err}); each image is decoded from its file when served",
            stacklevel=2,
        )
        return DecodedImages([None] * len(paths))
    kept = _KEPT[key] = DecodedImages(pixels, file, key)
    return kept
