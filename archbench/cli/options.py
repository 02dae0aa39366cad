"""Small parsers and options shared by CLI commands: level ranges, phi ranges, comma lists, neck lists, verbosity."""

from __future__ import annotations

import re
from typing import Any

import typer

from archbench.cli.consoles import Verbosity
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


def check_device(device: str, device_count: int | None = None) -> None:
    """``--device``: a UserError unless it is ``cpu``, ``cuda`` or ``cuda:N`` with a CUDA device N on this machine
    (``device_count``: how many it has, default torch's count), before any run starts rather than in every run."""
    import torch  # here, not at the top: commands that never touch a device do not pay for importing torch

    kind, colon, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (colon and not (kind == "cuda" and index.isdigit())):
        raise UserError(f"--device {device!r}: give cpu, cuda (the current CUDA device) or cuda:N (CUDA device N)")
    if kind == "cpu":
        return
    count = torch.cuda.device_count() if device_count is None else device_count
    if count == 0:
        raise UserError(f"--device {device}: no CUDA device is available on this machine")
    if index and int(index) >= count:
        raise UserError(
            f"--device {device}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1} "
            "(CUDA_VISIBLE_DEVICES renumbers the ones it shows from 0)"
        )


def quiet_option() -> Any:
    """``--quiet`` / ``-q``, for a command that shows progress."""
    return typer.Option(False, "--quiet", "-q", help="no progress on stderr: only errors, failures and the results")


def verbose_option() -> Any:
    """``--verbose`` / ``-v``, for a command that shows progress."""
    return typer.Option(
        False,
        "--verbose",
        "-v",
        help="plain progress lines (per epoch, per tenth of a data set) also on a terminal, and each run's config "
        "hash, data set and costs",
    )


def verbosity(quiet: bool, verbose: bool) -> Verbosity:
    """The :class:`Verbosity` that ``--quiet`` and ``--verbose`` ask for; a ``UserError`` for both at once."""
    if quiet and verbose:
        raise UserError("--quiet and --verbose contradict each other: give one of the two (or neither)")
    return Verbosity.QUIET if quiet else Verbosity.VERBOSE if verbose else Verbosity.NORMAL


def terms_option() -> Any:
    """``--terms``: a named equal-terms protocol (:mod:`archbench.spec.terms`)."""
    return typer.Option(
        None,
        "--terms",
        help="equal terms for every neck: native (each its own ops; the default) | efficientdet (separable 3x3 "
        "conv, BN, swish, activation first)",
    )


def op_option() -> Any:
    """``--op``: one op setting imposed on every neck (alone or on top of ``--terms``)."""
    return typer.Option(None, "--op", help="impose this op type on every neck (sepconv | conv | none)")


def fuse_option() -> Any:
    """``--fuse``: the spec-wide default fusion imposed on every neck."""
    return typer.Option(None, "--fuse", help="impose this default fusion on every neck")


def act_option() -> Any:
    """``--act``: the activation imposed on every neck."""
    return typer.Option(None, "--act", help="impose this activation on every neck")


def norm_option() -> Any:
    """``--norm``: the norm imposed on every neck."""
    return typer.Option(None, "--norm", help="impose this norm on every neck")
