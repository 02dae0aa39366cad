"""One search trial: sample a point of the space, refuse what breaks a rule or the budget, train through the runner.

A scaling space's point is a scaling rule's coefficients, trained with the study's neck; a topology space's point
is a neck graph, written as a spec file under ``RESULTS/search/STUDY/graphs/`` and trained at the space's preset.
Either way a trial trains at each of the space's phis, in order, as ordinary runs
(:func:`archbench.runs.sweep.run_one`): each writes its normal record, tagged with the study and the
trial. Its accuracy is the mean of the task's metric (AP for det, mIoU for seg) over those phis;
its cost (multi-objective) the largest among them of the study's cost: GFLOPs or parameters (of the task's whole
model, costed on meta tensors before training) or latency (the runs' records: median of 10 forwards of one image).

- Before training: an infeasible point (a broken constraint or graph rule: ``Infeasible``) and the GFLOPs budget
  end the trial as PRUNED with ``pruned_reason``.
- Single objective: after every epoch the accuracy so far is reported at step ``i * epochs + epoch - 1``
  (phi index i), so pruners compare trials at the same point; a pruned run stops at once and
  leaves no record. Multi-objective: Optuna has no pruning (``Trial.report`` and
  ``should_prune`` raise), so no intermediate accuracy is computed at all.
- A diverged or crashed run fails the trial (``fail_reason``), and the study goes on.
- A run whose configuration already has an ``ok`` record is reused: a retried trial's finished phis, and every
  run of a graph an earlier trial trained (graphs that compile to the same spec hash have the same configuration),
  and a retried trial resumes its interrupted run from the last epoch checkpoint. A point whose graph is the same
  network as an earlier trial's under other node names (``spec.graph.network_key``) trains that trial's graph.
  Two workers can reach the same run at once (both enqueued the references, or sampled the same graph): each trial
  names the run it is about to train (``TRAINING_ATTR``), and one that finds a lower-numbered running trial naming
  the same run waits for that trial and takes its record instead of training a second copy.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import optuna
from optuna.trial import TrialState

from archbench.costs.profile import profile_model
from archbench.errors import UserError
from archbench.files import atomic_write_text
from archbench.models.scaling import ParametricRule, rule_to_dict
from archbench.runs.layout import study_graphs
from archbench.runs.records import RunRecord, completed_records
from archbench.runs.sweep import EpochInfo, Prepared, RunRequest, RunStopped, SweepObserver, run_label, run_one
from archbench.search.front import trial_spec
from archbench.search.space import ScalingSpace
from archbench.search.space_rules import Infeasible
from archbench.search.spaces import Space
from archbench.search.study import SURPLUS_ATTR, StudySettings, is_retry, is_surplus, original
from archbench.spec import NeckSpec, dump_yaml
from archbench.spec.graph import network_key
from archbench.spec.terms import Terms
from archbench.train.trainer import StepInfo, TrainConfig

#: user attribute of a trial: the config hash of the run it is training now (see :meth:`SearchObjective.await_peer`)
TRAINING_ATTR = "training"


class TrialFailed(Exception):
    """A run of the trial diverged or crashed; the trial is recorded as FAIL with the reason."""


def rule_name(study: str, slot: int) -> str:
    """``study:NAME#K``: the preset name of trial K's rule in its records (a retry keeps K)."""
    return f"study:{study}#{slot}"


class TrialObserver(SweepObserver):
    """Forwards the display hooks; when pruning is on, reports ``metric`` after each epoch and stops pruned runs."""

    def __init__(self, inner: SweepObserver, trial: optuna.Trial, first_step: int, prune: bool, metric: str) -> None:
        self.inner, self.trial, self.first_step, self.prune, self.metric = inner, trial, first_step, prune, metric

    def run_started(self, label: str, epochs: int, steps: int) -> None:
        self.inner.run_started(label, epochs, steps)

    def step(self, info: StepInfo) -> None:
        self.inner.step(info)

    def epoch_summary(self, info: EpochInfo) -> None:
        self.inner.epoch_summary(info)

    def run_finished(self, label: str, record: RunRecord) -> None:
        self.inner.run_finished(label, record)

    def skipped(self, label: str, reason: str) -> None:
        self.inner.skipped(label, reason)

    def epoch_finished(self, epoch: int, epochs: int, evaluate: Callable[[], dict[str, float]]) -> None:
        if self.prune and epoch < epochs:  # the last epoch's accuracy comes with the record
            report(self.trial, self.first_step + epoch - 1, evaluate()[self.metric], self.metric, check=True)


def report(trial: optuna.Trial, step: int, value: float, metric: str, *, check: bool) -> None:
    """Report ``value`` (of ``metric``) at ``step``; with ``check``, raise ``RunStopped`` when the pruner says so."""
    trial.report(value, step)
    if check and trial.should_prune():
        pruner = type(trial.study.pruner).__name__
        raise RunStopped(f"pruned by {pruner} at step {step} ({metric} {value:.4f})")


def reject(trial: optuna.Trial, reason: str) -> NoReturn:
    """End a trial as PRUNED with its reason (before training, or when a pruner stopped its run)."""
    trial.set_user_attr("pruned_reason", reason)
    raise optuna.TrialPruned(reason)


@dataclass(frozen=True)
class TrialPlan:
    """What a trial trains: ``neck`` (the study's neck, or the trial's graph as a spec file) under ``rule`` (the
    trial's coefficients) or the named ``preset``, and what the trial records about it (``attrs``)."""

    neck: str
    preset: str
    rule: ParametricRule | None
    attrs: dict[str, Any]


def write_graph(folder: Path, spec: NeckSpec) -> Path:
    """The spec file of a trial's graph, ``folder/<spec name>.yaml`` (written once: the name holds its hash)."""
    path = folder / f"{spec.name}.yaml"
    if not path.is_file():
        atomic_write_text(path, dump_yaml(spec))
    return path


@dataclass
class SearchObjective:
    """The Optuna objective of one worker: ``study`` is the study's name, ``neck`` this worker's reference to the
    study's neck (a name or a local spec file with the study's spec hash; None for a topology space, whose trials
    are graphs), ``target`` the study's trial total."""

    study: str
    neck: str | None
    settings: StudySettings
    space: Space
    results: Path
    target: int
    observer: SweepObserver
    device: str = "cpu"
    threads: int | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    #: seconds between looks at a peer trial that trains the run this one needs
    poll_s: float = 2.0
    data_cache: dict[tuple, tuple] = field(default_factory=dict)
    #: spec hash -> network key of the graphs the study's trials hold (each parsed once per worker)
    networks: dict[str, str] = field(default_factory=dict)

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        try:
            return self._run(trial)
        except KeyboardInterrupt:  # Optuna fails the trial and re-raises; say why in the report
            trial.set_user_attr("fail_reason", "interrupted (KeyboardInterrupt)")
            raise
        except (TrialFailed, optuna.TrialPruned, UserError):  # a failed run, a rejected point, bad input: said already
            raise
        except Exception as exc:  # a bug: its worker still stops with the traceback, and the report names it
            trial.set_user_attr("fail_reason", f"internal error, its worker stopped: {type(exc).__name__}: {exc}")
            raise

    def _run(self, trial: optuna.Trial) -> float | tuple[float, float]:
        trials = trial.study.get_trials(deepcopy=False)
        if is_surplus(trials, trial.number, self.target):
            trial.set_user_attr(SURPLUS_ATTR, True)
            reject(trial, f"surplus: the study already had {self.target} trials when this one was created")
        me = next(t for t in trials if t.number == trial.number)
        try:
            plan = self.plan(trial, original(me))
        except Infeasible as exc:
            reject(trial, str(exc))
        for key, value in plan.attrs.items():
            trial.set_user_attr(key, value)
        preps = [Prepared(self._request(plan, phi), self.data_cache, self.observer) for phi in self.settings.phis]
        profiles = {p.req.phi: _profile(p) for p in preps}
        gflops = max(row["gflops"] for row in profiles.values())
        trial.set_user_attr("gflops_by_phi", {str(k): row["gflops"] for k, row in profiles.items()})
        trial.set_user_attr("gflops", gflops)
        trial.set_user_attr("params", max(row["params_total"] for row in profiles.values()))
        budget = self.settings.gflops_budget
        if budget is not None and gflops > budget:
            reject(trial, f"over the GFLOPs budget: {gflops:.4f} > {budget:g} (not trained)")
        records = self._train(trial, preps, resume=is_retry(me))
        accuracy = statistics.fmean((r.metrics or {})[self.settings.metric] for r in records)
        if self.settings.objective == "single":
            return accuracy
        return accuracy, self._cost(trial, records)

    def plan(self, trial: optuna.Trial, slot: int) -> TrialPlan:
        """The trial's point of the space and what it trains; ``Infeasible`` when the point breaks a rule."""
        if isinstance(self.space, ScalingSpace):
            assert self.neck is not None  # a scaling study has a neck (worker.run_search checks)
            coefficients = self.space.sample(trial)
            rule = self.space.rule(coefficients, rule_name(self.study, slot))
            return TrialPlan(self.neck, rule.name, rule, {"coefficients": coefficients, "rule": rule_to_dict(rule)})
        spec = self.same_network(trial.study, self.space.spec(self.space.sample(trial)))
        path = write_graph(study_graphs(self.results), spec)
        attrs = {"graph": spec.name, "spec_hash": spec.spec_hash(), "spec": spec.to_dict()}
        return TrialPlan(str(path), self.space.preset, None, attrs)

    def same_network(self, study: optuna.Study, spec: NeckSpec) -> NeckSpec:
        """``spec``, or the graph of an earlier trial of ``study`` that is the same network under other node names or
        orders (``spec.graph.network_key``), so that a network trains once per study and goes by one name in it."""
        key = network_key(spec)
        for t in study.get_trials(deepcopy=False):
            known = t.user_attrs.get("spec_hash")
            if known is None or known == spec.spec_hash() or "spec" not in t.user_attrs:
                continue  # no graph, this graph, or another worker's trial between writing its attributes
            if known not in self.networks:
                self.networks[known] = network_key(trial_spec(t))
            if self.networks[known] == key:
                return trial_spec(t)
        return spec

    def preflight(self) -> None:
        """Resolve the neck and open the data for a first point at every phi (the space's first corner, or its
        first reference graph), so that bad input stops the worker before it touches the study (the opened data is
        kept for the trials)."""
        space = self.space
        if isinstance(space, ScalingSpace):
            assert self.neck is not None
            rule = space.rule(space.corner("low"), rule_name(self.study, 0))
            plan = TrialPlan(self.neck, rule.name, rule, {})
        else:
            graph = space.spec(next(iter(space.references.values()))) if space.references else space.base
            plan = TrialPlan(str(write_graph(study_graphs(self.results), graph)), space.preset, None, {})
        for phi in self.settings.phis:
            Prepared(self._request(plan, phi), self.data_cache, self.observer)

    def _request(self, plan: TrialPlan, phi: int) -> RunRequest:
        s = self.settings
        return RunRequest(
            neck=plan.neck,
            phi=phi,
            seed=s.seed,
            task=s.task,
            preset=plan.preset,
            rule=plan.rule,
            data=s.data,
            subset=s.subset,
            train=TrainConfig(**s.train),
            device=self.device,
            threads=self.threads,
            keep_weights=False,  # trials keep no weights; `archbench run` trains a chosen point that does
            terms=Terms(**s.terms) if s.terms else Terms(),
            init=s.init,
        )

    def _train(self, trial: optuna.Trial, preps: list[Prepared], *, resume: bool) -> list[RunRecord]:
        """Each phi's run, in order (an ok record of the same configuration is reused); returns their records.

        Prunes (TrialPruned) or fails (TrialFailed) on the way.
        """
        prune = self.settings.objective == "single"
        epochs = self.settings.train["epochs"]
        done = completed_records(self.results)
        records: list[RunRecord] = []
        try:
            for i, prep in enumerate(preps):
                record = done.get(prep.hash) or self.await_peer(trial, prep)
                if record is None:
                    observer = TrialObserver(self.observer, trial, i * epochs, prune, self.settings.metric)
                    tags = {"search": {**self.tags, "study": self.study, "trial": trial.number}}
                    _, record = run_one(prep, self.results, resume=resume, observer=observer, extra=tags)
                records.append(record)
                trial.set_user_attr("records", [r.path(self.results).name for r in records])
                if not record.ok:
                    trial.set_user_attr("fail_reason", record.reason)
                    raise TrialFailed(record.reason)
                if prune:
                    accuracy = (record.metrics or {})[self.settings.metric]
                    report(trial, (i + 1) * epochs - 1, accuracy, self.settings.metric, check=i + 1 < len(preps))
        except RunStopped as exc:
            reject(trial, str(exc))
        return records

    def await_peer(self, trial: optuna.Trial, prep: Prepared) -> RunRecord | None:
        """Name ``prep``'s run as the one ``trial`` trains; while a running trial with a lower number names it too,
        wait for that trial to end. Returns the run's ok record if that trial made one, else None (train it here).

        The lower number trains and the higher waits, so two trials that name the same run at the same moment
        still train it once; a peer whose worker died is failed by its heartbeat (``fail_stale_trials``)."""
        trial.set_user_attr(TRAINING_ATTR, prep.hash)
        told = False
        while (peer := self._peer_training(trial, prep.hash)) is not None:
            if not told:
                reason = f"trial #{peer} is training this run; waiting for its record"
                self.observer.skipped(run_label(prep.req), reason)
                told = True
            time.sleep(self.poll_s)
            optuna.storages.fail_stale_trials(trial.study)
        return completed_records(self.results).get(prep.hash) if told else None

    @staticmethod
    def _peer_training(trial: optuna.Trial, run_hash: str) -> int | None:
        """The number of a running trial of ``trial``'s study, numbered below it, that trains ``run_hash``."""
        for t in trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.number < trial.number and t.user_attrs.get(TRAINING_ATTR) == run_hash:
                return t.number
        return None

    def _cost(self, trial: optuna.Trial, records: list[RunRecord]) -> float:
        """The study's cost of the trial: the largest over its phis, in the unit :data:`COSTS` names."""
        cost = self.settings.cost
        if cost == "gflops":
            return float(trial.user_attrs["gflops"])
        if cost == "params":
            return float(trial.user_attrs["params"]) / 1e6
        latency = max(float((r.costs or {})["latency_ms"]) for r in records)
        trial.set_user_attr("latency_ms", latency)
        return latency


def _profile(prep: Prepared) -> dict[str, Any]:
    """The costs of the whole prepared model (the task's) at the run's phi, on meta tensors (no training)."""
    return profile_model(prep.spec, prep.model_cfg, prep.data_info["num_classes"], prep.task)
