"""COCO instance masks as semantic maps (``--task seg --data coco:PATH``).

The annotation file is read, validated, selected (``subset``, ``categories``) and cleaned by
:class:`archbench.data.coco.CocoDetection`; this module turns each image's kept annotations
into a class-index map: 0 is background, k + 1 the k-th kept category, and crowd regions are
the ignore index. Instances are painted largest first, so where masks overlap the smaller
object stays visible; crowd regions are painted last. Annotations of unselected categories are
background, as they are for detection. Every kept annotation's ``segmentation`` (polygons or
RLE) is checked when the split opens, naming the file and the annotation.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from archbench.data.coco import CocoDetection, is_number
from archbench.data.seg_dataset import DEFAULT_IGNORE_INDEX, ImageFile, LabelSource, SegmentationDataset
from archbench.errors import UserError

BACKGROUND = "background"


def check_segmentation(ann_file: Path, ann: dict[str, Any], height: int, width: int) -> None:
    """UserError naming the annotation unless its ``segmentation`` is polygons (>= 3 points each) or an RLE of
    the image's size."""
    seg = ann.get("segmentation")
    where = f"{ann_file}: annotation id {ann['id']} (image id {ann['image_id']})"
    if isinstance(seg, list):
        if not seg or not all(
            isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and all(map(is_number, p)) for p in seg
        ):
            raise UserError(f"{where}: 'segmentation' polygons must be lists of x, y numbers, at least 3 points each")
    elif isinstance(seg, dict):
        if "counts" not in seg or list(seg.get("size", [])) != [height, width]:
            raise UserError(
                f"{where}: 'segmentation' RLE needs 'counts' and 'size' equal to the image's "
                f"[height, width] = [{height}, {width}], got size {seg.get('size')!r}"
            )
    else:
        raise UserError(f"{where}: semantic segmentation needs a 'segmentation' (polygons or RLE), got {seg!r}")


def semantic_map(coco: COCO, image_id: int, label_of: dict[int, int], ignore_index: int) -> np.ndarray:
    """int32 ``[H, W]`` class-index map of one image (see the module docstring for the rules)."""
    img = coco.imgs[image_id]
    out = np.zeros((img["height"], img["width"]), dtype=np.int32)
    anns = coco.imgToAnns.get(image_id, [])
    plain = sorted((a for a in anns if not a.get("iscrowd", 0)), key=lambda a: -float(a["area"]))
    for ann in plain:
        out[coco.annToMask(ann) > 0] = label_of[ann["category_id"]]
    for ann in anns:
        if ann.get("iscrowd", 0):
            out[coco.annToMask(ann) > 0] = ignore_index
    return out


def _map_at(coco: COCO, image_ids: list[int], label_of: dict[int, int], ignore_index: int, index: int) -> np.ndarray:
    """:func:`semantic_map` of the ``index``-th image (a picklable label source, for spawned DataLoader workers)."""
    return semantic_map(coco, image_ids[index], label_of, ignore_index)


def open_coco_semantic(
    ann_file: Path,
    images_dir: Path,
    *,
    resolution: int,
    train: bool,
    subset: int | None = None,
    categories: list[str] | None = None,
    seed: int = 0,
    decoded_cache: Path | None = None,
) -> SegmentationDataset:
    """A :class:`SegmentationDataset` of a COCO instances split (``subset``/``categories`` as for detection).

    Classes: ``background`` then the kept categories in id order; the ignore index is 255 (or K
    when there are 255 classes or more). ``fingerprint`` and ``stats`` are the detection split's. The images
    are kept decoded in the folder ``decoded_cache`` as for detection.
    """
    det = CocoDetection(
        ann_file, images_dir, resolution=resolution, train=False, subset=subset, categories=categories, seed=seed
    )
    coco = det.coco
    for ann in coco.dataset["annotations"]:
        img = coco.imgs[ann["image_id"]]
        check_segmentation(Path(ann_file), ann, img["height"], img["width"])
    class_names = [BACKGROUND, *det.class_names]
    ignore = DEFAULT_IGNORE_INDEX if len(class_names) < DEFAULT_IGNORE_INDEX else len(class_names)
    label_of = {cat_id: k + 1 for k, cat_id in enumerate(det.cat_ids)}
    files = [ImageFile(*det.image_file(i)) for i in range(len(det))]
    labels: LabelSource = partial(_map_at, coco, list(det.image_ids), label_of, ignore)
    return SegmentationDataset(
        files,
        labels,
        class_names=class_names,
        ignore_index=ignore,
        resolution=resolution,
        train=train,
        fingerprint=det.fingerprint,
        stats=det.stats,
        seed=seed,
        decoded_cache=decoded_cache,
    )
