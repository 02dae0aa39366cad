"""``archbench run --executor ray``: a sweep's runs as tasks of a real Ray cluster started on this machine (a head
that runs nothing and two worker nodes of one CPU each, from Ray's own test utilities)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from archbench.errors import UserError
from archbench.runs.layout import CHECKPOINTS_DIR, weights_path
from archbench.runs.ray_sweep import RunResources, address_host_port, check_resources, scratch_folder
from archbench.runs.records import load_records

from helpers import run_cli
from scriptkit import load_script

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

#: Notice a dead node within seconds (Ray's defaults take about half a minute).
FAST_HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 2,
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[cluster_utils.Cluster]:
    """A head node with no CPUs (it runs no task) and two worker nodes of 1 CPU each."""
    head = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "object_store_memory": 80 * 2**20, "_system_config": FAST_HEALTH_CHECKS},
    )
    for _ in range(2):
        head.add_node(num_cpus=1, object_store_memory=80 * 2**20)
    head.wait_for_nodes()
    yield head
    head.shutdown()


def sweep_args(data: str, results: Path, *extra: str) -> list[str]:
    return ["run", "--data", data, "--batch-size", "8", "--threads", "1", "--results", str(results), *extra]


def archbench_process(args: list[str]) -> subprocess.Popen:
    """``archbench ARGS`` in a process (and process group) of its own: a Ray driver apart from pytest's process."""
    return subprocess.Popen(
        [sys.executable, "-m", "archbench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def record_files(results: Path) -> list[str]:
    return sorted(
        p.name for p in (results / "runs").glob("*.json") if not p.name.startswith(".tmp-")
    )  # not a write in flight


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_sweep_on_the_cluster_records_what_the_same_sweep_records_locally(tiny_data, cluster, tmp_path):
    runs = ["--neck", "fpn,bifpn", "--seeds", "0,1", "--epochs", "2"]
    local = run_cli(*sweep_args(tiny_data, tmp_path / "local", *runs, "--jobs", "2"))
    assert local.returncode == 0, local.stderr
    code, out, err = finish(
        archbench_process(
            sweep_args(tiny_data, tmp_path / "ray", *runs, "--executor", "ray", "--address", cluster.address)
        )
    )
    assert code == 0, err
    assert "4 run(s) recorded" in out
    for neck in ("fpn", "bifpn"):
        for seed in (0, 1):
            assert f"start   det {neck} phi=0 seed={seed}" in err and f"epoch 2/2 det {neck} phi=0 seed={seed}" in err
    local_records = {r.config_hash: r for r in load_records(tmp_path / "local")}
    ray_records = load_records(tmp_path / "ray")
    assert len(ray_records) == 4 and set(local_records) == {r.config_hash for r in ray_records}
    for record in ray_records:
        alone = local_records[record.config_hash]
        assert record.ok and record.epoch_losses == alone.epoch_losses  # bit-identical, not merely close
        assert record.metrics == alone.metrics
        assert record.environment is not None and record.environment["torch_threads"] == 1
        assert record.extra["executor"]["name"] == "ray" and record.extra["executor"]["node_ip"]
        stem = record.path(tmp_path / "ray").stem
        mine, theirs = (
            torch.load(weights_path(r, stem), weights_only=True) for r in (tmp_path / "ray", tmp_path / "local")
        )
        mine, theirs = mine["model"], theirs["model"]
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
        assert not scratch_folder(record.config_hash).exists()  # the worker's copy is gone once the driver has it
    again = finish(
        archbench_process(
            sweep_args(tiny_data, tmp_path / "ray", *runs, "--executor", "ray", "--address", cluster.address)
        )
    )
    assert again[0] == 0 and again[2].count("an ok record with the same config hash exists") == 4


def test_a_worker_node_killed_mid_run_leaves_every_run_recorded_once(tiny_data, cluster, tmp_path):
    args = sweep_args(
        tiny_data, tmp_path, "--neck", "fpn,bifpn", "--epochs", "40", "--executor", "ray", "--address", cluster.address
    )
    started = time.time()
    driver = archbench_process(args)
    try:
        # both runs are training, each on a node of its own, once both scratch folders hold a checkpoint
        def checkpoints() -> list[Path]:
            found = Path(scratch_folder("x").parent).glob(f"*/{CHECKPOINTS_DIR}/*/last.pt")
            return [p for p in found if p.stat().st_mtime > started]

        wait_for(lambda: len(checkpoints()) == 2)
        victim = next(iter(cluster.worker_nodes))
        cluster.remove_node(victim, allow_graceful=False)
        code, out, err = finish(driver)
    finally:
        driver.kill()
        cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20)  # the next test's two nodes
        cluster.wait_for_nodes()
    records = load_records(tmp_path)
    assert len(record_files(tmp_path)) == 2 and sorted(r.neck for r in records) == ["bifpn", "fpn"], err
    for record in records:
        assert record.ok or "Ray task failed" in (record.reason or ""), record.reason
    # the run whose node died was retried on the other node, from the checkpoint its node left in the shared /tmp
    assert code == 0 and any(r.resumed_from_epoch for r in records), err


def test_a_killed_driver_restarted_skips_what_is_recorded_and_finishes_the_rest(tiny_data, cluster, tmp_path):
    args = sweep_args(
        tiny_data,
        tmp_path,
        "--neck",
        "fpn,bifpn",
        "--seeds",
        "0,1",
        "--epochs",
        "3",
        "--executor",
        "ray",
        "--address",
        cluster.address,
    )
    driver = archbench_process(args)
    try:
        wait_for(lambda: len(record_files(tmp_path)) >= 1, timeout=240)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    first = record_files(tmp_path)
    code, out, err = finish(archbench_process(args))
    assert code == 0, err
    assert err.count("an ok record with the same config hash exists") == len(first)
    assert len(record_files(tmp_path)) == 4 and all(r.ok for r in load_records(tmp_path))


def test_a_cluster_without_the_resources_asked_is_refused_before_any_run(tiny_data, cluster, tmp_path):
    args = sweep_args(tiny_data, tmp_path, "--epochs", "1", "--executor", "ray", "--address", cluster.address)
    args[args.index("--threads") + 1] = "2"
    code, out, err = finish(archbench_process(args), timeout=120)
    assert code == 2 and "Traceback" not in err
    assert "asks the Ray cluster for 2 CPU" in err and "1 CPU, 0 GPU" in err
    assert not (tmp_path / "runs").exists()


def test_an_unreachable_address_is_refused_at_once(tiny_data, tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    result = run_cli(*sweep_args(tiny_data, tmp_path, "--executor", "ray", "--address", f"127.0.0.1:{port}"))
    assert result.returncode == 2 and time.monotonic() - started < 30
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in result.stderr and "ray start --head" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--executor", "dask"], "--executor 'dask': choose local"),
        (["--executor", "ray", "--jobs", "2"], "--jobs 2 with --executor ray"),
        (["--executor", "ray", "--device", "cuda:1"], "Ray gives each run its GPU"),
        (["--executor", "ray", "--gpus-per-run", "1"], "--gpus-per-run 1 with --device cpu"),
        (["--address", "127.0.0.1:6379"], "--address is for --executor ray"),
        (["--executor", "ray", "--address", "somehost"], "give the Ray cluster's head as HOST:PORT"),
    ],
)
def test_options_that_do_not_go_together_are_refused(tiny_data, tmp_path, flags, message):
    result = run_cli(*sweep_args(tiny_data, tmp_path, *flags))
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_the_resource_check_reads_live_nodes_only():
    nodes = [
        {"Alive": False, "NodeManagerAddress": "10.0.0.1", "Resources": {"CPU": 8.0, "GPU": 1.0}},
        {"Alive": True, "NodeManagerAddress": "10.0.0.2", "Resources": {"CPU": 4.0}},
    ]
    check_resources(nodes, RunResources(cpus=4))
    with pytest.raises(UserError, match=r"1 GPU .*10\.0\.0\.2: 4 CPU, 0 GPU\. Ask for less"):
        check_resources(nodes, RunResources(cpus=1, gpus=1))
    assert address_host_port("ray://head:10001") == ("head", 10001) and address_host_port("auto") is None


def test_the_board_driver_hands_each_phi_to_the_cluster_in_one_call(tmp_path, monkeypatch):
    script = load_script("make_leaderboard")
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(script, "archbench", lambda *args, **kw: calls.append(args))
    argv = ["make_leaderboard.py", "--results", str(tmp_path), "--necks", "fpn,bifpn,panet", "--phi", "0,1"]
    monkeypatch.setattr(sys, "argv", [*argv, "--seeds", "0,1,2", "--executor", "ray", "--address", "head:6379"])
    script.main()
    runs = [c for c in calls if c[0] == "run"]
    assert [c[c.index("--phi") + 1] for c in runs] == ["0", "1"]
    for call in runs:
        assert call[call.index("--neck") + 1] == "fpn,bifpn,panet" and call[call.index("--seeds") + 1] == "0,1,2"
        assert call[call.index("--executor") + 1] == "ray" and call[call.index("--address") + 1] == "head:6379"
        assert "--jobs" not in call
    assert calls[-1][0] == "leaderboard"
