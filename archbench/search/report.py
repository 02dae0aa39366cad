"""What a study found: the best coefficients (single objective) or the Pareto set (multi), and every
trial that did not complete with its reason; plus the rule of a chosen trial for ``run --scaling``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.table import Table

from archbench.errors import UserError
from archbench.models.scaling import ParametricRule, rule_from_dict
from archbench.search.storage import default_storage_url, open_storage, redact
from archbench.search.study import StudySettings, continues, counts, is_retry, load_study, settings_of

_REF = re.compile(r"^study:(?P<name>[A-Za-z0-9_.-]+)(?:#(?P<trial>\d+))?$")
TOP_ROWS = 10


def best_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Single objective: the completed trials, best first. Multi: the Pareto set, cheapest first."""
    if len(study.directions) > 1:
        return sorted(study.best_trials, key=lambda t: t.values[1])
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(done, key=lambda t: -cast(float, t.value))  # a complete single-objective trial has a value


def chosen_trial(study: optuna.Study, number: int | None) -> FrozenTrial:
    """Trial ``number`` (it must be complete), else the best one; a multi-objective study with several
    Pareto trials needs the number."""
    if number is not None:
        trials = [t for t in study.get_trials(deepcopy=False) if t.number == number]
        if not trials or trials[0].state != TrialState.COMPLETE:
            raise UserError(f"study {study.study_name!r} has no completed trial #{number}")
        return trials[0]
    best = best_trials(study)
    if not best:
        raise UserError(f"study {study.study_name!r} has no completed trial yet")
    if len(study.directions) > 1 and len(best) > 1:
        metric = settings_of(study).metric
        choices = ", ".join(f"#{t.number} ({metric} {t.values[0]:.4f}, {t.values[1]:.3f} GFLOPs)" for t in best)
        raise UserError(
            f"study {study.study_name!r} is multi-objective and its Pareto set has {len(best)} trials: "
            f"{choices}; choose one with study:{study.study_name}#N"
        )
    return best[0]


def parse_study_ref(ref: str) -> tuple[str, int | None]:
    """``study:NAME`` or ``study:NAME#TRIAL`` -> (name, trial number or None)."""
    m = _REF.match(ref.strip())
    if not m:
        raise UserError(f"--scaling {ref!r}: expected study:NAME or study:NAME#TRIAL (see archbench search --report)")
    return m["name"], int(m["trial"]) if m["trial"] else None


def trial_rule(study: optuna.Study, number: int | None) -> ParametricRule:
    """The scaling rule of the chosen trial, named ``study:NAME#K``."""
    return rule_from_dict(chosen_trial(study, number).user_attrs["rule"])


def _fmt(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _reason(t: FrozenTrial, retry_of: dict[int, int]) -> str:
    if t.state == TrialState.PRUNED:
        return t.user_attrs.get("pruned_reason", "pruned")
    if t.number in retry_of:
        return f"its worker stopped (no heartbeat); retried as #{retry_of[t.number]}"
    return t.user_attrs.get("fail_reason", "failed (no reason recorded)")


def _header(study: optuna.Study, s: StudySettings, storage: str) -> list[str]:
    goal = f"maximize {s.metric}" if s.objective == "single" else f"{s.metric} vs GFLOPs (NSGA-II Pareto set)"
    budget = f", GFLOPs <= {s.gflops_budget:g}" if s.gflops_budget is not None else ""
    trials = study.get_trials(deepcopy=False)
    states = {st: sum(counts(t) and t.state == st for t in trials) for st in TrialState}
    retries = sum(is_retry(t) for t in trials)
    return [
        f"study {study.study_name} ({storage})",
        f"task {s.task}, neck {s.neck}, space {s.space['name']} "
        f"({s.space['rule']}, phis {','.join(map(str, s.phis))}), "
        f"objective {s.objective}: {goal}{budget}; {s.train['epochs']} epoch(s) on {s.data}, seed {s.seed}",
        f"{sum(counts(t) for t in trials)} trial(s): {states[TrialState.COMPLETE]} complete, "
        f"{states[TrialState.PRUNED]} pruned, {states[TrialState.FAIL]} failed, {states[TrialState.RUNNING]} running"
        + (f"; {retries} retry copy(ies) of trials whose worker died" if retries else ""),
    ]


def print_report(study: optuna.Study, storage: str, console: Console) -> None:
    """The study's settings, its best coefficients or Pareto set, and its unfinished trials with reasons."""
    s = settings_of(study)
    for line in _header(study, s, storage):
        console.print(line, highlight=False, markup=False)
    best = best_trials(study)
    names = list(s.space["search"])
    multi = s.objective == "multi"
    title = "Pareto set (accuracy vs GFLOPs)" if multi else f"best trials by {s.metric}"
    table = Table("trial", s.metric, "GFLOPs", *names, title=title if best else None)
    for t in best[: None if multi else TOP_ROWS]:
        c = t.user_attrs["coefficients"]
        table.add_row(
            f"#{t.number}", f"{t.values[0]:.4f}", f"{t.user_attrs['gflops']:.4f}", *(_fmt(c[n]) for n in names)
        )
    if best:
        console.print(table)
        ref = f"study:{study.study_name}" + (f"#{best[0].number}" if multi and len(best) > 1 else "")
        console.print(f"apply: archbench run --neck {s.neck} --scaling {ref} --phi 0..3", highlight=False, markup=False)
    else:
        console.print("no completed trial yet", highlight=False)
    trials = study.get_trials(deepcopy=False)
    retry_of = {stale: t.number for t in trials if (stale := continues(t)) is not None}
    for t in trials:
        if t.state in (TrialState.PRUNED, TrialState.FAIL):
            word = "pruned" if t.state == TrialState.PRUNED else "failed"
            console.print(f"{word:7} #{t.number}: {_reason(t, retry_of)}", highlight=False, markup=False)


def stored_study(name: str, storage: str | None, results: Path) -> tuple[optuna.Study, str]:
    """An existing study in ``storage`` (default: RESULTS/search.db) and that storage's URL without its password."""
    url = storage or default_storage_url(results)
    return load_study(open_storage(url, create=False), name), redact(url)


def report(study_name: str, storage: str | None, results: Path, console: Console) -> None:
    """Print what a study found (``archbench search --report``)."""
    study, url = stored_study(study_name, storage, results)
    print_report(study, url, console)


def study_rule(ref: str, storage: str | None, results: Path) -> ParametricRule:
    """The rule ``study:NAME[#TRIAL]`` stands for: the chosen trial's coefficients, named ``study:NAME#K``."""
    name, number = parse_study_ref(ref)
    return trial_rule(stored_study(name, storage, results)[0], number)
