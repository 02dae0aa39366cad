"""A run's kept weights: written beside its record, and a trained model loaded back from them.

An ``ok`` run keeps its final weights in ``RESULTS/weights/<record file stem>.pt`` (see
:mod:`archbench.runs.layout`): a ``torch.save``'d dict with ``model`` (the trained weights) and ``ema``
(the EMA's weights when the run used EMA, else None), each a ``state_dict`` of the task's model. The
record's ``weights`` entry names the file (relative to the results folder) with its sha256 and size.

:func:`load_trained` rebuilds the model from the record alone (its ``spec``, ``model_config`` and class
count) and loads the weights the run was evaluated with (the EMA's when it has them), after checking the
file's checksum. A missing, corrupt or mismatched weights file is a ``UserError`` naming it.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archbench.errors import UserError
from archbench.files import atomic_write
from archbench.models.scaling import ModelConfig
from archbench.runs import layout
from archbench.runs.records import RunRecord
from archbench.spec.loader import parse_spec, require_valid
from archbench.train.tasks import Task, get_task


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes (read 1 MiB at a time)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights(results: Path, stem: str, model: nn.Module, ema: nn.Module | None) -> dict[str, Any]:
    """Write a run's final weights to ``RESULTS/weights/<stem>.pt`` atomically; returns the record's entry.

    ``model``: the trained model; ``ema``: its EMA copy when the run used one (then the weights it was
    evaluated with). The tensors are moved to the CPU, so the file loads on any machine.
    """

    def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in module.state_dict().items()}

    state = {"model": cpu_state(model), "ema": cpu_state(ema) if ema is not None else None}
    path = atomic_write(layout.weights_path(results, stem), lambda tmp: torch.save(state, tmp))
    return {
        "path": path.relative_to(results).as_posix(),
        "sha256": file_sha256(path),
        "bytes": path.stat().st_size,
        "ema": ema is not None,
    }


@dataclass
class TrainedRun:
    """A run's trained model, in eval mode on the CPU, with where it came from.

    ``record_path``: the record file; ``results``: the results folder it lies in; ``weights_path``: the
    weights file; ``model``: the task's model (``Detector`` or ``Segmenter``) with the weights the run was
    evaluated with loaded; ``ema``: whether those are the EMA's.
    """

    record: RunRecord
    record_path: Path
    results: Path
    weights_path: Path
    task: Task
    model_config: ModelConfig
    model: nn.Module
    ema: bool

    @property
    def stem(self) -> str:
        """The name the run's files share (its record file's stem)."""
        return self.record_path.stem

    @property
    def num_classes(self) -> int:
        return int(self.record.config["num_classes"]) if self.record.config else 0

    @property
    def class_names(self) -> list[str]:
        return list((self.record.dataset or {}).get("class_names") or [])


def _record_of(path: Path) -> Path:
    """The record file of ``path``: itself (a ``.json`` record) or the record of a kept weights file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file (give a run record, RESULTS/runs/*.json, or its weights file)")
    if path.suffix == ".pt":
        record = layout.record_of_weights(path)
        if not record.is_file():
            raise UserError(f"{path}: weights file without its record (expected {record}); keep the two together")
        return record
    return path


def _model_config(where: Path | str, data: dict[str, Any]) -> ModelConfig:
    """The record's ``model_config`` as a :class:`ModelConfig`; UserError naming the record if it is not one."""
    try:
        return ModelConfig(
            **{**data, "levels": tuple(data["levels"]), "backbone_levels": tuple(data["backbone_levels"])}
        )
    except (KeyError, TypeError) as exc:
        raise UserError(f"{where}: 'model_config' is not a model configuration ({exc})") from None


def rebuild_model(record: RunRecord, where: Path | str) -> tuple[Task, ModelConfig, nn.Module]:
    """The task, model config and model (freshly initialised, train mode) a record describes: its ``spec``,
    ``model_config`` and ``config.num_classes``, no backbone download. ``where`` names the record in a
    ``UserError`` when it lacks one of them or they do not describe a model."""
    if not record.spec or not record.model_config or not record.config:
        raise UserError(f"{where}: the record lacks the spec, model_config or config a model is rebuilt from")
    task = get_task(record.task)
    spec, problems = parse_spec(record.spec, f"{where}: spec")
    config = _model_config(where, record.model_config)
    model = task.model(require_valid(spec, problems, f"{where}: spec"), config, int(record.config["num_classes"]))
    return task, config, model


def _check_weights(record_path: Path, record: RunRecord) -> tuple[Path, dict[str, Any]]:
    """The weights file of ``record`` and its entry, once the file exists with the recorded checksum."""
    entry = record.weights
    if not record.ok or not entry:
        why = f"its status is {record.status!r}" if not record.ok else "it kept none (run with --no-keep-weights?)"
        raise UserError(f"{record_path}: this run has no kept weights: {why}")
    path = layout.results_of_record(record_path) / entry["path"]
    if not path.is_file():
        raise UserError(
            f"{path}: the weights file of run {record_path} is missing; weights live in RESULTS/weights/ beside "
            "RESULTS/runs/ (re-run with --force to train it again)"
        )
    digest = file_sha256(path)
    if digest != entry["sha256"]:
        raise UserError(
            f"{path}: corrupt weights file: its sha256 is {digest}, but run {record_path} recorded "
            f"{entry['sha256']} (the file changed after the run wrote it; re-run with --force to train it again)"
        )
    return path, entry


def load_trained(path: Path) -> TrainedRun:
    """The trained model of a run, from its record file or its kept weights file.

    The model is rebuilt from the record's ``spec``, ``model_config`` and ``config.num_classes`` (no
    backbone download) and its weights loaded strictly. ``UserError`` naming the file when the record has
    no weights, the weights file is missing, its checksum differs from the record's (corrupt), or it does
    not fit the rebuilt model (mismatched).
    """
    record_path = _record_of(path).resolve()
    record = RunRecord.load(record_path)
    weights_path, entry = _check_weights(record_path, record)
    task, config, model = rebuild_model(record, record_path)
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["ema"] if entry.get("ema") else state["model"])
    except (RuntimeError, KeyError, TypeError, pickle.UnpicklingError) as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines()[:2]) or type(exc).__name__
        raise UserError(
            f"{weights_path}: mismatched weights: they do not fit the model that run {record_path} describes "
            f"({detail[:300]})"
        ) from None
    model.eval()
    return TrainedRun(
        record=record,
        record_path=record_path,
        results=layout.results_of_record(record_path),
        weights_path=weights_path,
        task=task,
        model_config=config,
        model=model,
        ema=bool(entry.get("ema")),
    )
