"""Records say on what and how they ran (issue 24): the machine, the speed settings, and what differs."""

from __future__ import annotations

import json
from dataclasses import replace

import torch

from archbench.board.aggregate import build_table
from archbench.board.cells import MIXED_MARK
from archbench.board.compose import compose
from archbench.board.formats import render
from archbench.board.provenance import setup_table
from archbench.runs import environment as envmod
from archbench.runs import sweep as sweepmod
from archbench.runs.layout import checkpoint_path, costs_path
from archbench.runs.parallel import default_threads, sweep_parallel
from archbench.runs.records import load_records
from archbench.runs.sweep import RunRequest, SweepObserver, sweep
from archbench.train.trainer import TrainConfig, Trainer

TINY = TrainConfig(epochs=2, batch_size=8, warmup_steps=1)


def request(data: str, seed: int = 0, train: TrainConfig = TINY) -> RunRequest:
    return RunRequest(neck="fpn", phi=0, seed=seed, data=data, train=train, threads=2)


class Skips(SweepObserver):
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def skipped(self, label: str, reason: str) -> None:
        self.reasons.append(reason)


def test_environment_names_the_cpu_kind_and_the_settings():
    settings = envmod.speed_settings(TrainConfig(optimizer_impl="fused"), "foreach")
    env = envmod.environment("cpu", jobs=2, settings=settings)
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["cpu_model"] and env["jobs"] == 2 and "gpu" not in env
    assert env["settings"]["optimizer_impl"] == "foreach" and env["settings"]["optimizer_impl_asked"] == "fused"
    assert set(env["settings"]) >= {"channels_last", "batched_targets", "deterministic", "workers"}
    assert "optimizer_impl_asked" not in envmod.speed_settings(TrainConfig(), "fused")


def test_differences_name_what_changed_and_ignore_what_an_old_record_does_not_say():
    old = {"device": "cuda:1", "torch_threads": 2, "jobs": 1, "cpu_capability": "AVX2", "settings": {"workers": 0}}
    new = {"device": "cuda", "torch_threads": 1, "jobs": 1, "cpu_capability": "AVX512", "settings": {"workers": 0}}
    assert envmod.differences(old, new) == ["cpu_capability AVX2 -> AVX512", "torch_threads 2 -> 1"]
    # a record written before issue 24 knows none of the CPU fields: unknown, not different
    assert envmod.differences({"device": "cpu", "torch_threads": 2}, {**new, "device": "cpu", "torch_threads": 2}) == []
    assert envmod.timing_conditions(None) == "?"
    assert envmod.timing_conditions(old) != envmod.timing_conditions(new)


def test_a_run_records_its_machine_and_settings_and_a_rerun_under_other_settings_says_so(tiny_data, tmp_path):
    (rec,) = sweep([request(tiny_data)], tmp_path)
    env = rec.environment or {}
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and env["torch_threads"] == 2
    assert env["settings"]["optimizer_impl"] == "fused" and env["settings"]["channels_last"] is True
    same = Skips()
    assert sweep([request(tiny_data)], tmp_path, observer=same) == []
    assert same.reasons == ["an ok record with the same config hash exists (use --force to re-run)"]
    other = Skips()  # the same configuration (speed settings stay out of the hash), other settings
    assert sweep([request(tiny_data, train=replace(TINY, optimizer_impl="loop"))], tmp_path, observer=other) == []
    (reason,) = other.reasons
    assert "made under other conditions (settings.optimizer_impl fused -> loop)" in reason


def test_a_parallel_sweep_compares_a_record_with_the_conditions_its_children_would_run_under(tiny_data, tmp_path):
    # made as `--jobs 2` makes it: 2 runs side by side with the cores shared between them
    sweep([replace(request(tiny_data), jobs=2, threads=default_threads(2))], tmp_path)
    skips = Skips()
    assert sweep_parallel([replace(request(tiny_data), threads=None)], tmp_path, jobs=2, observer=skips) == []
    assert skips.reasons == ["an ok record with the same config hash exists (use --force to re-run)"]


def test_seeds_of_one_configuration_share_one_costs_measurement(tiny_data, tmp_path, monkeypatch):
    measured = []
    real = sweepmod._measure_costs
    monkeypatch.setattr(sweepmod, "_measure_costs", lambda *a: measured.append(1) or real(*a))
    records = sweep([request(tiny_data, seed=0), request(tiny_data, seed=1)], tmp_path)
    assert len(measured) == 1
    first, second = (r.costs or {} for r in records)
    assert first == second and first["latency_ms"] > 0 and "measured_at" in first
    (path,) = (tmp_path / "costs").iterdir()
    assert json.loads(path.read_text()) == first
    path.write_text("{ truncated")  # a damaged file is measured again, never trusted
    sweep([request(tiny_data, seed=2)], tmp_path)
    assert len(measured) == 2 and json.loads(path.read_text())["latency_ms"] > 0
    assert costs_path(tmp_path, "x").parent == path.parent


def test_checkpoints_follow_a_cadence_and_none_after_the_last_epoch(tiny_data, tmp_path, monkeypatch):
    saved: list[int] = []
    real = Trainer.save
    monkeypatch.setattr(Trainer, "save", lambda self, path: saved.append(self.epoch) or real(self, path))
    sweep([request(tiny_data, train=replace(TINY, epochs=3))], tmp_path)
    assert saved == [1]  # the first epoch's, then none within CHECKPOINT_EVERY_S, none after the last
    saved.clear()
    monkeypatch.setattr(sweepmod, "CHECKPOINT_EVERY_S", 0.0)
    sweep([request(tiny_data, seed=1, train=replace(TINY, epochs=3))], tmp_path)
    assert saved == [1, 2]
    assert not checkpoint_path(tmp_path, "x").parent.parent.exists()  # finished runs leave no checkpoint folders


def board_records(tiny_data, tmp_path):
    records = sweep([request(tiny_data, seed=0), request(tiny_data, seed=1)], tmp_path)
    return [r.to_dict() for r in records]


def test_the_board_flags_mixed_cpu_kinds_and_models_and_never_averages_their_timings_silently(tiny_data, tmp_path):
    records = board_records(tiny_data, tmp_path)
    (row,) = setup_table(records).to_dict("records")
    assert row["mixed"] == "none" and row["settings"].startswith("batched_targets=True")
    assert not build_table(records)["timing_mixed"].any()
    records[1]["environment"] = {**records[1]["environment"], "cpu_model": "Another CPU"}  # one kind, two models
    (row,) = setup_table(records).to_dict("records")
    assert row["mixed"] == "CPU models" and "Another CPU" in row["environment"]
    records[1]["environment"] = {**records[1]["environment"], "cpu_capability": "AVX2"}
    (row,) = setup_table(records).to_dict("records")
    assert row["mixed"] == "CPU kinds, CPU models"
    assert build_table(records)["timing_mixed"].all()
    text = render(compose(records), "md")
    assert MIXED_MARK in text and "average seeds that ran under different conditions" in text
    assert load_records(tmp_path)  # the files themselves are untouched
