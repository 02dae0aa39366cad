"""``archbench run --jobs N``: runs side by side, one process each, against the same runs alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from archbench.errors import UserError
from archbench.runs.layout import checkpoint_path
from archbench.runs.parallel import run_child, sweep_parallel
from archbench.runs.records import load_records
from archbench.runs.sweep import RunRequest, SweepObserver, sweep
from archbench.train.trainer import StepInfo, TrainConfig

from helpers import killed_after_first_epoch, run_cli

TINY = TrainConfig(epochs=2, batch_size=8, warmup_steps=1)


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """A run alone sets this process's torch threads; give the other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def request(data: str, neck: str = "bifpn", seed: int = 0, threads: int | None = None) -> RunRequest:
    return RunRequest(neck=neck, phi=0, seed=seed, data=data, train=TINY, threads=threads)


class Recorder(SweepObserver):
    """What the parent's observer heard: (event, label) pairs and the steps per label."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.steps: dict[str, list[int]] = {}

    def run_started(self, label: str, epochs: int, steps: int) -> None:
        self.events.append(("started", label))

    def run_step(self, label: str, info: StepInfo) -> None:
        self.steps.setdefault(label, []).append(info.step)

    def run_finished(self, label: str, record) -> None:
        self.events.append((record.status, label))

    def skipped(self, label: str, reason: str) -> None:
        self.events.append(("skipped", label))


def test_two_jobs_give_the_losses_of_each_run_alone_with_one_thread(tiny_data, tmp_path):
    observer = Recorder()
    requests = [request(tiny_data, seed=0), request(tiny_data, seed=1)]
    side_by_side = sweep_parallel(requests, tmp_path / "jobs", jobs=2, threads=1, observer=observer)
    assert [r.seed for r in side_by_side] == [0, 1] and all(r.ok for r in side_by_side)
    assert len(load_records(tmp_path / "jobs")) == 2
    for record in side_by_side:
        assert record.environment is not None
        assert record.environment["jobs"] == 2 and record.environment["torch_threads"] == 1
        (alone,) = sweep([request(tiny_data, seed=record.seed, threads=1)], tmp_path / f"alone{record.seed}")
        assert alone.environment is not None and alone.environment["jobs"] == 1
        assert alone.config_hash == record.config_hash
        assert alone.epoch_losses == record.epoch_losses  # bit-identical, not merely close
        assert alone.metrics == record.metrics
    labels = [f"det bifpn phi=0 seed={s}" for s in (0, 1)]
    assert sorted(observer.events) == sorted([("started", label) for label in labels] + [("ok", lb) for lb in labels])
    assert {label: steps[-1] for label, steps in observer.steps.items()} == {label: 4 for label in labels}
    again = Recorder()
    assert sweep_parallel(requests, tmp_path / "jobs", jobs=2, observer=again) == []  # skip-if-done
    assert again.events == [("skipped", label) for label in labels]


def test_resume_continues_an_interrupted_run_in_its_own_process(tiny_data, tmp_path):
    with killed_after_first_epoch():
        sweep([request(tiny_data, threads=1)], tmp_path)
    requests = [request(tiny_data), request(tiny_data, neck="fpn"), request(tiny_data)]  # the repeat runs once
    resumed, fresh = sweep_parallel(requests, tmp_path, jobs=2, threads=1, resume=True)
    assert resumed.resumed_from_epoch == 1 and fresh.resumed_from_epoch is None and fresh.neck == "fpn"
    (straight,) = sweep([request(tiny_data, threads=1)], tmp_path / "straight")
    assert resumed.epoch_losses is not None and straight.epoch_losses is not None
    assert resumed.epoch_losses[-1] == straight.epoch_losses[-1] and resumed.metrics == straight.metrics
    assert not checkpoint_path(tmp_path, resumed.config_hash).exists()


def dies_for_fpn(index: int, req: RunRequest, *args) -> None:
    """A child that dies without a word for the fpn run and runs the others (``spawn`` imports it from here)."""
    if req.neck == "fpn":
        os._exit(3)
    run_child(index, req, *args)


def test_a_process_that_dies_is_recorded_as_failed_and_the_others_go_on(tiny_data, tmp_path):
    requests = [request(tiny_data, neck="fpn"), request(tiny_data, neck="bifpn")]
    failed, ok = sweep_parallel(requests, tmp_path, jobs=2, threads=1, child=dies_for_fpn)
    assert failed.status == "failed" and ok.ok
    assert failed.reason == "the run's process ended with exit status 3 before writing its record"
    assert failed.environment is not None and failed.environment["jobs"] == 2
    assert sorted((r.neck, r.status) for r in load_records(tmp_path)) == [("bifpn", "ok"), ("fpn", "failed")]


def test_ctrl_c_stops_every_run_and_keeps_their_checkpoints(tiny_data, tmp_path):
    cmd = [sys.executable, "-m", "archbench", "run", "--neck", "fpn,bifpn", "--data", tiny_data, "--epochs", "50"]
    cmd += ["--batch-size", "8", "--jobs", "2", "--results", str(tmp_path)]
    # A shell starts background jobs with SIGINT ignored, and children inherit that: give the sweep the default
    # disposition a terminal's foreground process has, whatever launched this test.
    parent = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 240
        while len(list(tmp_path.glob("checkpoints/*/last.pt"))) < 2:  # both runs are past their first epoch
            assert parent.poll() is None and time.monotonic() < deadline, parent.communicate()[1]
            time.sleep(0.5)
        os.kill(parent.pid, signal.SIGINT)  # the parent alone: what a terminal's Ctrl-C amounts to here
        _, stderr = parent.communicate(timeout=60)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
    assert parent.returncode != 0, stderr
    assert "start   det fpn phi=0 seed=0" in stderr and "start   det bifpn phi=0 seed=0" in stderr
    assert _group_gone(parent.pid), "a run's process outlived the interrupted sweep"
    assert load_records(tmp_path) == []  # nothing half-done was recorded
    assert len(list(tmp_path.glob("checkpoints/*/last.pt"))) == 2  # --resume continues both


def _group_gone(pgid: int, wait_s: float = 15.0) -> bool:
    """Whether every process of group ``pgid`` has ended (within ``wait_s``)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--jobs", "0"], {}, "--jobs 0: give how many runs of the sweep to train side by side, 1 or more"),
        (["--jobs", "-2"], {}, "--jobs -2: give how many runs"),
        (["--jobs", "2"], {"WORLD_SIZE": "2"}, "--jobs 2 under torchrun (2 processes)"),
    ],
)
def test_bad_jobs_are_refused_before_anything_runs(tmp_path: Path, monkeypatch, args, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    res = run_cli("run", *args, "--results", str(tmp_path))
    assert res.returncode == 2 and message in " ".join(res.stderr.split()), res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "runs").exists()


def notes_its_device(index: int, req: RunRequest, config_hash: str, results: Path, *args) -> None:
    """A child that notes the device it was given and when it held it, and ends without a record."""
    start = time.time()
    time.sleep(1.5)
    Path(results).mkdir(parents=True, exist_ok=True)
    (Path(results) / f"device-{index}.txt").write_text(f"{req.device} {start} {time.time()}")


def devices_given(results: Path) -> list[tuple[str, float, float]]:
    notes = [p.read_text().split() for p in sorted(results.glob("device-*.txt"))]
    return [(device, float(start), float(end)) for device, start, end in notes]


def held_together(notes: list[tuple[str, float, float]]) -> list[list[str]]:
    """The devices of runs whose times overlap, per pair of overlapping runs."""
    return [sorted([a[0], b[0]]) for i, a in enumerate(notes) for b in notes[i + 1 :] if a[1] < b[2] and b[1] < a[2]]


def gpu_sweep(data: str, results: Path, device: str, runs: int, jobs: int, **kw) -> None:
    requests = [RunRequest(neck="fpn", phi=0, seed=s, data=data, train=TINY, device=device) for s in range(runs)]
    sweep_parallel(requests, results, jobs=jobs, threads=1, child=notes_its_device, device_count=2, **kw)


@pytest.fixture
def no_environment(monkeypatch):
    """The parent records the children's missing records as failed, with the environment they were planned under:
    on a machine without CUDA that cannot be asked of a cuda device, and is not what these tests check."""
    monkeypatch.setattr("archbench.runs.parallel.planned_environment", lambda req: {})


def test_on_cuda_each_child_gets_a_gpu_of_its_own(tiny_data, tmp_path, no_environment):
    gpu_sweep(tiny_data, tmp_path, "cuda", runs=4, jobs=2)
    notes = devices_given(tmp_path)
    assert sorted(d for d, _, _ in notes) == ["cuda:0", "cuda:0", "cuda:1", "cuda:1"]
    together = held_together(notes)
    assert together and all(pair == ["cuda:0", "cuda:1"] for pair in together)


def test_a_plan_that_oversubscribes_the_gpus_is_refused_unless_asked(tiny_data, tmp_path, no_environment):
    with pytest.raises(UserError, match=r"--jobs 3 on 2 GPU\(s\) \(cuda:0, cuda:1\) at 1 GPU per run holds 2 runs"):
        gpu_sweep(tiny_data, tmp_path / "refused", "cuda", runs=3, jobs=3)
    with pytest.raises(UserError, match=r"--jobs 2 on 1 GPU\(s\) \(cuda:1\)"):
        gpu_sweep(tiny_data, tmp_path / "refused", "cuda:1", runs=2, jobs=2)
    assert not (tmp_path / "refused").exists()
    gpu_sweep(tiny_data, tmp_path / "shared", "cuda:1", runs=2, jobs=2, gpus_per_run=0.5)
    assert held_together(devices_given(tmp_path / "shared")) == [["cuda:1", "cuda:1"]]
    gpu_sweep(tiny_data, tmp_path / "over", "cuda", runs=3, jobs=3, oversubscribe=True)
    assert sorted(d for d, _, _ in devices_given(tmp_path / "over")) == ["cuda:0", "cuda:0", "cuda:1"]
    with pytest.raises(UserError, match="to train one run on several GPUs use torchrun"):
        gpu_sweep(tiny_data, tmp_path / "refused", "cuda", runs=2, jobs=2, gpus_per_run=2)
