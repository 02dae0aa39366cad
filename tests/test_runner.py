"""The sweep runner end to end on a tiny generated set: records, skip-if-done, resume, failures."""

from __future__ import annotations

import json

import pytest
import torch

from archbench.errors import UserError
from archbench.models.backbone import Backbone
from archbench.models.weights import load_backbone_weights
from archbench.runs.layout import checkpoint_path
from archbench.runs.records import SCHEMA_VERSION, load_records
from archbench.runs.sweep import RunRequest, sweep
from archbench.train.det_trainer import DetectionTrainer
from archbench.train.trainer import TrainConfig

from helpers import killed_after_first_epoch, run_cli

TINY = TrainConfig(epochs=2, batch_size=8, warmup_steps=1)
#: A record's keys in file order: what was run, then the outcome (as the runner always wrote them).
BASE_KEYS = [
    "schema_version",
    "written_at",
    "task",
    "neck",
    "neck_ref",
    "phi",
    "preset",
    "seed",
    "epochs",
    "config_hash",
    "config",
    "spec_hash",
    "spec",
    "model_config",
    "dataset",
    "command",
]
OK_KEYS = [
    *BASE_KEYS,
    *["status", "metrics", "epoch_losses", "steps", "timing", "costs", "memory", "environment", "weights"],
]


def request(
    data: str, neck: str = "bifpn", seed: int = 0, train: TrainConfig = TINY, data_seed: int | None = None
) -> RunRequest:
    return RunRequest(neck=neck, phi=0, seed=seed, data=data, train=train, threads=2, data_seed=data_seed)


def test_run_writes_one_complete_record(tiny_data, tmp_path):
    (rec,) = sweep([request(tiny_data)], tmp_path)
    files = list((tmp_path / "runs").iterdir())
    assert len(files) == 1 and not files[0].name.startswith(".tmp-")
    on_disk = json.loads(files[0].read_text())
    assert list(on_disk) == OK_KEYS
    assert on_disk["schema_version"] == SCHEMA_VERSION and on_disk["status"] == "ok"
    assert set(on_disk["metrics"]) == {
        "AP",
        "AP50",
        "AP75",
        "APs",
        "APm",
        "APl",
        "AR1",
        "AR10",
        "AR100",
        "ARs",
        "ARm",
        "ARl",
    }
    assert all(isinstance(v, float) for v in on_disk["metrics"].values())
    assert on_disk["spec"]["name"] == "bifpn" and len(on_disk["spec_hash"]) == 16
    assert on_disk["dataset"]["fingerprint"] and on_disk["dataset"]["n_train"] == 16
    costs = on_disk["costs"]
    assert costs["params_total"] == costs["params_backbone"] + costs["params_neck"] + costs["params_head"]
    assert costs["gflops"] > 0 and costs["latency_ms"] > 0
    assert on_disk["timing"]["images_per_s"] > 0 and on_disk["steps"] == 4
    assert on_disk["environment"]["torch"] == torch.__version__
    assert on_disk["memory"]["process_peak_rss_mb"] > 0
    assert not checkpoint_path(tmp_path, rec.config_hash).parent.exists()  # removed once the record is written
    assert rec.to_json() == files[0].read_text() and rec.path(tmp_path) == files[0]  # the record written


def test_sweep_skips_done_configs_unless_forced(tiny_data, tmp_path):
    assert len(sweep([request(tiny_data)], tmp_path)) == 1
    assert sweep([request(tiny_data)], tmp_path) == []
    assert len(sweep([request(tiny_data, seed=1)], tmp_path)) == 1  # another seed is another config
    assert len(sweep([request(tiny_data)], tmp_path, force=True)) == 1


def test_resume_gives_the_same_metrics_as_an_uninterrupted_run(tiny_data, tmp_path):
    (straight,) = sweep([request(tiny_data)], tmp_path / "a")
    with killed_after_first_epoch():
        sweep([request(tiny_data)], tmp_path / "b")
    assert load_records(tmp_path / "b") == []  # nothing recorded for the interrupted run
    assert checkpoint_path(tmp_path / "b", straight.config_hash).is_file()
    (resumed,) = sweep([request(tiny_data)], tmp_path / "b", resume=True)
    assert resumed.resumed_from_epoch == 1
    assert resumed.metrics == straight.metrics
    assert resumed.epoch_losses and straight.epoch_losses
    assert resumed.epoch_losses[-1] == straight.epoch_losses[-1]
    assert list(resumed.to_dict()) == [*BASE_KEYS, "resumed_from_epoch", *OK_KEYS[len(BASE_KEYS) :]]


def test_nan_loss_is_recorded_as_failed_and_the_sweep_goes_on(tiny_data, tmp_path, monkeypatch):
    real_loss = DetectionTrainer._loss

    def nan_for_fpn(self, images, targets):
        out = real_loss(self, images, targets)
        if self.model.neck.spec.name == "fpn":
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(DetectionTrainer, "_loss", nan_for_fpn)
    records = sweep([request(tiny_data, neck="fpn"), request(tiny_data, neck="bifpn")], tmp_path)
    assert [r.status for r in records] == ["failed", "ok"]
    assert records[0].reason and "diverged at step 0" in records[0].reason
    assert list(records[0].to_dict()) == [*BASE_KEYS, "status", "reason", "failed_at_step", "environment"]
    stored = {r.neck: r.status for r in load_records(tmp_path)}
    assert stored == {"fpn": "failed", "bifpn": "ok"}
    assert len(sweep([request(tiny_data, neck="fpn")], tmp_path)) == 1  # failed configs are retried


def test_a_crash_is_recorded_as_failed_with_its_traceback(tiny_data, tmp_path, monkeypatch):
    def crash(self, on_step=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(DetectionTrainer, "train_epoch", crash)
    (rec,) = sweep([request(tiny_data)], tmp_path)
    assert rec.status == "failed" and rec.reason == "RuntimeError: boom" and rec.traceback
    assert list(json.loads(rec.path(tmp_path).read_text())) == [
        *BASE_KEYS,
        "status",
        "reason",
        "traceback",
        "environment",
    ]


def test_bad_data_stops_before_anything_is_recorded(tmp_path):
    with pytest.raises(UserError, match="nope"):
        sweep([request(f"coco:{tmp_path / 'nope'}")], tmp_path)
    assert load_records(tmp_path) == []


def test_pretrained_offline_fails_fast_with_advice():
    with pytest.raises(UserError, match="--backbone-weights"):
        Backbone("lcnet_050", pretrained=True)


def test_local_backbone_weights(tmp_path):
    torch.manual_seed(1)
    source = Backbone("lcnet_050")
    path = tmp_path / "w.pt"
    torch.save(source.body.state_dict(), path)
    target = Backbone("lcnet_050")
    stats = load_backbone_weights(target.body, path)
    assert stats["loaded"] > 0 and stats["missing"] == 0
    key = next(iter(source.body.state_dict()))
    assert torch.equal(target.body.state_dict()[key], source.body.state_dict()[key])
    torch.save({"unrelated": torch.zeros(3)}, tmp_path / "bad.pt")
    with pytest.raises(UserError, match="no parameter names match"):
        load_backbone_weights(target.body, tmp_path / "bad.pt")


def test_cli_run_end_to_end(tiny_data, tmp_path):
    res = run_cli(
        "run",
        "--neck",
        "bifpn,fpn",
        "--phi",
        "0",
        "--data",
        tiny_data,
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--results",
        str(tmp_path),
    )
    assert res.returncode == 0, res.stderr
    assert sorted(r.neck for r in load_records(tmp_path)) == ["bifpn", "fpn"]
    again = run_cli(
        "run", "--neck", "bifpn", "--data", tiny_data, "--epochs", "1", "--batch-size", "8", "--results", str(tmp_path)
    )
    assert again.returncode == 0 and "skip" in again.stderr
    bad = run_cli("run", "--data", "imagenet", "--results", str(tmp_path))
    assert bad.returncode == 2 and "unknown data reference" in bad.stderr


def test_run_refuses_a_spec_on_other_levels_before_any_training(tiny_data, tmp_path):
    spec = tmp_path / "three.yaml"
    res = run_cli("specs", "show", "fpn", "--levels", "3-5")
    assert res.returncode == 0, res.stderr
    spec.write_text(res.stdout)
    bad = run_cli(
        "run",
        "--neck",
        f"fpn,{spec}",
        "--phi",
        "0",
        "--data",
        tiny_data,
        "--epochs",
        "1",
        "--results",
        str(tmp_path / "r"),
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "is defined on levels [3, 4, 5] but preset 'proxy' builds levels [3, 4, 5, 6, 7]" in bad.stderr
    assert load_records(tmp_path / "r") == []  # not even fpn, listed first, was trained


def test_data_seed_orders_the_data_apart_from_the_weight_seed(tiny_data, tmp_path, monkeypatch):
    import archbench.train.trainer as trainer_module

    order_seeds: list[int] = []
    sampler = trainer_module.epoch_sampler

    def spy(dataset, seed, epoch, *rest):
        order_seeds.append(seed)
        return sampler(dataset, seed, epoch, *rest)

    monkeypatch.setattr(trainer_module, "epoch_sampler", spy)
    (split,) = sweep([request(tiny_data, data_seed=5)], tmp_path)
    assert order_seeds == [5, 5]  # both epochs ordered by the data seed
    assert split.seed == 0 and split.config["data_seed"] == 5
    order_seeds.clear()
    (plain,) = sweep([request(tiny_data)], tmp_path)
    assert order_seeds == [0, 0] and "data_seed" not in plain.config  # unset: old hashes stay
    assert plain.config_hash != split.config_hash
