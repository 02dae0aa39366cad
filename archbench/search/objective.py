"""One search trial: sample coefficients, refuse what breaks the constraint or the budget, train through the runner.

A trial trains the neck under its rule at each of the space's phis, in order, as ordinary runs
(:func:`archbench.runs.sweep.run_one`): each writes its normal record, tagged with the study and the
trial. Its accuracy is the mean of the task's metric (AP for det, mIoU for seg) over those phis;
its cost the largest GFLOPs among them (of the task's model: detector or segmenter).

- Before training: the constraint (``Infeasible``) and the GFLOPs budget (costed on meta tensors,
  no training) end the trial as PRUNED with ``pruned_reason``.
- Single objective: after every epoch the accuracy so far is reported at step ``i * epochs + epoch - 1``
  (phi index i), so pruners compare trials at the same point; a pruned run stops at once and
  leaves no record. Multi-objective: Optuna has no pruning (``Trial.report`` and
  ``should_prune`` raise), so no intermediate accuracy is computed at all.
- A diverged or crashed run fails the trial (``fail_reason``), and the study goes on.
- A run whose configuration already has an ``ok`` record (a retried trial's finished phis) is
  reused, and a retried trial resumes its interrupted run from the last epoch checkpoint.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import optuna

from archbench.costs.profile import profile_model
from archbench.models.scaling import ParametricRule, rule_to_dict
from archbench.runs.records import RunRecord, completed_records
from archbench.runs.sweep import EpochInfo, Prepared, RunRequest, RunStopped, SweepObserver, run_one
from archbench.search.space import Infeasible, SearchSpace
from archbench.search.study import SURPLUS_ATTR, StudySettings, is_retry, is_surplus, original
from archbench.spec.terms import Terms
from archbench.train.trainer import StepInfo, TrainConfig


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


@dataclass
class SearchObjective:
    """The Optuna objective of one worker: ``study`` is the study's name, ``neck`` this worker's reference to the
    study's neck (a name or a local spec file with the study's spec hash), ``target`` the study's trial total."""

    study: str
    neck: str
    settings: StudySettings
    space: SearchSpace
    results: Path
    target: int
    observer: SweepObserver
    device: str = "cpu"
    threads: int | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    data_cache: dict[tuple, tuple] = field(default_factory=dict)

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        try:
            return self._run(trial)
        except KeyboardInterrupt:  # Optuna fails the trial and re-raises; say why in the report
            trial.set_user_attr("fail_reason", "interrupted (KeyboardInterrupt)")
            raise

    def _run(self, trial: optuna.Trial) -> float | tuple[float, float]:
        trials = trial.study.get_trials(deepcopy=False)
        if is_surplus(trials, trial.number, self.target):
            trial.set_user_attr(SURPLUS_ATTR, True)
            reject(trial, f"surplus: the study already had {self.target} trials when this one was created")
        me = next(t for t in trials if t.number == trial.number)
        try:
            coefficients = self.space.sample(trial)
        except Infeasible as exc:
            reject(trial, str(exc))
        rule = self.space.rule(coefficients, rule_name(self.study, original(me)))
        trial.set_user_attr("coefficients", coefficients)
        trial.set_user_attr("rule", rule_to_dict(rule))
        preps = [Prepared(self._request(rule, phi), self.data_cache, self.observer) for phi in self.settings.phis]
        gflops = {p.req.phi: _gflops(p) for p in preps}
        cost = max(gflops.values())
        trial.set_user_attr("gflops_by_phi", {str(k): v for k, v in gflops.items()})
        trial.set_user_attr("gflops", cost)
        budget = self.settings.gflops_budget
        if budget is not None and cost > budget:
            reject(trial, f"over the GFLOPs budget: {cost:.4f} > {budget:g} (not trained)")
        accuracy = statistics.fmean(self._train(trial, preps, resume=is_retry(me)))
        return accuracy if self.settings.objective == "single" else (accuracy, cost)

    def preflight(self) -> None:
        """Resolve the neck and open the data for the space's first corner at every phi, so that bad input
        stops the worker before it touches the study (the opened data is kept for the trials)."""
        rule = self.space.rule(self.space.corner("low"), rule_name(self.study, 0))
        for phi in self.settings.phis:
            Prepared(self._request(rule, phi), self.data_cache, self.observer)

    def _request(self, rule: ParametricRule, phi: int) -> RunRequest:
        s = self.settings
        return RunRequest(
            neck=self.neck,
            phi=phi,
            seed=s.seed,
            task=s.task,
            preset=rule.name,
            rule=rule,
            data=s.data,
            subset=s.subset,
            train=TrainConfig(**s.train),
            device=self.device,
            threads=self.threads,
            keep_weights=False,  # trials keep no weights; `archbench run --scaling study:NAME` trains one that does
            terms=Terms(**s.terms) if s.terms else Terms(),
            init=s.init,
        )

    def _train(self, trial: optuna.Trial, preps: list[Prepared], *, resume: bool) -> list[float]:
        """Each phi's run, in order; returns their accuracies.

        Prunes (TrialPruned) or fails (TrialFailed) on the way.
        """
        prune = self.settings.objective == "single"
        epochs = self.settings.train["epochs"]
        done = completed_records(self.results)
        accuracies, records = [], []
        try:
            for i, prep in enumerate(preps):
                record = done.get(prep.hash)
                if record is None:
                    observer = TrialObserver(self.observer, trial, i * epochs, prune, self.settings.metric)
                    tags = {"search": {**self.tags, "study": self.study, "trial": trial.number}}
                    _, record = run_one(prep, self.results, resume=resume, observer=observer, extra=tags)
                records.append(record.path(self.results).name)
                trial.set_user_attr("records", records)
                if not record.ok:
                    trial.set_user_attr("fail_reason", record.reason)
                    raise TrialFailed(record.reason)
                accuracies.append((record.metrics or {})[self.settings.metric])
                if prune:
                    report(trial, (i + 1) * epochs - 1, accuracies[-1], self.settings.metric, check=i + 1 < len(preps))
        except RunStopped as exc:
            reject(trial, str(exc))
        return accuracies


def _gflops(prep: Prepared) -> float:
    """GFLOPs of the whole prepared model (the task's) at the run's phi, on meta tensors (no training)."""
    return profile_model(prep.spec, prep.model_cfg, prep.data_info["num_classes"], prep.task)["gflops"]
