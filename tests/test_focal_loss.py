"""focal_loss_sum is torchvision's sigmoid focal loss on the one-hot target, masked and summed, bit for bit:
the same float32 value and the same gradient bits (the run of a seed must reproduce), with the positives found by
index (the CPU's form) or by mask (CUDA's)."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import sigmoid_focal_loss

from archbench.detection.assign import BACKGROUND, IGNORE
from archbench.detection.focal import focal_loss_sum


def _problem(seed: int, b: int, n: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [B, N, K] (saturated ones on both sides among them) and labels [B, N]: a few positives, some
    ignored anchors, the rest background."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, n, k, generator=gen) * 3 - 4
    logits.view(-1)[:64] = torch.linspace(-40, 40, 64)
    labels = torch.full((b, n), BACKGROUND)
    draw = torch.rand(b, n, generator=gen)
    labels[draw < 0.1] = IGNORE
    positive = draw > 0.97
    labels[positive] = torch.randint(0, k, (int(positive.sum()),), generator=gen)
    labels[0, :3] = torch.arange(3) % k  # positives on the saturated logits
    return logits, labels


def _reference(logits: torch.Tensor, labels: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """What DetectionLoss computed before focal_loss_sum: torchvision's loss on the one-hot target, masked, summed."""
    target = torch.zeros_like(logits)
    pb, pn = torch.nonzero(labels >= 0, as_tuple=True)
    target[pb, pn, labels[pb, pn]] = 1.0
    focal = sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma, reduction="none")
    return (focal * (labels != IGNORE).unsqueeze(-1).to(focal.dtype)).sum()


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().reshape(-1).view(torch.int32)


@pytest.mark.parametrize("dense", [False, True], ids=["indexed", "dense"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 1.5), (0.25, 2.0), (0.3, 1.0)])
@pytest.mark.parametrize(("b", "n", "k"), [(2, 1227, 90), (16, 300, 6), (3, 77, 7)])
def test_focal_loss_sum_is_torchvisions_bit_for_bit(
    b: int, n: int, k: int, alpha: float, gamma: float, threads: int, dense: bool
) -> None:
    logits, labels = _problem(b * n + k, b, n, k)
    norm = (labels >= 0).sum().clamp(min=1).float()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x, ref_x = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
        got = focal_loss_sum(x, labels, alpha, gamma, dense=dense) / norm
        want = _reference(ref_x, labels, alpha, gamma) / norm
        (got * 3.7).backward()  # the upstream gradient of DetectionLoss: a scalar reaching the sum through / norm
        (want * 3.7).backward()
    finally:
        torch.set_num_threads(before)
    assert torch.equal(_bits(got), _bits(want))
    assert x.grad is not None and ref_x.grad is not None
    assert torch.equal(_bits(x.grad), _bits(ref_x.grad))  # signs of zeros included
    assert not x.grad[labels == IGNORE].any() and x.grad[labels >= 0].any()


def test_focal_loss_sum_refuses_a_second_backward_and_a_bad_alpha() -> None:
    logits, labels = _problem(0, 2, 50, 5)
    x = logits.clone().requires_grad_(True)
    loss = focal_loss_sum(x, labels)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward runs once"):
        loss.backward()
    with pytest.raises(ValueError, match="alpha"):
        focal_loss_sum(logits, labels, alpha=-1.0)
