"""A throwaway PostgreSQL server on loopback for the search tests, started from the system's packages.

The cluster is made with initdb and run with pg_ctl (from PATH or /usr/lib/postgresql/*/bin), with
trust auth on 127.0.0.1 at a free port and its sockets in its own folder. PostgreSQL refuses to run
as root, so as root it runs as the ``postgres`` user (or ``nobody``). Where no server can be
started, the tests that need one are skipped and say why.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    on_path = shutil.which("pg_ctl")
    folders = ([Path(on_path).resolve().parent] if on_path else []) + [
        Path(p)
        for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    ]
    return next((f for f in folders if (f / "initdb").is_file() and (f / "pg_ctl").is_file()), None)


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip("running as root and no 'postgres' or 'nobody' user to run the PostgreSQL server as")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A URL of a fresh PostgreSQL cluster on 127.0.0.1 (skips the module when none can be started)."""
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed (pip install -e '.[dev]')")
    bindir = _server_binaries()
    if bindir is None:
        pytest.skip(
            "no PostgreSQL server here (initdb/pg_ctl not on PATH nor in /usr/lib/postgresql/*/bin); "
            "apt-get install postgresql"
        )
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="archbench-pg-"))
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    as_user = {"user": user.pw_uid, "group": user.pw_gid} if user else {}
    port, data = _free_port(), root / "data"

    def pg(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(bindir / args[0]), *args[1:]], capture_output=True, text=True, timeout=120, cwd=root, **as_user
        )

    init = pg("initdb", "-D", str(data), "-U", "archbench", "--auth=trust", "-E", "UTF8")
    start = (
        init
        if init.returncode
        else pg(
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(root / "server.log"),
            "-w",
            "start",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off",
        )
    )
    try:
        if start.returncode:
            log = (root / "server.log").read_text()[-500:] if (root / "server.log").is_file() else ""
            pytest.skip(f"could not start a PostgreSQL server from {bindir}: {(start.stderr or log).strip()[-500:]}")
        yield f"postgresql://archbench@127.0.0.1:{port}/postgres"
    finally:
        if not start.returncode:
            pg("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)
