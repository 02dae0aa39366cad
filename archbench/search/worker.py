"""One ``archbench search`` worker: what it was asked for, its sampler and pruner, and running it on a study.

The worker opens (or joins) the study and runs trials until the study has its total. It prints nothing
itself: it tells a :class:`SearchObserver` what happens (``archbench.cli.progress`` shows it on the terminal).
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.exceptions import ExperimentalWarning

from archbench.errors import UserError
from archbench.runs.layout import study_results
from archbench.search.graphs.space import TopologySpace
from archbench.search.objective import SearchObjective, TrialFailed
from archbench.search.observers import SearchObserver
from archbench.search.space import ScalingSpace
from archbench.search.spaces import Space, load_space
from archbench.search.storage import DEFAULT_HEARTBEAT_S, default_storage_url, open_storage, redact
from archbench.search.study import COSTS, OBJECTIVES, REFERENCE_ATTR, StudySettings, create_or_join, work
from archbench.spec import resolve_spec
from archbench.spec.terms import Terms
from archbench.train.trainer import TrainConfig

PRUNERS = ("median", "hyperband", "none")
#: how often a worker with nothing to start checks on the trials other workers are running
POLL_S = 2.0
_STUDY_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class SearchOptions:
    """What one ``archbench search`` worker was asked for."""

    neck: str | None  # None for a topology space (its trials are the graphs)
    space: Path
    trials: int
    train: TrainConfig
    task: str = "det"
    study: str | None = None
    storage: str | None = None
    phis: tuple[int, ...] | None = None
    objective: str = "single"
    cost: str = "gflops"  # the second objective of a multi-objective study (a key of study.COSTS)
    gflops_budget: float | None = None
    data: str = "synthetic"
    subset: int | None = None
    seed: int = 0
    sampler_seed: int | None = None
    pruner: str | None = None  # None: median for a single objective, none for multi
    population: int = 8
    results: Path = Path("results")
    device: str = "cpu"
    threads: int | None = None
    heartbeat: int = DEFAULT_HEARTBEAT_S
    terms: Terms = Terms()


def make_pruner(name: str | None, objective: str, steps: int) -> optuna.pruners.BasePruner:
    """The pruner; multi-objective studies cannot prune (Optuna's ``should_prune`` does not support them)."""
    if objective == "multi":
        if name not in (None, "none"):
            raise UserError(
                f"--pruner {name}: Optuna cannot prune multi-objective studies (Trial.should_prune does "
                "not support them); drop --pruner or use --objective single"
            )
        return optuna.pruners.NopPruner()
    name = name or "median"
    if name not in PRUNERS:
        raise UserError(f"--pruner {name!r}: choose one of {', '.join(PRUNERS)}")
    if name == "median":  # no decision before 3 trials have finished, nor at a trial's first epoch
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(steps, 1))
    return optuna.pruners.NopPruner()


def make_sampler(objective: str, seed: int | None, population: int) -> optuna.samplers.BaseSampler:
    """TPE (multivariate, constant liar so parallel workers avoid each other's running points) or NSGA-II."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        if objective == "single":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)


def _check(opts: SearchOptions) -> None:
    if opts.objective not in OBJECTIVES:
        raise UserError(f"--objective {opts.objective!r}: choose single or multi")
    if opts.trials < 1:
        raise UserError(f"--trials {opts.trials}: at least 1")
    if opts.study is not None and not _STUDY_NAME.match(opts.study):
        raise UserError(f"--study {opts.study!r}: use letters, digits, '_', '.' or '-'")
    if opts.gflops_budget is not None and opts.gflops_budget <= 0:
        raise UserError(f"--gflops-budget {opts.gflops_budget}: must be positive")
    if opts.objective == "multi" and opts.population < 2:
        raise UserError(f"--population {opts.population}: NSGA-II needs at least 2")
    if opts.cost not in COSTS:
        raise UserError(f"--cost {opts.cost!r}: choose one of {', '.join(COSTS)}")
    if opts.cost != "gflops" and opts.objective == "single":
        raise UserError(f"--cost {opts.cost}: a single-objective study has no cost axis; add --objective multi")


def _check_neck(neck: str | None, space: Space, source: Path) -> None:
    """A scaling space scales a neck (--neck needed); a topology space searches the neck itself (--neck refused)."""
    if isinstance(space, TopologySpace) and neck is not None:
        raise UserError(
            f"--neck {neck}: {source} is a topology space, whose trials are neck graphs ({space.family.kind}); "
            "drop --neck"
        )
    if isinstance(space, ScalingSpace) and neck is None:
        raise UserError(f"{source} is a scaling space: say which neck it scales with --neck")


def default_study_name(neck: str | None, space: Path, task: str = "det", terms: Terms = Terms()) -> str:
    """``NECK-SPACE`` for a scaling space, ``SPACE`` for a topology space (det, native terms), with ``-TASK`` for
    another task and ``-TERMS`` under equal terms: the study a search uses unless ``--study`` names one."""
    name = load_space(space).name if neck is None else f"{resolve_spec(neck).name}-{load_space(space).name}"
    name += "" if task == "det" else f"-{task}"
    return name + ("" if terms.native else f"-{terms.label}")


def enqueue_references(study: optuna.Study, space: TopologySpace, target: int) -> None:
    """Queue the space's reference graphs (as many as the study's ``target`` allows) as its first trials, once: a
    point the study already holds, queued or tried, is not queued again."""
    for name, point in list(space.references.items())[:target]:
        study.enqueue_trial(point, user_attrs={REFERENCE_ATTR: name}, skip_if_exists=True)


def run_search(opts: SearchOptions, observer: SearchObserver | None = None) -> optuna.Study:
    """Work on the study until it has ``opts.trials`` finished trials in total, telling ``observer``; returns it."""
    _check(opts)
    observer = observer or SearchObserver()
    space = load_space(opts.space)
    _check_neck(opts.neck, space, opts.space)
    if opts.phis is not None:
        space = space.at_phis(opts.phis)
    spec = resolve_spec(opts.neck) if opts.neck is not None else None
    if spec is not None and opts.terms.overrides:
        spec = spec.with_overrides(**opts.terms.overrides)  # the topology the trials train
    name = opts.study or default_study_name(opts.neck, opts.space, opts.task, opts.terms)
    settings = StudySettings(
        neck=spec.name if spec is not None else None,
        spec_hash=spec.spec_hash() if spec is not None else None,
        space=space.to_dict(),
        space_digest=space.digest(),
        phis=space.phis,
        objective=opts.objective,
        gflops_budget=opts.gflops_budget,
        data=opts.data,
        subset=opts.subset,
        train=opts.train.to_dict(),
        seed=opts.seed,
        population=opts.population if opts.objective == "multi" else None,
        task=opts.task,
        terms=None if opts.terms.native else {"protocol": opts.terms.protocol, "overrides": dict(opts.terms.overrides)},
        init="per_part",
        cost=opts.cost,
    )
    pruner = make_pruner(opts.pruner, opts.objective, opts.train.epochs * len(space.phis))
    url = opts.storage or default_storage_url(opts.results)
    objective = SearchObjective(
        name,
        opts.neck,
        settings,
        space,
        study_results(opts.results, name),
        opts.trials,
        observer.runs,
        opts.device,
        opts.threads,
        tags={"space": space.name, "storage": redact(url)},
        poll_s=min(POLL_S, opts.heartbeat),
    )
    objective.preflight()
    storage = open_storage(url, opts.heartbeat)
    optuna.logging.set_verbosity(logging.ERROR)  # the observer shows the study and each trial's outcome instead
    study = create_or_join(
        storage, name, settings, make_sampler(opts.objective, opts.sampler_seed, opts.population), pruner
    )
    if isinstance(space, TopologySpace):
        enqueue_references(study, space, opts.trials)
    observer.opened(name, redact(url), len(study.trials))
    with observer, warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        work(
            study,
            objective,
            opts.trials,
            catch=(TrialFailed,),
            callbacks=[observer.trial_finished],
            on_wait=observer.waiting,
            poll_s=objective.poll_s,
        )
    return study
