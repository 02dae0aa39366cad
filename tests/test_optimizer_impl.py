"""The optimizer implementations (fused, foreach, loop) against the published update rules, and the fallback to a
slower implementation where the running torch lacks the one asked for.

The reference updates below are written from the papers' rules in float64 (AdamW: Loshchilov & Hutter, decoupled
weight decay and Adam's bias correction; SGD: momentum with Nesterov's look-ahead and L2 weight decay, in torch's
convention), with the gradients clipped to a total L2 norm first, as :class:`Trainer` does before every step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.torch_version import TorchVersion
from torch.utils.data import TensorDataset, default_collate

from archbench.train import trainer as trainer_module
from archbench.train.trainer import (
    OPTIMIZER_IMPLS,
    TrainConfig,
    Trainer,
    clip_gradients,
    make_optimizer,
    optimizer_impl_runs,
    resolve_optimizer_impl,
)

SHAPES = [(4, 3), (5,), (2, 3, 3)]
STEPS = 5
MAX_NORM = 0.5  # the gradients' norms are 6-30 (see _gradients): clipping binds at every step
BETAS, EPS, MOMENTUM = (0.9, 0.999), 1e-8, 0.9  # torch's AdamW defaults; make_optimizer's SGD momentum
CFG = {
    "adamw": TrainConfig(optimizer="adamw", lr=0.05, weight_decay=0.2),
    "sgd": TrainConfig(optimizer="sgd", lr=0.05, weight_decay=0.2),
}
#: float32 against float64 after 5 steps: every implementation lands within 3.2e-7 (AdamW) and 1.1e-7 (SGD) of
#: the reference on parameters of about 1, while wrong rules tried by hand (no bias correction, coupled or late weight
#: decay, no Nesterov step, no or per-tensor clipping) land 2.4e-3 to 2 away.
TOL = 1e-5


def _params() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=gen) for s in SHAPES]


def _gradients() -> list[list[torch.Tensor]]:
    """One gradient per parameter and step, away from zero (|g| in [0.5, 1.5]) and growing with the step (x1 ..
    x5), so the clipping factor differs from step to step and changes what Adam's moments see."""
    gen = torch.Generator().manual_seed(1)

    def draw(shape: tuple[int, ...], scale: float) -> torch.Tensor:
        sign = torch.randint(0, 2, shape, generator=gen) * 2 - 1
        return scale * sign * (0.5 + torch.rand(shape, generator=gen))

    return [[draw(s, 1.0 + k) for s in SHAPES] for k in range(STEPS)]


def _clipped(grads: list[torch.Tensor], max_norm: float) -> list[torch.Tensor]:
    """``grads`` scaled by min(1, max_norm / ||grads||), the norm over all of them together."""
    norm = torch.sqrt(sum((g * g).sum() for g in grads))
    return [g * min(1.0, max_norm / norm.item()) for g in grads]


def adamw_reference(
    params: list[torch.Tensor], grads: list[list[torch.Tensor]], cfg: TrainConfig
) -> list[torch.Tensor]:
    """AdamW in float64: per step t = 1.., theta -= lr * wd * theta (decoupled), m = b1 m + (1 - b1) g,
    v = b2 v + (1 - b2) g^2, theta -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)."""
    theta = [p.double() for p in params]
    m = [torch.zeros_like(p) for p in theta]
    v = [torch.zeros_like(p) for p in theta]
    (b1, b2), lr, wd = BETAS, cfg.lr, cfg.weight_decay
    for t, step_grads in enumerate(grads, start=1):
        for i, g in enumerate(_clipped([g.double() for g in step_grads], MAX_NORM)):
            theta[i] = theta[i] * (1 - lr * wd)
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat, v_hat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
            theta[i] = theta[i] - lr * m_hat / (v_hat.sqrt() + EPS)
    return theta


def sgd_nesterov_reference(
    params: list[torch.Tensor], grads: list[list[torch.Tensor]], cfg: TrainConfig
) -> list[torch.Tensor]:
    """SGD in float64: g += wd * theta, b = g at the first step and mu b + g after, theta -= lr * (g + mu b)."""
    theta = [p.double() for p in params]
    buf: list[torch.Tensor | None] = [None] * len(theta)
    for step_grads in grads:
        for i, g in enumerate(_clipped([g.double() for g in step_grads], MAX_NORM)):
            g = g + cfg.weight_decay * theta[i]
            b = g if buf[i] is None else MOMENTUM * buf[i] + g
            buf[i] = b
            theta[i] = theta[i] - cfg.lr * (g + MOMENTUM * b)
    return theta


REFERENCE: dict[str, Callable[[list[torch.Tensor], list[list[torch.Tensor]], TrainConfig], list[torch.Tensor]]] = {
    "adamw": adamw_reference,
    "sgd": sgd_nesterov_reference,
}


def _trained(cfg: TrainConfig, impl: str) -> list[torch.Tensor]:
    """The parameters after :data:`STEPS` steps as the trainer takes them: clip, then step, as ``impl``."""
    params = [p.clone().requires_grad_() for p in _params()]
    optimizer = make_optimizer(params, cfg, impl)
    for step_grads in _gradients():
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        assert clip_gradients(params, MAX_NORM, impl).item() > MAX_NORM  # clipping binds
        optimizer.step()
    return [p.detach() for p in params]


@pytest.mark.parametrize("impl", OPTIMIZER_IMPLS)
@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_parameters_after_five_steps_follow_the_published_rule(optimizer: str, impl: str) -> None:
    if not optimizer_impl_runs(optimizer, impl, torch.device("cpu")):
        pytest.skip(f"torch {torch.__version__} has no {impl} {optimizer} on the CPU (fused needs 2.4)")
    cfg = CFG[optimizer]
    expected = REFERENCE[optimizer](_params(), _gradients(), cfg)
    for got, want in zip(_trained(cfg, impl), expected):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got.double(), want, rtol=0, atol=TOL)


@pytest.mark.parametrize("impl", OPTIMIZER_IMPLS)
def test_clipping_scales_all_gradients_by_one_factor_from_their_joint_norm(impl: str) -> None:
    grads = _gradients()[2]
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).item()
    for max_norm, factor in [(1.0, 1.0 / norm), (2 * norm, 1.0)]:  # binding, then not: gradients kept as they are
        params = [torch.zeros(g.shape, requires_grad=True) for g in grads]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        assert clip_gradients(params, max_norm, impl).item() == pytest.approx(norm, rel=1e-6)
        for p, g in zip(params, grads):
            torch.testing.assert_close(p.grad.double(), g.double() * factor, rtol=1e-6, atol=0)


def test_the_check_finds_what_this_torch_runs_on_the_cpu_and_can_say_no() -> None:
    cpu, fused_on_cpu = torch.device("cpu"), TorchVersion(torch.__version__) >= "2.4"
    for optimizer in ("adamw", "sgd"):
        assert optimizer_impl_runs(optimizer, "fused", cpu) == fused_on_cpu
        assert optimizer_impl_runs(optimizer, "foreach", cpu) and optimizer_impl_runs(optimizer, "loop", cpu)
    # no fused or multi-tensor kernels exist for the meta device: the same check answers no
    assert not optimizer_impl_runs("adamw", "fused", torch.device("meta"))
    assert not optimizer_impl_runs("sgd", "foreach", torch.device("meta"))
    assert resolve_optimizer_impl(TrainConfig(), cpu) == ("fused" if fused_on_cpu else "foreach")


@pytest.mark.parametrize(
    "unsupported, asked, used",
    [
        ({"fused"}, "fused", "foreach"),
        ({"fused", "foreach"}, "fused", "loop"),
        ({"foreach"}, "foreach", "loop"),
        ({"foreach"}, "fused", "fused"),  # a faster one that runs is kept
        ({"fused", "foreach"}, "loop", "loop"),
    ],
)
def test_an_implementation_torch_lacks_falls_back_to_the_next_slower_one(
    monkeypatch: pytest.MonkeyPatch, unsupported: set[str], asked: str, used: str
) -> None:
    asked_about: list[str] = []

    def runs(optimizer: str, impl: str, device: torch.device) -> bool:
        asked_about.append(impl)
        return impl not in unsupported

    monkeypatch.setattr(trainer_module, "optimizer_impl_runs", runs)
    assert resolve_optimizer_impl(TrainConfig(optimizer_impl=asked), torch.device("cpu")) == used
    # asked in order from the one asked for down to the one used; the loop is never in doubt
    tried = OPTIMIZER_IMPLS[OPTIMIZER_IMPLS.index(asked) : OPTIMIZER_IMPLS.index(used) + 1]
    assert asked_about == [impl for impl in tried if impl != "loop"]


class _PixelRegression(Trainer):
    """The smallest task: a 1x1 conv regresses targets [B, 1, 4, 4] from images [B, 3, 4, 4] by mean squared error."""

    collate = staticmethod(default_collate)

    def _to_device(self, targets: torch.Tensor) -> torch.Tensor:
        return targets.to(self.device)

    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def _criterion(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": nn.functional.mse_loss(outputs, targets)}


def _pixel_trainer(cfg: TrainConfig) -> _PixelRegression:
    gen = torch.Generator().manual_seed(2)
    images = torch.randn(16, 3, 4, 4, generator=gen)
    data = TensorDataset(images, images.sum(1, keepdim=True) + 0.1 * torch.randn(16, 1, 4, 4, generator=gen))
    torch.manual_seed(0)
    return _PixelRegression(nn.Conv2d(3, 1, 1), data, cfg, seed=0, device=torch.device("cpu"))


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
@pytest.mark.parametrize("unsupported, used", [({"fused"}, "foreach"), ({"fused", "foreach"}, "loop")])
def test_a_trainer_on_a_torch_without_the_asked_implementation_trains_with_the_next_one(
    monkeypatch: pytest.MonkeyPatch, optimizer: str, unsupported: set[str], used: str
) -> None:
    cfg = TrainConfig(optimizer=optimizer, batch_size=4, lr=0.01, warmup_steps=1, grad_clip=0.5, epochs=3)
    monkeypatch.setattr(trainer_module, "optimizer_impl_runs", lambda opt, impl, device: impl not in unsupported)
    fallen_back = _pixel_trainer(cfg)
    monkeypatch.undo()
    assert fallen_back.optimizer_impl_used == used
    group = fallen_back.optimizer.param_groups[0]
    assert not group["fused"] and group["foreach"] == (used == "foreach")

    reference = _pixel_trainer(dataclasses.replace(cfg, optimizer_impl="loop"))  # the loop, asked for
    assert reference.optimizer_impl_used == "loop"
    losses = [fallen_back.train_epoch() for _ in range(cfg.epochs)]
    for _ in range(cfg.epochs):
        reference.train_epoch()
    assert fallen_back.step == 12 and losses[-1] < losses[0]
    for got, want in zip(fallen_back.model.parameters(), reference.model.parameters()):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
