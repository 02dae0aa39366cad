"""Masks to COCO geometry: polygons that rasterise back to the mask, tight boxes, crowd RLE.

Coordinates are pixel corners: pixel (row i, col j) covers [j, j+1) x [i, i+1), so a polygon
along pixel borders (and a bbox ``[x, y, w, h]``) describes exactly the pixels of the mask.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

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


def bbox(mask: np.ndarray) -> list[float]:
    """Tight COCO bbox [x, y, w, h] (px, pixel-corner coordinates) of a non-empty mask."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [float(x0), float(y0), float(xs.max() + 1 - x0), float(ys.max() + 1 - y0)]


def crowd_rle(mask: np.ndarray) -> dict[str, Any]:
    """Compressed COCO RLE of a (H, W) mask, with ``counts`` as a JSON-ready str."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}
