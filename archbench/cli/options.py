"""Small parsers shared by CLI commands: level ranges, phi ranges, comma lists, neck lists."""

from __future__ import annotations

import re

from archbench.errors import UserError
from archbench.spec import builtin_names

_RANGE = re.compile(r"^\s*(-?\d+)\s*(?:\.\.|-)\s*(-?\d+)\s*$")


def parse_int_range(text: str, what: str) -> list[int]:
    """'0..3' / '3-7' (inclusive ranges), '0,2,5' and '4' -> sorted unique ints."""
    values: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        m = _RANGE.match(part)
        try:
            if m:
                a, b = int(m.group(1)), int(m.group(2))
                if b < a:
                    raise UserError(f"{what} {text!r}: range {part!r} runs backwards")
                values.update(range(a, b + 1))
            else:
                values.add(int(part))
        except ValueError:
            raise UserError(
                f"{what} {text!r}: expected a number, a range like 0..3, or a comma list like 0,2,5"
            ) from None
    if not values:
        raise UserError(f"{what} {text!r}: no values given")
    return sorted(values)


def parse_levels(text: str | None) -> tuple[int, ...] | None:
    """A contiguous level range such as '3-7' or '3..7', or None."""
    if text is None:
        return None
    levels = parse_int_range(text, "--levels")
    if levels != list(range(levels[0], levels[-1] + 1)):
        raise UserError(f"--levels {text!r}: levels must be contiguous, like 3-7")
    return tuple(levels)


def split_list(text: str) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c']."""
    return [x.strip() for x in text.split(",") if x.strip()]


def neck_list(text: str) -> list[str]:
    """'all' -> every built-in; otherwise a comma list of names / spec files."""
    return builtin_names() if text.strip() == "all" else split_list(text)
