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

The positives are patched in one of two ways (:class:`_Positives`), with the same bits: by index (the default:
only the few positive elements are read and written, but finding them with ``nonzero`` makes the host wait
for the device) or by a dense [B, N, K] mask and ``torch.where`` (``dense=True``: a few more passes over
memory, no host synchronisation; what CUDA wants).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from archbench.detection.assign import IGNORE


class _Positives:
    """The target-1 elements of a [B, N, K] tensor (class ``labels[b, n]`` of each positive anchor): read them
    with :meth:`take` / :meth:`take_anchor`, compute on what was read, write the result back with :meth:`put`.

    Indexed (``dense=False``): ``take`` returns the P positive elements [P] and ``put`` writes P values in place.
    Dense: ``take`` returns a copy of the whole tensor and ``put`` selects, per element, the new value at the
    positives and the old one elsewhere; elementwise arithmetic on what ``take`` returned gives the same value
    at each positive either way, so both give the same bits.
    """

    def __init__(self, labels: torch.Tensor, num_classes: int, dense: bool) -> None:
        self.dense = dense
        if dense:  # [B, N, K]; negative labels (background, ignore) match no class
            self.mask = labels.unsqueeze(-1) == torch.arange(num_classes, device=labels.device)
        else:
            pb, pn = torch.nonzero(labels >= 0, as_tuple=True)
            self.index = (pb, pn, labels[pb, pn])

    def take(self, x: torch.Tensor) -> torch.Tensor:
        """The positives' elements of x [B, N, K]: [P], or dense a copy of x."""
        return x.clone() if self.dense else x[self.index]

    def take_anchor(self, x: torch.Tensor) -> torch.Tensor:
        """The positives' anchors' values of x [B, N, 1]: [P], or dense x itself (it broadcasts over K)."""
        return x if self.dense else x[self.index[0], self.index[1], 0]

    def put(self, x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """x [B, N, K] with ``values`` (what :meth:`take` shapes) at the positives; in place unless dense."""
        if self.dense:
            return torch.where(self.mask, values, x)
        x[self.index] = values
        return x


class _FocalLossSum(torch.autograd.Function):
    """Summed focal loss of logits [B, N, K] against labels [B, N] (see the module docstring).

    Saves p, ce, q and q**gamma ([B, N, K] each) and reuses their buffers in backward, which can
    therefore run once per forward (``retain_graph`` is refused).
    """

    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, labels: torch.Tensor, alpha: float, gamma: float, dense: bool
    ) -> torch.Tensor:
        pos = _Positives(labels, logits.shape[-1], dense)
        p = torch.sigmoid(logits)
        ce = F.logsigmoid(logits)
        pos_ce = -pos.take(ce)
        torch.sub(logits, ce, out=ce)
        ce = pos.put(ce, pos_ce)
        q = torch.sub(1, p)
        pos_q = pos.take(q)
        torch.sub(1, q, out=q)
        q = pos.put(q, pos_q)
        m = q.pow(gamma)
        loss = ce * m
        pos_loss = pos.take(loss) * alpha
        loss.mul_(1 - alpha)
        loss = pos.put(loss, pos_loss)
        kept = (labels != IGNORE).unsqueeze(-1).to(logits.dtype)  # [B, N, 1]
        total = loss.mul_(kept).sum()
        ctx.save_for_backward(p, ce, q, m, kept)
        ctx.pos, ctx.alpha, ctx.gamma, ctx.spent = pos, alpha, gamma, False
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None]:
        if ctx.spent:
            raise RuntimeError("focal_loss_sum: backward runs once per forward (retain_graph is not supported)")
        ctx.spent = True
        p, ce, q, m, kept = ctx.saved_tensors
        pos, alpha, gamma = ctx.pos, ctx.alpha, ctx.gamma
        g_kept = grad_out * kept  # [B, N, 1]
        g_loss = g_kept * (1 - alpha)
        pos_g_loss = pos.take_anchor(g_kept) * alpha
        g_ce = g_loss * m
        g_ce = pos.put(g_ce, pos_g_loss * pos.take(m))
        pos_g_m = pos_g_loss * pos.take(ce)
        g_q = ce.mul_(g_loss)  # g_m, in ce's buffer
        g_q = pos.put(g_q, pos_g_m)
        g_q.mul_(q.pow_(gamma - 1).mul_(gamma))
        g_q = pos.put(g_q, -pos.take(g_q))  # now g_p
        pos_g_x = (pos.take(p) - 1) * pos.take(g_ce)
        g_x = g_ce.mul_(p)  # (p - 0) * g_ce
        g_x = pos.put(g_x, pos_g_x)
        return g_x.add_(torch.ops.aten.sigmoid_backward(g_q, p)), None, None, None, None


def focal_loss_sum(
    logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.25, gamma: float = 1.5, dense: bool = False
) -> torch.Tensor:
    """Sigmoid focal loss summed over every class of every anchor that is not ignored; 0-dim, differentiable.

    logits: [B, N, K] float. labels: [B, N] int64, the class 0..K-1 of a positive anchor (target 1 in that
    class, 0 in the others), ``BACKGROUND`` (-2, target 0 everywhere) or ``IGNORE`` (-1, left out).
    Bit for bit ``(sigmoid_focal_loss(logits, one_hot, alpha, gamma) * not_ignored).sum()`` and its gradient.
    dense: find the positives by mask rather than by index (no host synchronisation; the same bits).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    total: torch.Tensor = _FocalLossSum.apply(logits.contiguous(), labels, alpha, gamma, dense)
    return total
