"""``archbench eval``: a trained run evaluated again, on its own data or another data set, as an evaluation record.

The data's validation split alone is opened by the run's task at the run's resolution (its train split is
never read) and scored by the task's trainer, built as an evaluator, exactly as
:func:`archbench.runs.sweep.execute` scores a run (same batch size; on the same data and threads the
metrics are the run's, bit for bit). The evaluation record is one JSON file,
``RESULTS/evals/<run stem>-on-<data>-<fingerprint 8>.json`` (outside ``runs/``: the board does not read
it), naming the run (record, config hash, weights checksum), the data (name, fingerprint, sizes,
classes), the metrics, when, where and by which command.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from archbench.errors import UserError
from archbench.files import atomic_write_text
from archbench.runs import layout
from archbench.runs.environment import environment
from archbench.runs.records import python_command
from archbench.runs.trained import TrainedRun
from archbench.train.trainer import TrainConfig

#: The evaluation record's format version (changes when a field changes meaning).
EVAL_SCHEMA_VERSION = 1


def _open(trained: TrainedRun, data: str, categories: list[str] | None) -> tuple[Any, dict[str, Any]]:
    """(val, info) of ``data`` at the run's resolution; UserError if its classes are not the run's count."""
    val, info = trained.task.open_val(
        data, resolution=trained.model_config.resolution, categories=categories, seed=0, cache_root=layout.cache_root()
    )
    if info["num_classes"] != trained.num_classes:
        raise UserError(
            f"--data {data}: {info['num_classes']} classes ({', '.join(info['class_names'])}), but run "
            f"{trained.record_path} was trained on {trained.num_classes} ({', '.join(trained.class_names)}); "
            "evaluate on data with the run's classes (--categories selects them in COCO data)"
        )
    return val, info


def evaluate_run(
    trained: TrainedRun, data: str, *, categories: list[str] | None = None, device: str = "cpu"
) -> tuple[Path, dict[str, Any]]:
    """Score ``trained`` on the validation split of ``data`` and write the evaluation record; returns
    (its path, its content). ``categories``: the classes to keep (default: those the run selected)."""
    config = trained.record.config or {}
    if categories is None:
        categories = (config.get("data") or {}).get("categories")
    val, info = _open(trained, data, categories)
    run_train = config.get("train") or {}
    cfg = replace(TrainConfig.for_task(trained.task.name), batch_size=int(run_train.get("batch_size", 16)))
    evaluator = trained.task.trainer(trained.model, None, cfg, seed=0, device=torch.device(device))
    start = time.perf_counter()
    metrics = evaluator.evaluate(val, info)
    seconds = time.perf_counter() - start
    weights = trained.record.weights or {}
    content: dict[str, Any] = {
        "schema_version": EVAL_SCHEMA_VERSION,
        "kind": "eval",
        "written_at": datetime.now(timezone.utc).isoformat(),
        "run": {
            "record": trained.record_path.relative_to(trained.results).as_posix(),
            "config_hash": trained.record.config_hash,
            "task": trained.record.task,
            "neck": trained.record.neck,
            "phi": trained.record.phi,
            "seed": trained.record.seed,
            "weights_sha256": weights.get("sha256"),
            "ema": trained.ema,
        },
        "dataset": {
            "name": info["name"],
            "ref": data,
            "categories": categories,
            "fingerprint": val.fingerprint,
            "n_val": info["n_val"],
            "num_classes": info["num_classes"],
            "class_names": info["class_names"],
        },
        "metrics": metrics,
        "timing": {"eval_seconds": seconds},
        "environment": environment(str(torch.device(device))),
        "command": python_command(),
    }
    path = layout.eval_path(trained.results, trained.stem, info["name"], val.fingerprint)
    atomic_write_text(path, json.dumps(content, indent=2, default=str) + "\n")
    return path, content
