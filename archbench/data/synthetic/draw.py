"""Drawing primitives of the built-in data set: shapes, textures, the background and clutter.

Coordinates are pixels; pixel (row i, col j) covers [j, j+1) x [i, i+1) and is sampled at its
centre (j + 0.5, i + 0.5). Shapes are given by a half-extent ``s`` px in an object's local,
rotated frame (u, v); images are float RGB (S, S, 3) in 0..255 until :mod:`.scenes` rounds them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

# Shape geometry, in units of the shape's half-extent s (pixels).
_RING_INNER = 0.5
_SQUARE_HALF = 0.85
_TRIANGLE_CIRCUM = 1.1
_PLUS_HALF_WIDTH = 0.35
#: Full area of each shape in units of s**2.
SHAPE_AREA = {
    "disc": math.pi,
    "ring": math.pi * (1.0 - _RING_INNER**2),
    "square": (2.0 * _SQUARE_HALF) ** 2,
    "triangle": 3.0 * math.sqrt(3.0) / 4.0 * _TRIANGLE_CIRCUM**2,
    "plus": 8.0 * _PLUS_HALF_WIDTH - 4.0 * _PLUS_HALF_WIDTH**2,
}
_MIN_CONTRAST = 100.0  # RGB L2 distance between an object's colour and its background


@dataclass(frozen=True)
class Window:
    """A crop ``[y0:y1, x0:x1]`` of the image with its pixel-centre coordinates (H, W)."""

    y0: int
    y1: int
    x0: int
    x1: int
    xx: np.ndarray
    yy: np.ndarray


def window(size: int, cx: float, cy: float, radius: float) -> Window | None:
    """The crop of a ``size`` px image covering the disc (cx, cy, radius), or None if empty."""
    x0, x1 = max(0, int(cx - radius) - 1), min(size, int(cx + radius) + 2)
    y0, y1 = max(0, int(cy - radius) - 1), min(size, int(cy + radius) + 2)
    if x0 >= x1 or y0 >= y1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64) + 0.5
    return Window(y0, y1, x0, x1, xx, yy)


def local(win: Window, cx: float, cy: float, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Window coordinates rotated into an object's frame: (u, v) arrays, px, shape (H, W)."""
    dx, dy = win.xx - cx, win.yy - cy
    c, s = math.cos(theta), math.sin(theta)
    return dx * c + dy * s, -dx * s + dy * c


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray, s: float) -> np.ndarray:
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
class Paint:
    """How an object is coloured: a texture, two RGB colours (0..255) and pattern params."""

    texture: str
    color_a: np.ndarray
    color_b: np.ndarray
    period: float
    angle: float
    phase: tuple[float, float]
    shading: float


def texture_rgb(paint: Paint, u: np.ndarray, v: np.ndarray, s: float) -> np.ndarray:
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
    """A random RGB colour (float, 0..255) at least ``min_dist`` (L2) away from each colour of ``others``.

    After 64 rejected draws, the draw farthest from its nearest ``other`` is returned.
    """
    best, best_dist = np.zeros(3), -1.0  # the first draw always replaces it
    for _ in range(64):
        color = rng.uniform(0.0, 255.0, 3)
        dist = min(float(np.linalg.norm(color - other)) for other in others)
        if dist >= min_dist:
            return color
        if dist > best_dist:
            best, best_dist = color, dist
    return best


def random_paint(rng: np.random.Generator, texture: str, s: float, background: np.ndarray) -> Paint:
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
    return Paint(
        texture=texture,
        color_a=color_a,
        color_b=color_b,
        period=period,
        angle=float(rng.uniform(0.0, math.pi)),
        phase=(float(rng.uniform()), float(rng.uniform())),
        shading=float(rng.uniform(-20.0, 20.0)),
    )


def draw_background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A low-contrast background: (float32 RGB image (S, S, 3), its mean colour (3,) float64).

    A random base colour plus a linear gradient (+-5..20 levels), smooth low-frequency
    blotches (+-3..8) and a faint per-channel tint of the blotches.
    """
    base = rng.uniform(40.0, 215.0, 3)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    angle = rng.uniform(0.0, 2.0 * math.pi)
    ramp = xx * np.float32(math.cos(angle)) + yy * np.float32(math.sin(angle))
    gradient = np.float32(2.0 * rng.uniform(5.0, 20.0)) * ramp
    coarse = rng.normal(0.0, 1.0, (6, 6)).astype(np.float32)
    blotches = np.array(Image.fromarray(coarse).resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    blotches *= np.float32(rng.uniform(3.0, 8.0))
    tint = rng.uniform(0.6, 1.0, 3).astype(np.float32)
    image = base.astype(np.float32)[None, None, :] + gradient[..., None] + blotches[..., None] * tint[None, None, :]
    return image, base


def draw_distractors(rng: np.random.Generator, image: np.ndarray, base: np.ndarray) -> None:
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
    win = window(size, cx, cy, a)
    if win is None:
        return
    u, v = local(win, cx, cy, float(rng.uniform(0.0, math.pi)))
    on = (u / a) ** 2 + (v / b) ** 2 <= 1.0
    image[win.y0 : win.y1, win.x0 : win.x1][on] = color


def dilate(mask: np.ndarray) -> np.ndarray:
    """Grow a boolean (H, W) mask by one pixel (4-neighbourhood)."""
    out = mask.copy()
    out[1:, :] |= mask[:-1, :]
    out[:-1, :] |= mask[1:, :]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out
