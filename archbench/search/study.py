"""One study shared by any number of workers: its settings, its trial budget and the worker loop.

The study stores what its trials mean (task, neck, space, phis, objective, budget, data, training) as a
user attribute; a worker that joins with different settings is refused. ``--trials N`` is the
study's total across all workers and invocations, not a per-worker count:

- a trial *counts* unless it is a retry copy of a stale trial (it continues that trial's slot) or
  a surplus trial (see below);
- before each trial a worker fails stale trials (``fail_stale_trials``: their retry copies are
  queued as WAITING) and starts one only while fewer than N trials count or a retry is waiting;
- Optuna numbers trials densely under a lock, so a trial can tell whether it is one of the first
  N counting trials. In the rare race where two workers both saw room for the last trial, the
  later-numbered one is surplus: it is ended as PRUNED without training and marked ``surplus``.

A worker with nothing left to start waits while other workers' trials are running, because a
trial whose worker dies must be failed and retried by someone; it returns once every counting
trial is finished.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from archbench.errors import UserError
from archbench.train.tasks import get_task

SETTINGS_ATTR = "archbench"
SURPLUS_ATTR = "surplus"
#: the user attribute naming the reference graph (a built-in's point of a topology space) a queued trial trains
REFERENCE_ATTR = "reference"
OBJECTIVES = ("single", "multi")
#: a multi-objective study's cost axes (``--cost``) and the name of the study's second value in each (tools such
#: as optuna-dashboard show it): GFLOPs and parameters (millions) of the task's whole model, costed before training;
#: latency (ms) from the trial's run records
COSTS = {"gflops": "GFLOPs", "params": "params (M)", "latency": "latency (ms)"}


@dataclass(frozen=True)
class StudySettings:
    """What a study's trials mean; every worker on the study must agree on all of it."""

    neck: str | None  # None: a topology space, whose trials are the graphs
    spec_hash: str | None
    space: dict[str, Any]
    space_digest: str
    phis: tuple[int, ...]
    objective: str  # single: maximize accuracy (within the budget); multi: accuracy vs cost (NSGA-II)
    gflops_budget: float | None
    data: str
    subset: int | None
    train: dict[str, Any]
    seed: int
    population: int | None = None  # NSGA-II population (multi only)
    task: str = "det"  # studies made before seg search have no task field: they are det studies
    #: the equal terms of every trial (``Terms``' protocol and overrides); None: native (studies before issue 18)
    terms: dict[str, Any] | None = None
    #: how trials draw their initial weights (``RunRequest.init``); studies made before issue 18 drew one stream
    init: str = "one_stream"
    #: the second objective of a multi-objective study (a key of :data:`COSTS`); studies before it had GFLOPs
    cost: str = "gflops"

    @property
    def metric(self) -> str:
        """What the study maximises: the task's main metric (AP for det, mIoU for seg)."""
        return get_task(self.task).metric

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["phis"] = list(self.phis)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudySettings:
        return cls(**{**d, "phis": tuple(d["phis"])})

    def directions(self) -> list[Literal["maximize", "minimize"]]:
        return ["maximize"] if self.objective == "single" else ["maximize", "minimize"]

    def metric_names(self) -> list[str]:
        """What each of a trial's values is, in the order of :meth:`directions`: ``[AP]`` or ``[AP, GFLOPs]`` (or
        the study's other cost)."""
        return [self.metric] if self.objective == "single" else [self.metric, COSTS[self.cost]]


def settings_of(study: optuna.Study) -> StudySettings:
    """The settings a study was created with (UserError if it was not made by ``archbench search``)."""
    data = study.user_attrs.get(SETTINGS_ATTR)
    if data is None:
        raise UserError(f"study {study.study_name!r} was not created by archbench search")
    return StudySettings.from_dict(data)


def _differences(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    return [
        f"{k}: the study has {theirs.get(k)!r}, this worker {mine.get(k)!r}"
        for k in sorted(set(mine) | set(theirs))
        if k != "space" and mine.get(k) != theirs.get(k)
    ]


def create_or_join(
    storage: RDBStorage,
    name: str,
    settings: StudySettings,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
) -> optuna.Study:
    """Create the study, or join it when it exists with the same settings (UserError listing any difference)."""
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        load_if_exists=True,
        sampler=sampler,
        pruner=pruner,
        directions=settings.directions(),
    )
    stored = study.user_attrs.get(SETTINGS_ATTR)
    if stored is None:
        study.set_user_attr(SETTINGS_ATTR, settings.to_dict())
    else:
        diff = _differences(settings.to_dict(), StudySettings.from_dict(stored).to_dict())
        if diff:
            raise UserError(
                f"study {name!r} exists with other settings; use another --study, or the same settings:\n"
                + "\n".join(f"  - {d}" for d in diff)
            )
    if study.metric_names != settings.metric_names():  # studies made before the names were set get them now
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            study.set_metric_names(settings.metric_names())
    return study


def load_study(storage: RDBStorage, name: str) -> optuna.Study:
    """An existing study (UserError naming the studies there when it is missing)."""
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise UserError(f"no study {name!r} in this storage; studies there: {', '.join(names) or 'none'}") from None


def continues(trial: FrozenTrial) -> int | None:
    """The stale trial a retry copy continues (its worker died), or None for an ordinary trial."""
    history = trial.system_attrs.get("retry_history")
    return history[-1] if history else None


def original(trial: FrozenTrial) -> int:
    """The first trial of a retry chain (a trial's own number when it is no retry)."""
    return trial.system_attrs.get("failed_trial", trial.number)


def is_retry(trial: FrozenTrial) -> bool:
    """A retry copy takes no slot of its own: it continues its original trial's."""
    return continues(trial) is not None


def counts(trial: FrozenTrial) -> bool:
    """Whether a trial takes one of the study's N slots."""
    return not is_retry(trial) and not trial.user_attrs.get(SURPLUS_ATTR)


def is_surplus(trials: Sequence[FrozenTrial], number: int, target: int) -> bool:
    """Whether trial ``number`` came after the study already had ``target`` counting trials."""
    me = next(t for t in trials if t.number == number)
    return not is_retry(me) and sum(counts(t) for t in trials if t.number < number) >= target


def work(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], Any],
    target: int,
    *,
    catch: tuple[type[Exception], ...],
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]],
    on_wait: Callable[[list[int]], None],
    poll_s: float,
) -> None:
    """Run trials until the study has ``target`` counting trials and nothing is left running anywhere."""
    while True:
        optuna.storages.fail_stale_trials(study)  # a dead worker's trial is failed and its retry queued
        trials = study.get_trials(deepcopy=False)
        open_slots = target - sum(counts(t) for t in trials)
        waiting = any(t.state == TrialState.WAITING for t in trials)
        if open_slots > 0 or waiting:
            study.optimize(objective, n_trials=1, catch=catch, callbacks=list(callbacks))
            continue
        running = [t.number for t in trials if t.state == TrialState.RUNNING]
        if not running:
            return
        on_wait(running)
        time.sleep(poll_s)
