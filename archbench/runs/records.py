"""Run records: one self-describing JSON file per run, written atomically.

A record holds the full configuration (and its hash), the spec and its hash, the dataset's name,
fingerprint and sizes, the seed, the metrics, costs, timings and the environment, plus a
``status`` (``ok`` or ``failed`` with a ``reason``). Tables and plots are derived from records;
nothing else is parsed. ``SCHEMA_VERSION`` changes when a field changes meaning.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from archbench.errors import UserError

SCHEMA_VERSION = 1
RUNS_DIR = "runs"


def config_hash(config: dict[str, Any]) -> str:
    """16-hex-digit hash of a run configuration (what decides the result; not where it is stored)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def git_commit() -> str | None:
    """The archbench checkout's commit (with ``+dirty`` when it has uncommitted changes), if any."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def environment(device: str) -> dict[str, Any]:
    """Versions and hardware a result depends on."""
    import timm
    import torch
    import torchvision

    env: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
        "timm": timm.__version__, "platform": platform.platform(), "processor": platform.machine(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": device,
        "git_commit": git_commit(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
    return env


def record_path(results: Path, record: dict[str, Any]) -> Path:
    """``results/runs/<task>-<neck>-phi<phi>-s<seed>-<config hash>.json``."""
    name = f"{record['task']}-{record['neck']}-phi{record['phi']}-s{record['seed']}-{record['config_hash']}.json"
    return Path(results) / RUNS_DIR / name


def write_record(results: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` atomically (temp file in the same folder, fsync, rename): never a partial file."""
    record = {"schema_version": SCHEMA_VERSION, "written_at": datetime.now(timezone.utc).isoformat(), **record}
    path = record_path(results, record)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=2, sort_keys=False, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_records(results: Path) -> list[dict[str, Any]]:
    """Every record under ``results/runs`` (temp files of interrupted writes are ignored).

    A file that is not valid JSON, or has a newer schema than this archbench reads, is a
    ``UserError`` naming the file: records are never silently skipped.
    """
    runs = Path(results) / RUNS_DIR
    if not runs.is_dir():
        return []
    out = []
    for path in sorted(runs.glob("*.json")):
        if path.name.startswith(".tmp-"):
            continue
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{path}: not a readable run record ({exc})") from None
        version = rec.get("schema_version") if isinstance(rec, dict) else None
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise UserError(f"{path}: record schema version {version!r}; this archbench reads versions "
                            f"<= {SCHEMA_VERSION} (upgrade archbench or move the file away)")
        rec["_path"] = str(path)
        out.append(rec)
    return out


def completed_hashes(results: Path) -> set[str]:
    """Config hashes that already have an ``ok`` record (a sweep skips them unless forced)."""
    return {r["config_hash"] for r in load_records(results) if r.get("status") == "ok"}


def python_command() -> str:
    """The command line that produced a record, for provenance."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
