"""Compare two runs of one topology search (another sampler seed): does the same kind of graph win?

    python scripts/compare_searches.py --study opanas_paths-efficientdet --study opanas_paths-efficientdet-sampler1

Both studies must be one search's settings (space, protocol, objective) with other sampler seeds. The reference
trials are left out of everything below: both studies queue the same ones and train them alike, so they
would make any two searches look alike. Per study it states the complete trials, the graphs on the front and the
best graph by AP; between the two:

- the networks both trained and the front networks they share (same ``spec.graph.network_key``, whatever the node
  names), with the Jaccard index of the two fronts;
- where each study's best network stands in the other: its rank by AP among the other's networks and whether it is
  on the other's front, or that the other never trained it (one network is often reached by several points of a
  space, so two best graphs whose choices differ can still be one network);
- the best graphs' choices: how many parameters differ, against the number two independent uniform draws from the
  space differ in on average (sum over parameters of 1 - 1/choices);
- per parameter, the modal choice among each study's top ``--top`` graphs by AP (default the top tenth, at least
  5) with its share, and whether the two agree, against the agreements expected by chance (sum of 1/choices).

It writes RESULTS/REPEAT-<first study>.md (derived: regenerate it, do not edit it) and prints it. Nothing trains.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from driving import ROOT
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from archbench.files import atomic_write_text
from archbench.search.front import trials_table
from archbench.search.report import stored_study
from archbench.search.study import StudySettings, settings_of


@dataclass(frozen=True)
class Search:
    """One study's complete non-reference trials (``trials_table`` columns plus one column per parameter), its
    settings, and the number of choices of every parameter."""

    name: str
    table: pd.DataFrame
    settings: StudySettings
    choices: dict[str, int]

    @property
    def metric(self) -> str:
        return self.settings.metric

    def top(self, k: int) -> pd.DataFrame:
        """The ``k`` distinct networks of highest AP (one reached by several points or names counts once)."""
        return (
            self.table.sort_values([self.metric, "trial"], ascending=[False, True]).drop_duplicates("network").head(k)
        )

    @property
    def best(self) -> pd.Series:
        return self.top(1).iloc[0]


def load_search(name: str, storage: str | None, results: Path) -> Search:
    """Study ``name`` of the storage (default RESULTS/search.db) as a :class:`Search`."""
    study, _ = stored_study(name, storage, results)
    table = trials_table(study)
    trials = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    params = pd.DataFrame([{"trial": n, **t.params} for n, t in trials.items()] or {"trial": []})
    choices = {
        p: len(d.choices)
        for t in trials.values()
        for p, d in t.distributions.items()
        if isinstance(d, CategoricalDistribution)
    }
    table = table[table.reference == ""].merge(params, on="trial")
    return Search(name, table, settings_of(study), choices)


def default_top(a: Search, b: Search) -> int:
    """A tenth of the smaller study's networks, at least 5."""
    return max(5, min(a.table.network.nunique(), b.table.network.nunique()) // 10)


def modal_choices(search: Search, params: list[str], k: int) -> pd.DataFrame:
    """Per parameter (index), the most frequent choice among ``search``'s top ``k`` graphs and its share."""
    top = search.top(k)
    rows = {}
    for p in params:
        counts = top[p].value_counts()
        rows[p] = {"choice": counts.index[0], "share": counts.iloc[0] / len(top)}
    return pd.DataFrame.from_dict(rows, orient="index")


def standing(network: str, search: Search) -> str:
    """Where ``network`` stands in ``search``: its graph, its rank by AP among the study's networks and whether it
    is on the front, or that the study never trained it."""
    networks = search.top(len(search.table))
    if network not in set(networks.network):
        return f"never trained by {search.name}"
    rank = list(networks.network).index(network)
    row = networks.iloc[rank]
    front = network in set(search.table.network[search.table.on_front])
    return (
        f"trained by {search.name} as {row.graph}: rank {rank + 1} of {len(networks)} networks by {search.metric}, "
        f"{'on' if front else 'off'} its front"
    )


def compare(a: Search, b: Search, k: int) -> dict:
    """The numbers of the comparison (see the module docstring)."""
    if a.settings != b.settings:
        raise SystemExit(f"{a.name} and {b.name} are not one search's settings: compare repeats of one search")
    params = sorted(set(a.choices) & set(b.choices))  # a choice no trial of a study drew is not compared
    front_a, front_b = set(a.table.network[a.table.on_front]), set(b.table.network[b.table.on_front])
    modes = modal_choices(a, params, k).merge(
        modal_choices(b, params, k), left_index=True, right_index=True, suffixes=("_a", "_b")
    )
    modes["same"] = modes.choice_a == modes.choice_b
    return {
        "params": params,
        "trained_shared": len(set(a.table.network) & set(b.table.network)),
        "front_shared": len(front_a & front_b),
        "front_jaccard": len(front_a & front_b) / len(front_a | front_b) if front_a | front_b else float("nan"),
        "best_a_in_b": standing(a.best.network, b),
        "best_b_in_a": standing(b.best.network, a),
        "best_differ": sum(a.best[p] != b.best[p] for p in params),
        "random_differ": sum(1 - 1 / a.choices[p] for p in params),
        "modes": modes,
        "modes_agree": int(modes.same.sum()),
        "chance_agree": sum(1 / a.choices[p] for p in params),
    }


def describe(a: Search, b: Search, k: int) -> str:
    """The comparison as Markdown."""
    c = compare(a, b, k)
    m = a.metric

    def per_study(label: str, value) -> str:
        return f"| {label} | {value(a)} | {value(b)} |"

    lines = [
        f"# Repeat search: {a.name} against {b.name}",
        "",
        "Derived by scripts/compare_searches.py from the two studies (reference trials left out): regenerate it, "
        "do not edit it.",
        "",
        f"| | {a.name} | {b.name} |",
        "|---|---|---|",
        per_study("complete trials", lambda s: len(s.table)),
        per_study("distinct networks", lambda s: s.table.network.nunique()),
        per_study("networks on the front", lambda s: s.table[s.table.on_front].network.nunique()),
        per_study("best graph by " + m, lambda s: f"{s.best.graph} ({m} {s.best[m]:.4f}, {s.best.gflops:.4f} GFLOPs)"),
        "",
        f"Networks trained by both: {c['trained_shared']}. Front networks in both: {c['front_shared']} (Jaccard "
        f"{c['front_jaccard']:.2f}). {a.name}'s best network "
        f"({a.best.graph}): {c['best_a_in_b']}. {b.name}'s best network ({b.best.graph}): {c['best_b_in_a']}.",
        "",
        f"The best graphs differ in "
        f"{c['best_differ']} of {len(c['params'])} choices; two independent uniform draws from the space differ in "
        f"{c['random_differ']:.1f} on average.",
        "",
        f"Modal choice among each study's top {k} graphs by {m}: the two agree on {c['modes_agree']} of "
        f"{len(c['params'])} parameters, against {c['chance_agree']:.1f} expected by chance.",
        "",
        f"| parameter | {a.name} (share) | {b.name} (share) | same |",
        "|---|---|---|---|",
    ]
    for p, row in c["modes"].iterrows():
        lines.append(
            f"| {p} | {row.choice_a} ({row.share_a:.0%}) | {row.choice_b} ({row.share_b:.0%}) "
            f"| {'yes' if row.same else ''} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", action="append", required=True, help="a study (give exactly two)")
    parser.add_argument("--results", default="results/topology", help="the searches' results folder (search.db)")
    parser.add_argument("--storage", help="the studies' storage URL (default: RESULTS/search.db)")
    parser.add_argument("--top", type=int, help="graphs per study whose choices are compared (default: a tenth)")
    args = parser.parse_args()
    if len(args.study) != 2:
        parser.error("give --study exactly twice")
    results = ROOT / args.results
    a, b = (load_search(name, args.storage, results) for name in args.study)
    text = describe(a, b, args.top or default_top(a, b))
    atomic_write_text(results / f"REPEAT-{a.name}.md", text)
    print(text)


if __name__ == "__main__":
    main()
