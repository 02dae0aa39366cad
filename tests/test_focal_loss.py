"""The one-pass focal loss gives torchvision's sigmoid focal loss and its autograd gradient, up to rounding."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import sigmoid_focal_loss

from archbench.detection.assign import BACKGROUND, IGNORE
from archbench.detection.focal import focal_loss_sum


def _problem(seed: int, b: int = 3, n: int = 200, k: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [B, N, K] spanning -30..30 and labels [B, N]: a few positives, some ignored, the rest background."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, n, k, generator=gen) * 4
    logits[0, :5] = torch.linspace(-30, 30, 5)[:, None]  # saturated sigmoids on both sides
    labels = torch.full((b, n), BACKGROUND)
    draw = torch.rand(b, n, generator=gen)
    labels[draw < 0.2] = IGNORE
    positive = draw > 0.9
    labels[positive] = torch.randint(0, k, (int(positive.sum()),), generator=gen)
    labels[0, :5] = torch.arange(5) % k  # positives at the saturated logits
    return logits, labels


def _reference(logits: torch.Tensor, labels: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """torchvision's focal loss on the one-hot target, ignored anchors masked out, summed (float64)."""
    x = logits.double()
    target = torch.zeros_like(x)
    pb, pn = torch.nonzero(labels >= 0, as_tuple=True)
    target[pb, pn, labels[pb, pn]] = 1.0
    focal = sigmoid_focal_loss(x, target, alpha=alpha, gamma=gamma, reduction="none")
    return (focal * (labels != IGNORE).unsqueeze(-1)).sum()


@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 1.5), (0.25, 2.0), (0.5, 1.0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_focal_loss_sum_matches_torchvision_and_its_gradient(seed: int, alpha: float, gamma: float) -> None:
    logits, labels = _problem(seed)
    x = logits.clone().requires_grad_(True)
    got = focal_loss_sum(x, labels, alpha, gamma)
    (got * 3.0).backward()  # a non-unit upstream gradient reaches the saved one
    ref_x = logits.double().requires_grad_(True)
    want = _reference(ref_x, labels, alpha, gamma)
    (want * 3.0).backward()
    assert got.dtype == torch.float32 and got.item() == pytest.approx(want.item(), rel=1e-5)
    assert x.grad is not None and ref_x.grad is not None
    torch.testing.assert_close(x.grad, ref_x.grad.float(), rtol=1e-4, atol=1e-6)
    assert torch.all(x.grad[labels == IGNORE] == 0)


def test_focal_loss_sum_without_positives_and_with_everything_ignored() -> None:
    logits, labels = _problem(2)
    background = torch.full_like(labels, BACKGROUND)
    assert focal_loss_sum(logits, background).item() == pytest.approx(_reference(logits, background, 0.25, 1.5).item())
    x = logits.clone().requires_grad_(True)
    none = focal_loss_sum(x, torch.full_like(labels, IGNORE))
    none.backward()
    assert none.item() == 0.0 and x.grad is not None and not x.grad.any()


def test_focal_loss_sum_refuses_a_second_backward() -> None:
    logits, labels = _problem(3)
    x = logits.clone().requires_grad_(True)
    loss = focal_loss_sum(x, labels)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward runs once"):
        loss.backward()


def test_focal_loss_sum_over_blocks_of_rows_equals_the_whole() -> None:
    logits, labels = _problem(4)
    whole = logits.clone().requires_grad_(True)
    blocks = [b.clone().requires_grad_(True) for b in logits.split([120, 60, 20], dim=1)]
    got_whole, got_blocks = focal_loss_sum(whole, labels), focal_loss_sum(blocks, labels)
    got_whole.backward()
    got_blocks.backward()
    assert got_blocks.item() == pytest.approx(got_whole.item(), rel=1e-6)
    assert whole.grad is not None and all(b.grad is not None for b in blocks)
    # vectorised kernels may round a block's tail differently: equal to a few ulp
    torch.testing.assert_close(torch.cat([b.grad for b in blocks], dim=1), whole.grad, rtol=1e-6, atol=1e-9)
