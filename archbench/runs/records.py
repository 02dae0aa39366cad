"""Run records: one self-describing JSON file per run, written atomically.

A record holds the full configuration (and its hash), the spec and its hash, the dataset's name,
fingerprint and sizes, the seed, the metrics, costs, timings and the environment, plus a
``status`` (``ok`` or ``failed`` with a ``reason``). Tables and plots are derived from records;
nothing else is parsed. ``SCHEMA_VERSION`` changes when a field changes meaning.

:class:`RunRecord` is a record in memory; its fields are the file's top-level keys, in the file's
order. A field that is ``None`` is absent from the file (a failed run has no ``metrics``, an ok one
no ``reason``). Keys a caller adds (a search trial's ``search`` tag) are kept in ``extra`` and
written after the others, so a file written by any archbench loads and writes back byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from archbench.errors import UserError
from archbench.files import atomic_write_text
from archbench.runs import layout

SCHEMA_VERSION = 1
#: A run's ``status``: trained and evaluated, failed (diverged or crashed; see ``reason``), or stopped on
#: purpose by an observer (a pruned search trial: shown, never written).
OK, FAILED, STOPPED = "ok", "failed", "stopped"


@dataclass(kw_only=True)
class RunRecord:
    """One run's record. Only what names the file and decides its use is required: task, neck, phi, seed,
    config hash and status; every other field is optional, as records are read as tolerantly as they ever were.

    Units: ``timing`` in seconds (and images/s), ``memory`` in MiB, ``costs`` in parameters, GFLOPs
    (1 multiply-add = 1 FLOP) and milliseconds; ``steps`` counts optimiser steps.
    """

    schema_version: int = SCHEMA_VERSION
    #: ISO 8601 UTC time of the write; set by :meth:`save` when ``None``
    written_at: str | None = None
    # What was run.
    task: str
    neck: str  # the spec's name
    neck_ref: str | None = None  # the neck as the user named it (a name or a spec file)
    phi: int
    preset: str | None = None
    seed: int
    epochs: int | None = None
    config_hash: str
    config: dict[str, Any] | None = None
    spec_hash: str | None = None
    spec: dict[str, Any] | None = None
    model_config: dict[str, Any] | None = None
    dataset: dict[str, Any] | None = None
    command: str | None = None
    # How it was run, where it applies.
    backbone_weights_loaded: dict[str, int] | None = None
    distributed: dict[str, Any] | None = None
    resumed_from_epoch: int | None = None
    # What came of it.
    status: str
    reason: str | None = None
    failed_at_step: int | None = None
    traceback: str | None = None
    metrics: dict[str, Any] | None = None
    epoch_losses: list[float] | None = None
    steps: int | None = None
    timing: dict[str, Any] | None = None
    costs: dict[str, Any] | None = None
    memory: dict[str, float] | None = None
    environment: dict[str, Any] | None = None
    #: the run's kept final weights (:mod:`archbench.runs.trained`): ``path`` (relative to the results folder),
    #: ``sha256`` and ``bytes`` of the file, ``ema`` (whether it holds the EMA weights the run was evaluated with)
    weights: dict[str, Any] | None = None
    #: further top-level keys (e.g. a search trial's ``search``), written after the fields above
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_dict(self) -> dict[str, Any]:
        """The record's JSON object: the fields that are not ``None`` in file order, then ``extra``'s keys."""
        out = {f.name: getattr(self, f.name) for f in _FIELDS if getattr(self, f.name) is not None}
        return {**out, **self.extra}

    def to_json(self) -> str:
        """The file's text: ``to_dict()`` indented by 2, with a final newline."""
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """A record from its JSON object; keys that are not fields go to ``extra``. ``ValueError`` if a
        required field is missing."""
        missing = [name for name in _REQUIRED if name not in data]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        known = {k: v for k, v in data.items() if k in _NAMES}
        return cls(**known, extra={k: v for k, v in data.items() if k not in _NAMES})

    def path(self, results: Path) -> Path:
        """Where :meth:`save` writes the record under ``results``."""
        return layout.record_path(results, self.task, self.neck, self.phi, self.seed, self.config_hash)

    def save(self, results: Path) -> Path:
        """Write the record atomically under ``results`` (never a partial file); returns its path.

        ``written_at`` is set to now unless the record already has one (it was loaded).
        """
        if self.written_at is None:
            self.written_at = datetime.now(timezone.utc).isoformat()
        return atomic_write_text(self.path(results), self.to_json())

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        """The record in ``path``; a ``UserError`` naming the file if it is not valid JSON, has a newer
        schema than this archbench reads, or lacks a required field."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{path}: not a readable run record ({exc})") from None
        version = data.get("schema_version") if isinstance(data, dict) else None
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise UserError(
                f"{path}: record schema version {version!r}; this archbench reads versions "
                f"<= {SCHEMA_VERSION} (upgrade archbench or move the file away)"
            )
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise UserError(f"{path}: not a readable run record ({exc})") from None


_FIELDS = [f for f in fields(RunRecord) if f.name != "extra"]
_NAMES = {f.name for f in _FIELDS}
_REQUIRED = [f.name for f in _FIELDS if f.default is MISSING and f.default_factory is MISSING]


def record_files(results: Path) -> list[Path]:
    """The record files under ``results/runs``, by file name; temp files of interrupted writes are left out."""
    runs = layout.runs_dir(results)
    if not runs.is_dir():
        return []
    return [path for path in sorted(runs.glob("*.json")) if not path.name.startswith(".tmp-")]


def load_records(results: Path) -> list[RunRecord]:
    """Every record under ``results/runs``, in the order of :func:`record_files`.

    A bad file is a ``UserError`` naming it (see :meth:`RunRecord.load`): records are never silently skipped.
    """
    return [RunRecord.load(path) for path in record_files(results)]


def completed_records(results: Path) -> dict[str, RunRecord]:
    """The ``ok`` records under ``results`` by config hash (a sweep skips these configurations unless forced)."""
    return {r.config_hash: r for r in load_records(results) if r.ok}


def completed_hashes(results: Path) -> set[str]:
    """Config hashes that already have an ``ok`` record."""
    return set(completed_records(results))


def config_hash(config: dict[str, Any]) -> str:
    """16-hex-digit hash of a run configuration (what decides the result; not where it is stored)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def python_command() -> str:
    """The command line that produced a record, for provenance."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
