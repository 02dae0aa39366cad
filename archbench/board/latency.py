"""Latency sittings: every configuration of a board timed in one process, and the board's latency taken from them.

A record's latency was measured when its run finished, beside whatever trained then, so latencies on one board
can come from different hours, loads and machines. A sitting (``scripts/measure_latency.py``) times every
configuration of a board in one process with fixed threads, interleaved over rounds, and writes
``RESULTS/latency/<UTC stamp>.json`` (:func:`write_sitting`)::

    {"kind": "archbench latency sitting", "version": 1, "measured_at": ISO UTC time, "environment": {...},
     "threads": 1, "rounds": 50, "warmup": 3, "batch": 1, "mode": "eager", "results": "results/board",
     "entries": [{GROUP_KEYS..., "neck", "phi", "spec_hash", "model_hash", "resolution",
                  "latency_ms", "latency_q1_ms", "latency_q3_ms", "latency_min_ms", "latency_max_ms", "n"}, ...]}

``neck`` is the board's label (``name@<spec hash>`` where a group holds two topologies of one name), latency in
ms of one image (median over rounds; quartiles and extremes beside it). ``model_hash`` identifies what was timed
(:func:`model_hash`: task, spec hash, model config, classes); entries are matched to board rows by it, so a
configuration whose spec or model changed after the sitting is not covered by it.

:func:`sitting_latency` gives the board's per-seed rows with each group's latency from the newest sitting that
covers every configuration of the group, else from the records, and says which in ``latency_source``: a group's
latencies never mix the two.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from archbench.board.aggregate import GROUP_KEYS, Record, as_dict, seed_rows
from archbench.errors import UserError
from archbench.files import atomic_write_text
from archbench.runs.layout import latency_dir
from archbench.runs.records import OK, config_hash

KIND = "archbench latency sitting"
VERSION = 1
#: What identifies an entry: the board's row keys, and the configuration timed.
ENTRY_KEYS = [*GROUP_KEYS, "neck", "phi", "spec_hash", "model_hash"]
#: ``latency_source`` of a group whose latency comes from its records.
FROM_RECORDS = "records"


def model_hash(record: Mapping[str, Any]) -> str | None:
    """A 16-hex-digit hash of the model a record's run built: task, spec hash, model config and class count (what
    its latency depends on besides the machine); None for a record that lacks one of them."""
    parts = {
        "task": record.get("task"),
        "spec_hash": record.get("spec_hash"),
        "model": record.get("model_config"),
        "num_classes": (record.get("config") or {}).get("num_classes"),
    }
    return None if any(v is None for v in parts.values()) else config_hash(parts)


def identified_rows(records: Iterable[Record], task: str | None = None) -> pd.DataFrame:
    """``aggregate.seed_rows`` of the ``ok`` records (of ``task`` only, if given) with ``spec_hash`` and
    ``model_hash`` (:func:`model_hash`) added: one row per ok run."""
    ok = [r for r in map(as_dict, records) if r.get("status") == OK and (task is None or r.get("task") == task)]
    rows = seed_rows(ok)
    if list(rows.get("seed", [])) != [r.get("seed") for r in ok]:
        raise AssertionError("seed_rows no longer keeps the records' order")
    rows["spec_hash"] = [r.get("spec_hash") for r in ok]
    rows["model_hash"] = [model_hash(r) for r in ok]
    return rows


def board_configurations(rows: pd.DataFrame) -> pd.DataFrame:
    """The distinct (``ENTRY_KEYS``) configurations of :func:`identified_rows`, one row each, in board order."""
    return rows[ENTRY_KEYS].drop_duplicates().reset_index(drop=True)


def write_sitting(results: Path, sitting: Mapping[str, Any]) -> Path:
    """Write ``sitting`` (the header fields and ``entries``; ``kind``, ``version`` and ``measured_at`` are added)
    to ``RESULTS/latency/<UTC stamp>.json`` atomically; returns the path. A stamp already taken gets ``-2``..."""
    now = datetime.now(timezone.utc)
    folder = latency_dir(results)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    path, n = folder / f"{stamp}.json", 1
    while path.exists():
        n += 1
        path = folder / f"{stamp}-{n}.json"
    doc = {"kind": KIND, "version": VERSION, "measured_at": now.isoformat(), **sitting}
    return atomic_write_text(path, json.dumps(doc, indent=2, default=str) + "\n")


@dataclass(frozen=True)
class Sitting:
    """One sitting as read back: its file, ``measured_at`` (ISO UTC), the header (``environment``, ``threads``,
    ``rounds``, ``batch``...: everything but the entries) and ``latency``: median ms by model hash."""

    path: Path
    measured_at: str
    header: dict[str, Any]
    latency: dict[str, float]

    @property
    def source(self) -> str:
        """What ``latency_source`` says for latency from this sitting: ``sitting <file name>``."""
        return f"sitting {self.path.name}"


def _read(path: Path) -> Sitting:
    try:
        doc = json.loads(path.read_text())
        if doc.get("kind") != KIND or doc.get("version") != VERSION:
            raise ValueError(f"not a version-{VERSION} latency sitting")
        latency = {str(e["model_hash"]): float(e["latency_ms"]) for e in doc["entries"]}
        header = {k: v for k, v in doc.items() if k != "entries"}
        return Sitting(path, str(doc["measured_at"]), header, latency)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{path}: unreadable latency sitting ({exc}); remove it or measure again") from None


def read_sittings(results: Path) -> list[Sitting]:
    """Every sitting under ``RESULTS/latency/``, newest (``measured_at``) first; a damaged file is a ``UserError``
    naming it (never skipped silently). Temp files of interrupted writes are left out."""
    folder = latency_dir(results)
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    sittings = [_read(p) for p in paths if not p.name.startswith(".tmp-")]
    return sorted(sittings, key=lambda s: s.measured_at, reverse=True)


def sitting_latency(records: Iterable[Record], sittings: Sequence[Sitting], task: str | None = None) -> pd.DataFrame:
    """:func:`identified_rows` with each group's ``latency_ms`` from the newest of ``sittings`` that covers every
    one of the group's configurations (model hashes), else the records' own, and ``latency_source``: that sitting's
    :attr:`Sitting.source`, or ``records`` (``FROM_RECORDS``). Per group, never a mixture."""
    rows = identified_rows(records, task)
    rows["latency_source"] = FROM_RECORDS
    if rows.empty:
        return rows
    newest_first = sorted(sittings, key=lambda s: s.measured_at, reverse=True)
    for _, idx in rows.groupby(GROUP_KEYS, sort=False, dropna=False).groups.items():
        hashes = rows.loc[idx, "model_hash"]
        for sitting in newest_first:
            if hashes.notna().all() and set(hashes) <= sitting.latency.keys():
                rows.loc[idx, "latency_ms"] = hashes.map(sitting.latency)
                rows.loc[idx, "latency_source"] = sitting.source
                break
    return rows
