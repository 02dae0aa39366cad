"""What a topology search hands its user: the front as a table and a plot (the reference graphs on the same axes),
and the Pareto-optimal graphs as spec files with drawings, under ``RESULTS/search/<study>/front/``.

Every trial keeps its graph as a spec in its user attributes, so any machine that reaches the study's storage can
export, not only the worker that trained it. An exported spec is the file the trial trained (same name, same spec
hash): ``archbench run`` with the command written beside it trains the trial's configuration again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported: figures are files, never windows
import matplotlib.pyplot as plt
import optuna
import pandas as pd
from matplotlib.ticker import FormatStrFormatter
from optuna.trial import TrialState

from archbench.files import atomic_write, atomic_write_text
from archbench.search.report import best_trials, is_topology
from archbench.search.study import COSTS, REFERENCE_ATTR, StudySettings, settings_of
from archbench.spec import NeckSpec, dump_yaml
from archbench.spec.draw import draw_spec
from archbench.spec.graph import network_key
from archbench.spec.loader import parse_spec, require_valid
from archbench.spec.terms import Terms
from archbench.train.trainer import TrainConfig

FRONT_DIR = "front"


@dataclass(frozen=True)
class FrontFiles:
    """What :func:`export_front` wrote: the table, the plot, and per Pareto-optimal graph its spec and drawing."""

    table: Path
    plot: Path
    specs: list[Path]
    drawings: list[Path]


def trial_spec(trial: optuna.trial.FrozenTrial) -> NeckSpec:
    """The graph a topology trial trained, from its user attributes."""
    return require_valid(*parse_spec(trial.user_attrs["spec"], f"trial #{trial.number}"), f"#{trial.number}")


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per complete trial: its number, metric, cost, GFLOPs, parameters, graph, spec hash, network
    (``spec.graph.network_key`` of its graph: one per network, whatever the node names), reference name and whether
    it is on the front (the Pareto set; single objective: the best trial)."""
    s = settings_of(study)
    front = {t.number for t in best_trials(study)[: None if s.objective == "multi" else 1]}
    networks: dict[str, str] = {}  # spec hash -> network key: each graph is parsed once
    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        spec_hash = t.user_attrs["spec_hash"]
        if spec_hash not in networks:
            networks[spec_hash] = network_key(trial_spec(t))
        rows.append(
            {
                "trial": t.number,
                s.metric: t.values[0],
                COSTS[s.cost]: t.values[1] if s.objective == "multi" else t.user_attrs["gflops"],
                "gflops": t.user_attrs["gflops"],
                "params": t.user_attrs["params"],
                "graph": t.user_attrs["graph"],
                "spec_hash": spec_hash,
                "network": networks[spec_hash],
                "reference": t.user_attrs.get(REFERENCE_ATTR, ""),
                "on_front": t.number in front,
            }
        )
    columns = [
        "trial", s.metric, COSTS[s.cost], "gflops", "params", "graph", "spec_hash", "network", "reference", "on_front"
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns).astype({"on_front": bool})  # a mask even when empty


def protocol_flags(s: StudySettings) -> list[str]:
    """The ``archbench run`` flags that train as the study's trials trained (task, preset, phis, seed, data,
    schedule and training settings that differ from the task's defaults, terms), so that a run of the same neck has
    a trial's configuration hash."""
    defaults = TrainConfig.for_task(s.task).to_dict()
    flags = ["--task", s.task, "--preset", s.space["preset"], "--phi", ",".join(map(str, s.phis))]
    flags += ["--seeds", str(s.seed), "--data", s.data]
    for key in ("epochs", "batch_size", "lr"):
        if s.train[key] != defaults.get(key):
            flags += [f"--{key.replace('_', '-')}", str(s.train[key])]
    if s.subset is not None:
        flags += ["--subset", str(s.subset)]
    return flags + (Terms(**s.terms).cli_flags() if s.terms else [])


def rerun_command(s: StudySettings, spec_file: Path) -> str:
    """The ``archbench run`` command that trains ``spec_file`` as the study's trials trained it."""
    return " ".join(["archbench", "run", "--neck", str(spec_file), *protocol_flags(s)])


def _plot(table: pd.DataFrame, s: StudySettings, title: str, out: Path) -> Path:
    cost = COSTS[s.cost]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(table[cost], table[s.metric], s=14, color="#bbbbbb", label="trials")
    front = table[table.on_front].sort_values(cost)
    ax.step(front[cost], front[s.metric], where="post", color="black", lw=1.2, marker="o", ms=5, label="front")
    references = table[table.reference != ""]
    ax.scatter(
        references[cost], references[s.metric], marker="*", s=120, color="#d62728", zorder=3, label="reference graphs"
    )
    for _, row in references.iterrows():
        ax.annotate(row.reference, (row[cost], row[s.metric]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    log = s.cost != "latency" and not table.empty  # a log axis needs data (a study may have no complete trial)
    ax.set_xlabel(cost + (" (log)" if log else ""))
    if log:
        ax.set_xscale("log")
        plain = FormatStrFormatter("%g")  # 0.057, not 5.7x10^-2
        ax.xaxis.set_major_formatter(plain)
        if table[cost].max() < 10 * table[cost].min():  # within a decade: label the minor ticks too
            ax.xaxis.set_minor_formatter(plain)
    ax.set_ylabel(s.metric)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return out


def export_front(study: optuna.Study, study_folder: Path) -> FrontFiles:
    """Write the front of a topology study under ``study_folder/front/``: ``trials.csv`` (every complete trial),
    ``front.png``, and per graph on the front ``<graph>.yaml`` (with its re-run command as a comment) and
    ``<graph>.png``, one per network (the first trial's graph where several names reach one). The folder is the
    export's own: a spec or drawing of a graph that has left the front since the last export is removed, so the
    folder always holds the front as it stands."""
    s = settings_of(study)
    if not is_topology(s):
        raise ValueError(f"study {study.study_name!r} searches scaling coefficients, not graphs")
    folder = Path(study_folder) / FRONT_DIR
    table = trials_table(study)
    table_path = atomic_write_text(folder / "trials.csv", table.to_csv(index=False, float_format="%.6g"))
    title = f"{study.study_name}: {s.metric} vs {COSTS[s.cost]}, {len(table)} complete trials, seed {s.seed}"
    plot = _plot(table, s, title, folder / "front.png")
    by_number = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    specs, drawings = [], []
    for number in table[table.on_front].sort_values("trial").drop_duplicates("network").trial:
        spec = trial_spec(by_number[number])
        path = folder / f"{spec.name}.yaml"
        header = f"# re-train as trial #{number} of study {study.study_name} trained it:\n# {rerun_command(s, path)}\n"
        specs.append(atomic_write_text(path, header + dump_yaml(spec)))
        drawings.append(draw_spec(spec, folder / f"{spec.name}.png"))
    current = {p.name for p in (table_path, plot, *specs, *drawings)}
    for old in folder.glob("*"):
        if old.suffix in (".yaml", ".png") and old.name not in current:
            old.unlink()
    return FrontFiles(table_path, plot, specs, drawings)
