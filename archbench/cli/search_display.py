"""Rich progress of a search worker: one line per trial as it ends, the study's count, and what it waits for."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console

from archbench.search.study import counts


class SearchDisplay:
    """Optuna callback (one line per finished trial) and the worker's waiting notice, on ``console``."""

    def __init__(self, console: Console, target: int, metric: str) -> None:
        self.console, self.target, self.metric = console, target, metric
        self._waiting_for: list[int] = []

    def _print(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        sampled = trial.user_attrs.get("coefficients", trial.params)  # a rejected trial has only what it sampled
        coefficients = ", ".join(f"{k}={v:.4g}" for k, v in sampled.items())
        if trial.state == TrialState.COMPLETE:
            outcome = f"ok      {self.metric} {trial.values[0]:.4f} at {trial.user_attrs['gflops']:.4f} GFLOPs"
        elif trial.state == TrialState.PRUNED:
            outcome = f"pruned  {trial.user_attrs.get('pruned_reason', '')}"
        else:
            outcome = f"FAILED  {trial.user_attrs.get('fail_reason', '')}"
        finished = sum(counts(t) and t.state.is_finished() for t in study.get_trials(deepcopy=False))
        self._print(f"trial #{trial.number} {outcome} [{coefficients}] ({seconds:.0f} s; "
                    f"{finished}/{self.target} finished in the study)")

    def waiting(self, running: list[int]) -> None:
        """Say once (per set of trials) that this worker waits for other workers' running trials."""
        if running != self._waiting_for:
            self._waiting_for = running
            self._print(f"no trial left to start; waiting for running trial(s) {', '.join(f'#{n}' for n in running)} "
                        "(a trial whose worker died is retried here)")
