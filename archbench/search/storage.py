"""Where studies live: a SQLite file under ``results/`` by default, any Optuna RDB URL otherwise.

Every worker opens the storage with a heartbeat: a running trial writes a heartbeat every
``heartbeat`` seconds, and a trial whose worker stopped beating for ``3 x heartbeat`` seconds
(killed, machine lost) is failed by the next worker that looks and re-queued once with the
same coefficients (Optuna's ``RetryHeartbeatStaleTrialCallback``), so the study resumes.
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from pathlib import Path

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError

from archbench.errors import UserError
from archbench.runs.layout import search_db

DEFAULT_HEARTBEAT_S = 60
#: a stale trial is re-queued this many times at most (a trial that kills its worker twice is left failed)
MAX_RETRY = 2
#: SQLite waits this long for another worker's write lock instead of failing at once
SQLITE_TIMEOUT_S = 60


def default_storage_url(results: Path) -> str:
    """``sqlite:///RESULTS/search.db``."""
    return f"sqlite:///{search_db(results)}"


def redact(url: str) -> str:
    """The URL without its password, for records and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 (an unparsable URL is shown as given; it has no password field)
        return url


def _with_driver(parsed: URL) -> URL:
    """``postgresql://`` without a driver: SQLAlchemy 2.1 means psycopg 3; use psycopg2 when only it is installed."""
    if parsed.drivername != "postgresql" or importlib.util.find_spec("psycopg") is not None:
        return parsed
    return parsed.set(drivername="postgresql+psycopg2") if importlib.util.find_spec("psycopg2") else parsed


def open_storage(url: str, heartbeat: int = DEFAULT_HEARTBEAT_S, *, create: bool = True) -> RDBStorage:
    """An RDB storage with heartbeats and stale-trial retry; bad URLs, missing drivers and dead servers are user errors.

    With ``create=False`` a SQLite file that does not exist is an error instead of a new empty database.
    """
    try:
        parsed = _with_driver(make_url(url))
    except ArgumentError:
        raise UserError(
            f"--storage {url!r}: not a database URL; use e.g. sqlite:///results/search.db or "
            "postgresql://USER:PASSWORD@HOST:5432/DB"
        ) from None
    url = parsed.render_as_string(hide_password=False)
    engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if parsed.get_backend_name() == "sqlite" else {}
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        if not create and not Path(parsed.database).is_file():
            raise UserError(f"no search database at {parsed.database} (run archbench search first, or pass --storage)")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):  # workers creating a new database at once race on its schema: try again
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                return RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat,
                    grace_period=3 * heartbeat,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
                )
        except (ImportError, NoSuchModuleError) as exc:
            driver = "'archbench[postgres]'" if parsed.get_backend_name() == "postgresql" else "its database driver"
            raise UserError(
                f"--storage {redact(url)}: the database driver is not installed ({exc}); pip install {driver}"
            ) from None
        except (optuna.exceptions.StorageInternalError, DatabaseError) as exc:  # dead server, schema race
            if attempt == 2:
                raise UserError(
                    f"--storage {redact(url)}: cannot open the study database: {str(exc).splitlines()[0]}"
                ) from None
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")
