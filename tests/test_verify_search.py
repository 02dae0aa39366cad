"""scripts/verify_search.py: which graphs of a search's front it re-trains, and which rivals beside them."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest

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


def _write(folder, neck: str, phi: int, seed: int, ap: float, *, epochs: int = 32, preset: str = "edet",
           config_hash: str | None = None) -> None:  # fmt: skip
    runs = folder / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    body = {"schema_version": 1, "task": "det", "neck": neck, "phi": phi, "seed": seed, "epochs": epochs,
            "preset": preset, "status": "ok", "config_hash": config_hash or f"{neck}-{phi}-{seed}-{epochs}-{preset}",
            "config": {"terms": "efficientdet"}, "metrics": {"AP": ap}}  # fmt: skip
    (runs / f"det-{neck}-phi{phi}-s{seed}-{epochs}-{len(list(runs.iterdir()))}.json").write_text(json.dumps(body))


def test_runs_trained_again_replace_the_boards_of_their_neck_phi_and_group(tmp_path, capsys):
    script = load_script("verify_search")
    board, results = tmp_path / "board", tmp_path / "verify"
    for seed in range(4):
        _write(board, "fpn", 0, seed, 0.60)  # another machine's: trained again below (seeds 0, 1 so far)
    _write(board, "fpn", 0, 0, 0.40, epochs=8)  # another schedule: kept
    _write(board, "fpn", 1, 0, 0.65)  # another phi: kept
    _write(board, "nasfpn", 0, 0, 0.58)  # not trained again: kept
    _write(results, "fpn", 0, 0, 0.61)
    _write(results, "fpn", 0, 1, 0.62)
    _write(results, "graph", 0, 0, 0.63)
    pool = script.verification_pool(results, board, "det")
    kept = sorted((r["neck"], r["phi"], r["seed"], r["epochs"], r["metrics"]["AP"]) for r in pool)
    assert kept == [
        ("fpn", 0, 0, 8, 0.40), ("fpn", 0, 0, 32, 0.61), ("fpn", 0, 1, 32, 0.62), ("fpn", 1, 0, 32, 0.65),
        ("graph", 0, 0, 32, 0.63), ("nasfpn", 0, 0, 32, 0.58),
    ]  # fmt: skip
    assert "warning" not in capsys.readouterr().err  # same configurations as the board's
    _write(results, "fpn", 0, 2, 0.60, config_hash="other-code")
    script.verification_pool(results, board, "det")
    assert "differ in configuration" in capsys.readouterr().err


def test_a_builtins_search_ap_is_its_runs_in_the_studys_group_and_seed_averaged_over_its_phis(tmp_path):
    script = load_script("verify_search")
    trials, builtins = tmp_path / "trials", tmp_path / "builtins"
    _write(trials, "space-1234", 0, 0, 0.2, epochs=4, preset="proxy")
    _write(builtins, "fpn", 0, 0, 0.17, epochs=4, preset="proxy")
    _write(builtins, "fpn", 1, 0, 0.19, epochs=4, preset="proxy")
    _write(builtins, "fpn", 0, 1, 0.30, epochs=4, preset="proxy")  # another seed
    _write(builtins, "panet", 0, 0, 0.30, epochs=8, preset="proxy")  # another study's schedule
    _write(builtins, "bifpn", 0, 0, 0.30, epochs=4, preset="edet")  # another preset
    one_phi = SimpleNamespace(task="det", seed=0, phis=(0,), metric="AP")
    assert script.builtins_search_ap(builtins, trials, one_phi) == {"fpn": 0.17}
    two_phis = SimpleNamespace(task="det", seed=0, phis=(0, 1), metric="AP")
    assert script.builtins_search_ap(builtins, trials, two_phis) == {"fpn": pytest.approx(0.18)}


def test_rival_cost_tests_read_each_rivals_seed_curve_at_the_graphs_cost():
    script = load_script("verify_search")
    cost = {("g", 0): 0.06, ("g", 1): 0.09, ("fpn", 0): 0.05, ("fpn", 1): 0.08, ("bifpn", 0): 0.055, ("bifpn", 1): 0.07}
    ap = {"g": ([0.60, 0.62, 0.61], [0.70, 0.71, 0.69]), "fpn": ([0.50, 0.52, 0.51], [0.60, 0.61, 0.62]),
          "bifpn": ([0.55, 0.56, 0.54], [0.65, 0.66, 0.64])}  # fmt: skip
    rows = pd.DataFrame([
        {"neck": n, "phi": phi, "seed": s, "AP": v, "gflops": cost[n, phi]}
        for n, by_phi in ap.items() for phi, vs in enumerate(by_phi) for s, v in enumerate(vs)
    ])  # fmt: skip
    tests = script.rival_cost_tests(rows, ["g"], ["fpn", "bifpn"], 0, "AP")
    assert list(zip(tests.a, tests.b)) == [("g", "fpn"), ("g", "bifpn")] and (tests.budget == 0.06).all()
    # fpn seed 0 at 0.06 GFLOPs: between 0.05 (0.50) and 0.08 (0.60), linear in log GFLOPs
    import math

    w = math.log(0.06 / 0.05) / math.log(0.08 / 0.05)
    fpn_at = [a + w * (b - a) for a, b in zip(*ap["fpn"])]
    bifpn_at = [a + math.log(0.06 / 0.055) / math.log(0.07 / 0.055) * (b - a) for a, b in zip(*ap["bifpn"])]
    assert tests.diff_mean.iloc[0] == pytest.approx(sum(g - f for g, f in zip(ap["g"][0], fpn_at)) / 3)
    assert tests.diff_mean.iloc[1] == pytest.approx(sum(g - f for g, f in zip(ap["g"][0], bifpn_at)) / 3)
    assert (tests.n_pairs == 3).all() and tests.p_adj.notna().all()
    # at phi 1 the graph costs 0.09: no rival's curve reaches it (never extrapolated), so nothing is compared
    assert script.rival_cost_tests(rows, ["g"], ["fpn", "bifpn"], 1, "AP").empty


def test_rivals_another_verification_trained_here_are_copied_not_retrained(tmp_path):
    from archbench.runs.records import RunRecord, load_records

    script = load_script("verify_search")
    other, ours = tmp_path / "other", tmp_path / "ours"

    def run(neck: str, seed: int, cpu: str = "AMD", phi: int = 0, terms: str = "efficientdet", ok: bool = True):
        weights = f"weights/{neck}-{phi}-{seed}.pt"
        (other / weights).parent.mkdir(parents=True, exist_ok=True)
        (other / weights).write_bytes(b"w")
        RunRecord(task="det", neck=neck, phi=phi, seed=seed, epochs=32, config_hash=f"{neck}{phi}{seed}{cpu}{terms}",
                  status="ok" if ok else "failed", config={"terms": terms}, environment={"cpu_model": cpu},
                  weights={"path": weights}).save(other)  # fmt: skip

    run("fpn", 0), run("fpn", 1), run("bifpn", 0)  # wanted, trained here
    run("fpn", 2, cpu="Intel"), run("panet", 0), run("bifpn", 1, phi=1), run("bifpn", 2, terms="native")
    run("fpn", 3, ok=False)
    run("opanas_paths-494fa62c", 0)  # the other verification's own graph
    wanted = {s: ["bifpn", "fpn"] for s in range(4)}  # panet: its board runs are this machine's
    copied = script.reuse_rivals(other, ours, wanted, 0, 32, "efficientdet", "AMD")
    assert sorted((r.neck, r.seed) for r in load_records(ours)) == [("bifpn", 0), ("fpn", 0), ("fpn", 1)]
    assert all((ours / f"weights/{n}-0-{s}.pt").is_file() for n, s in [("bifpn", 0), ("fpn", 0), ("fpn", 1)])
    assert len(copied) == 3 and all(p.read_bytes() == (other / p.relative_to(ours)).read_bytes() for p in copied)
    assert script.reuse_rivals(other, ours, wanted, 0, 32, "efficientdet", "AMD") == []  # copied once


def test_runs_are_paired_so_that_both_cores_work():
    script = load_script("verify_search")
    graphs = {s: ["g1", "g2", "g3"] for s in range(3)}
    assert script.paired_calls(graphs) == [
        (["g1", "g2"], [0]), (["g1", "g2"], [1]), (["g1", "g2"], [2]), (["g3"], [0, 1]), (["g3"], [2])
    ]  # fmt: skip
    with_rivals = {0: ["g1", "fpn"], 1: ["g1"], 3: ["fpn"]}  # seeds without graphs, rivals without seed 2
    assert script.paired_calls(with_rivals) == [(["g1", "fpn"], [0]), (["g1"], [1]), (["fpn"], [3])]


def test_recorded_runs_are_those_of_the_phi_schedule_and_terms(tmp_path):
    from archbench.runs.records import RunRecord

    script = load_script("verify_search")
    for neck, phi, epochs, terms, status in [
        ("g1", 0, 32, "efficientdet", "ok"), ("g2", 1, 32, "efficientdet", "ok"), ("g3", 0, 8, "efficientdet", "ok"),
        ("g4", 0, 32, "native", "ok"), ("g5", 0, 32, "efficientdet", "failed"),
    ]:  # fmt: skip
        RunRecord(task="det", neck=neck, phi=phi, seed=0, epochs=epochs, config_hash=neck, status=status,
                  config={"terms": terms}).save(tmp_path)  # fmt: skip
    assert script.recorded_runs(tmp_path, 0, 32, "efficientdet") == {("g1", 0)}
