"""Topology spaces: the shipped files (NAS-FPN's merge cells, OPANAS's pyramid paths), every point a valid spec,
the published NAS-FPN cell as a point, and every validation rule of a space file."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest
import torch

from archbench.neck.compiler import compile_neck
from archbench.search.graphs.pyramid_paths import PyramidPaths
from archbench.search.graphs.space import TopologySpace
from archbench.search.space_rules import Infeasible, SpaceError
from archbench.search.spaces import load_space
from archbench.spec import builtin_spec, dump_yaml, parse_yaml
from archbench.spec.rules import graph_problems

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
TOPOLOGY = ("nasfpn_cells", "opanas_paths")


def shipped(name: str) -> TopologySpace:
    space = load_space(SPACES / f"{name}.yaml")
    assert isinstance(space, TopologySpace)
    return space


def random_points(space: TopologySpace, n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{k: rng.choice(v) for k, v in space.family.choices().items()} for _ in range(n)]


def test_the_published_nasfpn_cell_is_a_point_of_the_merge_cell_space_node_for_node():
    space = shipped("nasfpn_cells")
    graph = space.spec(space.references["nasfpn"])
    assert graph.nodes == builtin_spec("nasfpn").nodes
    assert graph.spec_hash() == builtin_spec("nasfpn").spec_hash() and space.same_as_builtin("nasfpn")
    # NAS-FPN's rule: the P5 and P7 inputs no cell consumed join the P5 and P7 output cells
    assert graph.node("out5").inputs == ("out3", "out4", "in5") and graph.node("out7").inputs[-1] == "in7"


def test_the_path_space_renders_fpn_panet_and_bifpn_and_says_they_are_renditions():
    space = shipped("opanas_paths")
    assert set(space.references) == {"fpn", "panet", "bifpn"}
    assert not any(space.same_as_builtin(r) for r in space.references)
    fpn, panet, bifpn = (space.spec(space.references[r]) for r in ("fpn", "panet", "bifpn"))
    assert [n.id for n in fpn.nodes] == [f"f2_td1_p{lvl}" for lvl in (7, 6, 5, 4, 3)]  # F4 = F2: no other node
    assert fpn.node("f2_td1_p5").inputs == ("in5", "f2_td1_p6")
    assert panet.node("f3_bu2_p5").inputs == ("f2_td1_p5", "f3_bu2_p4") and len(panet.nodes) == 10
    # BiFPN's rendition: F3 sums the bottom-up path and the skip from the inputs, with no conv
    assert bifpn.node("f3_p5").inputs == ("in5", "f3_bu2_p5") and bifpn.node("f3_p5").op == {"type": "none"}
    assert bifpn.outputs[5] == "f3_p5"


@pytest.mark.parametrize("name", TOPOLOGY)
def test_every_point_is_a_valid_spec_without_dead_nodes_named_by_its_hash(name):
    space = shipped(name)
    names: dict[str, str] = {}
    for point in random_points(space, 400):
        try:
            spec = space.spec(point)
        except Infeasible as exc:
            assert name == "opanas_paths" and str(exc).startswith("[empty-output]")
            continue
        assert graph_problems(spec, name) == []  # no error and no dead-node warning
        digest = spec.spec_hash()
        assert spec.name == f"{name}-{digest[:8]}" and names.setdefault(digest, spec.name) == spec.name
        reloaded, problems = parse_yaml(dump_yaml(spec), "x")
        assert reloaded == spec and problems == []


def test_graphs_that_differ_only_in_paths_no_output_uses_share_one_spec():
    space = shipped("opanas_paths")
    panet = dict(space.references["panet"])
    same = {**panet, "F1-F3": "scale_equalizing", "F3-F4": "skip", "F2-F3": "bottom_up"}
    assert space.spec(same).spec_hash() != space.spec(panet).spec_hash()  # F1 -> F3 reaches F4 through F3
    dead = {**space.references["fpn"], "F1-F3": "scale_equalizing"}  # F3 feeds nothing: left out with its path
    assert space.spec(dead).spec_hash() == space.spec(space.references["fpn"]).spec_hash()


def test_a_point_whose_output_pyramid_no_path_reaches_is_infeasible_with_its_rule():
    space = shipped("opanas_paths")
    point = {k: "none" for k in space.family.choices()} | {"F1-F2": "top_down"}
    with pytest.raises(Infeasible, match=r"\[empty-output\] no path reaches F4"):
        space.spec(point)
    summed = PyramidPaths(space.family.levels, 3, ("top_down", "none"), "sum")
    nodes, outputs = summed.build({"F1-F2": "none", "F1-F3": "top_down", "F2-F3": "none"})
    assert outputs[3] == "f3_td1_p3" and len(nodes) == 5  # output: sum of F2 (empty) and F3 is F3
    with pytest.raises(Infeasible, match="every pyramid F2.. is empty"):
        summed.build(dict.fromkeys(["F1-F2", "F1-F3", "F2-F3"], "none"))


@pytest.mark.parametrize("name", TOPOLOGY)
def test_sampled_graphs_compile_train_every_parameter_and_give_each_level_its_size(name):
    space = shipped(name)
    torch.manual_seed(0)
    points = [*space.references.values(), *random_points(space, 3, seed=1)]
    size = {lvl: -(-72 // 2**lvl) for lvl in range(3, 8)}  # a 72 px image: ceil(72 / stride)
    feats = [torch.randn(2, c, size[lvl], size[lvl]) for c, lvl in ((24, 3), (32, 4), (48, 5))]
    for point in points:
        try:
            spec = space.spec(point)
        except Infeasible:
            continue
        neck = compile_neck(spec, [24, 32, 48], 16, 2)
        ys = neck(feats)
        assert [tuple(y.shape) for y in ys] == [(2, 16, size[lvl], size[lvl]) for lvl in range(3, 8)]
        sum(y.pow(2).mean() for y in ys).backward()
        assert [n for n, p in neck.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(text))
    return path


MERGE = "name: m\ngraph: merge_cells\nbase: nasfpn\nphis: [0]\nmerge_cells: 7\n"
PATHS = "name: p\ngraph: pyramid_paths\nbase: bifpn_sum\nphis: [0]\npyramids: 3\n"


@pytest.mark.parametrize(
    "text, rule, where",
    [
        ("name: x\ngraph: cells\nbase: nasfpn\nphis: [0]\n", "unknown-graph", "field 'graph'"),
        ("name: x\ngraph: merge_cells\nphis: [0]\nmerge_cells: 7\n", "missing-field", "field 'base'"),
        ("name: x\ngraph: merge_cells\nbase: nopenet\nphis: [0]\nmerge_cells: 7\n", "bad-base", "field 'base'"),
        (MERGE + "preset: tiny\n", "unknown-preset", "field 'preset'"),
        (MERGE + "extra: 1\n", "unknown-field", "field 'extra'"),
        (MERGE + "pyramids: 3\n", "unknown-field", "field 'pyramids'"),  # another family's field
        (MERGE.replace("merge_cells: 7", "merge_cells: 4"), "too-few-cells", "field 'merge_cells'"),
        (MERGE + "output_order: [3, 4, 5, 6, 6]\n", "duplicate-level", "field 'output_order'"),
        (MERGE + "output_order: [3, 4, 5, 6]\n", "output-levels", "field 'output_order'"),
        (MERGE + "cell_levels: [2, 3]\n", "level-out-of-range", "field 'cell_levels'"),
        (MERGE + "fuse: [sum, max]\n", "bad-fuse", "field 'fuse'"),
        (MERGE.replace("phis: [0]", "phis: [9]"), "bad-phis", "field 'phis'"),
        (PATHS.replace("pyramids: 3", "pyramids: 1"), "wrong-type", "field 'pyramids'"),
        (PATHS + "paths: [top_down, sideways]\n", "bad-paths", "field 'paths'"),
        (PATHS + "paths: [skip, none]\n", "no-conv-path", "field 'paths'"),
        (PATHS + "output: mean\n", "bad-value", "field 'output'"),
        (PATHS + "references: {r: {F1-F2: top_down}}\n", "incomplete-reference", "field 'references.r'"),
        (
            PATHS + "references: {r: {F1-F2: top_down, F1-F3: diagonal, F2-F3: skip}}\n",
            "bad-choice",
            "field 'references.r.F1-F3'",
        ),
        (
            PATHS + "references: {r: {F1-F2: top_down, F1-F3: none, F2-F3: none, F9-F3: skip}}\n",
            "unknown-param",
            "field 'references.r.F9-F3'",
        ),
        (
            PATHS + "references: {r: {F1-F2: top_down, F1-F3: none, F2-F3: none}}\n",
            "infeasible-reference",
            "no path reaches F3",
        ),
    ],
)
def test_bad_topology_space_names_file_field_and_rule(tmp_path, text, rule, where):
    path = write(tmp_path, text)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = info.value.message
    assert str(path) in message and f"[{rule}]" in message and where in message, message


def test_a_base_spec_file_is_found_beside_the_space_and_its_levels_must_match_the_preset(tmp_path):
    base = builtin_spec("bifpn_sum", levels=(3, 4, 5, 6))
    (tmp_path / "base4.yaml").write_text(dump_yaml(base))
    path = write(tmp_path, PATHS.replace("base: bifpn_sum", "base: base4.yaml"))
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert "[bad-phis]" in info.value.message and "levels [3, 4, 5, 6]" in info.value.message


def test_a_point_that_is_an_earlier_trials_network_trains_that_trials_graph():
    from types import SimpleNamespace

    from archbench.search.objective import SearchObjective

    space = shipped("opanas_paths")
    none = {f"F{i}-F{j}": "none" for i in range(1, 4) for j in range(i + 1, 5)}
    copy = {**none, "F1-F2": "top_down", "F2-F3": "skip"}
    first = space.spec({**copy, "F2-F4": "bottom_up", "F3-F4": "scale_equalizing"})
    again = space.spec({**copy, "F2-F4": "scale_equalizing", "F3-F4": "bottom_up"})  # the same network
    other = space.spec({**copy, "F2-F4": "bottom_up", "F3-F4": "top_down"})

    def trial(number, spec):
        return SimpleNamespace(number=number, user_attrs={"spec_hash": spec.spec_hash(), "spec": spec.to_dict()})

    writing = SimpleNamespace(number=3, user_attrs={"spec_hash": "0123456789abcdef"})  # its spec not written yet
    trials = [trial(0, other), trial(1, first), SimpleNamespace(number=2, user_attrs={}), writing]  # 2, 3 running
    study = SimpleNamespace(get_trials=lambda deepcopy: trials)
    worker = SimpleNamespace(networks={})
    assert SearchObjective.same_network(worker, study, again).spec_hash() == first.spec_hash()
    assert SearchObjective.same_network(worker, study, other) is other  # its own graph
    assert set(worker.networks) == {other.spec_hash(), first.spec_hash()}  # each stored graph keyed once


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # fail_stale_trials
def test_a_trial_that_reaches_a_run_a_lower_numbered_running_trial_trains_waits_for_its_record(tmp_path):
    import threading
    from types import SimpleNamespace

    import optuna

    from archbench.runs.records import RunRecord
    from archbench.runs.sweep import RunRequest
    from archbench.search.objective import TRAINING_ATTR, SearchObjective

    study = optuna.create_study()
    first, second, third = study.ask(), study.ask(), study.ask()
    prep = SimpleNamespace(hash="h1", req=RunRequest(neck="bifpn", phi=0, seed=0))
    told: list[str] = []
    worker = SimpleNamespace(
        results=tmp_path, poll_s=0.01, _peer_training=SearchObjective._peer_training,
        observer=SimpleNamespace(skipped=lambda label, reason: told.append(reason)),
    )  # fmt: skip

    assert SearchObjective.await_peer(worker, first, prep) is None  # nobody before it: it trains the run
    assert first.user_attrs[TRAINING_ATTR] == "h1"

    def finish_first() -> None:
        RunRecord(task="det", neck="bifpn", phi=0, seed=0, config_hash="h1", status="ok").save(tmp_path)
        study.tell(first, 0.5)

    threading.Timer(0.2, finish_first).start()
    record = SearchObjective.await_peer(worker, third, prep)  # waits for #0, then takes its record
    assert record is not None and record.config_hash == "h1"
    assert told == [f"trial #{first.number} is training this run; waiting for its record"]
    # the lower number trains when two trials name the same run at once; one whose peer made no record trains too
    second.set_user_attr(TRAINING_ATTR, "h2")
    assert SearchObjective._peer_training(third, "h2") == second.number
    assert SearchObjective._peer_training(second, "h2") is None
    study.tell(second, state=optuna.trial.TrialState.FAIL)
    assert SearchObjective.await_peer(worker, third, SimpleNamespace(hash="h2", req=prep.req)) is None


def test_a_trial_that_hits_a_bug_records_it_before_its_worker_stops():
    from types import SimpleNamespace

    import optuna

    from archbench.errors import UserError
    from archbench.search.objective import SearchObjective, TrialFailed

    trial = optuna.create_study().ask()

    def broken(t: optuna.Trial) -> float:
        raise KeyError("spec")

    with pytest.raises(KeyError):
        SearchObjective.__call__(SimpleNamespace(_run=broken), trial)  # type: ignore[arg-type]
    assert trial.user_attrs["fail_reason"] == "internal error, its worker stopped: KeyError: 'spec'"

    # a failed run, a rejected point and bad input keep the reason they carry: none is a bug
    for expected in (TrialFailed("diverged"), optuna.TrialPruned("[empty-output]"), UserError("bad flag")):
        other = trial.study.ask()

        def fails(t: optuna.Trial, exc: Exception = expected) -> float:
            raise exc

        with pytest.raises(type(expected)):
            SearchObjective.__call__(SimpleNamespace(_run=fails), other)  # type: ignore[arg-type]
        assert "fail_reason" not in other.user_attrs
