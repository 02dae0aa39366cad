"""Segmentation folders (``--data segfolder:PATH``): images plus PNG class-index maps.

The layout VOC, ADE20K and Cityscapes-style subsets share::

    PATH/classes.yaml (or .yml / .json)   a list of class names (value k of a mask is names[k]),
                                          or {names: [...], ignore_index: 255}
    PATH/images/{train,val}/NAME.jpg      sub-folder splits: every image has
    PATH/masks/{train,val}/NAME.png       the mask of the same stem ...
  or
    PATH/images/NAME.jpg, PATH/masks/NAME.png, PATH/train.txt, PATH/val.txt
                                          ... or list files of image names (one per line, with or
                                          without extension; blank lines and '#' comments skipped)

A mask is a single-channel PNG (8/16-bit grey or palette: the palette index is the class) of
its image's size, holding class indices ``0..K-1`` or the ignore index (default 255). Every
mask is decoded once when the data set opens, so a mask of the wrong size, an unknown class
index, a missing mask or an unreadable file stops the run before training, with the file named.
A split whose decoded masks fit the decoded budget (:data:`archbench.data.decoded.DECODED_BUDGET_BYTES`),
lowered to a share of the memory available (:func:`archbench.data.decoded.own_memory_budget`), keeps
them in the process's memory; a larger one decodes each mask again when it is served.
The built-in synthetic set has this layout too (its classes come from its dataset.json).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image, UnidentifiedImageError

from archbench.data.decoded import DECODED_BUDGET_BYTES, own_memory_budget
from archbench.data.seg_dataset import DEFAULT_IGNORE_INDEX, ImageFile, LabelSource, SegmentationDataset
from archbench.data.splits import subset_indices
from archbench.errors import UserError

CLASS_FILES = ("classes.yaml", "classes.yml", "classes.json")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: PIL modes of a class-index map: 8-bit grey, palette (index = class), 16/32-bit grey, 1-bit.
MASK_MODES = ("L", "P", "I;16", "I;16B", "I;16L", "I", "1")
LAYOUT_HELP = (
    "PATH/images/{train,val}/ + PATH/masks/{train,val}/ (sub-folder splits), or PATH/images/ + "
    "PATH/masks/ + PATH/train.txt and PATH/val.txt (list files); masks are NAME.png beside images "
    "NAME.<ext>"
)


@dataclass(frozen=True)
class ClassTable:
    """Class names (mask value k is ``names[k]``) and the ignore index; ``source`` names where they came from."""

    names: tuple[str, ...]
    ignore_index: int
    source: str


@dataclass(frozen=True)
class _Pair:
    """An image file and its mask file."""

    name: str
    image: Path
    mask: Path


# --------------------------------------------------------------------------------------
# The classes file.
# --------------------------------------------------------------------------------------


def read_classes(root: Path) -> ClassTable:
    """The :class:`ClassTable` of ``root``'s classes file; UserError naming the file and the rule."""
    found = [root / n for n in CLASS_FILES if (root / n).is_file()]
    if not found:
        raise UserError(
            f"segfolder:{root}: no classes file; write one of {', '.join(CLASS_FILES)} holding the "
            "list of class names (mask value k is the k-th name), or {names: [...], ignore_index: 255}"
        )
    path = found[0]
    try:
        data = yaml.safe_load(path.read_text())  # JSON is YAML
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read the classes file ({err})") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML/JSON ({err})") from None
    ignore: Any = DEFAULT_IGNORE_INDEX
    if isinstance(data, dict):
        unknown = sorted(set(map(str, data)) - {"names", "ignore_index"})
        if unknown:
            raise UserError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: names, ignore_index")
        names, ignore = data.get("names"), data.get("ignore_index", DEFAULT_IGNORE_INDEX)
    else:
        names = data
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise UserError(
            f"{path}: 'names' must be a non-empty list of class-name strings (mask value k is the "
            f"k-th name), got {names!r}"
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"{path}: duplicate class name(s) {', '.join(map(repr, duplicates))}")
    if not isinstance(ignore, int) or isinstance(ignore, bool) or 0 <= ignore < len(names):
        raise UserError(
            f"{path}: 'ignore_index' must be an integer outside the class indices 0..{len(names) - 1}, got {ignore!r}"
        )
    return ClassTable(tuple(names), ignore, str(path))


# --------------------------------------------------------------------------------------
# Splits: sub-folders or list files.
# --------------------------------------------------------------------------------------


def _images_by_stem(folder: Path) -> dict[str, Path]:
    """{stem: image path} of the image files in ``folder``; UserError when two share a stem."""
    out: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in out:
                raise UserError(f"{path}: two images named {path.stem!r} in {folder}; names must be unique")
            out[path.stem] = path
    return out


def _mask_of(image: Path, masks: Path) -> Path:
    """The mask file of ``image``: ``masks/<stem>.png``; UserError naming both when it is missing."""
    mask = masks / f"{image.stem}.png"
    if not mask.is_file():
        raise UserError(f"{image}: no mask {mask} (every image needs a PNG class-index map of the same name)")
    return mask


def _listed_names(list_file: Path) -> list[str]:
    """The image names of a list file (one per line; blank lines and '#' comments skipped)."""
    try:
        lines = list_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{list_file}: cannot read the list file ({err})") from None
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def split_pairs(root: Path, split: str) -> list[_Pair]:
    """The (image, mask) pairs of ``split``, sorted by name; UserError naming what is missing."""
    if (root / "images" / split).is_dir():
        images = _images_by_stem(root / "images" / split)
        pairs = [_Pair(stem, path, _mask_of(path, root / "masks" / split)) for stem, path in images.items()]
        where = root / "images" / split
    elif (root / f"{split}.txt").is_file() and (root / "images").is_dir():
        images = _images_by_stem(root / "images")
        pairs = []
        for lineno, name in enumerate(_listed_names(root / f"{split}.txt"), 1):
            stem = Path(name).stem if Path(name).suffix.lower() in IMAGE_SUFFIXES else name
            if stem not in images:
                raise UserError(f"{root / f'{split}.txt'}, line {lineno}: no image {name!r} in {root / 'images'}")
            pairs.append(_Pair(stem, images[stem], _mask_of(images[stem], root / "masks")))
        where = root / f"{split}.txt"
    else:
        raise UserError(f"segfolder:{root}: no '{split}' split; accepted layouts: {LAYOUT_HELP}")
    if not pairs:
        raise UserError(f"{where}: the '{split}' split has no images ({', '.join(IMAGE_SUFFIXES)})")
    return sorted(pairs, key=lambda p: p.name)


# --------------------------------------------------------------------------------------
# Reading and checking masks.
# --------------------------------------------------------------------------------------


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) px from an image file's header; UserError naming the file if unreadable."""
    try:
        with Image.open(path) as handle:
            return handle.size
    except (OSError, UnidentifiedImageError) as err:
        raise UserError(f"{path}: not a readable image ({err})") from None


def decode_mask(path: Path, data: bytes | None = None) -> np.ndarray:
    """The class-index map ``[H, W]`` of a mask file (``data``: its bytes, if already read).

    UserError naming the file if it is unreadable or not a single-channel map (e.g. an RGB colour mask).
    """
    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as handle:
            if handle.mode not in MASK_MODES:
                raise UserError(
                    f"{path}: a mask must be a single-channel class-index PNG (grey or palette), "
                    f"got PIL mode {handle.mode}"
                )
            return np.asarray(handle, dtype=np.int32 if handle.mode.startswith("I") else np.uint8)
    except (OSError, UnidentifiedImageError, SyntaxError) as err:
        raise UserError(f"{path}: not a readable mask image ({err})") from None


def _check_pair(pair: _Pair, classes: ClassTable, counts: np.ndarray, digest: Any) -> tuple[ImageFile, np.ndarray]:
    """Decode and check one pair's mask (size, class indices); add its pixels to ``counts``.

    Returns the image file and the decoded class-index map ``[H, W]`` (read-only).
    """
    width, height = _image_size(pair.image)
    try:
        data = pair.mask.read_bytes()
    except OSError as err:
        raise UserError(f"{pair.mask}: cannot read the mask ({err.strerror or err})") from None
    labels = decode_mask(pair.mask, data)
    if labels.shape != (height, width):
        raise UserError(
            f"{pair.mask}: the mask is {labels.shape[1]}x{labels.shape[0]} px but its image "
            f"{pair.image} is {width}x{height} px; a mask must have its image's size"
        )
    values = np.unique(labels)
    k = len(classes.names)
    unknown = [int(v) for v in values if not (0 <= v < k or v == classes.ignore_index)]
    if unknown:
        raise UserError(
            f"{pair.mask}: unknown class index(es) {unknown[:10]}: the classes in {classes.source} "
            f"are 0..{k - 1} and the ignore index is {classes.ignore_index}"
        )
    valid = labels[labels != classes.ignore_index]
    counts += np.bincount(valid.ravel(), minlength=k)[:k]
    digest.update(f"{pair.name}\0{pair.image.stat().st_size}\0".encode())
    digest.update(hashlib.sha256(data).digest())
    labels.flags.writeable = False
    return ImageFile(str(pair.image), width, height), labels


def _decoded_at(masks: Sequence[Path], index: int) -> np.ndarray:
    return decode_mask(masks[index])


def _kept_at(maps: Sequence[np.ndarray], index: int) -> np.ndarray:
    return maps[index]


def png_labels(masks: Sequence[Path]) -> LabelSource:
    """A label source that decodes ``masks[i]`` (picklable, for spawned DataLoader workers)."""
    return partial(_decoded_at, list(masks))


def kept_labels(maps: Sequence[np.ndarray]) -> LabelSource:
    """A label source serving the decoded maps ``maps[i]`` (read-only) from memory."""
    return partial(_kept_at, list(maps))


def _checked_labels(
    pairs: Sequence[_Pair], classes: ClassTable, counts: np.ndarray, digest: Any, budget: int
) -> tuple[list[ImageFile], LabelSource]:
    """Check every pair (see :func:`_check_pair`); the maps are kept in memory while their bytes fit ``budget``."""
    files, kept, nbytes = [], [], 0
    for pair in pairs:
        file, labels = _check_pair(pair, classes, counts, digest)
        files.append(file)
        nbytes += labels.nbytes
        if nbytes <= budget:
            kept.append(labels)
        else:
            kept.clear()  # over the budget for good: serve every map from its file
    if len(kept) == len(pairs):
        return files, kept_labels(kept)
    return files, png_labels([p.mask for p in pairs])


def open_split(
    root: Path,
    split: str,
    classes: ClassTable,
    *,
    resolution: int,
    train: bool,
    subset: int | None = None,
    seed: int = 0,
    decoded_budget: int = DECODED_BUDGET_BYTES,
    decoded_cache: Path | None = None,
) -> SegmentationDataset:
    """One split of a segmentation folder, every kept mask checked; ``subset`` keeps N images drawn with ``seed``.

    Images are kept decoded in the folder ``decoded_cache`` when they fit ``decoded_budget`` bytes (0 or no
    folder: never), masks in memory when they fit that budget and a share of the memory available.

    ``stats``: images, pixels per class, ignored pixels. ``fingerprint``: sha256 of the class
    table, and of each kept image's name and file size and its mask's bytes.
    """
    pairs = split_pairs(root, split)
    pairs = [pairs[i] for i in subset_indices(len(pairs), subset, seed)]
    counts = np.zeros(len(classes.names), dtype=np.int64)
    digest = hashlib.sha256(json.dumps([classes.names, classes.ignore_index]).encode())
    files, labels = _checked_labels(pairs, classes, counts, digest, own_memory_budget(decoded_budget))
    total = sum(f.width * f.height for f in files)
    stats = {
        "images": len(files),
        "pixels": dict(zip(classes.names, counts.tolist())),
        "ignored_pixels": int(total - counts.sum()),
    }
    return SegmentationDataset(
        files,
        labels,
        class_names=classes.names,
        ignore_index=classes.ignore_index,
        resolution=resolution,
        train=train,
        fingerprint=digest.hexdigest(),
        stats=stats,
        seed=seed,
        decoded_budget=decoded_budget,
        decoded_cache=decoded_cache,
    )
