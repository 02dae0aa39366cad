"""COCO-format detection data: validated loading, cleaning, letterbox + augmentation, batching.

:class:`CocoDetection` reads any COCO ``instances`` json plus its image folder (the built-in
synthetic set included), validates it with messages that name the file and the entry,
cleans it (crowd, degenerate and out-of-image boxes; non-RGB images), and serves
``(image [3, R, R] float32, target)`` pairs in a letterbox frame: the image keeps its aspect
ratio, its longer side becomes R and it sits at the top-left, so ``box_resized =
box_original * scale``. :func:`open_detection_data` resolves a data reference
(``synthetic`` or ``coco:PATH``) to a (train, val, info) triple, :func:`open_detection_val` to its
validation split alone.

Everything that needs the annotations is precomputed at construction (per-image numpy box
and label arrays); a split small enough is also decoded then (:mod:`archbench.data.decoded`), so
``__getitem__`` only converts and resizes one image (opening its file only for larger splits).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from pycocotools.coco import COCO

from archbench.data import synthetic
from archbench.data.decoded import DECODED_BUDGET_BYTES, decoded_folder, decoded_images
from archbench.data.splits import SPLITS, pair_fingerprint, subset_indices
from archbench.data.transforms import (
    augment_image,
    letterbox_scale,
    resize,
    resized_size,
    sample_augment,
    to_canvas,
)
from archbench.errors import UserError

#: The keys a COCO instances file must have at the top level.
REQUIRED_KEYS = ("images", "annotations", "categories")
#: The labels of :attr:`CocoDetection.area_ranges`, in COCOeval's ``areaRngLbl`` order.
AREA_LABELS = ("all", "small", "medium", "large")
_AREA_MAX = 1e10  # COCOeval's "no upper bound"
#: Counters of :attr:`CocoDetection.stats` (plus ``mode_<PIL mode>`` per non-RGB image mode):
#: kept images and training boxes, images with no annotation of a kept category, crowd
#: regions (not targets), degenerate / fully-outside boxes (dropped), partly-outside boxes
#: (clipped), annotations of unselected categories, json width/height disagreeing with the file.
STAT_KEYS = (
    "images",
    "annotations",
    "images_without_annotations",
    "crowd",
    "degenerate",
    "clipped",
    "outside",
    "other_category",
    "size_mismatch",
)


@dataclass(frozen=True)
class _ImageRecord:
    """One image of the data set, with its training targets precomputed.

    ``boxes``: float32 ``[N, 4]`` xyxy in original px (clipped to the image); ``labels``:
    int64 ``[N]`` contiguous class indices; ``width``/``height``: the actual file's size, px.
    """

    image_id: int
    path: str
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray


# --------------------------------------------------------------------------------------
# Reading and validating the annotation file.
# --------------------------------------------------------------------------------------


def _read_json(ann_file: Path) -> tuple[dict[str, Any], bytes]:
    """The parsed annotation file and its raw bytes; UserError if unreadable or not JSON."""
    try:
        raw = ann_file.read_bytes()
    except OSError as err:
        raise UserError(f"{ann_file}: cannot read the annotation file ({err.strerror or err})") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise UserError(f"{ann_file}: not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{ann_file}: not valid JSON: not UTF-8 text ({err.reason} at byte {err.start})") from None
    if not isinstance(data, dict):
        raise UserError(
            f"{ann_file}: not a COCO annotation file: the top level is a {type(data).__name__}, not an object"
        )
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise UserError(
            f"{ann_file}: not a COCO annotation file: missing top-level key(s) {', '.join(map(repr, missing))}"
        )
    for key in REQUIRED_KEYS:
        if not isinstance(data[key], list):
            raise UserError(f"{ann_file}: top-level '{key}' must be a list, got {type(data[key]).__name__}")
    return data, raw


def _is_int(value: Any) -> bool:
    """Whether ``value`` is a JSON integer (bool excluded)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite JSON number (bool excluded)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _entry(section: str, index: int, item: Any) -> str:
    """How an error names an entry: ``annotation id 7 (entry 3 of 'annotations')``."""
    kind = {"images": "image", "annotations": "annotation", "categories": "category"}[section]
    if isinstance(item, dict) and "id" in item:
        return f"{kind} id {item['id']!r} (entry {index} of '{section}')"
    return f"entry {index} of '{section}'"


def _check_images(ann_file: Path, images: list[Any]) -> None:
    """UserError unless every image has a unique integer id and a string file_name."""
    seen: set[int] = set()
    for index, img in enumerate(images):
        where = _entry("images", index, img)
        if not isinstance(img, dict) or not _is_int(img.get("id")):
            raise UserError(f"{ann_file}: {where}: an image needs an integer 'id'")
        if not isinstance(img.get("file_name"), str) or not img["file_name"]:
            raise UserError(f"{ann_file}: {where}: an image needs a non-empty string 'file_name'")
        if img["id"] in seen:
            raise UserError(f"{ann_file}: {where}: duplicate image id {img['id']}")
        seen.add(img["id"])


def _check_categories(ann_file: Path, categories: list[Any]) -> None:
    """UserError unless every category has a unique integer id and a unique string name."""
    ids: set[int] = set()
    names: set[str] = set()
    for index, cat in enumerate(categories):
        where = _entry("categories", index, cat)
        if not isinstance(cat, dict) or not _is_int(cat.get("id")) or not isinstance(cat.get("name"), str):
            raise UserError(f"{ann_file}: {where}: a category needs an integer 'id' and a string 'name'")
        if cat["id"] in ids or cat["name"] in names:
            raise UserError(f"{ann_file}: {where}: duplicate category id or name ({cat['id']}, {cat['name']!r})")
        ids.add(cat["id"])
        names.add(cat["name"])
    if not categories:
        raise UserError(f"{ann_file}: 'categories' is empty: a detection data set needs at least one class")


def _check_annotations(ann_file: Path, annotations: list[Any], image_ids: set[int], cat_ids: set[int]) -> None:
    """UserError naming the annotation unless ids, image_id, category_id and bbox are valid."""
    seen: set[int] = set()
    for index, ann in enumerate(annotations):
        where = _entry("annotations", index, ann)
        if not isinstance(ann, dict) or not _is_int(ann.get("id")):
            raise UserError(f"{ann_file}: {where}: an annotation needs an integer 'id'")
        if ann["id"] in seen:
            raise UserError(f"{ann_file}: {where}: duplicate annotation id {ann['id']}")
        seen.add(ann["id"])
        if not _is_int(ann.get("image_id")) or ann["image_id"] not in image_ids:
            raise UserError(f"{ann_file}: {where}: image_id {ann.get('image_id')!r} is not an id in 'images'")
        if not _is_int(ann.get("category_id")) or ann["category_id"] not in cat_ids:
            raise UserError(f"{ann_file}: {where}: category_id {ann.get('category_id')!r} is not an id in 'categories'")
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(is_number(v) for v in bbox):
            raise UserError(f"{ann_file}: {where}: 'bbox' must be 4 finite numbers [x, y, width, height], got {bbox!r}")
        if "area" in ann and not is_number(ann["area"]):
            raise UserError(f"{ann_file}: {where}: 'area' must be a finite number, got {ann['area']!r}")


def validate_coco(ann_file: Path, data: dict[str, Any]) -> None:
    """Raise :class:`UserError` naming ``ann_file`` and the entry on the first malformed entry."""
    _check_images(ann_file, data["images"])
    _check_categories(ann_file, data["categories"])
    image_ids = {img["id"] for img in data["images"]}
    cat_ids = {cat["id"] for cat in data["categories"]}
    _check_annotations(ann_file, data["annotations"], image_ids, cat_ids)


# --------------------------------------------------------------------------------------
# Selecting categories and images.
# --------------------------------------------------------------------------------------


def select_categories(
    ann_file: Path, categories: list[dict[str, Any]], wanted: Sequence[str | int] | None
) -> list[dict[str, Any]]:
    """The kept category dicts, sorted by id (label k is the k-th); all when ``wanted`` is None.

    ``wanted`` holds names or ids (ints or digit strings); an unknown one is a UserError
    listing the valid names.
    """
    ordered = sorted(categories, key=lambda c: c["id"])
    if wanted is None:
        return ordered
    by_name = {c["name"]: c for c in ordered}
    by_id = {c["id"]: c for c in ordered}
    chosen: dict[int, dict[str, Any]] = {}
    for item in wanted:
        cat = by_name.get(item) if isinstance(item, str) else None
        if cat is None and (_is_int(item) or (isinstance(item, str) and item.strip().isdigit())):
            cat = by_id.get(int(item))
        if cat is None:
            valid = ", ".join(f"{c['name']} ({c['id']})" for c in ordered)
            raise UserError(f"{ann_file}: unknown category {item!r}; valid categories (name (id)): {valid}")
        chosen[cat["id"]] = cat
    if not chosen:
        raise UserError(f"{ann_file}: the category selection is empty")
    return [chosen[k] for k in sorted(chosen)]


def select_images(images: list[dict[str, Any]], subset: int | None, seed: int) -> list[dict[str, Any]]:
    """The kept image dicts sorted by id: all, or ``subset`` of them drawn with ``seed``.

    The draw uses its own ``numpy.random.default_rng(seed)`` (global RNG state plays no
    part) over the id-sorted images; a subset at least as large as the set keeps all.
    """
    ordered = sorted(images, key=lambda img: img["id"])
    return [ordered[i] for i in subset_indices(len(ordered), subset, seed)]


# --------------------------------------------------------------------------------------
# Cleaning: image files, boxes.
# --------------------------------------------------------------------------------------


def _scan_image(ann_file: Path, images_dir: Path, img: dict[str, Any], stats: dict[str, int]) -> tuple[str, int, int]:
    """(path, width, height) of an image file from its header; counts non-RGB modes.

    UserError naming the file and image id if the file is missing or not a readable image.
    A width/height in the json that disagrees with the file is counted (``size_mismatch``);
    the file wins, since boxes are in its pixel frame.
    """
    path = os.path.join(images_dir, img["file_name"])
    if not os.path.exists(path):
        raise UserError(f"{ann_file}: image id {img['id']}: image file {path} does not exist")
    try:
        with Image.open(path) as handle:
            mode, (width, height) = handle.mode, handle.size
    except (OSError, UnidentifiedImageError) as err:
        raise UserError(f"{ann_file}: image id {img['id']}: {path} is not a readable image ({err})") from None
    if mode != "RGB":
        stats[f"mode_{mode}"] = stats.get(f"mode_{mode}", 0) + 1
    if (img.get("width"), img.get("height")) != (width, height):
        stats["size_mismatch"] += 1
    return path, width, height


def _clean_boxes(
    anns: list[dict[str, Any]], width: int, height: int, stats: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Training boxes of one image's non-crowd annotations: (xyxy float32 [N, 4], kept-index [N]).

    Degenerate boxes (width or height <= 0) and boxes entirely outside the image are
    dropped, boxes partly outside are clipped; each case is counted in ``stats``.
    """
    if not anns:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    xywh = np.array([a["bbox"] for a in anns], dtype=np.float64)
    xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    degenerate = (xywh[:, 2] <= 0) | (xywh[:, 3] <= 0)
    clipped = np.clip(xyxy, 0.0, np.array([width, height, width, height], dtype=np.float64))
    outside = ~degenerate & ((clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1]))
    changed = ~degenerate & ~outside & np.any(np.abs(clipped - xyxy) > 1e-6, axis=1)
    stats["degenerate"] += int(degenerate.sum())
    stats["outside"] += int(outside.sum())
    stats["clipped"] += int(changed.sum())
    keep = np.flatnonzero(~degenerate & ~outside)
    return clipped[keep].astype(np.float32), keep


def _build_records(
    ann_file: Path,
    images_dir: Path,
    images: list[dict[str, Any]],
    annotations: list[dict[str, Any]],
    label_of: dict[int, int],
) -> tuple[list[_ImageRecord], list[dict[str, Any]], list[dict[str, Any]], dict[str, int]]:
    """Scan image files and clean annotations of the kept images and categories.

    Returns ``(records, gt_images, gt_annotations, stats)``: the per-image training targets,
    and the image/annotation dicts of the evaluation ground truth (crowd regions kept,
    clipped boxes clipped, dropped boxes absent, ``area``/``iscrowd`` always present).
    """
    stats = dict.fromkeys(STAT_KEYS, 0)
    by_image: dict[int, list[dict[str, Any]]] = {img["id"]: [] for img in images}
    for ann in annotations:
        if ann["image_id"] in by_image:
            if ann["category_id"] in label_of:
                by_image[ann["image_id"]].append(ann)
            else:
                stats["other_category"] += 1
    records, gt_images, gt_anns = [], [], []
    for img in images:
        path, width, height = _scan_image(ann_file, images_dir, img, stats)
        anns = by_image[img["id"]]
        crowd = [a for a in anns if a.get("iscrowd", 0)]
        plain = [a for a in anns if not a.get("iscrowd", 0)]
        boxes, keep = _clean_boxes(plain, width, height, stats)
        kept = [plain[i] for i in keep.tolist()]
        labels = np.array([label_of[a["category_id"]] for a in kept], dtype=np.int64)
        stats["crowd"] += len(crowd)
        stats["annotations"] += len(kept)
        stats["images_without_annotations"] += int(not anns)
        records.append(_ImageRecord(img["id"], path, width, height, boxes, labels))
        gt_images.append({**img, "width": width, "height": height})
        gt_anns += [_gt_annotation(a, box) for a, box in zip(kept, boxes.tolist())]
        gt_anns += [_gt_annotation(a, None) for a in crowd]
    stats["images"] = len(records)
    return records, gt_images, gt_anns, stats


def _gt_annotation(ann: dict[str, Any], xyxy: list[float] | None) -> dict[str, Any]:
    """An evaluation ground-truth annotation: the original, with a clipped bbox if given."""
    out = dict(ann)
    if xyxy is not None:
        out["bbox"] = [xyxy[0], xyxy[1], xyxy[2] - xyxy[0], xyxy[3] - xyxy[1]]
    out.setdefault("iscrowd", 0)
    out.setdefault("area", float(out["bbox"][2] * out["bbox"][3]))
    return out


def _make_coco(dataset: dict[str, Any]) -> COCO:
    """A pycocotools COCO over an in-memory dataset dict (its index messages silenced)."""
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _synthetic_info(ann_file: Path) -> synthetic.SyntheticInfo | None:
    """The info of the built-in synthetic data set ``ann_file`` belongs to, else None."""
    root = ann_file.parent.parent
    if not (root / "dataset.json").is_file():
        return None
    try:
        return synthetic.read_info(root)
    except (UserError, OSError, ValueError):
        return None


def synthetic_area_ranges(info: synthetic.SyntheticInfo) -> list[list[float]]:
    """COCOeval ``areaRng`` (all, small, medium, large; px**2) of a synthetic set (its size buckets)."""
    small, medium = info.area_thresholds
    return [[0.0, _AREA_MAX], [0.0, small], [small, medium], [medium, _AREA_MAX]]


# --------------------------------------------------------------------------------------
# The data set.
# --------------------------------------------------------------------------------------


class CocoDetection(torch.utils.data.Dataset):
    """A COCO-format detection data set served in an R x R top-left letterbox frame.

    ``CocoDetection(ann_file, images_dir, resolution=R, train=..., subset=None,
    categories=None, seed=0)``: ``ann_file`` a COCO instances json, ``images_dir`` the folder
    its ``file_name`` entries are relative to; ``subset`` keeps N images drawn with ``seed``;
    ``categories`` keeps those classes (names or ids). Images with no annotation (also those
    left empty by the category filter) are kept, as negatives, in training and evaluation.
    The images are decoded once into the folder ``decoded_cache`` (shared by every process that opens
    the same files) when their pixels fit ``decoded_budget`` bytes (see
    :func:`archbench.data.decoded.decoded_images`; 0 or no folder reads every item from its file).

    Item ``i`` is ``(image, target)``: ``image`` float32 ``[3, R, R]``, ImageNet-normalised,
    the resized image at the top-left and zeros (the mean colour) bottom/right; ``target``
    dict: ``boxes`` float32 ``[N, 4]`` xyxy px in the resized frame, ``labels`` int64 ``[N]``
    in 0..K-1, ``image_id`` int, ``scale`` float (resized px / original px; boxes are
    ``original * scale`` without augmentation), ``orig_size`` (h, w) px of the file.

    With ``train=True`` each item is augmented (horizontal flip p=0.5, scale jitter
    0.8..1.2 then an R x R crop) by a generator seeded from ``(seed, epoch, index)``: the
    same seed, epoch (see :meth:`set_epoch`) and index always give the same sample, whatever
    the worker. Crowd regions never become training targets.

    Attributes: ``coco`` (pycocotools COCO of the kept images, categories and cleaned
    annotations, crowd kept: the evaluation ground truth in original px), ``image_ids``
    (dataset order), ``cat_ids`` (label -> category id), ``class_names``, ``num_classes``,
    ``area_ranges`` (COCOeval ``areaRng`` for the synthetic set, else None), ``fingerprint``,
    ``stats`` (counts of what cleaning found; see :data:`STAT_KEYS`).
    """

    def __init__(
        self,
        ann_file: Path,
        images_dir: Path,
        *,
        resolution: int,
        train: bool,
        subset: int | None = None,
        categories: list[str] | None = None,
        seed: int = 0,
        decoded_budget: int = DECODED_BUDGET_BYTES,
        decoded_cache: Path | None = None,
    ) -> None:
        if resolution < 1:
            raise UserError(f"resolution must be a positive number of px, got {resolution}")
        ann_file, images_dir = Path(ann_file), Path(images_dir)
        data, raw = _read_json(ann_file)
        validate_coco(ann_file, data)
        cats = select_categories(ann_file, data["categories"], categories)
        images = select_images(data["images"], subset, seed)
        label_of = {c["id"]: k for k, c in enumerate(cats)}
        built = _build_records(ann_file, images_dir, images, data["annotations"], label_of)
        self._records, gt_images, gt_anns, self.stats = built
        gt = {"images": gt_images, "annotations": gt_anns, "categories": cats}
        self.coco = _make_coco({"info": data.get("info", {}), "licenses": data.get("licenses", []), **gt})
        self.ann_file, self.images_dir = ann_file, images_dir
        self.resolution, self.train, self.seed, self.epoch = resolution, train, seed, 0
        self.image_ids: list[int] = [r.image_id for r in self._records]
        self.cat_ids: list[int] = [c["id"] for c in cats]
        self.class_names: list[str] = [c["name"] for c in cats]
        found = _synthetic_info(ann_file)
        self.area_ranges: list[list[float]] | None = synthetic_area_ranges(found) if found else None
        self.fingerprint = self._fingerprint(raw, found, subset, categories)
        sizes = [(r.width, r.height) for r in self._records]
        self._images = decoded_images([r.path for r in self._records], sizes, decoded_budget, decoded_cache)

    def _fingerprint(
        self, raw: bytes, info: synthetic.SyntheticInfo | None, subset: int | None, categories: list[str] | None
    ) -> str:
        """dataset.json's fingerprint for the full synthetic set; else sha256 of file + selection."""
        if info is not None and subset is None and categories is None:
            return info.fingerprint
        digest = hashlib.sha256(info.fingerprint.encode() if info is not None else raw)
        selection = {
            "subset": subset,
            "seed": self.seed if subset is not None else None,  # the seed only matters to a subset
            "categories": [str(c) for c in categories] if categories is not None else None,
        }
        digest.update(json.dumps(selection, sort_keys=True).encode())
        return digest.hexdigest()

    def image_file(self, index: int) -> tuple[str, int, int]:
        """(path, width px, height px) of item ``index``'s image file."""
        record = self._records[index]
        return record.path, record.width, record.height

    @property
    def num_classes(self) -> int:
        """K, the number of kept categories (labels are 0..K-1)."""
        return len(self.cat_ids)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (call before iterating each epoch).

        DataLoader workers copy the data set when an iterator starts, so with
        ``persistent_workers=True`` this must be called before the loader is first iterated.
        """
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        record = self._records[index]
        scale = letterbox_scale(record.width, record.height, self.resolution)
        if self.train:
            aug = sample_augment(np.random.default_rng([self.seed, self.epoch, index]))
            scale *= aug.jitter
            size = resized_size(record.width, record.height, scale)
            image, boxes, keep = augment_image(
                self._images.image(index, record.path, size), record.boxes, scale, size, aug, self.resolution
            )
            labels = record.labels[keep]
        else:
            size = resized_size(record.width, record.height, scale)
            image = resize(self._images.image(index, record.path, size), size)
            boxes, labels = record.boxes * np.float32(scale), record.labels
        target = {
            "boxes": torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32)).reshape(-1, 4),
            "labels": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
            "image_id": int(record.image_id),
            "scale": float(scale),
            "orig_size": (int(record.height), int(record.width)),
        }
        return to_canvas(image, self.resolution), target


def collate_detection(
    batch: Sequence[tuple[torch.Tensor, dict[str, Any]]],
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Batch items of :class:`CocoDetection`: (images float32 ``[B, 3, R, R]``, list of B targets)."""
    images = torch.stack([image for image, _ in batch])
    return images, [target for _, target in batch]


# --------------------------------------------------------------------------------------
# Data references.
# --------------------------------------------------------------------------------------

_ACCEPTED = (
    "'synthetic' (the built-in generated set) or 'coco:PATH' with PATH holding either "
    "annotations/instances_train2017.json + train2017/ (and val2017), or "
    "annotations/instances_train.json + images/train/ (and val)"
)


def coco_layout(root: Path, splits: Sequence[str] = SPLITS) -> dict[str, tuple[Path, Path]]:
    """{split: (ann_file, images_dir)} of ``splits`` of a COCO-format folder; UserError naming what is missing.

    The built-in set's layout is recognised by the annotation file of the first of ``splits``.
    """
    if not root.is_dir():
        raise UserError(f"coco:{root}: no such folder; accepted data references: {_ACCEPTED}")
    if (root / "annotations" / f"instances_{splits[0]}.json").is_file():  # the built-in set's layout
        return {s: (root / "annotations" / f"instances_{s}.json", root / "images" / s) for s in splits}
    layout = {s: (root / "annotations" / f"instances_{s}2017.json", root / f"{s}2017") for s in splits}
    for ann_file, images_dir in layout.values():
        if not ann_file.is_file():
            raise UserError(f"coco:{root}: {ann_file} not found; accepted data references: {_ACCEPTED}")
        if not images_dir.is_dir():
            raise UserError(f"coco:{root}: image folder {images_dir} not found")
    return layout


def _data_folder(ref: str, cache_root: Path, progress: synthetic.ProgressCallback | None) -> tuple[str, Path]:
    """(name, folder) of a data reference; the built-in set is generated into ``cache_root`` on first use."""
    if ref == "synthetic":
        return "synthetic", synthetic.ensure_synthetic(Path(cache_root), progress=progress)
    if ref.startswith("coco:") and ref[len("coco:") :].strip():
        root = Path(ref[len("coco:") :]).expanduser()
        return f"coco:{root}", root
    raise UserError(f"unknown data reference {ref!r}; accepted: {_ACCEPTED}")


def _classes_info(split: CocoDetection) -> dict[str, Any]:
    """The part of a data set's ``info`` its classes make: num_classes, class_names, cat_ids, area_ranges."""
    return {
        "num_classes": split.num_classes,
        "class_names": list(split.class_names),
        "cat_ids": list(split.cat_ids),
        "area_ranges": split.area_ranges,
    }


def open_detection_data(
    ref: str,
    *,
    resolution: int,
    subset: int | None = None,
    categories: list[str] | None = None,
    seed: int = 0,
    cache_root: Path,
    val_subset: int | None = None,
    progress: synthetic.ProgressCallback | None = None,
) -> tuple[CocoDetection, CocoDetection, dict[str, Any]]:
    """(train, val, info) for a data reference: ``synthetic`` or ``coco:PATH``.

    ``subset`` limits the *training* split (``val_subset`` the validation split; by default
    it is evaluated whole); ``categories`` applies to both. ``info``: name, fingerprint (of
    both splits' files and selections; for the full synthetic set, dataset.json's), n_train,
    n_val, num_classes, class_names, cat_ids, area_ranges (the classes as the training split
    has them), stats {train, val}. ``progress(done, total)`` hears of the built-in set's images
    while it is generated (only when not cached yet).
    """
    name, root = _data_folder(ref, cache_root, progress)
    layout = coco_layout(root)
    common: dict[str, Any] = {
        "resolution": resolution,
        "categories": categories,
        "seed": seed,
        "decoded_cache": decoded_folder(cache_root),
    }
    train = CocoDetection(*layout["train"], train=True, subset=subset, **common)
    val = CocoDetection(*layout["val"], train=False, subset=val_subset, **common)
    info = {
        "name": name,
        "fingerprint": pair_fingerprint(train.fingerprint, val.fingerprint),
        "n_train": len(train),
        "n_val": len(val),
        **_classes_info(train),
        "stats": {"train": dict(train.stats), "val": dict(val.stats)},
    }
    return train, val, info


def open_detection_val(
    ref: str,
    *,
    resolution: int,
    categories: list[str] | None = None,
    seed: int = 0,
    cache_root: Path,
    progress: synthetic.ProgressCallback | None = None,
) -> tuple[CocoDetection, dict[str, Any]]:
    """(val, info) for a data reference: its validation split alone, whole (what ``archbench eval`` scores on).

    The training split is neither read nor required. ``info``: name, n_val, num_classes, class_names,
    cat_ids, area_ranges (the classes as the validation split has them), stats {val}.
    """
    name, root = _data_folder(ref, cache_root, progress)
    val = CocoDetection(
        *coco_layout(root, ("val",))["val"],
        resolution=resolution,
        train=False,
        categories=categories,
        seed=seed,
        decoded_cache=decoded_folder(cache_root),
    )
    return val, {"name": name, "n_val": len(val), **_classes_info(val), "stats": {"val": dict(val.stats)}}
