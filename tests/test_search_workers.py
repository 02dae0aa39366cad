"""Several search workers on one SQLite study: exactly N trials between them, and a killed worker's trial resumes."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState

from archbench.records import load_records
from archbench.search.study import SURPLUS_ATTR, counts, is_retry
from conftest import run_cli
from searchkit import load, make_tiny_data, search_args, write_space

#: ``archbench`` whose search worker dies (SIGKILL, as from the OOM killer) right after a run's first epoch checkpoint
KILLED_AFTER_FIRST_EPOCH = """\
import os, signal, sys
from archbench.search import objective
objective.TrialObserver.epoch_finished = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
from archbench.cli import main
sys.argv[0] = "archbench"
main()
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


def test_two_workers_on_one_study_run_exactly_n_trials_between_them(data, tmp_path):
    results = tmp_path / "r"
    args = search_args(data, results, write_space(tmp_path), "shared", 4)
    procs = [worker([*args, "--sampler-seed", str(i)]) for i in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err
    trials = load(results, "shared").trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE and not t.user_attrs.get(SURPLUS_ATTR) for t in trials)
    ran = [trials_run_by(err) for _, err in outputs]
    assert ran[0] and ran[1] and not ran[0] & ran[1] and ran[0] | ran[1] == {0, 1, 2, 3}  # both worked, none twice
    assert sorted(r["search"]["trial"] for r in load_records(results / "search" / "shared")) == [0, 1, 2, 3]

    again = run_cli(*search_args(data, results, write_space(tmp_path), "shared", 4))  # the study is complete
    assert again.returncode == 0 and len(load(results, "shared").trials) == 4


def test_a_killed_workers_trial_is_retried_and_resumes_from_its_checkpoint(data, tmp_path):
    results = tmp_path / "r"
    args = search_args(data, results, write_space(tmp_path), "resume", 2, "--epochs", "2", "--heartbeat", "1")
    killed = worker(args, KILLED_AFTER_FIRST_EPOCH)
    killed.communicate(timeout=600)
    assert killed.returncode == -signal.SIGKILL
    (stale,) = load(results, "resume").trials
    assert stale.state == TrialState.RUNNING
    assert list((results / "search" / "resume" / "checkpoints").rglob("last.pt"))

    survivor = worker(args)
    _, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err
    trials = load(results, "resume").trials
    assert trials[0].state == TrialState.FAIL  # failed by the survivor once its heartbeat was 3 s old
    (retry,) = [t for t in trials if is_retry(t)]
    assert retry.state == TrialState.COMPLETE and retry.params == stale.params
    assert sum(counts(t) for t in trials) == 2 and all(t.state.is_finished() for t in trials)
    (record,) = [r for r in load_records(results / "search" / "resume") if r["search"]["trial"] == retry.number]
    assert record["resumed_from_epoch"] == 1 and record["preset"] == "study:resume#0"
    report = run_cli("search", "--report", "--study", "resume", "--results", str(results))
    assert f"failed  #0: its worker stopped (no heartbeat); retried as #{retry.number}" in report.stdout
