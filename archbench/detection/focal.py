"""Sigmoid focal loss against class-index targets, with its gradient computed in the same pass.

``torchvision.ops.sigmoid_focal_loss`` on a one-hot target is a dozen elementwise ops over every
anchor x class logit, each kept for autograd, and about twice as many again in backward. Almost
every element is a negative (target 0), where the loss and its derivative have short closed forms;
the few positives are patched afterwards. :func:`focal_loss_sum` computes the summed loss and its
gradient together (about 11 passes over the logits, 8 of them in place, and 1 in backward) and
keeps only the gradient. The value is torchvision's up to float32 rounding.

With p = sigmoid(x), softplus(x) = -log(1 - p) and alpha, gamma the focal parameters:

- target 0: ``L0 = (1 - alpha) * p**gamma * softplus(x)``,
  ``dL0/dx = (1 - alpha) * p**gamma * (gamma * (1 - p) * softplus(x) + p)``
- target 1: ``L1 = alpha * (1 - p)**gamma * softplus(-x)``,
  ``dL1/dx = -alpha * (1 - p)**gamma * (gamma * p * softplus(-x) + (1 - p))``
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from archbench.detection.assign import IGNORE


def _positive_terms(x: torch.Tensor, alpha: float, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L1, dL1/dx)`` of target-1 logits ``x`` [P] (1 - p taken as sigmoid(-x), exact for large x)."""
    q = torch.sigmoid(-x)  # 1 - p
    sp = F.softplus(-x)
    qg = q.pow(gamma)
    return alpha * qg * sp, -alpha * qg * (gamma * (1 - q) * sp + q)


def _power(p: torch.Tensor, gamma: float) -> torch.Tensor:
    """``p ** gamma`` as a new tensor; gamma 1.5 (EfficientDet's) as p * sqrt(p), which is cheaper than pow."""
    return p.sqrt().mul_(p) if gamma == 1.5 else p.pow(gamma)


class _FocalLossSum(torch.autograd.Function):
    """Summed focal loss of logits [B, N, K] against labels [B, N]; the gradient is made in forward.

    Three [B, N, K] buffers are allocated (fresh pages of a large tensor cost as much as a pass over
    it) and every further pass works in place; backward scales the saved gradient in place, so it
    can run once per forward (``retain_graph`` is refused).
    """

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, labels: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
        with torch.autocast(logits.device.type, enabled=False):
            logits = logits.contiguous()
            p = torch.sigmoid(logits)
            sp = F.softplus(logits)  # the cross entropy at target 0
            weight = _power(p, gamma)
            kept = (labels != IGNORE).to(logits.dtype).mul_(1 - alpha)  # [B, N]
            weight.mul_(kept.unsqueeze(-1))  # (1 - alpha) * p**gamma where kept: L0 = weight * sp
            total = torch.dot(weight.flatten(), sp.flatten())
            # the positives' own class: L1 in place of the L0 summed above
            pb, pn = torch.nonzero(labels >= 0, as_tuple=True)
            pk = labels[pb, pn]
            pos_loss, pos_grad = _positive_terms(logits[pb, pn, pk], alpha, gamma)
            total = total - torch.dot(weight[pb, pn, pk], sp[pb, pn, pk]) + pos_loss.sum()
            # dL0/dx = weight * (gamma * sp * (1 - p) + p), built in sp's buffer
            grad = sp.mul_(gamma)
            grad.addcmul_(grad, p, value=-1).add_(p).mul_(weight)
            grad[pb, pn, pk] = pos_grad
        ctx.save_for_backward(grad)
        ctx.spent = False
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        if ctx.spent:
            raise RuntimeError("focal_loss_sum: backward runs once per forward (retain_graph is not supported)")
        ctx.spent = True
        (grad,) = ctx.saved_tensors
        return grad.mul_(grad_out), None, None, None


def focal_loss_sum(
    logits: torch.Tensor | Sequence[torch.Tensor], labels: torch.Tensor, alpha: float = 0.25, gamma: float = 1.5
) -> torch.Tensor:
    """Sigmoid focal loss summed over every class of every anchor that is not ignored; 0-dim, differentiable.

    logits: [B, N, K] float32, or its rows in consecutive blocks [B, N_l, K] (sum N_l = N), each summed on
    its own (no copy into one tensor). labels: [B, N] int64, the class 0..K-1 of a positive anchor (target 1
    in that class, 0 in the others), ``BACKGROUND`` (-2, target 0 everywhere) or ``IGNORE`` (-1, left out).
    Equals ``(sigmoid_focal_loss(logits, one_hot, alpha, gamma) * not_ignored).sum()`` up to rounding.
    """
    if isinstance(logits, torch.Tensor):
        logits = [logits]
    parts = labels.split([int(x.shape[1]) for x in logits], dim=1)
    sums = [_FocalLossSum.apply(x, part, alpha, gamma) for x, part in zip(logits, parts)]
    return sums[0] if len(sums) == 1 else torch.stack(sums).sum()
