"""A latency sitting (scripts/measure_latency.py) written for a tiny trained board and read back by the board
(archbench.board.latency). No timing is asserted: only what is written, and which latency each group gets."""

from __future__ import annotations

import copy
import json

import pytest

from archbench.board.latency import ENTRY_KEYS, FROM_RECORDS, read_sittings, sitting_latency, write_sitting
from archbench.errors import UserError
from archbench.runs.layout import latency_dir
from archbench.runs.sweep import RunRequest, sweep
from archbench.train.trainer import TrainConfig

from scriptkit import load_script

TINY = TrainConfig(epochs=1, batch_size=8, warmup_steps=1)


def regrouped(record: dict, epochs: int) -> dict:
    """The same run as if trained on another schedule: another board group, the same model."""
    other = copy.deepcopy(record)
    other["epochs"] = other["config"]["train"]["epochs"] = epochs
    other["config_hash"] = f"{epochs}".ljust(16, "0")
    return other


def test_a_sitting_times_every_configuration_once_and_the_board_takes_each_group_from_one_source(
    tiny_data, tmp_path, capsys
):
    requests = [RunRequest(neck="fpn", phi=phi, seed=0, data=tiny_data, train=TINY, threads=2) for phi in (0, 1)]
    records = [r.to_dict() for r in sweep(requests, tmp_path)]
    capsys.readouterr()

    path = load_script("measure_latency").measure(tmp_path, "det", threads=1, rounds=2, warmup=1)
    err = capsys.readouterr().err
    assert "building 1/2: det fpn phi=0" in err and "round 1/3 (warm-up)" in err and "round 3/3" in err
    assert path.parent == latency_dir(tmp_path) and not list(path.parent.glob(".tmp-*"))
    doc = json.loads(path.read_text())
    assert doc["threads"] == 1 and doc["environment"]["torch_threads"] == 1 and doc["environment"]["jobs"] == 1
    assert (doc["rounds"], doc["warmup"], doc["batch"]) == (2, 1, 1)
    entries = sorted(doc["entries"], key=lambda e: e["phi"])
    assert [e["phi"] for e in entries] == [0, 1] and [e["resolution"] for e in entries] == [128, 144]
    for entry, record in zip(entries, records):
        assert set(ENTRY_KEYS) <= set(entry) and entry["epochs"] == 1 and entry["neck"] == "fpn"
        assert entry["spec_hash"] == record["spec_hash"] and entry["n"] == 2
        assert entry["latency_min_ms"] <= entry["latency_q1_ms"] <= entry["latency_ms"] <= entry["latency_q3_ms"]

    (sitting,) = read_sittings(tmp_path)
    assert sitting.header["threads"] == 1 and sitting.path == path
    moved = regrouped(records[0], 48)  # a third group whose model the sitting never timed: other resolution
    moved["model_config"]["resolution"] = 96
    board = records + [regrouped(r, 24) for r in records] + [moved]
    rows = sitting_latency(board, [sitting]).set_index(["epochs", "phi"])
    for epochs in (1, 24):  # the group trained, and one of other runs of the same models
        assert set(rows.loc[epochs, "latency_source"]) == {f"sitting {path.name}"}
        assert list(rows.loc[epochs, "latency_ms"]) == [e["latency_ms"] for e in entries]
    assert rows.loc[(48, 0), "latency_source"] == FROM_RECORDS
    assert rows.loc[(48, 0), "latency_ms"] == records[0]["costs"]["latency_ms"]

    # a newer sitting that times only phi 0 does not cover the group: the older, complete one still serves it
    partial = {**doc, "entries": [{**entries[0], "latency_ms": 1.0}]}
    write_sitting(tmp_path, {k: v for k, v in partial.items() if k not in ("kind", "version", "measured_at")})
    newest, older = read_sittings(tmp_path)
    assert older.path == path and newest.latency == {entries[0]["model_hash"]: 1.0}
    rows = sitting_latency(records, [newest, older])
    assert set(rows["latency_source"]) == {older.source}
    solo = sitting_latency(records[:1], [newest, older])  # a board of phi 0 alone: the newest covers it
    assert list(solo["latency_source"]) == [newest.source] and list(solo["latency_ms"]) == [1.0]

    (latency_dir(tmp_path) / "broken.json").write_text("{ truncated")
    with pytest.raises(UserError, match="broken.json: unreadable latency sitting"):
        read_sittings(tmp_path)
