"""The trainer: it learns on a tiny synthetic set, evaluates, and stops on a non-finite loss."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from archbench.data import synthetic
from archbench.data.coco import open_detection_data
from archbench.detection.evaluate import STAT_NAMES
from archbench.models.detector import Detector
from archbench.models.scaling import get_rule
from archbench.spec import resolve_spec
from archbench.train.det_trainer import DetectionTrainer
from archbench.train.schedule import TrainingDiverged, warmup_cosine
from archbench.train.trainer import TrainConfig


def test_trainer_learns_evaluates_and_stops_on_nan(tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "data"
    synthetic.generate(data, n_train=16, n_val=8, size=64, workers=1)
    train_ds, val_ds, info = open_detection_data(f"coco:{data}", resolution=64, cache_root=tmp_path)
    config = dataclasses.replace(get_rule("proxy").config(0), resolution=64)

    def trainer(cfg: TrainConfig) -> DetectionTrainer:
        torch.manual_seed(0)
        model = Detector(resolve_spec("bifpn"), config, info["num_classes"])
        return DetectionTrainer(model, train_ds, cfg, seed=0, device=torch.device("cpu"))

    t = trainer(TrainConfig(epochs=12, batch_size=8, lr=3e-3, warmup_steps=2))
    losses = [t.train_epoch() for _ in range(12)]
    assert t.step == 24 and losses[-1] < losses[0]
    metrics = t.evaluate(val_ds, info)
    assert set(metrics) == set(STAT_NAMES)
    assert all(isinstance(v, float) for v in metrics.values())
    assert any(v >= 0 for v in metrics.values())  # computed, not all "not evaluable" (-1)

    bad = trainer(TrainConfig(epochs=1, batch_size=8, warmup_steps=1))
    real_loss = DetectionTrainer._loss
    calls = {"n": 0}

    def nan_from_second_call(self, images, targets):
        out = real_loss(self, images, targets)
        calls["n"] += 1
        if calls["n"] > 1:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(DetectionTrainer, "_loss", nan_from_second_call)
    with pytest.raises(TrainingDiverged) as err:
        bad.train_epoch()
    assert err.value.step == 1


def test_schedule_warms_up_then_decays_to_zero():
    f = warmup_cosine(total_steps=100, warmup_steps=10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.5) and f(100) == pytest.approx(0.0)
