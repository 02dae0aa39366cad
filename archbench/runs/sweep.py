"""``archbench run``: train and evaluate each (neck, phi, seed) and write one record per run.

A run's identity is its config hash: the neck's spec hash, the resolved model config, the data
reference and fingerprint, the training settings and the seed. A sweep skips a configuration
that already has an ``ok`` record unless forced; ``resume`` continues from the last epoch
checkpoint of the same config hash. A diverged run (NaN/inf loss) or a crash inside a run is
recorded as ``failed`` with its reason and the sweep moves on; a user error (bad data, bad
spec) stops the sweep before anything is recorded for that configuration.

The task (:mod:`archbench.train.tasks`: ``det`` or ``seg``) picks the data opener, model and trainer;
everything here is shared. Under torchrun every rank runs the same sweep and trains each run
together (:mod:`archbench.train.distributed`); rank 0 alone writes records and checkpoints.
"""

from __future__ import annotations

import json
import resource
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import torch

from archbench.costs.flops import cpu_latency_ms
from archbench.costs.profile import profile_model
from archbench.errors import UserError
from archbench.files import atomic_write_text
from archbench.models.scaling import ParametricRule, get_rule, rule_to_dict
from archbench.models.seeding import INIT_MODES
from archbench.models.trunk import check_levels
from archbench.models.weights import load_backbone_weights
from archbench.runs.environment import conditions, differences, environment, speed_settings
from archbench.runs.layout import cache_root, checkpoint_path, costs_path, remove_checkpoint, run_stem, weights_path
from archbench.runs.observers import EpochInfo, RunStopped, SweepObserver
from archbench.runs.records import (
    FAILED,
    OK,
    STOPPED,
    RunRecord,
    completed_records,
    config_hash,
    python_command,
)
from archbench.runs.trained import save_weights
from archbench.spec import is_spec_path, resolve_spec
from archbench.spec.terms import Terms
from archbench.train.distributed import LOCAL, DistContext
from archbench.train.schedule import TrainingDiverged
from archbench.train.tasks import get_task
from archbench.train.trainer import TrainConfig, resolve_optimizer_impl


@dataclass(frozen=True)
class RunRequest:
    """One configuration of a sweep, as the user asked for it."""

    neck: str
    phi: int
    seed: int
    task: str = "det"
    preset: str = "proxy"
    data: str = "synthetic"
    subset: int | None = None
    categories: tuple[str, ...] | None = None
    train: TrainConfig | None = None  # None: the task's defaults (see ``training``)
    pretrained: bool = False
    backbone_weights: str | None = None
    device: str = "cpu"
    threads: int | None = None
    #: runs trained side by side by the sweep (``--jobs``); recorded in the environment, not part of the config
    jobs: int = 1
    #: an explicit rule (e.g. a search trial's coefficients) instead of the named preset; its coefficients join
    #: the config
    rule: ParametricRule | None = None
    #: an ok run keeps its final weights beside its record (:mod:`archbench.runs.trained`); not part of the config
    keep_weights: bool = True
    #: the equal terms every neck is compiled under (:mod:`archbench.spec.terms`); part of the config unless native
    terms: Terms = Terms()
    #: how the initial weights are drawn (:data:`archbench.models.seeding.INIT_MODES`): ``per_part`` pairs the
    #: necks of one seed (same backbone and head weights); ``one_stream`` is the draw before issue 18
    init: str = "per_part"
    #: the seed of the data order when it should differ from ``seed`` (which then seeds the initial weights and
    #: torch's global generator only): the noise budget varies one source of seed-to-seed variance at a time.
    #: Part of the config only when set, so runs without it keep their hashes.
    data_seed: int | None = None

    @property
    def order_seed(self) -> int:
        """The seed of the training data's order: ``data_seed``, or ``seed`` when that is not set."""
        return self.seed if self.data_seed is None else self.data_seed

    @property
    def training(self) -> TrainConfig:
        """The training settings: ``train``, or the task's defaults (``TrainConfig.for_task``) when not given."""
        return self.train if self.train is not None else TrainConfig.for_task(self.task)


def planned_environment(req: RunRequest) -> dict[str, Any]:
    """The environment ``req`` would run under in this process: this machine, ``req.threads`` torch threads (this
    process's count when None), its jobs and speed settings (the optimizer as this torch would run it)."""
    device = torch.device(req.device)
    settings = speed_settings(req.training, resolve_optimizer_impl(req.training, device))
    env = environment(str(device), req.jobs, settings)
    if req.threads:
        env["torch_threads"] = req.threads
    return env


def run_label(req: RunRequest) -> str:
    """How progress displays name a run: task, neck (a spec file by its file name), phi and seed."""
    order = "" if req.data_seed is None else f" data_seed={req.data_seed}"
    neck = Path(req.neck).name if is_spec_path(req.neck) else req.neck
    return f"{req.task} {neck} phi={req.phi} seed={req.seed}{order}"


def claim_device(device: torch.device) -> None:
    """Make a CUDA ``device`` this process's current one (with ``cuda:N``, bare ``cuda`` tensors, cuDNN and NCCL
    then go to GPU N, not GPU 0) and start its peak-memory count afresh, so that each run of a sweep or a search
    reports its own peak, not the largest so far; nothing on the CPU."""
    if device.type != "cuda":
        return
    if device.index is not None:
        torch.cuda.set_device(device)
    torch.cuda.reset_peak_memory_stats(device)


def _peak_memory_mb(device: torch.device) -> dict[str, float]:
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    out = {"process_peak_rss_mb": rss_mb}
    if device.type == "cuda":
        out["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


class Prepared:
    """A request resolved into everything a run needs, and its config hash."""

    def __init__(
        self, req: RunRequest, data_cache: dict[tuple, tuple] | None = None, observer: SweepObserver | None = None
    ) -> None:
        self.req, self.task = req, get_task(req.task)
        if req.init not in INIT_MODES:
            raise UserError(f"init {req.init!r}: choose one of {', '.join(INIT_MODES)}")
        named = resolve_spec(req.neck)
        # the topology as trained: under equal terms, the spec with the terms' op settings (its own hash)
        self.spec = named.with_overrides(**req.terms.overrides) if req.terms.overrides else named
        self.rule = req.rule if req.rule is not None else get_rule(req.preset)
        self.model_cfg = self.rule.config(req.phi)
        check_levels(self.spec, self.model_cfg)  # the run's one level check: before any data is opened or model built
        key = (req.task, req.data, self.model_cfg.resolution, req.subset, req.categories)
        cache = data_cache if data_cache is not None else {}
        if key not in cache:  # a sweep opens each (task, data, resolution, selection) once
            cache[key] = self.task.open_data(
                req.data,
                resolution=self.model_cfg.resolution,
                subset=req.subset,
                categories=list(req.categories) if req.categories else None,
                seed=0,
                cache_root=cache_root(),
                progress=partial(observer.data_progress, req.data) if observer is not None else None,
            )
        self.train, self.val, self.data_info = cache[key]
        self.config = {
            "task": req.task,
            "neck": self.spec.name,
            "spec_hash": self.spec.spec_hash(),
            "preset": req.preset,
            "phi": req.phi,
            "model": self.model_cfg.to_dict(),
            "num_classes": self.data_info["num_classes"],
            "data": {
                "ref": req.data,
                "fingerprint": self.data_info["fingerprint"],
                "subset": req.subset,
                "categories": list(req.categories) if req.categories else None,
            },
            "train": req.training.to_dict(),
            "seed": req.seed,
            "pretrained": req.pretrained,
            "backbone_weights": req.backbone_weights,
            "device": torch.device(req.device).type,
            **req.terms.to_config(),
        }
        if req.init == "per_part":  # absent for the old draw, so records made before it keep their hashes
            self.config["init"] = req.init
        if req.data_seed is not None:
            self.config["data_seed"] = req.data_seed
        if req.rule is not None:
            self.config["rule"] = rule_to_dict(req.rule)
        self.hash = config_hash(self.config)

    @property
    def stem(self) -> str:
        """The name this configuration's files share (record, kept weights): see :func:`layout.run_stem`."""
        return run_stem(self.req.task, self.spec.name, self.req.phi, self.req.seed, self.hash)

    def record(self, *, status: str, **outcome: Any) -> RunRecord:
        """This configuration's record: what was run (request, spec, model, data), with ``status`` and the
        ``outcome`` fields of :class:`RunRecord` (reason, metrics, ...)."""
        d = self.data_info
        return RunRecord(
            task=self.req.task,
            neck=self.spec.name,
            neck_ref=self.req.neck,
            phi=self.req.phi,
            preset=self.req.preset,
            seed=self.req.seed,
            epochs=self.req.training.epochs,
            config_hash=self.hash,
            config=self.config,
            spec_hash=self.spec.spec_hash(),
            spec=self.spec.to_dict(),
            model_config=self.model_cfg.to_dict(),
            dataset={
                "name": d["name"],
                "fingerprint": d["fingerprint"],
                "n_train": d["n_train"],
                "n_val": d["n_val"],
                "num_classes": d["num_classes"],
                "class_names": d["class_names"],
                "stats": d["stats"],
                **self.task.data_summary(d),
            },
            command=python_command(),
            status=status,
            **outcome,
        )


#: Bumped when what a costs file holds or how it is measured changes, so files of the old kind are measured again.
COSTS_VERSION = 1
#: Seconds of training between two epoch checkpoints at least (the first epoch's is always written): a kill loses
#: at most this plus one epoch, and a run of short epochs does not write a checkpoint per epoch.
CHECKPOINT_EVERY_S = 60.0


def _measure_costs(prep: Prepared, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
    """Params and GFLOPs of the configuration's model (on meta tensors) and the median latency (ms) of ``model``'s
    forward of one image at the configuration's resolution on ``device`` (10 timed runs after 2 warm-up runs)."""
    row = profile_model(prep.spec, prep.model_cfg, prep.data_info["num_classes"], prep.task)
    costs = {k: row[k] for k in row if k.startswith(("params_", "gflops"))}
    res = prep.model_cfg.resolution
    image = torch.randn(1, 3, res, res, device=device)
    model.eval()

    def forward() -> None:
        model(image)
        if device.type == "cuda":  # CUDA launches are asynchronous: time the finished work
            torch.cuda.synchronize(device)

    lat = cpu_latency_ms(forward, runs=10, warmup=2)
    costs.update(
        {
            "latency_ms": lat["median"],
            "latency_min_ms": lat["min"],
            "latency_max_ms": lat["max"],
            "latency_batch": 1,
            "latency_device": device.type,
            "flop_convention": "fvcore: 1 multiply-add = 1",
        }
    )
    return costs


def _costs(
    prep: Prepared, model: torch.nn.Module, device: torch.device, results: Path, env: dict[str, Any]
) -> dict[str, Any]:
    """The configuration's costs (:func:`_measure_costs`), measured once per model and timing conditions and shared
    by its seeds through ``RESULTS/costs/<key>.json``; ``measured_at`` (ISO UTC) says when. The key covers the
    spec, the model config, the classes, the task and :func:`~archbench.runs.environment.conditions` of ``env``
    (machine, torch, threads, jobs, speed settings), so a run under other conditions measures its own. A damaged
    file is measured again."""
    key = config_hash(
        {
            "version": COSTS_VERSION,
            "spec_hash": prep.spec.spec_hash(),
            "model": prep.model_cfg.to_dict(),
            "num_classes": prep.data_info["num_classes"],
            "task": prep.req.task,
            "conditions": conditions(env),
        }
    )
    path = costs_path(results, key)
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):  # none yet, or damaged: measure
        pass
    costs = {**_measure_costs(prep, model, device), "measured_at": datetime.now(timezone.utc).isoformat()}
    atomic_write_text(path, json.dumps(costs, indent=2) + "\n")
    return costs


def execute(
    prep: Prepared, results: Path, *, resume: bool, observer: SweepObserver, dist: DistContext = LOCAL
) -> RunRecord:
    """Train, evaluate and cost one prepared configuration; returns the record to write.

    Under torchrun every rank trains and evaluates; rank 0 alone measures the costs (its record is
    the one written), and rank 0's view of the checkpoint decides whether all ranks resume.
    """
    req = prep.req
    device = torch.device(dist.device(req.device))
    claim_device(device)
    if req.threads:
        torch.set_num_threads(req.threads)
    ckpt = checkpoint_path(results, prep.hash)
    torch.manual_seed(req.seed)
    model = prep.task.model(
        prep.spec,
        prep.model_cfg,
        prep.data_info["num_classes"],
        pretrained_backbone=req.pretrained,
        init_seed=req.seed if req.init == "per_part" else None,
    )
    weights_loaded = load_backbone_weights(model.backbone.body, req.backbone_weights) if req.backbone_weights else None
    trainer = prep.task.trainer(model, prep.train, req.training, seed=req.order_seed, device=device, dist=dist)
    distributed = (
        {
            "world_size": dist.world_size,
            "backend": dist.backend,
            "per_rank_batch": trainer.rank_batch,
            "sync_batchnorm": dist.syncs_batchnorm,
        }
        if dist.enabled
        else None
    )
    resumed_from_epoch = None
    if dist.broadcast(resume and ckpt.is_file()):
        trainer.restore(ckpt)
        resumed_from_epoch = trainer.epoch

    env = environment(str(device), req.jobs, speed_settings(req.training, trainer.optimizer_impl_used))

    def finished(status: str, **outcome: Any) -> RunRecord:
        return prep.record(
            status=status,
            backbone_weights_loaded=weights_loaded,
            distributed=distributed,
            resumed_from_epoch=resumed_from_epoch,
            environment=env,
            **outcome,
        )

    label, epochs = run_label(req), req.training.epochs
    observer.run_started(label, epochs, trainer.total_steps)
    try:
        epoch_losses = []
        saved_at: float | None = None  # trainer.train_seconds at the last checkpoint
        while trainer.epoch < epochs:
            images, seconds = trainer.images_seen, trainer.train_seconds
            epoch_losses.append(trainer.train_epoch(observer.step))
            if trainer.epoch < epochs and (saved_at is None or trainer.train_seconds - saved_at >= CHECKPOINT_EVERY_S):
                trainer.save(ckpt)  # none after the last epoch: the record follows within seconds
                saved_at = trainer.train_seconds
            observer.epoch_summary(
                EpochInfo(
                    label,
                    trainer.epoch,
                    epochs,
                    epoch_losses[-1],
                    trainer.images_seen - images,
                    trainer.train_seconds - seconds,
                )
            )
            observer.epoch_finished(trainer.epoch, epochs, lambda: trainer.evaluate(prep.val, prep.data_info))
        eval_start = time.perf_counter()
        metrics = trainer.evaluate(prep.val, prep.data_info)
        eval_seconds = time.perf_counter() - eval_start
    except TrainingDiverged as exc:
        return finished(FAILED, reason=str(exc), failed_at_step=exc.step)
    return finished(
        OK,
        metrics=metrics,
        epoch_losses=epoch_losses,
        steps=trainer.step,
        timing={
            "train_seconds": trainer.train_seconds,
            "eval_seconds": eval_seconds,
            "images_per_s": trainer.images_seen / trainer.train_seconds if trainer.train_seconds else None,
            "eval_fraction": eval_seconds / (eval_seconds + trainer.train_seconds),
        },
        costs=_costs(prep, trainer.eval_model(), device, results, env) if dist.is_main else None,
        memory=_peak_memory_mb(device),
        weights=save_weights(results, prep.stem, trainer.model, trainer.ema.module if trainer.ema else None)
        if req.keep_weights and dist.is_main
        else None,
    )


def run_one(
    prep: Prepared,
    results: Path,
    *,
    resume: bool,
    observer: SweepObserver,
    extra: dict[str, Any] | None = None,
    dist: DistContext = LOCAL,
) -> tuple[Path, RunRecord]:
    """Execute one configuration and write its record (``extra`` top-level keys added, e.g. a search trial's tags).

    An ok run's final weights are written (``req.keep_weights``) before its record, and its epoch checkpoint
    removed after it; a record without weights removes any weights file an earlier record of the configuration
    kept. A crash is recorded as ``failed``. A ``UserError`` propagates with nothing recorded, and so does
    ``RunStopped``, after removing the run's checkpoint. Under torchrun only rank 0 writes; a crash on
    any rank propagates there, since the others could not go on without it.
    """
    label = run_label(prep.req)
    try:
        record = execute(prep, results, resume=resume, observer=observer, dist=dist)
    except UserError:
        raise
    except RunStopped as exc:
        remove_checkpoint(results, prep.hash)
        observer.run_finished(label, prep.record(status=STOPPED, reason=str(exc)))
        raise
    except Exception as exc:  # a crash in one run is recorded; the sweep goes on
        if dist.enabled:
            raise
        record = prep.record(
            status=FAILED,
            reason=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(limit=8),
            environment=planned_environment(prep.req),
        )
    record.extra.update(extra or {})
    if not dist.is_main:
        return record.path(results), record
    path = store(record, prep, results)
    observer.run_finished(label, record)
    return path, record


def store(record: RunRecord, prep: Prepared, results: Path) -> Path:
    """Write ``prep``'s finished ``record`` under ``results`` (its kept weights are already there); an ok run's
    epoch checkpoint goes, and so do the weights an earlier record of the configuration kept where this one keeps
    none. Returns the record's path."""
    path = record.save(results)
    if record.ok:
        remove_checkpoint(results, prep.hash)
    if record.weights is None:  # weights an earlier record of this configuration kept no longer belong to one
        weights_path(results, prep.stem).unlink(missing_ok=True)
    return path


def plan(
    requests: Sequence[RunRequest],
    results: Path,
    *,
    force: bool = False,
    observer: SweepObserver | None = None,
    dist: DistContext = LOCAL,
) -> list[Prepared]:
    """Prepare every request (specs, data and config hashes, before any training) and return those to run.

    A configuration with an ``ok`` record is skipped (told to ``observer``) unless ``force``; under torchrun
    rank 0's view of the finished runs decides.
    """
    observer = observer or SweepObserver()
    done = dist.broadcast({} if force else {h: r.environment for h, r in completed_records(results).items()})
    data_cache: dict[tuple, tuple] = {}
    prepared = [Prepared(req, data_cache, observer) for req in requests]  # resolve specs and data before training
    todo = []
    for prep in prepared:
        if prep.hash not in done:
            todo.append(prep)
            continue
        changed = differences(done[prep.hash], planned_environment(prep.req))
        observer.skipped(
            run_label(prep.req),
            "an ok record with the same config hash exists"
            + (f", made under other conditions ({'; '.join(changed)})" if changed else "")
            + " (use --force to re-run)",
        )
    return todo


def sweep(
    requests: Sequence[RunRequest],
    results: Path,
    *,
    force: bool = False,
    resume: bool = False,
    observer: SweepObserver | None = None,
    on_record: Callable[[Path, RunRecord], None] | None = None,
    dist: DistContext = LOCAL,
) -> list[RunRecord]:
    """Run every request in order; returns the records written (skipped configurations are not).

    Under torchrun every rank runs the same sweep (rank 0's view of the finished runs decides what
    is skipped) and each run is trained by all ranks together. :func:`archbench.runs.parallel.sweep_parallel`
    runs them side by side instead, one process each.
    """
    observer = observer or SweepObserver()
    written = []
    for prep in plan(requests, results, force=force, observer=observer, dist=dist):
        path, record = run_one(prep, results, resume=resume, observer=observer, dist=dist)
        if on_record:
            on_record(path, record)
        written.append(record)
    return written
