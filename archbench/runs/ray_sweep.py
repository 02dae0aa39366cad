"""Runs of a sweep as tasks of a Ray cluster: ``archbench run --executor ray [--address ADDR]``.

The driver (this process) prepares every configuration first, as the local executors do
(:func:`archbench.runs.sweep.plan`: specs, data, config hashes, skip-if-recorded), so bad input still stops the
sweep before any task starts; it then checks that the cluster answers and that one of its nodes can hold a run's
resource request (``threads`` CPUs, ``gpus`` GPUs), and submits one task per run.

A task prepares its request again on its worker, trains it into a scratch folder of that node
(``<tmp>/archbench-ray/<config hash>``) through :func:`~archbench.runs.sweep.run_one`, and returns the record and
every file the run kept (weights, costs) as bytes: the driver writes them into its results folder atomically,
weights before the record, so workers need no shared file system (one works too: nothing is written there by a
worker). Progress (a run's start and epochs) comes back on a Ray queue.

Failures: a crash inside a run is recorded as failed by the run itself; a worker or node that dies mid-run is
Ray's system failure, and the task is retried (:data:`RETRIES` times), resuming from the epoch checkpoint in the
scratch folder when the retry lands on the same node (or one that shares its temp folder); when the retries are
spent the driver records the run as failed with Ray's reason. A run is written by the driver only, once, when its
task returns. A ``UserError`` in a task stops the sweep as it would locally. Ctrl-C on the driver cancels every
task still pending or running (their workers are killed; what finished is kept) and re-raises.

Ray is an optional dependency (``pip install archbench[ray]``); it is imported only here.
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archbench.errors import UserError
from archbench.files import atomic_write
from archbench.runs.layout import CHECKPOINTS_DIR, COSTS_DIR, RUNS_DIR
from archbench.runs.observers import SweepObserver
from archbench.runs.parallel import ForwardingObserver, record_failed, unique_configs
from archbench.runs.records import RunRecord
from archbench.runs.sweep import Prepared, RunRequest, plan, run_label, run_one, store

if TYPE_CHECKING:
    from types import ModuleType

#: Times Ray runs a task again after its worker or node died (Ray's ``max_retries``; exceptions are not retried).
RETRIES = 2
#: Seconds the driver waits for a finished task before it reads the progress queue again.
POLL_S = 0.5
#: Seconds to wait for a TCP connection to the cluster's address before calling it unreachable.
CONNECT_TIMEOUT_S = 5.0
#: The scratch folder's file that names the sweep which last started the run there (a retry finds its own).
SWEEP_MARK = "sweep"


@dataclass(frozen=True)
class RunResources:
    """What each run asks the cluster for: ``cpus`` (also its torch threads) and ``gpus`` (0 on the CPU; a
    fraction shares a GPU between runs)."""

    cpus: int = 1
    gpus: float = 0.0

    def describe(self) -> str:
        return f"{self.cpus} CPU" + (f" and {self.gpus:g} GPU" if self.gpus else "")


#: The executors ``archbench run --executor`` knows.
EXECUTORS = ("local", "ray")


def check_executor(
    executor: str,
    *,
    jobs: int,
    device: str,
    address: str | None,
    threads: int | None,
    gpus_per_run: float | None,
    world_size: int = 1,
) -> RunResources | None:
    """What each run asks a Ray cluster for under ``--executor ray`` (None for the local executor), or a
    ``UserError`` for options that do not go together."""
    if executor not in EXECUTORS:
        raise UserError(f"--executor {executor!r}: choose local (this machine) or ray (tasks of a Ray cluster)")
    if device == "cpu" and gpus_per_run:
        raise UserError(f"--gpus-per-run {gpus_per_run:g} with --device cpu: the runs would hold GPUs they do not use")
    if executor == "local":
        if address is not None:
            raise UserError("--address is for --executor ray; the local executor runs on this machine")
        return None
    if world_size > 1:
        raise UserError("--executor ray under torchrun: Ray schedules the runs; start archbench run without torchrun")
    if jobs > 1:
        raise UserError(
            f"--jobs {jobs} with --executor ray: Ray runs as many runs at once as the cluster's nodes hold, each "
            "asking for --threads CPUs and --gpus-per-run GPUs; leave --jobs out"
        )
    if ":" in device:
        raise UserError(
            f"--device {device} with --executor ray: Ray gives each run its GPU(s) (CUDA_VISIBLE_DEVICES); "
            "say --device cuda and --gpus-per-run"
        )
    if address is not None:
        address_host_port(address)  # its form, before any data is prepared; whether it answers, once it is
    gpus = gpus_per_run if gpus_per_run is not None else (1.0 if device == "cuda" else 0.0)
    if device == "cuda" and gpus == 0:
        raise UserError("--device cuda with --gpus-per-run 0: a CUDA run needs a GPU share (e.g. 1, or 0.5)")
    return RunResources(cpus=threads or 1, gpus=gpus)


def import_ray() -> ModuleType:
    """The ``ray`` module, or a ``UserError`` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(
            "--executor ray needs Ray, an optional dependency: pip install 'archbench[ray]' (on the driver and on "
            "every worker node, with the same archbench and torch)"
        ) from None
    return ray


def address_host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a cluster address (``host:port``, ``ray://host:port``); None for ``auto`` / ``local``.

    A ``UserError`` when it has no port.
    """
    if address in ("auto", "local"):
        return None
    where = address.split("://", 1)[-1]
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(
            f"--address {address!r}: give the Ray cluster's head as HOST:PORT (the GCS port, 6379 by default, "
            "as `ray start --head` prints it) or ray://HOST:PORT for Ray Client, or leave --address out to start "
            "a Ray instance on this machine"
        )
    return host, int(port)


def check_reachable(address: str) -> None:
    """A ``UserError`` unless something accepts a TCP connection at ``address`` within :data:`CONNECT_TIMEOUT_S`
    (Ray's own connect keeps retrying for much longer)."""
    found = address_host_port(address)
    if found is None:
        return
    try:
        with socket.create_connection(found, timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise UserError(
            f"--address {address}: no Ray cluster answers at {found[0]}:{found[1]} ({exc.strerror or exc}). Start "
            "its head with `ray start --head --port PORT` (and each worker with `ray start --address HEAD:PORT`), "
            "check the host and port, or leave --address out to start a Ray instance on this machine"
        ) from None


def check_resources(nodes: Sequence[dict[str, Any]], need: RunResources) -> None:
    """A ``UserError`` unless one live node of ``nodes`` (``ray.nodes()``) has the CPUs and GPUs one run asks for:
    Ray would otherwise leave every task pending for ever."""
    alive = [n for n in nodes if n.get("Alive")]
    for node in alive:
        have = node.get("Resources") or {}
        if have.get("CPU", 0) >= need.cpus and have.get("GPU", 0) >= need.gpus:
            return
    listing = "; ".join(
        f"{n.get('NodeManagerAddress', '?')}: {n.get('Resources', {}).get('CPU', 0):g} CPU, "
        f"{n.get('Resources', {}).get('GPU', 0):g} GPU"
        for n in alive
    )
    raise UserError(
        f"each run asks the Ray cluster for {need.describe()} (--threads, --gpus-per-run), and no node has that "
        f"much: {listing or 'no live node'}. Ask for less, or add a node that has it"
    )


def connect(address: str | None, ray: ModuleType) -> None:
    """Connect this driver to the cluster at ``address`` (checked first), or start a Ray instance on this machine
    when it is None; a no-op when already connected."""
    if ray.is_initialized():
        return
    if address is not None:
        check_reachable(address)
    try:
        ray.init(
            address=address or "local",
            include_dashboard=False,
            logging_level="WARNING",
            log_to_driver=True,
        )
    except ConnectionError as exc:
        raise UserError(f"--address {address}: Ray could not connect ({exc})") from None


def scratch_folder(config_hash: str) -> Path:
    """A run's folder on the worker's node: what it writes before the driver has it, and its epoch checkpoint."""
    return Path(tempfile.gettempdir()) / "archbench-ray" / config_hash


def kept_files(scratch: Path) -> dict[str, bytes]:
    """Every file a finished run kept under ``scratch`` (weights, costs), by path relative to it: not its record
    (returned on its own) nor its checkpoint."""
    skip = {RUNS_DIR, CHECKPOINTS_DIR}
    return {
        str(path.relative_to(scratch)): path.read_bytes()
        for path in sorted(scratch.rglob("*"))
        if path.is_file() and path.relative_to(scratch).parts[0] not in skip and path.name != SWEEP_MARK
    }


class _QueueForwarding(ForwardingObserver):
    """A task's progress on the driver's Ray queue, without per-step messages; a queue whose node died is given
    up (the run goes on, unreported) rather than failing the run."""

    def __init__(self, events: Any, index: int) -> None:
        super().__init__(events, index, steps=False)

    def _send(self, kind: str, payload: Any) -> None:
        from ray import exceptions

        if self.events is None:
            return
        try:
            super()._send(kind, payload)
        except exceptions.RayActorError:
            self.events = None


def run_task(index: int, req: RunRequest, config_hash: str, resume: bool, sweep_id: str, events: Any) -> dict:
    """A task's work on a worker: run ``req`` in its scratch folder and return ``{"record": JSON text, "files":
    {relative path: bytes}}``.

    The run resumes from a checkpoint in the scratch folder when asked (``resume``) or when this sweep started it
    there before (Ray retries a task whose worker died); a checkpoint another sweep left is removed otherwise.
    """
    import ray

    scratch = scratch_folder(config_hash)
    mark = scratch / SWEEP_MARK
    retried = mark.is_file() and mark.read_text() == sweep_id
    if not (resume or retried):
        shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True, exist_ok=True)
    mark.write_text(sweep_id)
    prep = Prepared(req)
    if prep.hash != config_hash:
        raise RuntimeError(f"config hash {prep.hash} on the worker, {config_hash} on the driver")
    context = ray.get_runtime_context()
    executor = {"name": "ray", "node_id": context.get_node_id(), "node_ip": ray.util.get_node_ip_address()}
    observer = _QueueForwarding(events, index)
    _, record = run_one(prep, scratch, resume=True, observer=observer, extra={"executor": executor})
    out = {"record": record.to_json(), "files": kept_files(scratch)}
    shutil.rmtree(scratch, ignore_errors=True)
    return out


def _write_bytes(path: str, data: bytes) -> None:
    Path(path).write_bytes(data)


def write_kept(results: Path, files: dict[str, bytes]) -> None:
    """Write a run's kept files under ``results`` atomically; a costs file already there (another seed of the same
    model measured it) is left as it is."""
    for relative, data in files.items():
        target = results / relative
        if Path(relative).parts[0] == COSTS_DIR and target.exists():
            continue
        atomic_write(target, partial(_write_bytes, data=data))


def sweep_ray(
    requests: Sequence[RunRequest],
    results: Path,
    *,
    address: str | None = None,
    resources: RunResources = RunResources(),
    force: bool = False,
    resume: bool = False,
    observer: SweepObserver | None = None,
    on_record: Callable[[Path, RunRecord], None] | None = None,
) -> list[RunRecord]:
    """Run the requests as tasks of the Ray cluster at ``address`` (a local instance when None), each asking for
    ``resources``; returns the records written, in request order (skipped configurations are not).

    Skip-if-done, ``force`` and ``resume`` mean what they mean for :func:`~archbench.runs.sweep.sweep`.
    """
    ray = import_ray()
    observer = observer or SweepObserver()
    requests = [replace(r, threads=resources.cpus, jobs=1) for r in requests]
    todo = unique_configs(plan(requests, results, force=force, observer=observer), observer)
    if not todo:
        return []
    connect(address, ray)
    check_resources(ray.nodes(), resources)
    return _RaySweep(ray, todo, results, resources, resume, observer, on_record).run()


class _RaySweep:
    """The driver's side: submits the tasks, relays their progress and writes what they return."""

    def __init__(
        self,
        ray: ModuleType,
        todo: Sequence[Prepared],
        results: Path,
        resources: RunResources,
        resume: bool,
        observer: SweepObserver,
        on_record: Callable[[Path, RunRecord], None] | None,
    ) -> None:
        from ray.util.queue import Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.ray, self.todo, self.results, self.resume = ray, list(todo), Path(results), resume
        self.observer, self.on_record = observer, on_record
        # the progress queue lives on the driver's own node (where it can), so that a worker node's death does not
        # take it along; if it dies anyway, the sweep goes on without progress lines
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True)
        self.events: Any = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
        self.task = ray.remote(run_task).options(
            num_cpus=resources.cpus, num_gpus=resources.gpus, max_retries=RETRIES, retry_exceptions=False
        )
        self.written: dict[int, RunRecord] = {}

    def run(self) -> list[RunRecord]:
        sweep_id = uuid.uuid4().hex  # a retried task gets the same arguments, a later sweep another id
        pending = {
            self.task.remote(index, prep.req, prep.hash, self.resume, sweep_id, self.events): index
            for index, prep in enumerate(self.todo)
        }
        try:
            while pending:
                done, _ = self.ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                self._relay_progress()
                for ref in done:
                    self._take(pending.pop(ref), ref)
            self._relay_progress()
        except BaseException:
            for ref in pending:
                self.ray.cancel(ref, force=True)
            raise
        finally:
            if self.events is not None:
                self.events.shutdown()
        return [self.written[i] for i in sorted(self.written)]

    def _relay_progress(self) -> None:
        from ray import exceptions

        if self.events is None:
            return
        try:
            self._relay_queued()
        except exceptions.RayActorError:  # the queue's node died: the runs go on, their progress is not shown
            self.events = None

    def _relay_queued(self) -> None:
        while not self.events.empty():
            index, kind, payload = self.events.get_nowait()
            label = run_label(self.todo[index].req)
            if kind == "started":
                self.observer.run_started(label, *payload)
            elif kind == "epoch":
                self.observer.epoch_summary(payload)

    def _take(self, index: int, ref: Any) -> None:
        """Write what the task ``ref`` of run ``index`` returned, or record why it has nothing."""
        from ray import exceptions

        prep = self.todo[index]
        try:
            out = self.ray.get(ref)
        except exceptions.RayTaskError as exc:  # raised inside the task, outside the run (run_one records those)
            cause = exc.cause
            if isinstance(cause, UserError):
                raise UserError(cause.message) from None
            text = f"{type(cause).__name__}: {cause}" if cause is not None else type(exc).__name__
            record = record_failed(prep, prep.req, self.results, text, str(exc))  # str: the task's own traceback
        except exceptions.RayError as exc:  # the worker or its node died, and the retries are spent
            reason = f"the run's Ray task failed after {RETRIES} retries: {type(exc).__name__}: {exc}"
            record = record_failed(prep, prep.req, self.results, reason)
        else:
            write_kept(self.results, out["files"])
            record = RunRecord.from_dict(json.loads(out["record"]))
            store(record, prep, self.results)
        self.observer.run_finished(run_label(prep.req), record)
        self.written[index] = record
        if self.on_record:
            self.on_record(record.path(self.results), record)
