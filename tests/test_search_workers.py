"""Search workers sharing a study (SQLite, and PostgreSQL on loopback): exactly N trials between them (one made
in the race for the last slot is pruned as surplus), and a killed worker's trial is retried and resumes from its
checkpoint; for scaling and topology spaces alike."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

import archbench.search.worker  # noqa: F401 (imported up front: the in-process worker then starts at once)
from archbench.runs.records import load_records
from archbench.search.storage import open_storage
from archbench.search.study import SURPLUS_ATTR, counts, is_retry

from helpers import run_cli
from pgserver import postgres_url  # noqa: F401 (a fixture)
from searchkit import load, make_tiny_data, search_args, topology_args, write_space, write_topology_space

#: ``archbench`` whose search worker dies (SIGKILL, as from the OOM killer) right after a run's first epoch checkpoint
KILLED_AFTER_FIRST_EPOCH = """\
import os, signal, sys
from archbench.search import objective
objective.TrialObserver.epoch_finished = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
from archbench.cli import main
sys.argv[0] = "archbench"
main()
"""

#: join study "x" in the SQLite file argv[1] at the clock time argv[2] (so that several processes race)
JOIN_AT = """\
import sys, time
import optuna
from archbench.search.storage import open_storage
from archbench.search.study import StudySettings, create_or_join
settings = StudySettings("bifpn", "h", {}, "d", (0,), "single", None, "synthetic", None, {}, 0)
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
storage = open_storage("sqlite:///" + sys.argv[1], 5)
create_or_join(storage, "x", settings, optuna.samplers.RandomSampler(), optuna.pruners.NopPruner())
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return make_tiny_data(tmp_path_factory.mktemp("workers") / "data")


def worker(args: list[str], script: str | None = None) -> subprocess.Popen:
    """An ``archbench search`` worker process (``script``: a Python program run instead of ``-m archbench``)."""
    head = ["-c", script] if script else ["-m", "archbench"]
    return subprocess.Popen([sys.executable, *head, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def trials_run_by(stderr: str) -> set[int]:
    return {int(n) for n in re.findall(r"^trial #(\d+) ", stderr, flags=re.M)}


def counting(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if counts(t)]


def surplus(trials: list[FrozenTrial]) -> set[int]:
    return {t.number for t in trials if t.user_attrs.get(SURPLUS_ATTR)}


def assert_surplus_trained_nothing(trials: list[FrozenTrial]) -> None:
    """Two workers that both see the last slot open at once both create a trial (Optuna has no atomic
    "create if fewer than N"); the later one must be marked surplus and pruned before it trains."""
    for t in trials:
        if t.user_attrs.get(SURPLUS_ATTR):
            assert t.state == TrialState.PRUNED and "surplus" in t.user_attrs["pruned_reason"]
            assert "spec_hash" not in t.user_attrs and "gflops" not in t.user_attrs


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_workers_on_one_study_run_exactly_n_trials_between_them(backend, data, tmp_path, request):
    storage = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    results = tmp_path / "r"
    # 10 epochs: a trial must last longer than the second worker takes to join, or the first takes them all
    extra = ["--epochs", "10", *(["--storage", storage] if storage else [])]
    args = search_args(data, results, write_space(tmp_path), "shared", 3, *extra)
    other = worker([*args, "--sampler-seed", "1"])
    while not other.stderr.readline().startswith("study shared"):  # that worker has joined: start this one
        assert other.poll() is None, other.communicate()[1]
    here = run_cli(*args, "--sampler-seed", "2")
    _, other_err = other.communicate(timeout=600)
    assert here.returncode == 0, here.stderr
    assert other.returncode == 0, other_err
    trials = load(results, "shared", storage).trials
    assert [t.number for t in counting(trials)] == [0, 1, 2]
    assert all(t.state == TrialState.COMPLETE for t in counting(trials))
    assert_surplus_trained_nothing(trials)
    ran = [trials_run_by(here.stderr) - surplus(trials), trials_run_by(other_err) - surplus(trials)]
    assert ran[0] and ran[1] and not ran[0] & ran[1] and ran[0] | ran[1] == {0, 1, 2}  # both worked, none twice
    assert sorted(r.extra["search"]["trial"] for r in load_records(results / "search" / "shared")) == [0, 1, 2]
    assert (results / "search.db").exists() == (storage is None)

    again = run_cli(*args)  # the study is complete: a late worker adds nothing
    assert again.returncode == 0 and len(load(results, "shared", storage).trials) == len(trials)
    assert "best trials by AP" in again.stdout


def test_a_killed_workers_trial_is_retried_and_resumes_from_its_checkpoint(data, tmp_path):
    results = tmp_path / "r"
    args = search_args(data, results, write_space(tmp_path), "resume", 2, "--epochs", "2", "--heartbeat", "1")
    killed = worker(args, KILLED_AFTER_FIRST_EPOCH)
    killed.communicate(timeout=600)
    assert killed.returncode == -signal.SIGKILL
    (stale,) = load(results, "resume").trials
    assert stale.state == TrialState.RUNNING
    assert list((results / "search" / "resume" / "checkpoints").rglob("last.pt"))

    survivor = run_cli(*args)
    assert survivor.returncode == 0, survivor.stderr
    trials = load(results, "resume").trials
    assert trials[0].state == TrialState.FAIL  # failed by the survivor once its heartbeat was 3 s old
    (retry,) = [t for t in trials if is_retry(t)]
    assert retry.state == TrialState.COMPLETE and retry.params == stale.params
    assert sum(counts(t) for t in trials) == 2 and all(t.state.is_finished() for t in trials)
    (record,) = [r for r in load_records(results / "search" / "resume") if r.extra["search"]["trial"] == retry.number]
    assert record.resumed_from_epoch == 1 and record.preset == "study:resume#0"
    assert f"failed  #0: its worker stopped (no heartbeat); retried as #{retry.number}" in survivor.stdout


def test_two_workers_share_a_topology_study_on_postgresql(data, tmp_path, request):
    storage = request.getfixturevalue("postgres_url")
    results = tmp_path / "r"
    args = topology_args(data, results, write_topology_space(tmp_path), "graphs", 3, "--epochs", "10")
    args += ["--storage", storage]
    other = worker([*args, "--sampler-seed", "1"])
    while not other.stderr.readline().startswith("study graphs"):  # that worker has joined: start this one
        assert other.poll() is None, other.communicate()[1]
    here = run_cli(*args, "--sampler-seed", "2")
    _, other_err = other.communicate(timeout=600)
    assert here.returncode == 0 and other.returncode == 0, here.stderr + other_err
    trials = load(results, "graphs", storage).trials
    assert [t.number for t in counting(trials)] == [0, 1, 2]
    assert [t.user_attrs.get("reference") for t in trials[:2]] == ["a", "b"]
    assert all(t.state.is_finished() for t in counting(trials))
    assert_surplus_trained_nothing(trials)
    ran = [trials_run_by(here.stderr) - surplus(trials), trials_run_by(other_err) - surplus(trials)]
    assert ran[0] and ran[1] and not ran[0] & ran[1] and ran[0] | ran[1] == {0, 1, 2}  # both worked, none twice
    graphs = {t.user_attrs["spec_hash"] for t in trials if t.state == TrialState.COMPLETE}
    assert sorted(r.spec_hash for r in load_records(results / "search" / "graphs")) == sorted(graphs)


def test_a_killed_topology_workers_trial_is_retried_and_resumes_from_its_checkpoint(data, tmp_path):
    results = tmp_path / "r"
    space = write_topology_space(tmp_path)
    args = topology_args(data, results, space, "gresume", 1, "--epochs", "2", "--heartbeat", "1")
    killed = worker(args, KILLED_AFTER_FIRST_EPOCH)
    killed.communicate(timeout=600)
    assert killed.returncode == -signal.SIGKILL
    survivor = run_cli(*args)
    assert survivor.returncode == 0, survivor.stderr
    stale, retry = load(results, "gresume").trials
    assert stale.state == TrialState.FAIL and is_retry(retry) and retry.state == TrialState.COMPLETE
    assert retry.params == stale.params and retry.user_attrs["graph"] == stale.user_attrs["graph"]
    (record,) = load_records(results / "search" / "gresume")
    assert record.resumed_from_epoch == 1 and record.neck == retry.user_attrs["graph"]


def test_workers_creating_a_new_database_at_once_all_join_one_study(tmp_path):
    db, start = tmp_path / "new.db", time.time() + 4
    procs = [
        subprocess.Popen([sys.executable, "-c", JOIN_AT, str(db), str(start)], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    summaries = optuna.get_all_study_summaries(open_storage(f"sqlite:///{db}", create=False))
    assert [s.study_name for s in summaries] == ["x"]
