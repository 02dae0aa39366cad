"""scripts/compare_searches.py: whether two runs of one topology search found the same kind of graph."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from scriptkit import load_script

script = load_script("compare_searches")
SETTINGS = SimpleNamespace(metric="AP")  # all the comparison reads of a study's settings, besides equality
CHOICES = {"F1-F2": 3, "F2-F3": 3}  # two parameters of three choices each


def search(name: str, rows: list[tuple[str, float, str, str, bool]], networks: dict | None = None) -> object:
    """A study of (graph, AP, F1-F2, F2-F3, on_front) trials, numbered in order; the spec hash is the graph's name,
    and so is its network unless ``networks`` maps the graph to another."""
    table = pd.DataFrame(rows, columns=["graph", "AP", "F1-F2", "F2-F3", "on_front"])
    table["trial"], table["spec_hash"], table["gflops"] = range(len(table)), table.graph, 0.1
    table["network"] = [(networks or {}).get(g, g) for g in table.graph]
    return script.Search(name, table, SETTINGS, CHOICES)


A = search("a", [("g1", 0.50, "td", "bu", True), ("g2", 0.40, "td", "skip", True), ("g3", 0.10, "bu", "bu", False)])


def test_a_repeat_that_found_the_same_kind_of_graph():
    b = search("b", [("g2", 0.40, "td", "skip", True), ("g4", 0.45, "td", "bu", True), ("g5", 0.2, "bu", "td", False)])
    c = script.compare(A, b, k=2)
    assert c["front_shared"] == 1 and c["front_jaccard"] == pytest.approx(1 / 3)  # g2 of {g1, g2, g4}
    assert c["trained_shared"] == 1
    assert c["best_differ"] == 0  # g1 and g4: other graphs, the same choices
    assert c["random_differ"] == pytest.approx(2 * (1 - 1 / 3)) and c["chance_agree"] == pytest.approx(2 / 3)
    modes = c["modes"]
    assert list(modes.choice_a) == ["td", "bu"] and list(modes.share_a) == [1.0, 0.5]  # top 2 of a: g1, g2
    assert c["modes_agree"] == 2
    text = script.describe(A, b, 2)
    assert "agree on 2 of 2 parameters, against 0.7 expected by chance" in text
    assert "| g1 (AP 0.5000, 0.1000 GFLOPs) | g4 (AP 0.4500, 0.1000 GFLOPs) |" in text


def test_a_graph_reached_twice_counts_once_among_the_top():
    b = search("b", [("g6", 0.6, "bu", "td", True), ("g6", 0.6, "bu", "td", False), ("g7", 0.3, "skip", "skip", 0)])
    modes = script.modal_choices(b, ["F1-F2"], 2)
    assert modes.at["F1-F2", "share"] == 0.5  # g6 once and g7, not g6 twice
    c = script.compare(A, b, k=2)
    assert c["best_differ"] == 2 and c["modes_agree"] == 0 and c["front_shared"] == c["trained_shared"] == 0
    assert c["best_a_in_b"] == "never trained by b"


def test_one_network_under_two_names_counts_once_and_is_shared():
    b = search("b", [("g2b", 0.40, "td", "skip", True), ("g2", 0.40, "td", "skip", False)], networks={"g2b": "g2"})
    assert script.default_top(A, b) == 5 and len(b.top(5)) == 1  # g2 and g2b: one network
    c = script.compare(A, b, k=2)
    assert c["front_shared"] == 1 and c["front_jaccard"] == pytest.approx(1 / 2)  # g2 of {g1, g2}
    assert c["best_b_in_a"] == "trained by a as g2: rank 2 of 3 networks by AP, on its front"  # b's best: g2b = g2
    assert c["best_a_in_b"] == "never trained by b"


def test_studies_of_other_settings_are_refused():
    other = script.Search("b", A.table, SimpleNamespace(metric="mIoU"), CHOICES)
    with pytest.raises(SystemExit, match="not one search's settings"):
        script.compare(A, other, k=2)


def test_a_stored_study_loads_without_its_reference_trials(tmp_path):
    import optuna
    from optuna.distributions import CategoricalDistribution

    from archbench.search.storage import open_storage
    from archbench.search.study import SETTINGS_ATTR, StudySettings
    from archbench.spec import builtin_spec

    settings = StudySettings(
        neck=None, spec_hash=None, space={"name": "tiny", "graph": "pyramid_paths"}, space_digest="d", phis=(0,),
        objective="multi", gflops_budget=None, data="synthetic", subset=None, train={}, seed=0,
    )  # fmt: skip
    study = optuna.create_study(
        storage=open_storage(f"sqlite:///{tmp_path / 'search.db'}"), study_name="s", directions=["maximize", "minimize"]
    )
    study.set_user_attr(SETTINGS_ATTR, settings.to_dict())
    paths = CategoricalDistribution(["td", "bu", "skip"])
    for graph, ap, gflops, path, reference in [("fpn", 0.3, 0.1, "td", "fpn"), ("panet", 0.4, 0.2, "bu", None)]:
        spec = builtin_spec(graph)
        attrs = {"graph": graph, "spec_hash": spec.spec_hash(), "spec": spec.to_dict(), "gflops": gflops, "params": 1.0}
        study.add_trial(
            optuna.trial.create_trial(
                values=[ap, gflops], params={"F1-F2": path}, distributions={"F1-F2": paths},
                user_attrs={**attrs, **({"reference": reference} if reference else {})},
            )
        )  # fmt: skip
    loaded = script.load_search("s", None, tmp_path)
    assert list(loaded.table.graph) == ["panet"] and loaded.table.at[0, "F1-F2"] == "bu"
    assert loaded.choices == {"F1-F2": 3} and loaded.metric == "AP" and bool(loaded.best.on_front)
