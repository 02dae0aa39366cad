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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import re
import shutil
import socket
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from archbench.errors import UserError

GENERATOR_VERSION = 2
DATASET_NAME = "synthetic"
DEFAULT_SEED = 0
#: 128 px keeps a small detector trainable on CPU in minutes while the three size buckets
#: still map onto pyramid levels P3..P5 (strides 8..32).
DEFAULT_SIZE = 128
DEFAULT_N_TRAIN = 2048
DEFAULT_N_VAL = 512
MIN_SIZE = 32
MAX_SIZE = 2048
SPLITS = ("train", "val")

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

# Shape geometry, in units of the shape's half-extent s (pixels).
_RING_INNER = 0.5
_SQUARE_HALF = 0.85
_TRIANGLE_CIRCUM = 1.1
_PLUS_HALF_WIDTH = 0.35
#: Full area of each shape in units of s**2.
_SHAPE_AREA = {
    "disc": math.pi,
    "ring": math.pi * (1.0 - _RING_INNER**2),
    "square": (2.0 * _SQUARE_HALF) ** 2,
    "triangle": 3.0 * math.sqrt(3.0) / 4.0 * _TRIANGLE_CIRCUM**2,
    "plus": 8.0 * _PLUS_HALF_WIDTH - 4.0 * _PLUS_HALF_WIDTH**2,
}

# Size-bucket thresholds on sqrt(area), as fractions of the image side (see area_thresholds).
SMALL_FRACTION = 0.10
MEDIUM_FRACTION = 0.25
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
_MIN_CONTRAST = 100.0  # RGB L2 distance between an object's colour and its background
_PIXEL_NOISE = 3.0  # std of the final per-pixel noise, grey levels
#: zlib level of the PNGs: 1 is twice as fast as PIL's 6 on these noisy images, for 15% more bytes.
_PNG_LEVEL = 1


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


@dataclass(frozen=True)
class SyntheticInfo:
    """A generated data set on disk.

    ``path`` is the data set folder (layout in the module docstring), ``fingerprint`` the
    64-hex-digit sha256 of its annotation and image/mask files (see :func:`fingerprint`),
    ``n_train``/``n_val`` image counts, ``size`` the image side in px, ``classes`` the class
    names in contiguous order (semantic-mask value k is ``classes[k - 1]``).
    """

    path: Path
    fingerprint: str
    n_train: int
    n_val: int
    size: int
    classes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------
# Drawing primitives. Coordinates are pixels; pixel (row i, col j) covers [j, j+1) x [i, i+1)
# and is sampled at its centre (j + 0.5, i + 0.5).
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    """A crop ``[y0:y1, x0:x1]`` of the image with its pixel-centre coordinates (H, W)."""

    y0: int
    y1: int
    x0: int
    x1: int
    xx: np.ndarray
    yy: np.ndarray


def _window(size: int, cx: float, cy: float, radius: float) -> _Window | None:
    """The crop of a ``size`` px image covering the disc (cx, cy, radius), or None if empty."""
    x0, x1 = max(0, int(cx - radius) - 1), min(size, int(cx + radius) + 2)
    y0, y1 = max(0, int(cy - radius) - 1), min(size, int(cy + radius) + 2)
    if x0 >= x1 or y0 >= y1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64) + 0.5
    return _Window(y0, y1, x0, x1, xx, yy)


def _local(win: _Window, cx: float, cy: float, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Window coordinates rotated into an object's frame: (u, v) arrays, px, shape (H, W)."""
    dx, dy = win.xx - cx, win.yy - cy
    c, s = math.cos(theta), math.sin(theta)
    return dx * c + dy * s, -dx * s + dy * c


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray, s: float) -> np.ndarray:
    """Boolean (H, W) mask of ``shape`` with half-extent ``s`` px in local coordinates."""
    if shape == "disc":
        return u * u + v * v <= s * s
    if shape == "ring":
        r2 = u * u + v * v
        return (r2 <= s * s) & (r2 >= (_RING_INNER * s) ** 2)
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= _SQUARE_HALF * s
    if shape == "triangle":
        inradius = _TRIANGLE_CIRCUM * s / 2.0
        dist = [u * math.cos(a) + v * math.sin(a) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
        return np.maximum(np.maximum(dist[0], dist[1]), dist[2]) <= inradius
    if shape == "plus":
        au, av, t = np.abs(u), np.abs(v), _PLUS_HALF_WIDTH * s
        return ((au <= s) & (av <= t)) | ((av <= s) & (au <= t))
    raise ValueError(f"unknown shape {shape!r}")


@dataclass(frozen=True)
class _Paint:
    """How an object is coloured: a texture, two RGB colours (0..255) and pattern params."""

    texture: str
    color_a: np.ndarray
    color_b: np.ndarray
    period: float
    angle: float
    phase: tuple[float, float]
    shading: float


def _texture(paint: _Paint, u: np.ndarray, v: np.ndarray, s: float) -> np.ndarray:
    """RGB float (H, W, 3) texture in an object's local frame (u, v px, half-extent s px)."""
    if paint.texture == "solid":
        ramp = paint.shading * np.clip(u / max(s, 1e-6), -1.0, 1.0)
        return paint.color_a[None, None, :] + ramp[..., None]
    if paint.texture == "stripes":
        w = u * math.cos(paint.angle) + v * math.sin(paint.angle)
        on = np.mod(w / paint.period + paint.phase[0], 1.0) < 0.5
    elif paint.texture == "checker":
        on = (np.floor(u / paint.period + paint.phase[0]) + np.floor(v / paint.period + paint.phase[1])) % 2 == 0
    else:
        raise ValueError(f"unknown texture {paint.texture!r}")
    return np.where(on[..., None], paint.color_a[None, None, :], paint.color_b[None, None, :])


def _contrasting_color(rng: np.random.Generator, others: Sequence[np.ndarray], min_dist: float) -> np.ndarray:
    """A random RGB colour (float, 0..255) at least ``min_dist`` (L2) away from every colour of ``others``.

    After 64 rejected draws, the draw farthest from its nearest ``other`` is returned.
    """
    best, best_dist = None, -1.0
    for _ in range(64):
        color = rng.uniform(0.0, 255.0, 3)
        dist = min(float(np.linalg.norm(color - other)) for other in others)
        if dist >= min_dist:
            return color
        if dist > best_dist:
            best, best_dist = color, dist
    return best


def _random_paint(rng: np.random.Generator, texture: str, s: float, background: np.ndarray) -> _Paint:
    """Random colours and pattern parameters for an object of half-extent ``s`` px.

    The pattern period scales with the object (about 3.5 stripes / 4.5 checks across it)
    but never drops below 3 px (stripes) / 2 px (checks), so textures stay visible. (A fixed
    3..6 px period, fine texture on large objects, was tried: AP50 of the default run fell
    from 0.28 to 0.18.)
    """
    color_a = _contrasting_color(rng, [background], _MIN_CONTRAST)
    # Both colours of a pattern stand out from the background: otherwise half of a striped
    # object melts into it and the object reads as several separate bars.
    color_b = _contrasting_color(rng, [background, color_a], _MIN_CONTRAST)
    period = max(3.0, 0.57 * s) if texture == "stripes" else max(2.0, 0.45 * s)
    return _Paint(
        texture=texture,
        color_a=color_a,
        color_b=color_b,
        period=period,
        angle=float(rng.uniform(0.0, math.pi)),
        phase=(float(rng.uniform()), float(rng.uniform())),
        shading=float(rng.uniform(-20.0, 20.0)),
    )


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A low-contrast background: (float32 RGB image (S, S, 3), its mean colour (3,) float64).

    A random base colour plus a linear gradient (+-5..20 levels), smooth low-frequency
    blotches (+-3..8) and a faint per-channel tint of the blotches.
    """
    base = rng.uniform(40.0, 215.0, 3)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    angle = rng.uniform(0.0, 2.0 * math.pi)
    gradient = np.float32(2.0 * rng.uniform(5.0, 20.0)) * (xx * np.float32(math.cos(angle)) + yy * np.float32(math.sin(angle)))
    coarse = rng.normal(0.0, 1.0, (6, 6)).astype(np.float32)
    blotches = np.array(Image.fromarray(coarse).resize((size, size), Image.BILINEAR), dtype=np.float32)
    blotches *= np.float32(rng.uniform(3.0, 8.0))
    tint = rng.uniform(0.6, 1.0, 3).astype(np.float32)
    image = base.astype(np.float32)[None, None, :] + gradient[..., None] + blotches[..., None] * tint[None, None, :]
    return image, base


def _draw_distractors(rng: np.random.Generator, image: np.ndarray, base: np.ndarray) -> None:
    """Draw 0..3 class-less strokes (polylines) or elongated ellipses onto ``image`` in place."""
    size = image.shape[0]
    scale = size / 128.0
    for _ in range(int(rng.integers(0, 4))):
        color = _contrasting_color(rng, [base], 60.0)
        if rng.uniform() < 0.6:
            _draw_stroke(rng, image, color, scale)
        else:
            _draw_ellipse(rng, image, color, size)


def _draw_stroke(rng: np.random.Generator, image: np.ndarray, color: np.ndarray, scale: float) -> None:
    """A random-walk polyline, 1..2 px wide at 128 px, 3..5 points, onto ``image`` in place."""
    size = image.shape[0]
    point = rng.uniform(0.0, size, 2)
    points = [tuple(point)]
    for _ in range(int(rng.integers(2, 5))):
        step = rng.uniform(0.08, 0.2) * size
        angle = rng.uniform(0.0, 2.0 * math.pi)
        point = np.clip(point + step * np.array([math.cos(angle), math.sin(angle)]), 0.0, size - 1.0)
        points.append(tuple(point))
    layer = Image.new("L", (size, size), 0)
    width = max(1, int(round(rng.uniform(1.0, 2.5) * scale)))
    ImageDraw.Draw(layer).line([(float(x), float(y)) for x, y in points], fill=255, width=width)
    on = np.asarray(layer) > 0
    image[on] = color


def _draw_ellipse(rng: np.random.Generator, image: np.ndarray, color: np.ndarray, size: int) -> None:
    """A filled ellipse with aspect ratio 2.5..5 (never disc-like) onto ``image`` in place."""
    a = rng.uniform(0.05, 0.14) * size
    b = a / rng.uniform(2.5, 5.0)
    cx, cy = rng.uniform(0.0, size, 2)
    win = _window(size, cx, cy, a)
    if win is None:
        return
    u, v = _local(win, cx, cy, float(rng.uniform(0.0, math.pi)))
    on = (u / a) ** 2 + (v / b) ** 2 <= 1.0
    image[win.y0 : win.y1, win.x0 : win.x1][on] = color


# --------------------------------------------------------------------------------------
# Scene layout: an owner map (S, S) int16, -1 = background, i = layer i (crowd or object).
# --------------------------------------------------------------------------------------


@dataclass
class _Layer:
    """One annotated thing: an object or a crowd cluster, its full area (px**2) and paint."""

    class_index: int  # 0-based index into CLASSES
    crowd: bool
    full_area: float
    win: _Window
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
    k = _SHAPE_AREA[spec.shape]
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
    paint = _random_paint(rng, spec.texture, s, base)
    reach = 1.25 * s
    margin = 0.6 * s
    for _ in range(_PLACEMENT_TRIES):
        cx, cy = rng.uniform(margin, size - margin, 2)
        theta = float(rng.uniform(0.0, 2.0 * math.pi))
        win = _window(size, cx, cy, reach)
        if win is None:
            continue
        u, v = _local(win, cx, cy, theta)
        mask = _shape_mask(spec.shape, u, v, s)
        layer = _Layer(class_index, False, _SHAPE_AREA[spec.shape] * s * s, win, mask, np.empty(0))
        if scene.try_add(layer):
            layer.rgb = _texture(paint, u, v, s)
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
    win = _window(size, cx, cy, radius + 4.0 * scale + 2.0)
    if win is None:
        return
    paint = _random_paint(rng, spec.texture, 3.0 * scale, base)
    shapes = np.zeros(win.xx.shape, dtype=bool)
    rgb = np.zeros(win.xx.shape + (3,))
    for _ in range(int(rng.integers(8, 20))):
        s = rng.uniform(2.0, 3.2) * scale
        rho, phi = radius * math.sqrt(rng.uniform()), rng.uniform(0.0, 2.0 * math.pi)
        u, v = _local(win, cx + rho * math.cos(phi), cy + rho * math.sin(phi), float(rng.uniform(0.0, 2 * math.pi)))
        one = _shape_mask(spec.shape, u, v, s)
        rgb[one] = _texture(paint, u, v, s)[one]
        shapes |= one
    region = _dilate(shapes)
    layer = _Layer(class_index, True, float(region.sum()), win, region, rgb)
    if scene.try_add(layer):
        # Only the tiny shapes are painted; the 1-px margin keeps the background.
        layer.painted = shapes


def _dilate(mask: np.ndarray) -> np.ndarray:
    """Grow a boolean (H, W) mask by one pixel (4-neighbourhood)."""
    out = mask.copy()
    out[1:, :] |= mask[:-1, :]
    out[:-1, :] |= mask[1:, :]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


# --------------------------------------------------------------------------------------
# Masks to COCO geometry.
# --------------------------------------------------------------------------------------

_RIGHT_TURN = {(1, 0): (0, 1), (0, 1): (-1, 0), (-1, 0): (0, -1), (0, -1): (1, 0)}


def _boundary_edges(mask: np.ndarray) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """Directed pixel-edge boundary of a boolean (H, W) mask: vertex (x, y) -> directions.

    Edges run along pixel borders with the inside on the right (clockwise on screen for
    outer boundaries, counter-clockwise for holes).
    """
    padded = np.pad(mask, 1)
    inside = padded[1:-1, 1:-1]
    edges: dict[tuple[int, int], list[tuple[int, int]]] = {}
    sides = (
        (inside & ~padded[:-2, 1:-1], (0, 0), (1, 0)),  # top edge, going east
        (inside & ~padded[1:-1, 2:], (1, 0), (0, 1)),  # right edge, going south
        (inside & ~padded[2:, 1:-1], (1, 1), (-1, 0)),  # bottom edge, going west
        (inside & ~padded[1:-1, :-2], (0, 1), (0, -1)),  # left edge, going north
    )
    for side, (ox, oy), direction in sides:
        ys, xs = np.nonzero(side)
        for x, y in zip((xs + ox).tolist(), (ys + oy).tolist()):
            edges.setdefault((x, y), []).append(direction)
    return edges


def _trace_loops(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """Closed boundary loops of a boolean mask as corner vertices (x, y), collinear ones dropped.

    Foreground is 4-connected: where two pixels touch only at a corner the trace turns
    right, so each loop surrounds one 4-connected piece (or one hole).
    """
    edges = _boundary_edges(mask)
    loops = []
    while edges:
        start = next(iter(edges))
        first = edges[start][0]
        vertex, previous = start, None
        corners: list[tuple[int, int]] = []
        while True:
            options = edges.get(vertex, [])
            if previous is None:
                direction = first
            else:
                n_options = len(options) + (vertex == start and first not in options)
                direction = _RIGHT_TURN[previous] if n_options > 1 else (options[0] if options else first)
                if vertex == start and direction == first:
                    break
            options.remove(direction)
            if not options:
                del edges[vertex]
            if direction != previous:
                corners.append(vertex)
            previous = direction
            vertex = (vertex[0] + direction[0], vertex[1] + direction[1])
        if first == previous and len(corners) > 1:
            corners.pop(0)  # the start vertex lies in the middle of a straight run
        loops.append(corners)
    return loops


def _signed_area(loop: list[tuple[int, int]]) -> float:
    """Shoelace area of a loop in screen coordinates: > 0 outer boundary, < 0 hole."""
    xs = np.array([p[0] for p in loop], dtype=np.float64)
    ys = np.array([p[1] for p in loop], dtype=np.float64)
    return 0.5 * float(np.sum(xs * np.roll(ys, -1) - np.roll(xs, -1) * ys))


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """COCO polygons ([x0, y0, x1, y1, ...], px, pixel-corner coordinates) of a (H, W) mask.

    The polygons follow pixel borders, so pycocotools rasterises them back to exactly the
    input mask. COCO polygons cannot express holes, so a piece with a hole is cut at the
    hole's leftmost column into two hole-free pieces (recursively).
    """
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return []
    x0, y0 = int(xs.min()), int(ys.min())
    crop = mask[y0 : int(ys.max()) + 1, x0 : int(xs.max()) + 1]
    return [[float(c + off) for p in loop for c, off in zip(p, (x0, y0))] for loop in _hole_free_loops(crop)]


def _hole_free_loops(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """Outer loops of ``mask``, after cutting it until no piece has a hole."""
    loops = _trace_loops(mask)
    holes = [loop for loop in loops if _signed_area(loop) < 0]
    if not holes:
        return loops
    cut = min(x for x, _ in holes[0])
    left, right = mask.copy(), mask.copy()
    left[:, cut:] = False
    right[:, :cut] = False
    return _hole_free_loops(left) + _hole_free_loops(right)


def _bbox(mask: np.ndarray) -> list[float]:
    """Tight COCO bbox [x, y, w, h] (px, pixel-corner coordinates) of a non-empty mask."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [float(x0), float(y0), float(xs.max() + 1 - x0), float(ys.max() + 1 - y0)]


def _crowd_rle(mask: np.ndarray) -> dict[str, Any]:
    """Compressed COCO RLE of a (H, W) mask, with ``counts`` as a JSON-ready str."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


# --------------------------------------------------------------------------------------
# One image.
# --------------------------------------------------------------------------------------


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
    canvas, base = _background(rng, size)
    _draw_distractors(rng, canvas, base)
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
        segmentation: Any = _crowd_rle(visible) if layer.crowd else mask_to_polygons(visible)
        annotations.append(
            {
                "category_id": CLASSES[layer.class_index].category_id,
                "bbox": _bbox(visible),
                "area": float(visible.sum()),
                "iscrowd": int(layer.crowd),
                "segmentation": segmentation,
            }
        )
    return semantic, annotations


# --------------------------------------------------------------------------------------
# Data set on disk.
# --------------------------------------------------------------------------------------


def categories() -> list[dict[str, Any]]:
    """The COCO ``categories`` list: [{id, name, supercategory}], in contiguous order."""
    return [{"id": c.category_id, "name": c.name, "supercategory": "shape"} for c in CLASSES]


def validate_args(*, seed: int, n_train: int, n_val: int, size: int) -> None:
    """Raise :class:`UserError` unless the generation arguments make sense."""
    if size < MIN_SIZE or size > MAX_SIZE:
        raise UserError(f"--size must be between {MIN_SIZE} and {MAX_SIZE} px, got {size}")
    if n_train < 0 or n_val < 0:
        raise UserError(f"--train and --val (image counts) must be >= 0, got train={n_train} val={n_val}")
    if n_train + n_val == 0:
        raise UserError("at least one image is needed: --train and --val are both 0")
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")


def _render_chunk(root: Path, split: str, seed: int, size: int, start: int, stop: int) -> list[list[dict[str, Any]]]:
    """Render images ``start..stop-1`` of a split, write their PNGs; returns their annotations.

    A module-level function so that worker processes can run it; the result does not
    depend on how images are split into chunks or workers.
    """
    per_image = []
    for index in range(start, stop):
        rendered = render_image(image_rng(seed, split, index), size)
        name = f"{index:06d}.png"
        Image.fromarray(rendered.image).save(root / "images" / split / name, format="PNG", compress_level=_PNG_LEVEL)
        Image.fromarray(rendered.semantic).save(root / "masks" / split / name, format="PNG", compress_level=_PNG_LEVEL)
        per_image.append(rendered.annotations)
    return per_image


def _coco_json(split: str, size: int, per_image: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """The COCO instances dict of a split from each image's annotations (ids from 1)."""
    images, annotations = [], []
    for index, anns in enumerate(per_image):
        image_id = index + 1
        images.append({"id": image_id, "file_name": f"{index:06d}.png", "width": size, "height": size})
        annotations += [{"id": len(annotations) + 1 + k, "image_id": image_id, **ann} for k, ann in enumerate(anns)]
    info = {
        "description": f"archbench synthetic shapes ({split})",
        "version": str(GENERATOR_VERSION),
        "year": 2024,
        "contributor": "archbench",
        "url": "",
        "date_created": "",
    }
    return {"info": info, "licenses": [], "images": images, "annotations": annotations, "categories": categories()}


def _default_workers(total: int) -> int:
    """Worker processes for ``total`` images: one per usable core (at most 8), 1 for tiny sets."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return 1 if total < 8 * _CHUNK else max(1, min(cores, 8))


_CHUNK = 32


@contextlib.contextmanager
def _pool(workers: int) -> Iterator[Executor | None]:
    """A process pool of ``workers`` processes, or None (render in-process) for <= 1.

    Processes are spawned, not forked: a caller may already run torch threads, and forking
    a multi-threaded process can deadlock.
    """
    if workers <= 1:
        yield None
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def _write_split(root: Path, split: str, *, seed: int, count: int, size: int, pool: Executor | None, advance: Any) -> int:
    """Render and write one split's images, masks and COCO json; returns its annotation count.

    Chunks of images are rendered by ``pool`` when given, else in this process.
    """
    (root / "images" / split).mkdir(parents=True)
    (root / "masks" / split).mkdir(parents=True)
    bounds = [(start, min(start + _CHUNK, count)) for start in range(0, count, _CHUNK)]
    per_image: list[list[dict[str, Any]]] = []
    if pool is None:
        for start, stop in bounds:
            per_image += _render_chunk(root, split, seed, size, start, stop)
            advance(stop - start)
    else:
        futures = [pool.submit(_render_chunk, root, split, seed, size, start, stop) for start, stop in bounds]
        for future, (start, stop) in zip(futures, bounds):
            per_image += future.result()
            advance(stop - start)
    coco = _coco_json(split, size, per_image)
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco, separators=(",", ":")))
    return len(coco["annotations"])


def _fingerprinted_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix path, path) of the files the fingerprint covers, sorted by path."""
    paths = list((root / "annotations").glob("*.json"))
    for folder in ("images", "masks"):
        paths += [p for p in (root / folder).rglob("*") if p.is_file()]
    for rel, path in sorted((p.relative_to(root).as_posix(), p) for p in paths):
        yield rel, path


def fingerprint(out_dir: Path) -> str:
    """sha256 (64 hex digits) over the annotation jsons and every image and mask file.

    Files are taken in sorted relative-path order; each contributes its path, its length
    and its bytes, so renaming or moving a file changes the fingerprint too.
    """
    digest = hashlib.sha256()
    for rel, path in _fingerprinted_files(Path(out_dir)):
        data = path.read_bytes()
        digest.update(rel.encode() + b"\0" + len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def read_info(path: Path) -> SyntheticInfo:
    """The :class:`SyntheticInfo` of a complete generated data set; UserError otherwise."""
    meta = _read_meta(Path(path))
    if meta is None:
        raise UserError(f"{path}: not a complete archbench synthetic data set (no valid dataset.json)")
    return SyntheticInfo(
        path=Path(path),
        fingerprint=meta["fingerprint"],
        n_train=int(meta["n_train"]),
        n_val=int(meta["n_val"]),
        size=int(meta["size"]),
        classes=list(meta["classes"]),
    )


def _read_meta(path: Path) -> dict[str, Any] | None:
    """dataset.json of a generated data set, or None if absent or not ours."""
    try:
        meta = json.loads((path / "dataset.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("name") != DATASET_NAME or "fingerprint" not in meta:
        return None
    return meta


def _check_out_dir(out_dir: Path) -> None:
    """Refuse to replace anything but an empty folder or a previous generated data set."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder")
    if any(out_dir.iterdir()) and _read_meta(out_dir) is None:
        raise UserError(f"{out_dir}: exists, is not empty and is not an archbench synthetic data set; choose another --out")


def _tmp_name(out_dir: Path) -> Path:
    """The staging folder next to ``out_dir``: ``<name>.tmp-<host>-<pid>``."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"
    return out_dir.with_name(f"{out_dir.name}.tmp-{host}-{os.getpid()}")


def _remove_stale_tmp(out_dir: Path) -> None:
    """Delete staging folders of ``out_dir`` left by dead generator processes on this host."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"
    prefix = f"{out_dir.name}.tmp-{host}-"
    if not out_dir.parent.is_dir():
        return
    for candidate in out_dir.parent.iterdir():
        pid_text = candidate.name[len(prefix) :] if candidate.name.startswith(prefix) else ""
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text)):
            shutil.rmtree(candidate, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def generate(
    out_dir: Path,
    *,
    seed: int = DEFAULT_SEED,
    n_train: int,
    n_val: int,
    size: int,
    progress: bool = False,
    workers: int | None = None,
) -> SyntheticInfo:
    """Generate the data set into ``out_dir`` (``size`` px square images) and return its info.

    Everything is written into a staging folder next to ``out_dir`` (dataset.json last) and
    renamed into place at the end, so an interrupted run never leaves a folder that looks
    complete. ``out_dir`` may be absent, empty, or a previous generated data set (replaced);
    anything else is refused with :class:`UserError`. ``progress`` shows a rich progress bar;
    ``workers`` is the number of processes (default: one per core, at most 8); the output does
    not depend on it.
    """
    validate_args(seed=seed, n_train=n_train, n_val=n_val, size=size)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(out_dir)
    tmp = _tmp_name(out_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        counts = {"train": n_train, "val": n_val}
        workers = _default_workers(n_train + n_val) if workers is None else workers
        with _pool(workers) as pool, _progress_bar(progress, n_train + n_val, f"generating {out_dir.name}") as advance:
            n_ann = {
                split: _write_split(tmp, split, seed=seed, count=counts[split], size=size, pool=pool, advance=advance)
                for split in SPLITS
            }
        meta = _metadata(tmp, seed=seed, n_train=n_train, n_val=n_val, size=size, n_ann=n_ann)
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
        existing = _read_meta(out_dir)
        if existing is None or existing != meta:  # an identical data set (a concurrent run) stays
            _swap_into_place(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return read_info(out_dir)


def _metadata(root: Path, *, seed: int, n_train: int, n_val: int, size: int, n_ann: dict[str, int]) -> dict[str, Any]:
    """The content of dataset.json for a freshly written data set in ``root``."""
    small_max, medium_max = area_thresholds(size)
    return {
        "name": DATASET_NAME,
        "seed": seed,
        "size": size,
        "n_train": n_train,
        "n_val": n_val,
        "fingerprint": fingerprint(root),
        "classes": [c.name for c in CLASSES],
        "category_ids": [c.category_id for c in CLASSES],
        "generator_version": GENERATOR_VERSION,
        "area_thresholds": {"small_max": small_max, "medium_max": medium_max},
        "ignore_index": IGNORE_INDEX,
        "num_annotations": n_ann,
    }


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename the finished staging folder to ``out_dir``, replacing an old data set there."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f"{out_dir.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
    tmp.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class _progress_bar:
    """Context manager yielding an ``advance(steps=1)`` callable; a rich bar when ``enabled``."""

    def __init__(self, enabled: bool, total: int, description: str) -> None:
        self.enabled, self.total, self.description = enabled, total, description
        self._progress: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda steps=1: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._progress.start()
        task = self._progress.add_task(self.description, total=self.total)
        return lambda steps=1: self._progress.advance(task, steps)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def cache_name(*, seed: int, n_train: int, n_val: int, size: int) -> str:
    """The cache folder name of a parameter set (encodes the generator version)."""
    return f"synthetic-s{seed}-{size}px-{n_train}-{n_val}-v{GENERATOR_VERSION}"


def ensure_synthetic(
    cache_root: Path,
    *,
    seed: int = DEFAULT_SEED,
    n_train: int = DEFAULT_N_TRAIN,
    n_val: int = DEFAULT_N_VAL,
    size: int = DEFAULT_SIZE,
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """The cached data set folder ``cache_root/<cache_name(...)>``, generated if needed.

    Generates (with a progress bar) only when the folder is missing or incomplete, i.e. its
    dataset.json is absent, unreadable or records other parameters; a folder left by an
    interrupted run is replaced. ``workers`` as in :func:`generate`.
    """
    validate_args(seed=seed, n_train=n_train, n_val=n_val, size=size)
    path = Path(cache_root) / cache_name(seed=seed, n_train=n_train, n_val=n_val, size=size)
    meta = _read_meta(path)
    wanted = {"seed": seed, "n_train": n_train, "n_val": n_val, "size": size, "generator_version": GENERATOR_VERSION}
    if meta is not None and all(meta.get(k) == v for k, v in wanted.items()):
        return path
    if path.exists():
        shutil.rmtree(path)  # our own cache folder, incomplete or stale
    generate(path, seed=seed, n_train=n_train, n_val=n_val, size=size, progress=progress, workers=workers)
    return path
