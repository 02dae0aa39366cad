"""Reading and writing the project's files safely: atomic writes, and YAML read with located problems.

Every stage writes files a kill must not leave half-written (run records, checkpoints) and reads
YAML a user wrote (topology specs, search spaces); both live here so each has one home.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from archbench.errors import Problem

# mkstemp creates its file as 0600; a written file should get the mode open() would give it (0666 less the
# umask). The umask can only be read by setting it, so it is read once, here, before any thread starts.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write(path: Path, write: Callable[[str], None]) -> Path:
    """Write ``path`` through ``write(temp_path)`` and rename it into place: never a partial file.

    The temp file lies in the same folder (so the rename is atomic) and is named ``.tmp-*``, which
    readers of a folder skip; it is removed if ``write`` raises or the process is interrupted. The file
    gets the permissions of a plain ``open(path, "w")`` (0666 less the umask), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """``text`` to ``path`` atomically, flushed to disk (fsync) before the rename."""

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write)


def load_yaml_text(text: str, source: str) -> tuple[Any, list[Problem]]:
    """YAML text as data; a syntax error is one ``malformed-yaml`` problem naming the line and column."""
    try:
        return yaml.safe_load(text), []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        return None, [Problem(source, "malformed-yaml", f"not valid YAML{where}: {reason}")]


def read_yaml_file(path: str | Path) -> tuple[Any, list[Problem]]:
    """A YAML file as data; an unreadable file or a syntax error is one problem (and the data is unusable)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(str(p), "unreadable", f"cannot read the file: {exc}")]
    return load_yaml_text(text, str(p))
