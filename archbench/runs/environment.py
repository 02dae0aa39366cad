"""Where and how a run was made: the machine, the software, and the settings that stay out of the config hash.

A result depends on more than its configuration: AP differs between CPU kinds for the same seed and commit
(AVX-512 against AVX2 kernels round differently), and between CPU models of one kind (an Intel Xeon against an AMD
EPYC, both AVX-512: docs/board.md), and timings depend on the machine, the torch threads, the
runs trained beside it and the speed settings (:data:`archbench.train.trainer.SPEED_FIELDS`). Every record
stores all of them under ``environment`` (:func:`environment`), so

- a sweep that finds a finished record made under other conditions says which ones differ
  (:func:`differences`) instead of silently taking it for its own, and
- the board pools timings only over runs made under one set of conditions (:func:`timing_conditions`).

Records written before these fields existed lack them; every reader here treats a missing field as unknown.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archbench import __version__

if TYPE_CHECKING:
    from archbench.train.trainer import TrainConfig

#: The environment keys that can change a run's numbers (CPU kernels, software) or its speed (threads, jobs,
#: device), besides the speed settings under ``settings``; what :func:`differences` compares.
CONDITION_KEYS = ("cpu_capability", "cpu_model", "device", "gpu", "torch", "torch_threads", "jobs")


@cache
def cpu_model() -> str | None:
    """The processor's model name (Linux: /proc/cpuinfo's first ``model name``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model"):  # x86 / ARM spellings
                return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def cpu_capability() -> str:
    """The vector instruction set torch's CPU kernels run with here (``DEFAULT``, ``AVX2``, ``AVX512``, ...)."""
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


@cache
def _nvidia_driver() -> str | None:
    """The NVIDIA driver version ``nvidia-smi`` reports for the first GPU; None where it cannot be asked."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out.strip() else None


def gpu(device: str) -> dict[str, Any]:
    """``gpu`` (name), ``cuda`` (toolkit torch was built with) and ``gpu_driver`` for a CUDA ``device``; {} else."""
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return {}
    index = torch.device(device).index
    return {
        "gpu": torch.cuda.get_device_name(torch.cuda.current_device() if index is None else index),
        "cuda": torch.version.cuda,
        "gpu_driver": _nvidia_driver(),
    }


def git_commit() -> str | None:
    """The archbench checkout's commit (with ``+dirty`` when it has uncommitted changes); None for an installed
    copy, even one in a virtual environment inside some other git repository."""
    root = Path(__file__).resolve().parents[2]
    try:
        top, commit = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.splitlines()
        if Path(top).resolve() != root:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def environment(device: str, jobs: int = 1, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a record stores under ``environment``: versions, the machine (CPU model and torch's CPU capability, the
    GPU and its driver where one is used), the torch threads of this process, ``jobs`` (runs trained side by side
    by ``archbench run --jobs``, sharing the cores) and ``settings``: the speed settings a run used (channels_last,
    optimizer_impl as run, batched_targets, deterministic, workers, tune_malloc), which stay out of the config hash."""
    # Imported here: reading records (the board) must not pay for importing torch and timm.
    import timm
    import torch
    import torchvision

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_capability": cpu_capability(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "jobs": jobs,
        "device": device,
        **gpu(device),
        "archbench": __version__,
        "git_commit": git_commit(),
    }
    if settings is not None:
        env["settings"] = dict(settings)
    return env


def speed_settings(cfg: TrainConfig, optimizer_impl: str) -> dict[str, Any]:
    """The speed settings of ``cfg`` (:data:`~archbench.train.trainer.SPEED_FIELDS`, outside the config hash) as a run
    uses them: ``optimizer_impl`` is the implementation it runs (a slower one where this torch lacks the asked one),
    and ``optimizer_impl_asked`` is added where the two differ."""
    from archbench.train.trainer import SPEED_FIELDS

    out = {name: getattr(cfg, name) for name in sorted(SPEED_FIELDS)}
    if optimizer_impl != cfg.optimizer_impl:
        out["optimizer_impl_asked"] = cfg.optimizer_impl
    out["optimizer_impl"] = optimizer_impl
    return out


def conditions(env: Mapping[str, Any] | None) -> dict[str, Any]:
    """The conditions of ``env`` that can change a run's numbers or speed: :data:`CONDITION_KEYS` (the device by
    type: ``cuda:1`` and ``cuda`` are one kind) and every speed setting, as ``settings.<name>``. Keys a record does
    not have are left out (unknown)."""
    env = env or {}
    out = {key: env[key] for key in CONDITION_KEYS if env.get(key) is not None}
    if "device" in out:
        out["device"] = str(out["device"]).split(":")[0]
    out.update({f"settings.{k}": v for k, v in sorted((env.get("settings") or {}).items())})
    return out


def differences(recorded: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """``name recorded -> current`` for each condition (:func:`conditions`) both environments know and that differs."""
    old, new = conditions(recorded), conditions(current)
    return [f"{k} {old[k]} -> {new[k]}" for k in sorted(old.keys() & new.keys()) if old[k] != new[k]]


def timing_conditions(env: Mapping[str, Any] | None) -> str:
    """One text naming the conditions timings depend on (all of :func:`conditions` but the torch version), ``?``
    for a record that stores none: runs whose texts differ are not averaged together silently."""
    cond = {k: v for k, v in conditions(env).items() if k != "torch"}
    return ", ".join(f"{k}={v}" for k, v in sorted(cond.items())) or "?"
