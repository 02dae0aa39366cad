"""One run record as one flat row: the column scheme of :func:`archbench.results.runs`.

- Plain names for what identifies the run and its outcome: the record's top-level numbers and strings
  (``task``, ``neck``, ``neck_ref``, ``spec_hash``, ``phi``, ``preset``, ``seed``, ``epochs``, ``config_hash``,
  ``status``, ``reason``, ``steps``, ``written_at``, ``command``, ...), plus ``terms`` (see
  :func:`archbench.spec.terms.terms_of`),
  ``record`` (the file's path), ``metric`` (the task's main metric: AP for det, mIoU for seg) and ``score``
  (that metric's value).
- ``<section>.<key>`` for everything nested, named after the record's own keys: ``metrics.AP50``,
  ``metrics.per_class_IoU.<class>``, ``costs.gflops``, ``timing.train_seconds``, ``memory.process_peak_rss_mb``,
  ``dataset.name``, ``dataset.fingerprint``, ``dataset.stats.train.images``, ``environment.torch``,
  ``search.study`` (a search trial's tags). The configuration's parts go by their own names: ``train.lr``,
  ``train.batch_size`` (``config.train``), ``model.width`` (``model_config``), ``data.subset`` (``config.data``),
  and its remaining settings as ``config.device``, ``config.pretrained``, ...

Lists (epoch losses, levels, class names) and the topology spec stay in the record file (``record``).
Metrics of -1 (COCO's "no ground truth in this size bucket") are NaN, as on the board
(:func:`archbench.board.aggregate.as_number`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from archbench.board.aggregate import as_number
from archbench.spec.terms import terms_of
from archbench.train.task_names import main_metric

#: The columns that come first: what identifies a run, its outcome and where its record is.
LEADING = [
    "task",
    "neck",
    "spec_hash",
    "phi",
    "preset",
    "terms",
    "seed",
    "status",
    "metric",
    "score",
    "config_hash",
    "record",
]
#: Record keys that are not columns: the topology (its hash is ``spec_hash``) and the configuration, whose parts
#: are the ``train.``, ``model.``, ``data.`` and ``config.`` columns.
_NOT_FLATTENED = ("spec", "config", "model_config")
#: The configuration's parts with columns of their own, by column prefix (model: the record's ``model_config``).
_CONFIG_PARTS = ("train", "data")


def _nested(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record's nested parts keyed by column prefix, in column order."""
    config = record.get("config") or {}
    parts: dict[str, Any] = {k: v for k, v in record.items() if isinstance(v, Mapping) and k not in _NOT_FLATTENED}
    parts |= {name: config[name] for name in _CONFIG_PARTS if isinstance(config.get(name), Mapping)}
    parts["model"] = record.get("model_config") or config.get("model") or {}
    parts["config"] = {k: v for k, v in config.items() if not isinstance(v, Mapping) and k not in record}
    return parts


def _plain(record: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The record's plain columns: its top-level numbers and strings, ``terms``, ``record`` and ``metric``."""
    row = {k: v for k, v in record.items() if not isinstance(v, (Mapping, list))}
    task = record.get("task", "det")
    return row | {"terms": terms_of(record.get("config")), "record": str(path), "metric": main_metric(task)}


def flat_frame(records: Sequence[tuple[Path, Mapping[str, Any]]]) -> pd.DataFrame:
    """One flat row per ``(path, record)`` (a run record's JSON object and its file), columns as described above:
    ``LEADING`` first, then the record's other plain fields, then the nested ones section by section; no records
    give no rows and the ``LEADING`` columns."""
    if not records:
        return pd.DataFrame(columns=LEADING)
    plain = pd.DataFrame([_plain(record, path) for path, record in records])
    nested = pd.json_normalize([_nested(record) for _, record in records], sep=".")
    nested = nested.loc[:, [not nested[c].map(lambda v: isinstance(v, list)).any() for c in nested.columns]]
    metrics = [c for c in nested.columns if c.startswith("metrics.")]
    nested[metrics] = nested[metrics].map(as_number)
    frame = pd.concat([plain, nested], axis=1)
    frame["score"] = [
        frame.at[i, f"metrics.{metric}"] if f"metrics.{metric}" in frame.columns else math.nan
        for i, metric in zip(frame.index, frame["metric"])
    ]
    leading = [c for c in LEADING if c in frame.columns]
    return frame[leading + [c for c in frame.columns if c not in leading]]
