"""Data references for segmentation: ``synthetic`` | ``coco:PATH`` | ``segfolder:PATH`` -> (train, val, info).

- ``synthetic``: the built-in generated set (cached as for detection) read through its PNG
  semantic masks: ``background`` + its 6 classes, crowd regions ignored (255).
- ``coco:PATH``: a COCO-format folder (the layouts detection accepts); instance masks become
  semantic maps (:mod:`archbench.data.coco_semantic`).
- ``segfolder:PATH``: images + PNG class-index maps (:mod:`archbench.data.segfolder`).

``subset`` limits the training split (validation is evaluated whole); ``categories`` applies
to COCO data only, where the other categories' objects become background.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archbench.data import synthetic
from archbench.data.coco import coco_layout
from archbench.data.coco_semantic import BACKGROUND, open_coco_semantic
from archbench.data.seg_dataset import SegmentationDataset
from archbench.data.segfolder import ClassTable, open_split, read_classes
from archbench.data.splits import pair_fingerprint
from archbench.errors import UserError

ACCEPTED = (
    "'synthetic' (the built-in generated set and its semantic masks), 'coco:PATH' (a COCO-format folder; "
    "instance masks become semantic maps) or 'segfolder:PATH' (images/ + masks/ PNG class-index maps)"
)


def synthetic_classes(root: Path) -> ClassTable:
    """The built-in set's classes as its masks use them: 0 background, k the k-th class, 255 ignore."""
    info = synthetic.read_info(root)
    return ClassTable((BACKGROUND, *info.classes), synthetic.IGNORE_INDEX, str(root / "dataset.json"))


def _open_splits(
    ref: str,
    common: dict[str, Any],
    subset: int | None,
    categories: list[str] | None,
    cache_root: Path,
    progress: synthetic.ProgressCallback | None,
) -> tuple[str, SegmentationDataset, SegmentationDataset]:
    """(name, train, val) of a data reference."""
    kind, _, rest = ref.partition(":")
    path = Path(rest).expanduser() if rest.strip() else None
    if kind == "coco" and path is not None:
        layout = coco_layout(path)
        train = open_coco_semantic(*layout["train"], train=True, subset=subset, categories=categories, **common)
        val = open_coco_semantic(*layout["val"], train=False, categories=categories, **common)
        return f"coco:{path}", train, val
    if categories:
        raise UserError(
            f"--categories: with --task seg only coco:PATH data can select categories (their other "
            f"objects become background); {ref!r} keeps its classes as its masks define them"
        )
    if ref == "synthetic":
        root = synthetic.ensure_synthetic(Path(cache_root), progress=progress)
        classes, name = synthetic_classes(root), "synthetic"
    elif kind == "segfolder" and path is not None:
        if not path.is_dir():
            raise UserError(f"segfolder:{path}: no such folder")
        classes, root, name = read_classes(path), path, f"segfolder:{path}"
    else:
        raise UserError(f"unknown data reference {ref!r} for --task seg; accepted: {ACCEPTED}")
    train = open_split(root, "train", classes, train=True, subset=subset, **common)
    return name, train, open_split(root, "val", classes, train=False, **common)


def open_segmentation_data(
    ref: str,
    *,
    resolution: int,
    subset: int | None = None,
    categories: list[str] | None = None,
    seed: int = 0,
    cache_root: Path,
    progress: synthetic.ProgressCallback | None = None,
) -> tuple[SegmentationDataset, SegmentationDataset, dict[str, Any]]:
    """(train, val, info) for a data reference; ``info``: name, fingerprint (both splits and the
    selection), n_train, n_val, num_classes, class_names, ignore_index, stats {train, val}.
    ``progress(done, total)`` hears of the built-in set's images while it is generated."""
    common = {"resolution": resolution, "seed": seed}
    name, train, val = _open_splits(ref, common, subset, categories, cache_root, progress)
    info = {
        "name": name,
        "fingerprint": pair_fingerprint(train.fingerprint, val.fingerprint),
        "n_train": len(train),
        "n_val": len(val),
        "num_classes": train.num_classes,
        "class_names": list(train.class_names),
        "ignore_index": train.ignore_index,
        "stats": {"train": train.stats, "val": val.stats},
    }
    return train, val, info
