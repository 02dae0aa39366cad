"""One image of the built-in data set: a scene of objects laid out, drawn and annotated.

:func:`render_image` draws a background with clutter, places 0..6 objects (and sometimes a crowd
cluster) so that each keeps enough of itself visible, paints them, and annotates what stays
visible: the semantic mask and COCO annotations (see :mod:`.masks`). Every image draws from its
own Generator (:func:`image_rng`), so an image depends only on ``(seed, split, index)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from archbench.data.splits import SPLITS
from archbench.data.synthetic.draw import (
    SHAPE_AREA,
    Window,
    dilate,
    draw_background,
    draw_distractors,
    local,
    random_paint,
    shape_mask,
    texture_rgb,
    window,
)
from archbench.data.synthetic.masks import bbox, crowd_rle, mask_to_polygons
from archbench.data.synthetic.schema import CLASSES, IGNORE_INDEX, area_thresholds

#: The largest objects' sqrt(area), as a fraction of the image side (see schema.area_thresholds).
_LARGE_MAX_FRACTION = 0.45
#: Probabilities of drawing an object's target area from the small/medium/large bucket;
#: occlusion and border truncation then move some objects one bucket down.
_BUCKET_P = (0.29, 0.38, 0.33)
#: Smallest half-extent at 128 px (scaled with the image): objects are >= ~8 px across.
_MIN_HALF_EXTENT_128 = 4.5
_MAX_HALF_EXTENT_FRACTION = 0.42
#: Every annotated object keeps at least this fraction of its full area visible ...
_MIN_VISIBLE_FRACTION = 0.3
#: ... and at least this many visible pixels at 128 px (scaled with the image area).
_MIN_VISIBLE_PX_128 = 24.0
_PLACEMENT_TRIES = 15
_P_EMPTY = 0.03
_P_CROWD = 0.05
_MAX_OBJECTS = 6
_PIXEL_NOISE = 3.0  # std of the final per-pixel noise, grey levels


@dataclass
class _Layer:
    """One annotated thing: an object or a crowd cluster, its full area (px**2) and paint."""

    class_index: int  # 0-based index into CLASSES
    crowd: bool
    full_area: float
    win: Window
    mask: np.ndarray  # bool, window-shaped: the full (unoccluded) extent
    rgb: np.ndarray  # float (h, w, 3) colours inside the window
    painted: np.ndarray | None = None  # bool, window-shaped: pixels drawn; None = mask


class _Scene:
    """Layers drawn in order; tracks how many pixels of each layer are still visible."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.owner = np.full((size, size), -1, dtype=np.int16)
        self.visible: list[int] = []
        self.layers: list[_Layer] = []
        self.min_visible_px = _MIN_VISIBLE_PX_128 * (size / 128.0) ** 2

    def _needed(self, layer: _Layer) -> float:
        """Visible pixels a layer must keep (px**2)."""
        return max(_MIN_VISIBLE_FRACTION * layer.full_area, self.min_visible_px)

    def try_add(self, layer: _Layer) -> bool:
        """Draw ``layer`` on top if every layer (old and new) keeps enough visible pixels."""
        crop = self.owner[layer.win.y0 : layer.win.y1, layer.win.x0 : layer.win.x1]
        covered = crop[layer.mask]
        new_visible = int(layer.mask.sum())
        if new_visible < self._needed(layer):
            return False
        lost = np.bincount(covered[covered >= 0], minlength=len(self.layers))
        for index, old in enumerate(self.layers):
            if self.visible[index] - lost[index] < self._needed(old):
                return False
        for index in range(len(self.layers)):
            self.visible[index] -= int(lost[index])
        crop[layer.mask] = len(self.layers)
        self.layers.append(layer)
        self.visible.append(new_visible)
        return True


def _sample_half_extent(rng: np.random.Generator, size: int, class_index: int) -> float:
    """An object's half-extent s (px): a bucket from _BUCKET_P, a log-uniform area within it."""
    spec = CLASSES[class_index]
    k = SHAPE_AREA[spec.shape]
    small_max, medium_max = area_thresholds(size)
    s_min = _MIN_HALF_EXTENT_128 * size / 128.0
    s_max = _MAX_HALF_EXTENT_FRACTION * size
    bounds = {
        "small": (k * s_min**2, small_max),
        "medium": (small_max, medium_max),
        "large": (medium_max, (_LARGE_MAX_FRACTION * size) ** 2),
    }
    bucket = ("small", "medium", "large")[int(rng.choice(3, p=_BUCKET_P))]
    low, high = bounds[bucket]
    area = math.exp(rng.uniform(math.log(low), math.log(max(high, low * 1.01))))
    return float(np.clip(math.sqrt(area / k), s_min, s_max))


def _place_object(rng: np.random.Generator, scene: _Scene, class_index: int, base: np.ndarray) -> bool:
    """Try a few random positions/rotations for one new object; True if one was accepted."""
    size = scene.size
    spec = CLASSES[class_index]
    s = _sample_half_extent(rng, size, class_index)
    paint = random_paint(rng, spec.texture, s, base)
    reach = 1.25 * s
    margin = 0.6 * s
    for _ in range(_PLACEMENT_TRIES):
        cx, cy = rng.uniform(margin, size - margin, 2)
        theta = float(rng.uniform(0.0, 2.0 * math.pi))
        win = window(size, cx, cy, reach)
        if win is None:
            continue
        u, v = local(win, cx, cy, theta)
        mask = shape_mask(spec.shape, u, v, s)
        layer = _Layer(class_index, False, SHAPE_AREA[spec.shape] * s * s, win, mask, np.empty(0))
        if scene.try_add(layer):
            layer.rgb = texture_rgb(paint, u, v, s)
            return True
    return False


def _place_crowd(rng: np.random.Generator, scene: _Scene, base: np.ndarray) -> None:
    """A dense cluster of 8..19 tiny objects of one class, annotated as one crowd region.

    The crowd region is the union of the tiny shapes grown by 1 px; the tiny shapes are
    2..3.2 px in half-extent at 128 px, below the size of the annotated objects.
    """
    size = scene.size
    scale = size / 128.0
    class_index = int(rng.integers(len(CLASSES)))
    spec = CLASSES[class_index]
    radius = rng.uniform(0.1, 0.17) * size
    cx, cy = rng.uniform(0.25 * size, 0.75 * size, 2)
    win = window(size, cx, cy, radius + 4.0 * scale + 2.0)
    if win is None:
        return
    paint = random_paint(rng, spec.texture, 3.0 * scale, base)
    shapes = np.zeros(win.xx.shape, dtype=bool)
    rgb = np.zeros(win.xx.shape + (3,))
    for _ in range(int(rng.integers(8, 20))):
        s = rng.uniform(2.0, 3.2) * scale
        rho, phi = radius * math.sqrt(rng.uniform()), rng.uniform(0.0, 2.0 * math.pi)
        u, v = local(win, cx + rho * math.cos(phi), cy + rho * math.sin(phi), float(rng.uniform(0.0, 2 * math.pi)))
        one = shape_mask(spec.shape, u, v, s)
        rgb[one] = texture_rgb(paint, u, v, s)[one]
        shapes |= one
    region = dilate(shapes)
    layer = _Layer(class_index, True, float(region.sum()), win, region, rgb)
    if scene.try_add(layer):
        # Only the tiny shapes are painted; the 1-px margin keeps the background.
        layer.painted = shapes


@dataclass
class RenderedImage:
    """One generated image: ``image`` uint8 (S, S, 3), ``semantic`` uint8 (S, S) and its
    annotations (COCO dicts without ``id``/``image_id``; bbox/area/segmentation in px).

    ``visible_fraction[i]`` is annotation i's visible area over its full (unoccluded,
    untruncated) area, ``occluded[i]`` whether a later object hides part of it; neither is
    written to the COCO files.
    """

    image: np.ndarray
    semantic: np.ndarray
    annotations: list[dict[str, Any]]
    visible_fraction: list[float]
    occluded: list[bool]


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The Generator for image ``index`` of ``split``: independent of every other image."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index]))


def render_image(rng: np.random.Generator, size: int) -> RenderedImage:
    """Draw one scene of ``size`` x ``size`` px from ``rng``: background, clutter, objects."""
    canvas, base = draw_background(rng, size)
    draw_distractors(rng, canvas, base)
    scene = _Scene(size)
    if rng.uniform() >= _P_EMPTY:
        if rng.uniform() < _P_CROWD:
            _place_crowd(rng, scene, base)
        for _ in range(int(rng.integers(1, _MAX_OBJECTS + 1))):
            _place_object(rng, scene, int(rng.integers(len(CLASSES))), base)
    for layer in scene.layers:
        painted = layer.mask if layer.painted is None else layer.painted
        canvas[layer.win.y0 : layer.win.y1, layer.win.x0 : layer.win.x1][painted] = layer.rgb[painted]
    canvas += _PIXEL_NOISE * rng.standard_normal(canvas.shape, dtype=np.float32)
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    semantic, annotations = _annotate(scene)
    fractions = [min(1.0, v / layer.full_area) for v, layer in zip(scene.visible, scene.layers)]
    occluded = [v < int(layer.mask.sum()) for v, layer in zip(scene.visible, scene.layers)]
    return RenderedImage(image, semantic, annotations, fractions, occluded)


def _annotate(scene: _Scene) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The semantic mask (S, S) uint8 and COCO annotations of a scene's visible parts."""
    semantic = np.zeros((scene.size, scene.size), dtype=np.uint8)
    annotations = []
    for index, layer in enumerate(scene.layers):
        visible = scene.owner == index
        semantic[visible] = IGNORE_INDEX if layer.crowd else layer.class_index + 1
        segmentation: Any = crowd_rle(visible) if layer.crowd else mask_to_polygons(visible)
        annotations.append(
            {
                "category_id": CLASSES[layer.class_index].category_id,
                "bbox": bbox(visible),
                "area": float(visible.sum()),
                "iscrowd": int(layer.crowd),
                "segmentation": segmentation,
            }
        )
    return semantic, annotations
