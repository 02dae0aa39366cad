"""archbench search over neck graphs (a topology space) in one process on tiny data: the reference graphs first,
one training per graph, infeasible points as pruned trials, the exported front, and bad input."""

from __future__ import annotations

import shlex

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from archbench.runs.records import load_records
from archbench.search.study import REFERENCE_ATTR, SETTINGS_ATTR

from helpers import run_cli
from searchkit import load, make_tiny_data, topology_args, write_space, write_topology_space


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return make_tiny_data(tmp_path_factory.mktemp("topology") / "data")


def test_references_come_first_a_graph_trains_once_and_the_exported_front_retrains_to_the_same_ap(data, tmp_path):
    results, space = tmp_path / "r", write_topology_space(tmp_path)
    args = topology_args(data, results, space, "t", 4, "--objective", "multi", "--population", "2")
    res = run_cli(*args, "--sampler-seed", "0")
    assert res.returncode == 0, res.stderr
    study = load(results, "t")
    assert study.metric_names == ["AP", "GFLOPs"]
    trials = study.trials
    assert [t.user_attrs.get(REFERENCE_ATTR) for t in trials[:2]] == ["a", "b"]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    rejected = [t for t in trials if t.state == TrialState.PRUNED]  # a point whose F3 no path reaches
    assert len(complete) + len(rejected) == 4
    assert all("[empty-output]" in t.user_attrs["pruned_reason"] for t in rejected)
    a, b = trials[:2]
    assert a.user_attrs["graph"] == b.user_attrs["graph"] and a.values == b.values  # one graph ...
    records = load_records(results / "search" / "t")
    assert len(records) == len({t.user_attrs["spec_hash"] for t in complete})  # ... trained once, as every graph
    assert {r.spec_hash for r in records} == {t.user_attrs["spec_hash"] for t in complete}

    assert "Pareto set (AP vs GFLOPs)" in res.stdout and a.user_attrs["graph"] in (res.stdout + res.stderr)
    front = results / "search" / "t" / "front"
    table = pd.read_csv(front / "trials.csv")
    assert sorted(table.trial) == [t.number for t in complete] and (front / "front.png").stat().st_size > 0
    specs = sorted(front.glob("*.yaml"))
    assert specs and {p.stem for p in specs} == set(table[table.on_front].graph)
    assert all((front / f"{p.stem}.png").is_file() for p in specs)
    left = [front / "t-00000000.yaml", front / "t-00000000.png"]  # a graph an earlier export put on the front
    for path in left:
        path.write_text("# on the front once\n")
    assert run_cli("search", "--report", "--study", "t", "--results", str(results)).returncode == 0
    assert not any(p.exists() for p in left) and sorted(front.glob("*.yaml")) == specs

    spec = specs[0]
    assert run_cli("specs", "validate", str(spec)).returncode == 0
    command = spec.read_text().splitlines()[1].removeprefix("# ")
    again = tmp_path / "again"
    retrained = run_cli(*shlex.split(command)[1:], "--threads", "1", "--results", str(again))
    assert retrained.returncode == 0, retrained.stderr
    (record,) = load_records(again)
    trial = next(t for t in complete if t.user_attrs["graph"] == spec.stem)
    original = next(r for r in records if r.spec_hash == trial.user_attrs["spec_hash"])
    assert record.config_hash == original.config_hash and record.metrics["AP"] == trial.values[0]


def test_an_infeasible_point_is_a_pruned_trial_with_the_rule_it_broke(data, tmp_path):
    results, space = tmp_path / "r", write_topology_space(tmp_path)
    args = topology_args(data, results, space, "inf", 1)
    assert run_cli(*args).returncode == 0  # the study exists with its first reference
    point = {"F1-F2": "top_down", "F1-F3": "none", "F2-F3": "none"}
    load(results, "inf").enqueue_trial(point)
    res = run_cli(*topology_args(data, results, space, "inf", 3))  # the enqueued point, and reference b
    assert res.returncode == 0, res.stderr
    trials = load(results, "inf").trials
    (infeasible,) = [t for t in trials if t.params == point]
    assert infeasible.state == TrialState.PRUNED
    assert "[empty-output] no path reaches F3" in infeasible.user_attrs["pruned_reason"]
    assert len(load_records(results / "search" / "inf")) == 1  # nothing trained for it (b is a's graph)
    assert f"pruned  #{infeasible.number}: [empty-output]" in res.stdout

    # a study with no complete trial yet still reports, and exports an empty front
    stored = load(results, "inf")
    empty = optuna.create_study(study_name="none-yet", storage=stored._storage, directions=["maximize"])
    empty.set_user_attr(SETTINGS_ATTR, stored.user_attrs[SETTINGS_ATTR])
    report = run_cli("search", "--report", "--study", "none-yet", "--results", str(results))
    assert report.returncode == 0 and "no completed trial yet" in report.stdout, report.stderr
    assert pd.read_csv(results / "search" / "none-yet" / "front" / "trials.csv").empty


@pytest.mark.parametrize(
    "args, message",
    [
        (["--neck", "bifpn"], "is a topology space, whose trials are neck graphs (pyramid_paths); drop --neck"),
        (["--objective", "single", "--cost", "params"], "--cost params: a single-objective study has no cost axis"),
    ],
)
def test_a_topology_search_refuses_bad_flags_before_any_study(data, tmp_path, args, message):
    results = tmp_path / "r"
    res = run_cli(*topology_args(data, results, write_topology_space(tmp_path), "bad", 1), *args)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr
    assert not (results / "search.db").exists()


def test_a_scaling_space_without_a_neck_and_a_malformed_topology_space_are_refused(data, tmp_path):
    results = tmp_path / "r"
    res = run_cli(*topology_args(data, results, write_space(tmp_path), "s", 1))
    assert res.returncode == 2 and "is a scaling space: say which neck it scales with --neck" in res.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(write_topology_space(tmp_path).read_text().replace("pyramids: 3", "pyramids: many"))
    res = run_cli(*topology_args(data, results, broken, "s", 1))
    assert res.returncode == 2 and "field 'pyramids'" in res.stderr and "[wrong-type]" in res.stderr
    assert not (results / "search.db").exists()
