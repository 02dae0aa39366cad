"""Progress where stderr is not a terminal (nohup, a batch scheduler): plain lines per run, per epoch and per tenth
of a generated data set; ``--quiet`` and ``--verbose``. ``run_cli`` captures stderr in a StringIO, not a terminal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from archbench.runs.records import load_records

from helpers import run_cli
from searchkit import make_tiny_data, search_args, write_space

#: ``epoch E/2 det fpn phi=0 seed=S: loss L, N img/s, T s``: one line per finished epoch
EPOCH_LINE = re.compile(r"^epoch (\d)/2 det fpn phi=0 seed=(\d): loss (\d+\.\d{3}), \d+ img/s, \d+\.\d s$", re.M)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return make_tiny_data(tmp_path_factory.mktemp("progress") / "data")


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """A run sets this process's torch threads (--threads 1); give the other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def run_args(data: str, results: Path, *extra: str) -> list[str]:
    """A tiny ``archbench run``: fpn at phi 0, two epochs of two steps."""
    return ["run", "--neck", "fpn", "--data", data, "--epochs", "2", "--batch-size", "8", "--threads", "1",
            "--results", str(results), *extra]  # fmt: skip


def test_a_log_gets_a_line_per_epoch(data, tmp_path):
    res = run_cli(*run_args(data, tmp_path))
    assert res.returncode == 0, res.stderr
    (record,) = load_records(tmp_path)
    epochs = EPOCH_LINE.findall(res.stderr)
    assert [(epoch, seed) for epoch, seed, _ in epochs] == [("1", "0"), ("2", "0")], res.stderr
    assert [loss for *_, loss in epochs] == [f"{loss:.3f}" for loss in record.epoch_losses or []]
    assert "start   det fpn phi=0 seed=0: 2 epochs, 4 steps" in res.stderr
    assert "ok      det fpn phi=0 seed=0: AP " in res.stderr
    assert f"config {record.config_hash}" not in res.stderr  # that is --verbose's


def test_quiet_shows_no_progress_and_still_records(data, tmp_path):
    res = run_cli(*run_args(data, tmp_path, "--quiet"))
    assert res.returncode == 0 and res.stderr == ""
    assert res.stdout.startswith("1 run(s) recorded under") and len(load_records(tmp_path)) == 1
    again = run_cli(*run_args(data, tmp_path, "-q"))  # already done: not even the skip line
    assert again.returncode == 0 and again.stderr == "" and len(load_records(tmp_path)) == 1


def test_verbose_adds_each_runs_config_data_and_costs(data, tmp_path):
    res = run_cli(*run_args(data, tmp_path, "--verbose"))
    assert res.returncode == 0, res.stderr
    (record,) = load_records(tmp_path)
    assert len(EPOCH_LINE.findall(res.stderr)) == 2
    dataset = record.dataset or {}
    details = f"config {record.config_hash}, data {dataset['name']} {dataset['fingerprint'][:12]}, "
    assert f"        det fpn phi=0 seed=0: {details}" in res.stderr
    assert " GFLOPs, " in res.stderr


def test_quiet_and_verbose_together_are_refused(tmp_path):
    for command in (
        ["run", "--results", str(tmp_path)],
        ["search", "--neck", "bifpn", "--results", str(tmp_path)],
        ["data", "synth", "--out", str(tmp_path / "data")],
    ):
        res = run_cli(*command, "--quiet", "--verbose")
        assert res.returncode == 2 and "--quiet and --verbose contradict each other" in res.stderr, command
    assert list(tmp_path.iterdir()) == []


def test_epoch_lines_come_from_the_runs_processes_under_jobs(data, tmp_path):
    res = run_cli(*run_args(data, tmp_path, "--seeds", "0,1", "--jobs", "2"))
    assert res.returncode == 0, res.stderr
    assert sorted((epoch, seed) for epoch, seed, _ in EPOCH_LINE.findall(res.stderr)) == [
        ("1", "0"),
        ("1", "1"),
        ("2", "0"),
        ("2", "1"),
    ]
    assert len(load_records(tmp_path)) == 2


def test_data_generation_says_each_tenth_reached(tmp_path):
    args = ["data", "synth", "--out", str(tmp_path / "shapes"), "--train", "96", "--val", "32", "--size", "32"]
    res = run_cli(*args)
    assert res.returncode == 0, res.stderr
    # chunks of 32 images: each line is the first count to reach a new tenth
    assert re.findall(r"^generating shapes: (\d+)/128 images \((\d+)%\)$", res.stderr, re.M) == [
        ("32", "25"),
        ("64", "50"),
        ("96", "75"),
        ("128", "100"),
    ]
    quiet = run_cli(*args[:3], str(tmp_path / "quiet"), *args[4:], "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == "" and "fingerprint" in quiet.stdout


def test_a_search_logs_its_trials_epochs_and_is_quiet_when_asked(data, tmp_path):
    space = write_space(tmp_path)
    res = run_cli(*search_args(data, tmp_path / "r", space, "logged", 1))
    assert res.returncode == 0, res.stderr
    assert re.search(r"^epoch 1/1 det bifpn phi=0 seed=0: loss \d+\.\d{3}, ", res.stderr, re.M), res.stderr
    assert "trial #0 ok" in res.stderr
    quiet = run_cli(*search_args(data, tmp_path / "r", space, "quiet", 1, "--quiet"))
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert "best trials by AP" in quiet.stdout
