"""Data references for segmentation: ``synthetic`` | ``coco:PATH`` | ``segfolder:PATH`` -> (train, val, info).

- ``synthetic``: the built-in generated set (cached as for detection) read through its PNG
  semantic masks: ``background`` + its 6 classes, crowd regions ignored (255).
- ``coco:PATH``: a COCO-format folder (the layouts detection accepts); instance masks become
  semantic maps (:mod:`archbench.data.coco_semantic`).
- ``segfolder:PATH``: images + PNG class-index maps (:mod:`archbench.data.segfolder`).

:func:`open_segmentation_data` opens both splits, :func:`open_segmentation_val` the validation split alone.

``subset`` limits the training split (validation is evaluated whole); ``categories`` applies
to COCO data only, where the other categories' objects become background.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archbench.data import synthetic
from archbench.data.coco import coco_layout
from archbench.data.coco_semantic import BACKGROUND, open_coco_semantic
from archbench.data.decoded import decoded_folder
from archbench.data.seg_dataset import SegmentationDataset
from archbench.data.segfolder import ClassTable, open_split, read_classes
from archbench.data.splits import SPLITS, pair_fingerprint
from archbench.errors import UserError

ACCEPTED = (
    "'synthetic' (the built-in generated set and its semantic masks), 'coco:PATH' (a COCO-format folder; "
    "instance masks become semantic maps) or 'segfolder:PATH' (images/ + masks/ PNG class-index maps)"
)


def synthetic_classes(root: Path) -> ClassTable:
    """The built-in set's classes as its masks use them: 0 background, k the k-th class, 255 ignore."""
    info = synthetic.read_info(root)
    return ClassTable((BACKGROUND, *info.classes), synthetic.IGNORE_INDEX, str(root / "dataset.json"))


def _split_args(split: str, subset: int | None, common: dict[str, Any]) -> dict[str, Any]:
    """The keywords ``split`` opens with: ``common`` (resolution, seed), and the training split augmented and cut
    to ``subset``, the validation split whole."""
    return {**common, "train": split == "train", "subset": subset if split == "train" else None}


def _open_splits(
    ref: str,
    splits: Sequence[str],
    common: dict[str, Any],
    subset: int | None,
    categories: list[str] | None,
    cache_root: Path,
    progress: synthetic.ProgressCallback | None,
) -> tuple[str, dict[str, SegmentationDataset]]:
    """(name, {split: data set}) of ``splits`` of a data reference (the others are not read)."""
    common = {**common, "decoded_cache": decoded_folder(cache_root)}
    kind, _, rest = ref.partition(":")
    path = Path(rest).expanduser() if rest.strip() else None
    if kind == "coco" and path is not None:
        layout = coco_layout(path, splits)
        return f"coco:{path}", {
            s: open_coco_semantic(*layout[s], categories=categories, **_split_args(s, subset, common)) for s in splits
        }
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
    return name, {s: open_split(root, s, classes, **_split_args(s, subset, common)) for s in splits}


def _classes_info(split: SegmentationDataset) -> dict[str, Any]:
    """The part of a data set's ``info`` its classes make: num_classes, class_names, ignore_index."""
    return {
        "num_classes": split.num_classes,
        "class_names": list(split.class_names),
        "ignore_index": split.ignore_index,
    }


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
    selection), n_train, n_val, num_classes, class_names, ignore_index (the training split's), stats {train, val}.
    ``progress(done, total)`` hears of the built-in set's images while it is generated."""
    common = {"resolution": resolution, "seed": seed}
    name, opened = _open_splits(ref, SPLITS, common, subset, categories, cache_root, progress)
    train, val = opened["train"], opened["val"]
    info = {
        "name": name,
        "fingerprint": pair_fingerprint(train.fingerprint, val.fingerprint),
        "n_train": len(train),
        "n_val": len(val),
        **_classes_info(train),
        "stats": {"train": train.stats, "val": val.stats},
    }
    return train, val, info


def open_segmentation_val(
    ref: str,
    *,
    resolution: int,
    categories: list[str] | None = None,
    seed: int = 0,
    cache_root: Path,
    progress: synthetic.ProgressCallback | None = None,
) -> tuple[SegmentationDataset, dict[str, Any]]:
    """(val, info) for a data reference: its validation split alone (what ``archbench eval`` scores on); the
    training split is neither read nor required. ``info``: name, n_val, num_classes, class_names, ignore_index
    (the validation split's), stats {val}."""
    common = {"resolution": resolution, "seed": seed}
    name, opened = _open_splits(ref, ("val",), common, None, categories, cache_root, progress)
    val = opened["val"]
    return val, {"name": name, "n_val": len(val), **_classes_info(val), "stats": {"val": val.stats}}
