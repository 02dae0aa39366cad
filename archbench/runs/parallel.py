"""Independent runs of a sweep side by side: ``archbench run --jobs N``.

The parent prepares every configuration first (:func:`archbench.runs.sweep.plan`: specs, data, config
hashes, skips), so bad input still stops the sweep before any training. It then keeps up to N runs in
flight, each in a process of its own started with ``spawn`` (torch after ``fork`` is unsafe) and limited
to ``threads`` torch threads (default: the usable cores // N). A child prepares its request again (the
built-in data from the cache the parent filled), then trains, evaluates, costs and writes its record
atomically through :func:`~archbench.runs.sweep.run_one`, as a sequential sweep does, and reports its
progress on a queue; the parent replays that to the sweep's observer.

A run's result depends only on its configuration, seed, code and thread count, not on the runs beside it
or on the order they finish in: the children share nothing but read-only data files. A child that ends
without a record (killed, out of memory) is recorded as failed and the others go on. Children ignore
Ctrl-C; the parent, on Ctrl-C or any error of its own, stops every child (SIGTERM, which a child turns into
an interrupt: no record, its last epoch checkpoint kept for ``--resume``), waits for them, and re-raises.

On CUDA the parent gives each child a GPU of its own (``--device cuda``: the least-loaded visible GPU when the
child starts), or a share of one (``--gpus-per-run 0.5``), and refuses more runs at once than the GPUs hold unless
told to oversubscribe them.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from queue import Empty
from typing import Any

import torch

from archbench.errors import UserError
from archbench.quiet import call_spawned, hiding
from archbench.runs.records import FAILED, RunRecord
from archbench.runs.sweep import (
    EpochInfo,
    Prepared,
    RunRequest,
    SweepObserver,
    plan,
    planned_environment,
    run_label,
    run_one,
)
from archbench.train.trainer import StepInfo

#: Seconds a stopped child gets to finish its interrupt before it is killed.
GRACE_S = 10.0
#: Seconds the parent waits for a message before it looks for children that ended.
POLL_S = 0.5
#: Exit status of a child stopped by the parent (as a shell reports an interrupted command).
INTERRUPTED = 130


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity masks on this OS
        return os.cpu_count() or 1


def default_threads(jobs: int) -> int:
    """Torch threads per run when ``jobs`` runs share the machine: the usable cores // ``jobs``, at least 1."""
    return max(1, usable_cores() // jobs)


def check_jobs(jobs: int, world_size: int = 1) -> None:
    """A ``UserError`` unless ``jobs`` >= 1, and unless ``jobs`` is 1 under torchrun (``world_size`` > 1)."""
    if jobs < 1:
        raise UserError(
            f"--jobs {jobs}: give how many runs of the sweep to train side by side, 1 or more (each run "
            f"gets a process of its own with --threads torch threads, by default the {usable_cores()} usable "
            "cores divided by --jobs)"
        )
    if jobs > 1 and world_size > 1:
        raise UserError(
            f"--jobs {jobs} under torchrun ({world_size} processes): torchrun already trains each run with all "
            "its processes; run several independent runs side by side without torchrun (archbench run --jobs "
            "N), or one run over several processes with torchrun and without --jobs"
        )


def gpu_pool(device: str, device_count: int) -> list[int]:
    """The GPU indices a sweep's runs may use under ``--device``: every visible one for ``cuda``, the one named for
    ``cuda:N``, none on the CPU."""
    if not device.startswith("cuda"):
        return []
    index = torch_device_index(device)
    return list(range(device_count)) if index is None else [index]


def torch_device_index(device: str) -> int | None:
    """N of ``cuda:N``; None for ``cuda`` (and ``cpu``)."""
    _, _, index = device.partition(":")
    return int(index) if index.isdigit() else None


def runs_per_gpu(jobs: int, pool: Sequence[int], gpus_per_run: float, oversubscribe: bool) -> int:
    """How many runs one GPU of ``pool`` holds at once: 1 / ``gpus_per_run`` (a fraction shares a GPU), or what
    ``jobs`` needs under ``oversubscribe``; a ``UserError`` for a plan that puts more runs on the GPUs than that
    without ``oversubscribe``, or a run on more than one GPU (a run of its own process trains on one; several
    GPUs for one run: torchrun)."""
    if gpus_per_run <= 0 or gpus_per_run > 1:
        raise UserError(
            f"--gpus-per-run {gpus_per_run:g} with --jobs: each run of --jobs trains in one process on one GPU, or on "
            "a share of one (0.5: two runs per GPU); to train one run on several GPUs use torchrun"
        )
    per_gpu = max(1, int(1 / gpus_per_run + 1e-9))
    if jobs <= len(pool) * per_gpu:
        return per_gpu
    if not oversubscribe:
        raise UserError(
            f"--jobs {jobs} on {len(pool)} GPU(s) (cuda:{', cuda:'.join(map(str, pool))}) at {gpus_per_run:g} GPU "
            f"per run holds {len(pool) * per_gpu} runs at once: give --jobs {len(pool) * per_gpu} or fewer, share "
            "each GPU between runs (--gpus-per-run 0.5), or add --oversubscribe to put several runs on a GPU anyway"
        )
    return -(-jobs // len(pool))


class GpuSlots:
    """Which GPU each run of a sweep trains on: a starting run takes the least-loaded GPU of the pool (the lowest
    index among equals) and gives it back when it ends."""

    def __init__(self, pool: Sequence[int]) -> None:
        self.load = {index: 0 for index in pool}

    def take(self) -> int:
        index = min(self.load, key=lambda i: (self.load[i], i))
        self.load[index] += 1
        return index

    def give(self, index: int) -> None:
        self.load[index] -= 1


class ForwardingObserver(SweepObserver):
    """A run's observer in another process: puts ``(index, kind, payload)`` messages on the sweep's queue
    (anything with ``put``); ``steps=False`` leaves out the per-step messages (a queue that costs a remote call
    per message)."""

    def __init__(self, events: Any, index: int, *, steps: bool = True) -> None:
        self.events, self.index, self.steps = events, index, steps

    def _send(self, kind: str, payload: Any) -> None:
        self.events.put((self.index, kind, payload))

    def run_started(self, label: str, epochs: int, steps: int) -> None:
        self._send("started", (epochs, steps))

    def step(self, info: StepInfo) -> None:
        if self.steps:
            self._send("step", info)

    def epoch_summary(self, info: EpochInfo) -> None:
        self._send("epoch", info)

    def run_finished(self, label: str, record: RunRecord) -> None:
        self._send("finished", record)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_child(index: int, req: RunRequest, config_hash: str, results: Path, resume: bool, events: Any) -> None:
    """A spawned child's work: prepare ``req``, run it and write its record, reporting on ``events``.

    Messages ``(index, kind, payload)``: ``started`` (epochs, steps), ``step`` (a ``StepInfo``), ``epoch`` (an
    ``EpochInfo``), ``finished`` (the ``RunRecord`` written), ``error`` (a ``UserError``'s message) and ``crash``
    (reason and traceback of an exception outside the run; ``run_one`` records those inside it). SIGTERM
    interrupts it (exit status 130).
    """
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        prep = Prepared(req)
        if prep.hash != config_hash:
            raise RuntimeError(f"config hash {prep.hash} in the run's process, {config_hash} in the sweep's")
        run_one(prep, results, resume=resume, observer=ForwardingObserver(events, index))
    except KeyboardInterrupt:  # stopped by the parent: nothing recorded, the checkpoint kept for --resume
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        events.cancel_join_thread()  # do not wait at exit for a parent that no longer reads
        sys.exit(INTERRUPTED)
    except UserError as exc:
        events.put((index, "error", exc.message))
    except Exception as exc:  # noqa: BLE001 (outside the run; run_one records those inside it)
        events.put((index, "crash", (f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=8))))


@dataclass
class _Job:
    """A run in flight: its prepared configuration, the request its process runs (with its thread count and
    jobs), the process, and its record once written."""

    prep: Prepared
    req: RunRequest
    process: BaseProcess
    gpu: int | None = None
    record: RunRecord | None = None

    @property
    def label(self) -> str:
        return run_label(self.req)


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore Ctrl-C meanwhile, so that a child started here inherits that (the parent stops its children)."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: signal dispositions cannot change here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def record_failed(prep: Prepared, req: RunRequest, results: Path, reason: str, trace: str | None = None) -> RunRecord:
    """Record ``prep`` as failed where the run's own process could not (it ended without a record, or crashed
    outside the run); the environment is the one ``req`` was planned to run under (:func:`planned_environment`)."""
    record = prep.record(status=FAILED, reason=reason, traceback=trace, environment=planned_environment(req))
    record.save(results)
    return record


class _Sweep:
    """The parent's side: starts children up to ``jobs`` at a time and turns their messages into records."""

    def __init__(
        self,
        todo: Sequence[Prepared],
        results: Path,
        *,
        jobs: int,
        resume: bool,
        observer: SweepObserver,
        on_record: Callable[[Path, RunRecord], None] | None,
        child: Callable[..., None],
        gpus: GpuSlots | None = None,
    ) -> None:
        self.results, self.jobs, self.resume, self.gpus = results, jobs, resume, gpus
        self.observer, self.on_record, self.child = observer, on_record, child
        self.context = multiprocessing.get_context("spawn")
        self.events = self.context.Queue()
        self.waiting = deque(enumerate(todo))
        self.live: dict[int, _Job] = {}
        self.written: dict[int, RunRecord] = {}

    def run(self) -> list[RunRecord]:
        """Every run to its record (in request order); on any exception the children are stopped first."""
        try:
            while self.waiting or self.live:
                self._start_free()
                self._handle_events(wait=True)
                self._collect_ended()
        except BaseException:
            self._stop_all()
            raise
        finally:
            self.events.close()
        return [self.written[i] for i in sorted(self.written)]

    def _start_free(self) -> None:
        while self.waiting and len(self.live) < self.jobs:
            index, prep = self.waiting.popleft()
            gpu = self.gpus.take() if self.gpus else None
            req = prep.req if gpu is None else replace(prep.req, device=f"cuda:{gpu}")
            payload = pickle.dumps((index, req, prep.hash, self.results, self.resume))
            target = f"{self.child.__module__}:{self.child.__qualname__}"
            args = (hiding(), target, payload, self.events)  # the child imports torch after hiding what the CLI hides
            process = self.context.Process(target=call_spawned, args=args, name=f"archbench-run-{index}")
            with _sigint_ignored():
                process.start()
            self.live[index] = _Job(prep, req, process, gpu)

    def _handle_events(self, *, wait: bool) -> None:
        """Handle every message on the queue, waiting up to :data:`POLL_S` for the first if ``wait``."""
        while True:
            try:
                index, kind, payload = self.events.get(timeout=POLL_S) if wait else self.events.get_nowait()
            except Empty:
                return
            wait = False
            self._handle(self.live[index], kind, payload)

    def _handle(self, job: _Job, kind: str, payload: Any) -> None:
        if kind == "started":
            self.observer.run_started(job.label, *payload)
        elif kind == "step":
            self.observer.run_step(job.label, payload)
        elif kind == "epoch":
            self.observer.epoch_summary(payload)
        elif kind == "finished":
            job.record = payload
            self.observer.run_finished(job.label, payload)
        elif kind == "error":
            raise UserError(payload)
        else:  # a crash outside the run: (reason, traceback)
            job.record = record_failed(job.prep, job.req, self.results, *payload)
            self.observer.run_finished(job.label, job.record)

    def _collect_ended(self) -> None:
        """Take in the children that ended: their last messages, then their records (or a failed one)."""
        ended = [index for index, job in self.live.items() if job.process.exitcode is not None]
        if ended:
            self._handle_events(wait=False)
        for index in ended:
            job = self.live.pop(index)
            job.process.join()
            if self.gpus and job.gpu is not None:
                self.gpus.give(job.gpu)
            if job.record is None:
                reason = f"the run's process ended with exit status {job.process.exitcode} before writing its record"
                job.record = record_failed(job.prep, job.req, self.results, reason)
                self.observer.run_finished(job.label, job.record)
            self.written[index] = job.record
            if self.on_record:
                self.on_record(job.record.path(self.results), job.record)

    def _stop_all(self) -> None:
        """Interrupt every live child (SIGTERM), wait up to :data:`GRACE_S` for all, then kill what is left."""
        processes = [job.process for job in self.live.values()]
        for process in processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + GRACE_S
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()


def unique_configs(todo: Sequence[Prepared], observer: SweepObserver) -> list[Prepared]:
    """``todo`` without repeats of a config hash (two processes would write the same checkpoint and record)."""
    seen: set[str] = set()
    out = []
    for prep in todo:
        if prep.hash in seen:
            observer.skipped(run_label(prep.req), "the same configuration is already in this sweep")
        else:
            seen.add(prep.hash)
            out.append(prep)
    return out


def sweep_parallel(
    requests: Sequence[RunRequest],
    results: Path,
    *,
    jobs: int,
    threads: int | None = None,
    force: bool = False,
    resume: bool = False,
    observer: SweepObserver | None = None,
    on_record: Callable[[Path, RunRecord], None] | None = None,
    child: Callable[..., None] = run_child,
    gpus_per_run: float = 1.0,
    oversubscribe: bool = False,
    device_count: int | None = None,
) -> list[RunRecord]:
    """Run the requests ``jobs`` at a time, each in its own process with ``threads`` torch threads (default
    :func:`default_threads`); returns the records written, in request order (skipped configurations are not).

    On CUDA each run trains on a GPU of its own (:class:`GpuSlots`: ``cuda`` spreads the runs over the
    ``device_count`` GPUs, default all visible; ``cuda:N`` keeps them on N), or on a ``gpus_per_run`` share of one;
    a plan with more runs at once than that is refused unless ``oversubscribe`` (:func:`runs_per_gpu`).
    Skip-if-done, ``force`` and ``resume`` mean what they mean for :func:`~archbench.runs.sweep.sweep`.
    ``child`` is the function a child process runs (:func:`run_child`; importable, for ``spawn``).
    """
    check_jobs(jobs)
    observer = observer or SweepObserver()
    devices = {r.device for r in requests}
    if len(devices) > 1:
        raise ValueError(f"one sweep runs on one --device, not {sorted(devices)}")
    pool = gpu_pool(next(iter(devices), "cpu"), torch.cuda.device_count() if device_count is None else device_count)
    if pool:
        runs_per_gpu(jobs, pool, gpus_per_run, oversubscribe)
    threads = threads or default_threads(jobs)
    # planned as the children will run, so that a skip compares a record with the conditions it would be made under
    requests = [replace(r, threads=threads, jobs=jobs) for r in requests]
    todo = unique_configs(plan(requests, results, force=force, observer=observer), observer)
    return _Sweep(
        todo,
        results,
        jobs=jobs,
        resume=resume,
        observer=observer,
        on_record=on_record,
        child=child,
        gpus=GpuSlots(pool) if pool else None,
    ).run()
