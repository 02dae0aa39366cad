"""archbench search in one process on tiny data: records and report, run --scaling, failures, pruning, NSGA-II."""

from __future__ import annotations

from dataclasses import replace

import optuna
import pytest
from optuna.trial import TrialState

from archbench.costs.profile import profile
from archbench.errors import UserError
from archbench.models.scaling import rule_from_dict
from archbench.runs import sweep
from archbench.runs.records import load_records
from archbench.search import worker
from archbench.search.spaces import load_space

from helpers import run_cli
from searchkit import load, make_tiny_data, search_args, write_space


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return make_tiny_data(tmp_path_factory.mktemp("search") / "data")


def test_search_records_trials_reports_and_run_applies_the_best(data, tmp_path):
    results, space = tmp_path / "r", write_space(tmp_path)
    res = run_cli(*search_args(data, results, space, "s1", 2))
    assert res.returncode == 0, res.stderr
    study = load(results, "s1")
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert study.metric_names == ["AP"]  # what optuna-dashboard labels the objective with
    records = [r.to_dict() for r in load_records(results / "search" / "s1")]
    assert sorted(r["search"]["trial"] for r in records) == [0, 1]
    for r in records:  # each trial's run is a normal record, tagged and carrying the trial's coefficients
        trial = trials[r["search"]["trial"]]
        assert r["status"] == "ok" and r["search"]["study"] == "s1" and r["preset"] == f"study:s1#{trial.number}"
        assert r["config"]["rule"] == trial.user_attrs["rule"] and r["metrics"]["AP"] == trial.value
        assert r["model_config"]["width"] == trial.params["width_base"]
    assert "trial #1 ok" in res.stderr and "2/2 finished in the study" in res.stderr

    best = max(trials, key=lambda t: t.value)
    report = run_cli("search", "--report", "--study", "s1", "--results", str(results))
    assert report.returncode == 0 and "best trials by AP" in report.stdout
    assert f"#{best.number}" in report.stdout and "--scaling study:s1" in report.stdout

    applied = run_cli(
        "run",
        "--neck",
        "bifpn",
        "--scaling",
        "study:s1",
        "--phi",
        "0..1",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--data",
        data,
        "--threads",
        "1",
        "--results",
        str(results),
    )
    assert applied.returncode == 0, applied.stderr
    rule = rule_from_dict(best.user_attrs["rule"])
    runs = sorted((r.to_dict() for r in load_records(results)), key=lambda r: r["phi"])  # only these two
    assert [r["phi"] for r in runs] == [0, 1]
    for r in runs:
        assert r["config"]["rule"] == best.user_attrs["rule"] and r["preset"] == f"study:s1#{best.number}"
        assert r["model_config"] == rule.config(r["phi"]).to_dict()
    bad = run_cli("run", "--scaling", "study:nope", "--results", str(results))
    assert bad.returncode == 2 and "no study 'nope'" in bad.stderr and "s1" in bad.stderr


def test_a_crashed_trial_is_recorded_with_its_reason_and_the_study_goes_on(data, tmp_path, monkeypatch):
    real, calls = sweep.execute, []

    def crash_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep, "execute", crash_first)
    results = tmp_path / "r"
    res = run_cli(*search_args(data, results, write_space(tmp_path), "s2", 2))
    assert res.returncode == 0, res.stderr
    failed, ok = load(results, "s2").trials
    assert failed.state == TrialState.FAIL and failed.user_attrs["fail_reason"] == "RuntimeError: boom"
    assert ok.state == TrialState.COMPLETE
    statuses = {r.extra["search"]["trial"]: r.status for r in load_records(results / "search" / "s2")}
    assert statuses == {0: "failed", 1: "ok"}
    report = run_cli("search", "--report", "--study", "s2", "--results", str(results))
    assert "failed  #0: RuntimeError: boom" in report.stdout


def test_a_pruned_trial_stops_training_and_leaves_no_record(data, tmp_path, monkeypatch):
    # A threshold no AP reaches: the pruner stops every trial at its first report (after epoch 1 of 2).
    monkeypatch.setattr(worker, "make_pruner", lambda *a: optuna.pruners.ThresholdPruner(lower=1.0))
    results = tmp_path / "r"
    res = run_cli(*search_args(data, results, write_space(tmp_path), "s3", 1, "--epochs", "2"))
    assert res.returncode == 0, res.stderr
    (trial,) = load(results, "s3").trials
    assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [0]
    assert trial.user_attrs["pruned_reason"].startswith("pruned by ThresholdPruner at step 0")
    assert load_records(results / "search" / "s3") == []
    assert not any((results / "search" / "s3" / "checkpoints").rglob("*.pt"))


def test_multi_objective_gives_a_pareto_set_and_refuses_over_budget_configs_untrained(data, tmp_path):
    space = write_space(tmp_path)
    loaded = load_space(space)
    costs = [
        profile(["bifpn"], [0], loaded.rule({"width_base": w, "width_growth": 1.1}, "t"), num_classes=6)[0]["gflops"]
        for w in (8, 16)
    ]
    budget = sum(costs) / 2  # width 8 fits, width 16 does not
    results = tmp_path / "r"
    res = run_cli(
        *search_args(
            data,
            results,
            space,
            "s4",
            3,
            "--objective",
            "multi",
            "--population",
            "2",
            "--gflops-budget",
            f"{budget:.6f}",
            "--sampler-seed",
            "2",
        )
    )
    assert res.returncode == 0, res.stderr
    study = load(results, "s4")
    trials = study.trials
    assert study.metric_names == ["AP", "GFLOPs"]
    assert len(trials) == 3 and {t.params["width_base"] for t in trials} == {8, 16}
    for t in trials:
        if t.params["width_base"] == 16:
            assert t.state == TrialState.PRUNED and "over the GFLOPs budget" in t.user_attrs["pruned_reason"]
        else:
            assert t.state == TrialState.COMPLETE and t.values[1] == pytest.approx(costs[0])
    trained = {r.extra["search"]["trial"] for r in load_records(results / "search" / "s4")}
    assert trained == {t.number for t in trials if t.state == TrialState.COMPLETE}
    assert "Pareto set" in res.stdout and "over the GFLOPs budget" in res.stdout

    refused = run_cli(*search_args(data, results, space, "s5", 1, "--objective", "multi", "--pruner", "median"))
    assert refused.returncode == 2 and "cannot prune multi-objective" in refused.stderr


def test_a_seg_search_maximises_miou_costs_the_segmenter_and_keeps_its_task(data, tmp_path):
    space = write_space(tmp_path)
    results = tmp_path / "r"
    assert worker.default_study_name("bifpn", space, "seg") == "bifpn-tiny-seg"  # apart from the det study
    res = run_cli(*search_args(data, results, space, "s6", 2, "--task", "seg", "--epochs", "2"))
    assert res.returncode == 0, res.stderr
    study = load(results, "s6")
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 and study.metric_names == ["mIoU"]
    records = {r.extra["search"]["trial"]: r.to_dict() for r in load_records(results / "search" / "s6")}
    for t in trials:
        r = records[t.number]
        assert r["task"] == "seg" and t.value == r["metrics"]["mIoU"]
        assert list(t.intermediate_values) == [0, 1]  # epoch 1's mIoU reported for the pruner, then the final one
        rule = rule_from_dict(t.user_attrs["rule"])
        seg_cost = profile(["bifpn"], [0], rule, num_classes=r["dataset"]["num_classes"], task="seg")[0]["gflops"]
        assert t.user_attrs["gflops"] == pytest.approx(seg_cost) == pytest.approx(r["costs"]["gflops"])
    assert "ok      mIoU" in res.stderr
    report = run_cli("search", "--report", "--study", "s6", "--results", str(results))
    assert report.returncode == 0 and "best trials by mIoU" in report.stdout and "task seg" in report.stdout

    as_det = run_cli(*search_args(data, results, space, "s6", 2, "--epochs", "2"))
    assert as_det.returncode == 2 and "task: the study has 'seg', this worker 'det'" in as_det.stderr


def test_a_study_stored_before_tasks_and_metric_names_existed_is_a_det_study_and_gets_its_names(tmp_path):
    from archbench.search.storage import open_storage
    from archbench.search.study import SETTINGS_ATTR, StudySettings, create_or_join

    settings = StudySettings(
        neck="bifpn",
        spec_hash="h",
        space={"name": "tiny"},
        space_digest="d",
        phis=(0,),
        objective="single",
        gflops_budget=None,
        data="synthetic",
        subset=None,
        train={},
        seed=0,
    )
    storage = open_storage(f"sqlite:///{tmp_path / 'old.db'}")
    old = {k: v for k, v in settings.to_dict().items() if k != "task"}
    stored = optuna.create_study(storage=storage, study_name="old")
    stored.set_user_attr(SETTINGS_ATTR, old)
    stored.add_trial(optuna.trial.create_trial(value=0.25))
    assert stored.metric_names is None
    sampler, pruner = optuna.samplers.RandomSampler(), optuna.pruners.NopPruner()
    joined = create_or_join(storage, "old", settings, sampler, pruner)
    assert joined.user_attrs[SETTINGS_ATTR] == old and joined.metric_names == ["AP"]
    assert [t.values for t in joined.trials] == [[0.25]]  # naming the metric leaves the trials as they were
    with pytest.raises(UserError, match="task: the study has 'det', this worker 'seg'"):
        create_or_join(storage, "old", replace(settings, task="seg"), sampler, pruner)
