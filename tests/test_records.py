"""Run records on their own: the typed record, its file (bytes, key order, atomic writes) and bad files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from archbench.errors import UserError
from archbench.runs import layout
from archbench.runs.records import SCHEMA_VERSION, RunRecord, completed_hashes, load_records

BOARD = Path(__file__).resolve().parent.parent / "results" / "board"
MINIMAL = {"task": "det", "neck": "x", "phi": 0, "seed": 0, "config_hash": "abc", "status": "ok"}


def test_checked_in_records_load_and_write_back_byte_identical(tmp_path):
    """Every record on the board loads as a RunRecord and, saved again (same written_at), gives the same bytes."""
    files = sorted(layout.runs_dir(BOARD).glob("*.json"))
    assert len(files) >= 60
    records = load_records(BOARD)
    assert [r.path(BOARD) for r in records] == files  # each file is where its record says it lives
    for path, record in zip(files, records):
        assert record.extra == {}  # every key the runner writes is a field
        assert record.to_json() == path.read_text()
        assert record.save(tmp_path).read_bytes() == path.read_bytes()
        assert record.to_dict() == json.loads(path.read_text())


def test_a_new_record_is_stamped_and_keeps_the_file_order(tmp_path):
    record = RunRecord(
        status="failed",
        reason="loss became nan",
        seed=1,
        phi=2,
        neck="fpn",
        task="det",
        config_hash="0123456789abcdef",
        extra={"search": {"study": "s", "trial": 3}},
    )
    assert record.written_at is None and not record.ok
    path = record.save(tmp_path)
    assert path == tmp_path / "runs" / "det-fpn-phi2-s1-0123456789abcdef.json"
    on_disk = json.loads(path.read_text())
    assert list(on_disk) == [
        "schema_version",
        "written_at",
        "task",
        "neck",
        "phi",
        "seed",
        "config_hash",
        "status",
        "reason",
        "search",
    ]  # None fields absent; extra keys last, at the top level
    assert on_disk["schema_version"] == SCHEMA_VERSION and on_disk["written_at"] == record.written_at
    assert RunRecord.load(path) == record
    assert path.read_text().endswith("}\n")


def test_unknown_keys_round_trip_through_extra():
    data = {"schema_version": 1, "status": "ok", **MINIMAL, "later_field": [1, 2], "search": {"trial": 0}}
    record = RunRecord.from_dict(data)
    assert record.extra == {"later_field": [1, 2], "search": {"trial": 0}}
    assert record.to_dict() == data


def test_completed_hashes_are_the_ok_records(tmp_path):
    RunRecord.from_dict(MINIMAL).save(tmp_path)
    RunRecord.from_dict({**MINIMAL, "config_hash": "def", "status": "failed"}).save(tmp_path)
    assert completed_hashes(tmp_path) == {"abc"}


def test_record_writes_are_atomic(tmp_path, monkeypatch):
    RunRecord.from_dict(MINIMAL).save(tmp_path)

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        RunRecord.from_dict({**MINIMAL, "status": "failed"}).save(tmp_path)
    monkeypatch.undo()
    files = list((tmp_path / "runs").iterdir())
    assert len(files) == 1 and json.loads(files[0].read_text())["status"] == "ok"  # old record intact, no temp file


def test_records_get_the_permissions_of_a_plain_write(tmp_path):
    path = RunRecord.from_dict(MINIMAL).save(tmp_path)
    plain = tmp_path / "plain.json"
    plain.write_text("{}")  # open() applies the umask to 0666; mkstemp alone would give 0600
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_temp_files_of_interrupted_writes_are_ignored(tmp_path):
    RunRecord.from_dict(MINIMAL).save(tmp_path)
    (tmp_path / "runs" / ".tmp-abc.json").write_text("{")
    assert [r.config_hash for r in load_records(tmp_path)] == ["abc"]


def test_newer_schema_is_refused_clearly(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "future.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(UserError, match="schema version"):
        load_records(tmp_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", r"bad\.json: not a readable run record \(Expecting property name"),
        ("[1, 2]", r"bad\.json: record schema version None; this archbench reads versions <= 1"),
        ('{"schema_version": "1"}', r"bad\.json: record schema version '1'"),
        (
            '{"schema_version": 1, "task": "det"}',
            r"bad\.json: not a readable run record \(missing neck, phi, seed, "
            r"config_hash, status\)",
        ),
    ],
)
def test_bad_files_are_user_errors_naming_the_file(tmp_path, text, message):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "bad.json").write_text(text)
    with pytest.raises(UserError, match=message):
        load_records(tmp_path)


def test_no_runs_folder_is_no_records(tmp_path):
    assert load_records(tmp_path) == [] and completed_hashes(tmp_path) == set()
