"""torchvision's sigmoid focal loss against class-index targets, bit for bit, in half the passes over memory.

``DetectionLoss`` sums ``torchvision.ops.sigmoid_focal_loss`` over a dense one-hot target and masks out
ignored anchors: about 20 elementwise ops over every anchor x class logit, each kept by autograd, and about
as many again in backward (at 512 px, batch 2: 8.8 million elements per op). :func:`focal_loss_sum` returns
the same sum and the same gradient **bit for bit** (the run of a seed must not change): it performs every
rounding torchvision's forward and autograd's backward perform, on the same values, and skips only work
that is exact anyway. A target of 0 or 1 makes products with it exact (``p * 1 = p``, ``p * 0 = 0``,
``0 + y = y``), so each element follows one of two branches computed densely for targets 0 and patched at
the few positives (class ``k`` of a positive anchor) with the branch for 1:

- forward, torchvision's order: ``p = sigmoid(x)``; ``ce = (1 - t) * x - log_sigmoid(x)`` (ATen's
  ``binary_cross_entropy_with_logits``: ``x - log_sigmoid(x)`` or ``-log_sigmoid(x)``);
  ``p_t = p * t + (1 - p) * (1 - t)`` and ``q = 1 - p_t`` (``1 - (1 - p)`` or ``1 - p``);
  ``loss = alpha_t * (ce * q**gamma)`` with ``alpha_t`` = ``1 - alpha`` or ``alpha``; times the
  not-ignored mask; summed over the whole tensor.
- backward, autograd's formulas in the same order: ``g_loss = (g * mask) * alpha_t``;
  ``g_ce = g_loss * m`` and ``g_m = g_loss * ce`` (``m = q**gamma``); ``g_q = g_m * (gamma *
  q**(gamma - 1))``; ``g_p = g_q`` or ``-g_q``; ``g_x = sigmoid_backward(g_p, p) + (p - t) * g_ce``.

Transcendental ops (sigmoid, log-sigmoid, pow) run on whole tensors of the reference's shape, so every
element goes through the same vectorised or scalar code as in the reference; patches use only basic
arithmetic, which rounds the same anywhere. ``tests/test_focal_loss.py`` compares the bits.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from archbench.detection.assign import IGNORE


class _FocalLossSum(torch.autograd.Function):
    """Summed focal loss of logits [B, N, K] against labels [B, N] (see the module docstring).

    Saves p, ce, q and q**gamma ([B, N, K] each) and reuses their buffers in backward, which can
    therefore run once per forward (``retain_graph`` is refused).
    """

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, labels: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
        pb, pn = torch.nonzero(labels >= 0, as_tuple=True)
        pos = (pb, pn, labels[pb, pn])  # the target-1 elements
        p = torch.sigmoid(logits)
        ce = F.logsigmoid(logits)
        pos_ce = -ce[pos]
        torch.sub(logits, ce, out=ce)
        ce[pos] = pos_ce
        q = torch.sub(1, p)
        pos_q = q[pos]
        torch.sub(1, q, out=q)
        q[pos] = pos_q
        m = q.pow(gamma)
        loss = ce * m
        pos_loss = loss[pos] * alpha
        loss.mul_(1 - alpha)
        loss[pos] = pos_loss
        kept = (labels != IGNORE).unsqueeze(-1).to(logits.dtype)  # [B, N, 1]
        total = loss.mul_(kept).sum()
        ctx.save_for_backward(p, ce, q, m, kept)
        ctx.pos, ctx.alpha, ctx.gamma, ctx.spent = pos, alpha, gamma, False
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        if ctx.spent:
            raise RuntimeError("focal_loss_sum: backward runs once per forward (retain_graph is not supported)")
        ctx.spent = True
        p, ce, q, m, kept = ctx.saved_tensors
        pos, alpha, gamma = ctx.pos, ctx.alpha, ctx.gamma
        g_kept = grad_out * kept  # [B, N, 1]
        g_loss = g_kept * (1 - alpha)
        pos_g_loss = g_kept[pos[0], pos[1], 0] * alpha
        g_ce = g_loss * m
        g_ce[pos] = pos_g_loss * m[pos]
        pos_g_m = pos_g_loss * ce[pos]
        g_q = ce.mul_(g_loss)  # g_m, in ce's buffer
        g_q[pos] = pos_g_m
        g_q.mul_(q.pow_(gamma - 1).mul_(gamma))
        g_q[pos] = -g_q[pos]  # now g_p
        pos_g_x = (p[pos] - 1) * g_ce[pos]
        g_x = g_ce.mul_(p)  # (p - 0) * g_ce
        g_x[pos] = pos_g_x
        return g_x.add_(torch.ops.aten.sigmoid_backward(g_q, p)), None, None, None


def focal_loss_sum(logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.25, gamma: float = 1.5) -> torch.Tensor:
    """Sigmoid focal loss summed over every class of every anchor that is not ignored; 0-dim, differentiable.

    logits: [B, N, K] float. labels: [B, N] int64, the class 0..K-1 of a positive anchor (target 1 in that
    class, 0 in the others), ``BACKGROUND`` (-2, target 0 everywhere) or ``IGNORE`` (-1, left out).
    Bit for bit ``(sigmoid_focal_loss(logits, one_hot, alpha, gamma) * not_ignored).sum()`` and its gradient.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    total: torch.Tensor = _FocalLossSum.apply(logits.contiguous(), labels, alpha, gamma)
    return total
