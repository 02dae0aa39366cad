"""What a study found: the best points (single objective) or the Pareto set (multi), coefficients or graphs, and
every trial that did not complete with its reason; plus the rule of a chosen trial for ``run --scaling``.
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
from archbench.search.study import (
    COSTS,
    REFERENCE_ATTR,
    StudySettings,
    continues,
    counts,
    is_retry,
    load_study,
    settings_of,
)

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
        s = settings_of(study)
        choices = ", ".join(
            f"#{t.number} ({s.metric} {t.values[0]:.4f}, {t.values[1]:.4g} {COSTS[s.cost]})" for t in best
        )
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
    cost = COSTS[s.cost]
    goal = f"maximize {s.metric}" if s.objective == "single" else f"{s.metric} vs {cost} (NSGA-II Pareto set)"
    budget = f", GFLOPs <= {s.gflops_budget:g}" if s.gflops_budget is not None else ""
    trials = study.get_trials(deepcopy=False)
    states = {st: sum(counts(t) and t.state == st for t in trials) for st in TrialState}
    retries = sum(is_retry(t) for t in trials)
    space, phis = s.space, ",".join(map(str, s.phis))
    if is_topology(s):
        what = (
            f"task {s.task}, topology space {space['name']} ({space['graph']} graphs over {space['base']}'s settings, "
            f"preset {space['preset']}, phis {phis})"
        )
    else:
        what = f"task {s.task}, neck {s.neck}, space {space['name']} ({space['rule']}, phis {phis})"
    return [
        f"study {study.study_name} ({storage})",
        f"{what}, objective {s.objective}: {goal}{budget}; {s.train['epochs']} epoch(s) on {s.data}, seed {s.seed}",
        f"{sum(counts(t) for t in trials)} trial(s): {states[TrialState.COMPLETE]} complete, "
        f"{states[TrialState.PRUNED]} pruned, {states[TrialState.FAIL]} failed, {states[TrialState.RUNNING]} running"
        + (f"; {retries} retry copy(ies) of trials whose worker died" if retries else ""),
    ]


def is_topology(s: StudySettings) -> bool:
    """Whether the study searches neck graphs (a topology space) rather than a neck's scaling coefficients."""
    return "graph" in s.space


def _table(study: optuna.Study, s: StudySettings, best: list[FrozenTrial]) -> Table:
    multi = s.objective == "multi"
    title = f"Pareto set ({s.metric} vs {COSTS[s.cost]})" if multi else f"best trials by {s.metric}"
    cost = [COSTS[s.cost]] if multi else ["GFLOPs"]
    if is_topology(s):
        table = Table("trial", s.metric, *cost, "graph", "reference", title=title)
        for t in best[: None if multi else TOP_ROWS]:
            value = t.values[1] if multi else t.user_attrs["gflops"]
            reference = t.user_attrs.get(REFERENCE_ATTR, "")
            table.add_row(f"#{t.number}", f"{t.values[0]:.4f}", f"{value:.4g}", t.user_attrs["graph"], reference)
        return table
    names = list(s.space["search"])
    table = Table("trial", s.metric, *cost, *names, title=title)
    for t in best[: None if multi else TOP_ROWS]:
        c = t.user_attrs["coefficients"]
        value = t.values[1] if multi else t.user_attrs["gflops"]
        table.add_row(f"#{t.number}", f"{t.values[0]:.4f}", f"{value:.4g}", *(_fmt(c[n]) for n in names))
    return table


def print_report(study: optuna.Study, storage: str, console: Console) -> None:
    """The study's settings, its best points or Pareto set, and its unfinished trials with reasons."""
    s = settings_of(study)
    for line in _header(study, s, storage):
        console.print(line, highlight=False, markup=False)
    best = best_trials(study)
    if best:
        console.print(_table(study, s, best))
        if not is_topology(s):
            multi = s.objective == "multi"
            ref = f"study:{study.study_name}" + (f"#{best[0].number}" if multi and len(best) > 1 else "")
            console.print(
                f"apply: archbench run --neck {s.neck} --scaling {ref} --phi 0..3", highlight=False, markup=False
            )
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


def report(study_name: str, storage: str | None, results: Path, console: Console) -> optuna.Study:
    """Print what a study found (``archbench search --report``); returns the study."""
    study, url = stored_study(study_name, storage, results)
    print_report(study, url, console)
    return study


def study_rule(ref: str, storage: str | None, results: Path) -> ParametricRule:
    """The rule ``study:NAME[#TRIAL]`` stands for: the chosen trial's coefficients, named ``study:NAME#K``."""
    name, number = parse_study_ref(ref)
    study = stored_study(name, storage, results)[0]
    if is_topology(settings_of(study)):
        raise UserError(
            f"--scaling {ref}: study {name!r} searched neck graphs, not scaling coefficients; train one of its "
            f"graphs with --neck {results}/search/{name}/front/GRAPH.yaml (archbench search --report --study {name})"
        )
    return trial_rule(study, number)
