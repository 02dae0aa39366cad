"""Putting a generated data set folder in place: a staging folder renamed at the end.

A data set is written into ``<out>.tmp-<host>-<pid>`` next to its destination and renamed into
place once complete, so an interrupted run never leaves a folder that looks complete; staging
folders of dead processes on this host are removed by the next run.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path

from archbench.data.synthetic.store import read_meta
from archbench.errors import UserError


def check_out_dir(out_dir: Path) -> None:
    """Refuse to replace anything but an empty folder or a previous generated data set."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder")
    if any(out_dir.iterdir()) and read_meta(out_dir) is None:
        raise UserError(
            f"{out_dir}: exists, is not empty and is not an archbench synthetic data set; choose another --out"
        )


def _host() -> str:
    """This host's name, reduced to characters safe in a folder name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"


def tmp_name(out_dir: Path) -> Path:
    """The staging folder next to ``out_dir``: ``<name>.tmp-<host>-<pid>``."""
    return out_dir.with_name(f"{out_dir.name}.tmp-{_host()}-{os.getpid()}")


def remove_stale_tmp(out_dir: Path) -> None:
    """Delete staging folders of ``out_dir`` left by dead generator processes on this host."""
    prefix = f"{out_dir.name}.tmp-{_host()}-"
    if not out_dir.parent.is_dir():
        return
    for candidate in out_dir.parent.iterdir():
        pid_text = candidate.name[len(prefix) :] if candidate.name.startswith(prefix) else ""
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text)):
            shutil.rmtree(candidate, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename the finished staging folder to ``out_dir``, replacing an old data set there."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f"{out_dir.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
    tmp.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
