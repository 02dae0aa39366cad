"""One colour and one marker per neck, the same in every figure of every board.

The 13 built-in necks have a fixed style each (:data:`BUILTIN_STYLES`): necks of one family share a hue in
distinct shades (fpn / fpn_effdet blue, panet / panet_effdet orange, the three BiFPNs green, the two NAS-FPNs
red, fc_fpn grey, DLA's ida / hda / hda_residual purple), and no two built-ins share a colour or a marker, so
necks at nearly the same point stay apart in print and in grey scale. Any other neck (a user spec, or a
built-in name split by topology, ``fpn@1a2b3c4d``) takes a style from :data:`EXTRA_COLOURS` x
:data:`EXTRA_MARKERS`, colours no built-in uses, chosen by a hash of its name (:func:`styles`).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Style:
    """How one neck is drawn: a matplotlib colour (``#rrggbb``) and marker code."""

    colour: str
    marker: str


BUILTIN_STYLES: dict[str, Style] = {
    "fpn": Style("#08519c", "o"),
    "fpn_effdet": Style("#6baed6", "s"),
    "panet": Style("#d94801", "^"),
    "panet_effdet": Style("#fd8d3c", "v"),
    "bifpn": Style("#006d2c", "D"),
    "bifpn_softmax": Style("#31a354", "P"),
    "bifpn_sum": Style("#74c476", "X"),
    "nasfpn": Style("#99000d", "*"),
    "nasfpn_mmdet": Style("#ef3b2c", "h"),
    "fc_fpn": Style("#525252", "p"),
    "ida": Style("#b07cc6", "<"),
    "hda": Style("#8856a7", ">"),
    "hda_residual": Style("#4a1486", "d"),
}
#: Colours of the other necks: none is a built-in's, nor a shade of a built-in family's hue.
EXTRA_COLOURS = ("#e377c2", "#17becf", "#bcbd22", "#8c564b", "#000000", "#ffbf00", "#01665e")
#: Markers of the other necks. 7 colours and 6 markers are coprime, so slot i (colour i mod 7, marker i mod 6)
#: runs through all 42 pairs, and neighbouring slots differ in both.
EXTRA_MARKERS = ("o", "s", "^", "D", "v", "H")
N_EXTRA = len(EXTRA_COLOURS) * len(EXTRA_MARKERS)


def _extra(slot: int) -> Style:
    return Style(EXTRA_COLOURS[slot % len(EXTRA_COLOURS)], EXTRA_MARKERS[slot % len(EXTRA_MARKERS)])


def styles(necks: Iterable[str]) -> dict[str, Style]:
    """The style of each neck in ``necks``.

    Built-ins get :data:`BUILTIN_STYLES`. The other names, in sorted order, each take the extra slot
    ``crc32(name) mod 42``, or the next free one when an earlier name holds it: a neck keeps its style on every
    board unless it collides with another extra neck on that board, and no two necks of one call share a
    style while there are at most 42 extra necks (each further 42 start over on the slots).
    """
    names = set(necks)
    out = {name: BUILTIN_STYLES[name] for name in names & BUILTIN_STYLES.keys()}
    taken: set[int] = set()
    for name in sorted(names - BUILTIN_STYLES.keys()):
        if len(taken) == N_EXTRA:
            taken.clear()
        slot = zlib.crc32(name.encode()) % N_EXTRA
        while slot in taken:
            slot = (slot + 1) % N_EXTRA
        taken.add(slot)
        out[name] = _extra(slot)
    return out
