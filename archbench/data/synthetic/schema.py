"""What the built-in data set holds: its classes, their COCO ids, the size buckets, the ignore value.

These facts are shared by the drawing (:mod:`.scenes`), the files written (:mod:`.writer`) and
its description (:mod:`.store`); changing one changes the data, so :data:`GENERATOR_VERSION`
goes up with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The version of the generator: part of dataset.json, the COCO ``info`` and the cache folder name.
GENERATOR_VERSION = 2
DATASET_NAME = "synthetic"

#: The value of crowd (ignore) pixels in the semantic masks.
IGNORE_INDEX = 255


@dataclass(frozen=True)
class ClassSpec:
    """One object class: a shape drawn with a texture; ``category_id`` is its COCO id."""

    name: str
    shape: str
    texture: str
    category_id: int


#: The classes, in contiguous order: semantic-mask value k (1..K) is ``CLASSES[k - 1]``.
#: Two classes share the square shape (texture tells them apart); stripes and checker each
#: appear on two shapes (shape tells them apart).
CLASSES: tuple[ClassSpec, ...] = (
    ClassSpec("disc", "disc", "solid", 1),
    ClassSpec("ring", "ring", "solid", 3),
    ClassSpec("triangle", "triangle", "stripes", 5),
    ClassSpec("plus", "plus", "checker", 7),
    ClassSpec("striped_square", "square", "stripes", 9),
    ClassSpec("checkered_square", "square", "checker", 11),
)

# Size-bucket thresholds on sqrt(area), as fractions of the image side (see area_thresholds).
SMALL_FRACTION = 0.10
MEDIUM_FRACTION = 0.25


def area_thresholds(size: int) -> tuple[float, float]:
    """The (small_max, medium_max) object-area thresholds in px**2 for ``size`` px images.

    An object is *small* if its (visible) area < small_max, *medium* if < medium_max, else
    *large*: COCO's 32**2 / 96**2 buckets transposed to this data set, with thresholds on
    sqrt(area) at 10% and 25% of the image side (12.8 px and 32 px at 128 px). A pure
    S/640 scaling of COCO's thresholds would put "small" below 6.4 px at 128 px, smaller
    than the smallest learnable object; use these in COCOeval's ``areaRng`` instead.
    """
    return round((SMALL_FRACTION * size) ** 2, 6), round((MEDIUM_FRACTION * size) ** 2, 6)


def size_bucket(area: float, size: int) -> str:
    """``"small"``, ``"medium"`` or ``"large"``: the bucket of an area (px**2) at ``size`` px."""
    small_max, medium_max = area_thresholds(size)
    return "small" if area < small_max else "medium" if area < medium_max else "large"


def categories() -> list[dict[str, Any]]:
    """The COCO ``categories`` list: [{id, name, supercategory}], in contiguous order."""
    return [{"id": c.category_id, "name": c.name, "supercategory": "shape"} for c in CLASSES]
