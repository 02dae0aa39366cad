"""The fast training step (issue 16) learns what the step before it learned: same losses within float tolerance.

The step before is ``TrainConfig.legacy_step`` (NCHW, a per-tensor optimizer loop, targets assigned image by
image); the default is channels_last, fused AdamW and batched targets. The optimizer implementations are checked
on their own, parameter by parameter against the published update rules, in ``tests/test_optimizer_impl.py``.
Speed is measured by ``scripts/bench_train.py``, never here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from archbench.cli.run import parse_amp
from archbench.data import synthetic
from archbench.data.coco import open_detection_data
from archbench.data.seg_sources import open_segmentation_data
from archbench.errors import UserError
from archbench.models.detector import Detector
from archbench.models.scaling import get_rule
from archbench.models.segmenter import Segmenter
from archbench.spec import resolve_spec
from archbench.train.det_trainer import DetectionTrainer
from archbench.train.schedule import TrainingDiverged
from archbench.train.seg_trainer import SegmentationTrainer
from archbench.train.trainer import SPEED_FIELDS, StepInfo, TrainConfig, Trainer

from helpers import make_segfolder

STEPS = 4


@pytest.fixture(scope="module")
def det_data(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("det")
    synthetic.generate(root / "data", n_train=32, n_val=4, size=64, workers=1)
    train, _, info = open_detection_data(f"coco:{root / 'data'}", resolution=64, cache_root=root)
    return train, info


def _det_trainer(det_data: Any, cfg: TrainConfig) -> DetectionTrainer:
    train, info = det_data
    torch.manual_seed(0)
    model = Detector(resolve_spec("bifpn"), dataclasses.replace(get_rule("proxy").config(0), resolution=64), 6)
    assert info["num_classes"] <= 6
    return DetectionTrainer(model, train, cfg, seed=0, device=torch.device("cpu"))


def _losses(trainer: Trainer, steps: int = STEPS) -> tuple[list[float], list[torch.Tensor]]:
    """Losses of the first ``steps`` optimizer steps (each before its update) and the first step's gradients."""
    losses, grads = [], []
    for i, batch in enumerate(trainer._loader(0)):
        if i == steps:
            break
        out = trainer._loss(trainer._prepare(batch[0]), trainer._to_device(batch[1]))
        losses.append(out["loss"].item())
        trainer._backward(out["loss"])
        if i == 0:
            grads = [p.grad.clone() for p in trainer.model.parameters()]
        trainer._optimizer_step()
        trainer.step += 1
    return losses, grads


def assert_same_learning(
    got: tuple[list[float], list[torch.Tensor]], expected: tuple[list[float], list[torch.Tensor]], grad_tol: float
) -> None:
    """Same first loss and gradients up to rounding (``grad_tol`` of the largest gradient), and the same losses
    after a few updates.

    AdamW scales every gradient element to a step of about ``lr``, so an element that is zero in exact
    arithmetic (the bias of a conv followed by BatchNorm) moves by +-lr on rounding noise alone; the
    later losses therefore agree to 1e-2 where the first agrees to 1e-5.
    """
    (losses, grads), (ref_losses, ref_grads) = got, expected
    assert losses[0] == pytest.approx(ref_losses[0], rel=1e-5)
    scale = max(g.abs().max().item() for g in ref_grads)
    assert max((a - b).abs().max().item() for a, b in zip(grads, ref_grads)) <= grad_tol * scale
    assert losses == pytest.approx(ref_losses, rel=1e-2)


BASE = TrainConfig(batch_size=8, lr=3e-3, warmup_steps=2)
LEGACY = TrainConfig.legacy_step(BASE)


@pytest.mark.parametrize(
    "changes",
    [
        {},  # the default fast path, every means together
        {"channels_last": True},
        {"batched_targets": True},
    ],
    ids=["default", "channels_last", "batched_targets"],
)
def test_detection_step_means_learn_what_the_legacy_step_learns(det_data: Any, changes: dict[str, Any]) -> None:
    legacy = dataclasses.replace(LEGACY, optimizer=changes.get("optimizer", "adamw"))
    fast = BASE if not changes else dataclasses.replace(legacy, **changes)
    # channels_last BatchNorm on the CPU collects its batch statistics less precisely than NCHW (about 1e-4
    # relative where NCHW reaches 1e-6, docs/performance.md), which reaches the gradients; the other means
    # change only the order of float32 sums
    grad_tol = 1e-2 if fast.channels_last else 1e-5
    assert_same_learning(_losses(_det_trainer(det_data, fast)), _losses(_det_trainer(det_data, legacy)), grad_tol)


def test_segmentation_fast_step_learns_what_the_legacy_step_learns(tmp_path: Path) -> None:
    root = make_segfolder(tmp_path / "d", n_train=16, n_val=2, size=(48, 48))
    train, _, info = open_segmentation_data(f"segfolder:{root}", resolution=48, cache_root=tmp_path)
    config = dataclasses.replace(get_rule("proxy").config(0), resolution=48)

    def losses(cfg: TrainConfig) -> tuple[list[float], list[torch.Tensor]]:
        torch.manual_seed(0)
        model = Segmenter(resolve_spec("fpn"), config, info["num_classes"])
        return _losses(SegmentationTrainer(model, train, cfg, seed=0, device=torch.device("cpu")), steps=3)

    assert_same_learning(losses(BASE), losses(LEGACY), grad_tol=1e-2)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_autocast_runs_on_the_cpu_and_stays_near_float32(det_data: Any, amp: str) -> None:
    trainer = _det_trainer(det_data, dataclasses.replace(BASE, amp=amp))
    assert trainer.scaler.is_enabled() == (amp == "fp16")
    with trainer._autocast():
        assert (
            torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
        )
    reduced, full = _losses(trainer, steps=2)[0], _losses(_det_trainer(det_data, BASE), steps=2)[0]
    assert reduced == pytest.approx(full, rel=0.05)
    state = trainer.state_dict()
    assert ("scale" in state["scaler"]) == (amp == "fp16")
    trainer.load_state_dict(state)


def test_deterministic_mode_trains_and_is_set_for_the_process(det_data: Any) -> None:
    before = torch.are_deterministic_algorithms_enabled()
    try:
        trainer = _det_trainer(det_data, dataclasses.replace(BASE, deterministic=True))
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        first, again = _losses(trainer, steps=2)[0], _losses(_det_trainer(det_data, BASE), steps=2)[0]
        assert first == again  # CPU kernels are deterministic either way
    finally:
        torch.use_deterministic_algorithms(before)
        torch.backends.cudnn.deterministic = False


def test_speed_options_stay_out_of_the_config_hash_and_amp_keeps_old_hashes() -> None:
    old_keys = {"epochs", "batch_size", "optimizer", "lr", "weight_decay", "warmup_steps", "grad_clip", "ema"}
    old_keys |= {"ema_decay", "amp"}
    assert set(TrainConfig().to_dict()) == old_keys and not SPEED_FIELDS & old_keys
    assert TrainConfig().to_dict() == TrainConfig.legacy_step(TrainConfig()).to_dict()
    assert TrainConfig().to_dict()["amp"] is False and TrainConfig(amp="bf16").to_dict()["amp"] is True
    assert TrainConfig(amp="fp16").to_dict()["amp"] == "fp16"
    assert TrainConfig(**TrainConfig(amp="bf16").to_dict()).amp == "bf16"  # records and studies read back
    assert TrainConfig(**{**TrainConfig().to_dict(), "amp": False}).amp == "off"


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("amp", "fp8", "choose one of off, bf16, fp16"),
        ("amp", "on", "choose one of off, bf16, fp16"),
        ("optimizer_impl", "apex", "choose one of fused, foreach, loop"),
        ("optimizer", "adam", "choose adamw or sgd"),
    ],
)
def test_bad_step_options_are_refused_clearly(field: str, value: str, words: str) -> None:
    with pytest.raises(UserError, match=words) as err:
        TrainConfig(**{field: value})
    assert repr(value) in err.value.message and err.value.exit_code == 2


def test_amp_flags_keep_amp_working_and_refuse_bad_dtypes() -> None:
    assert parse_amp(False, None) == "off" and parse_amp(True, None) == "bf16"  # --amp as before
    assert parse_amp(False, "fp16") == "fp16" and parse_amp(True, "bf16") == "bf16"
    with pytest.raises(UserError, match="choose one of off, bf16, fp16") as err:
        parse_amp(False, "float16")
    assert "--amp-dtype 'float16'" in err.value.message
    with pytest.raises(UserError, match="give one of the two"):
        parse_amp(True, "off")


def nan_from_call(bad: int) -> Any:
    """``DetectionTrainer._loss`` whose loss turns NaN from the ``bad``-th call (0-based) on."""
    real, calls = DetectionTrainer._loss, [0]

    def loss(self: DetectionTrainer, images: torch.Tensor, targets: Any) -> dict[str, torch.Tensor]:
        out = real(self, images, targets)
        calls[0] += 1
        if calls[0] > bad:
            out["loss"] = out["loss"] * float("nan")
        return out

    return loss


def test_losses_read_in_batches_are_the_losses_read_every_step(det_data, monkeypatch):
    cfg = TrainConfig(epochs=2, batch_size=4, warmup_steps=1)
    runs = []
    for every in (1, 3):
        trainer = _det_trainer(det_data, cfg)
        trainer.loss_read_every = every  # what a CUDA trainer does; on the CPU it reads every step
        steps: list[StepInfo] = []
        losses = [trainer.train_epoch(steps.append) for _ in range(2)]
        runs.append((losses, [(info.step, info.loss) for info in steps]))
    (every_step, reported), (batched, reported_batched) = runs
    assert batched == every_step  # bit-identical epoch means
    assert reported_batched == reported and [s for s, _ in reported] == list(range(1, len(reported) + 1))
    for every in (1, 3):
        trainer = _det_trainer(det_data, dataclasses.replace(cfg, epochs=1))
        trainer.loss_read_every = every
        monkeypatch.setattr(DetectionTrainer, "_loss", nan_from_call(1))
        with pytest.raises(TrainingDiverged) as err:
            trainer.train_epoch()
        assert err.value.step == 1  # the first bad step, however many steps were read together
        monkeypatch.undo()
