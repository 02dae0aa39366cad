"""The built-in generated COCO-format dataset: the default data of the benchmark.

Each image (``size`` x ``size`` px, RGB) shows 0..6 objects of 6 classes that differ by
*shape and texture* (colours are drawn independently of the class, so colour carries no
information), on a low-contrast noisy gradient background with a few distractor strokes and
elongated blobs that belong to no class. Objects span three relative size buckets (see
:func:`area_thresholds`), may occlude each other (later objects are drawn over earlier ones;
every annotated object keeps at least 30% of its full area visible, and its bbox, area and
polygons describe the *visible* part), and about 5% of images hold a dense cluster of tiny
objects annotated as one crowd region (``iscrowd=1``, RLE).

Layout written by :func:`generate`::

    out_dir/images/{train,val}/000000.png          RGB uint8
    out_dir/masks/{train,val}/000000.png           uint8 semantic mask: 0 background,
                                                   k in 1..K the k-th class of CLASSES,
                                                   255 ignore (crowd regions)
    out_dir/annotations/instances_{train,val}.json COCO instances (file_name is relative
                                                   to images/<split>/)
    out_dir/dataset.json                           written last: parameters + fingerprint

Category ids are deliberately non-contiguous (1, 3, 5, ...): code must map them through the
``categories`` list, as with real COCO. The output is bit-identical for the same arguments
(every image has its own numpy Generator derived from ``(seed, split, index)``).

The modules, in the order they build on each other: :mod:`.schema` (classes, size buckets,
ignore value, generator version), :mod:`.draw` (shapes, textures, background, clutter),
:mod:`.masks` (masks to COCO polygons, boxes and RLE), :mod:`.scenes` (one image: layout,
occlusion, annotations), :mod:`.store` (dataset.json and the fingerprint), :mod:`.staging`
(the staging folder renamed into place), :mod:`.writer` (:func:`generate`: every image, in
worker processes) and :mod:`.cache` (:func:`ensure_synthetic`: one cached folder per parameter
set). This package exposes what the rest of archbench uses.
"""

from archbench.data.synthetic.cache import cache_name, ensure_synthetic
from archbench.data.synthetic.masks import mask_to_polygons
from archbench.data.synthetic.scenes import RenderedImage, image_rng, render_image
from archbench.data.synthetic.schema import (
    CLASSES,
    DATASET_NAME,
    GENERATOR_VERSION,
    IGNORE_INDEX,
    ClassSpec,
    area_thresholds,
    categories,
    size_bucket,
)
from archbench.data.synthetic.store import SyntheticInfo, fingerprint, read_info
from archbench.data.synthetic.writer import (
    DEFAULT_N_TRAIN,
    DEFAULT_N_VAL,
    DEFAULT_SEED,
    DEFAULT_SIZE,
    MAX_SIZE,
    MIN_SIZE,
    ProgressCallback,
    generate,
    validate_args,
)

__all__ = [
    "CLASSES",
    "DATASET_NAME",
    "DEFAULT_N_TRAIN",
    "DEFAULT_N_VAL",
    "DEFAULT_SEED",
    "DEFAULT_SIZE",
    "GENERATOR_VERSION",
    "IGNORE_INDEX",
    "MAX_SIZE",
    "MIN_SIZE",
    "ClassSpec",
    "ProgressCallback",
    "RenderedImage",
    "SyntheticInfo",
    "area_thresholds",
    "cache_name",
    "categories",
    "ensure_synthetic",
    "fingerprint",
    "generate",
    "image_rng",
    "mask_to_polygons",
    "read_info",
    "render_image",
    "size_bucket",
    "validate_args",
]
