"""scripts/verify_search.py: which graphs of a search's front it re-trains, and which rivals beside them."""

from __future__ import annotations

import pandas as pd

from scriptkit import load_script


def test_the_graphs_picked_span_the_fronts_cost_range():
    script = load_script("verify_search")
    front = pd.DataFrame({"graph": list("abcdefg"), "GFLOPs": [0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.2]})
    assert list(script.pick_graphs(front, 3).graph) == ["a", "d", "g"]  # cheapest, middle, most expensive
    assert list(script.pick_graphs(front, 4).graph) == ["a", "c", "e", "g"]
    assert list(script.pick_graphs(front.head(2), 3).graph) == ["a", "b"]  # a front smaller than k: all of it


def test_rivals_trained_on_another_cpu_model_are_retrained_whole():
    from archbench.runs.records import RunRecord

    script = load_script("verify_search")

    def run(neck: str, phi: int, seed: int, cpu: str | None, epochs: int = 32) -> RunRecord:
        env = {"cpu_model": cpu} if cpu else {}
        return RunRecord(task="det", neck=neck, phi=phi, seed=seed, epochs=epochs, config_hash=f"{neck}{phi}{seed}",
                         status="ok", environment=env)  # fmt: skip

    board = [
        *[run("fpn", 0, s, "Intel") for s in range(4)],  # phi 0 from another machine, four seeds
        *[run("panet", 0, s, "AMD") for s in range(3)],  # phi 0 from this one
        *[run(n, 1, s, "AMD") for n in ("fpn", "panet") for s in range(3)],
        run("bifpn", 0, 0, None),  # a record that names no CPU model counts as another machine's
        run("bifpn", 0, 1, "AMD"),
        run("fpn", 0, 0, "AMD", epochs=8),  # another schedule: not the tier compared
        run("nasfpn", 0, 0, "Intel"),  # not a rival
    ]
    rivals = ["fpn", "panet", "bifpn"]
    assert script.rivals_to_retrain(board, rivals, 0, 32, "AMD") == {
        0: ["bifpn", "fpn"], 1: ["bifpn", "fpn"], 2: ["fpn"], 3: ["fpn"]
    }  # fmt: skip
    assert script.rivals_to_retrain(board, rivals, 1, 32, "AMD") == {}
    assert script.rivals_to_retrain(board, rivals, 0, 8, "Intel") == {0: ["fpn"]}


def test_rival_tests_pair_each_graph_with_each_rival_that_ran():
    script = load_script("verify_search")
    ap = {"g1": [0.62, 0.63, 0.61], "g2": [0.58, 0.60, 0.57], "fpn": [0.60, 0.61, 0.60], "bifpn": [0.59, 0.62, 0.58]}
    rows = pd.DataFrame([{"neck": n, "seed": s, "AP": v} for n, vs in ap.items() for s, v in enumerate(vs)])
    tests = script.rival_tests(rows, ["g1", "g2"], ["fpn", "panet", "bifpn"], "AP")  # panet did not run
    assert list(zip(tests.a, tests.b)) == [("g1", "fpn"), ("g1", "bifpn"), ("g2", "fpn"), ("g2", "bifpn")]
    assert tests.n_pairs.tolist() == [3, 3, 3, 3]
    assert abs(tests.diff_mean.iloc[0] - 0.0166667) < 1e-6  # g1 - fpn, seed by seed
    assert (tests.mdd > tests.diff_mean.abs()).all()  # 3 seeds, Holm over 4 pairs: nothing this small is resolved
    assert not tests.different.any()
    assert script.rival_tests(rows, ["g3"], ["fpn"], "AP").empty
