"""The loss's dense form (CUDA's: positives found by mask, no host synchronisation) against the indexed form the
CPU trains with: the same targets, the same classification loss and gradient bit for bit, the box loss to float
rounding; and no operation in it that makes the host wait for the device."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from archbench.detection.anchors import anchors_for
from archbench.detection.assign import assign_batch, pad_targets
from archbench.detection.loss import DetectionLoss
from archbench.train.det_trainer import dense_loss

#: aten ops whose result the host must read before it can go on: on CUDA each waits for the device
HOST_SYNC_OPS = {
    "nonzero",
    "index_by_mask",
    "masked_select",
    "_local_scalar_dense",
    "is_nonzero",
    "equal",
    "unique_dim",
    "_unique2",
}


def _targets(gen: torch.Generator, images: int, trial: int) -> list[dict[str, torch.Tensor]]:
    """Random GT of ``images`` images (0..6 boxes each) in a 128 px frame: tiny boxes (ties between anchors),
    degenerate ones, and duplicates that compete for one best anchor."""
    targets = []
    for _ in range(images):
        m = int(torch.randint(0, 7, (), generator=gen))
        xy = torch.rand(m, 2, generator=gen) * 120
        wh = torch.rand(m, 2, generator=gen) * (6 if trial % 2 else 60)
        if trial % 4 == 0 and m:
            wh[0] = 0.0
        if trial % 3 == 0 and m > 1:
            xy[1], wh[1] = xy[0], wh[0]
        targets.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.randint(0, 5, (m,), generator=gen)})
    return targets


def _anchors() -> torch.Tensor:
    return anchors_for([(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)], [8, 16, 32, 64, 128])


def test_dense_assignment_gives_exactly_the_listed_assignment():
    anchors, gen = _anchors(), torch.Generator().manual_seed(2)
    forced_somewhere = 0
    for trial in range(40):
        boxes, labels, valid = pad_targets(_targets(gen, 6, trial), anchors.device)
        listed = assign_batch(anchors, boxes, labels, valid)
        dense = assign_batch(anchors, boxes, labels, valid, dense=True)
        assert torch.equal(dense.labels, listed.labels) and torch.equal(dense.matched, listed.matched), trial
        unforced = assign_batch(anchors, boxes, labels, valid, min_best_iou=2.0)  # no GT forces an anchor
        forced_somewhere += int((listed.labels >= 0).sum() > (unforced.labels >= 0).sum())
    assert forced_somewhere > 10  # the best-anchor rule (the part the two forms do differently) was exercised


@pytest.mark.parametrize("box_loss", ["huber", "giou"])
def test_dense_loss_equals_the_indexed_loss(box_loss):
    anchors, gen = _anchors(), torch.Generator().manual_seed(3)
    targets = _targets(gen, 5, trial=3) + [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    cls = torch.randn(6, anchors.shape[0], 5, generator=gen)
    box = torch.randn(6, anchors.shape[0], 4, generator=gen) * 0.1
    out, grads = {}, {}
    for dense in (False, True):
        c, b = cls.clone().requires_grad_(True), box.clone().requires_grad_(True)
        out[dense] = DetectionLoss(5, box_loss=box_loss, dense=dense)(c, b, anchors, targets)
        out[dense]["loss"].backward()
        grads[dense] = (c.grad, b.grad)
    assert out[True]["num_pos"] == out[False]["num_pos"] > 0
    assert torch.equal(out[True]["cls_loss"], out[False]["cls_loss"])
    assert torch.equal(grads[True][0], grads[False][0])
    torch.testing.assert_close(out[True]["box_loss"], out[False]["box_loss"], rtol=1e-5, atol=0)
    torch.testing.assert_close(grads[True][1], grads[False][1], rtol=1e-5, atol=1e-9)
    assert out[True]["box_loss"] > 0 and torch.isfinite(grads[True][1]).all()


class _Ops(TorchDispatchMode):
    """Records the name of every aten op dispatched while it is active; indexing with a boolean mask (which lists
    the mask's True elements inside the kernel, out of the recorder's sight) as ``index_by_mask``."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name.split("::")[-1]
        self.names.add(name)
        if name.startswith("index") and len(args) > 1 and isinstance(args[1], (list, tuple)):
            if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1]):
                self.names.add("index_by_mask")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("box_loss", ["huber", "giou"])
def test_dense_loss_has_no_op_that_makes_the_host_wait(box_loss):
    anchors, gen = _anchors(), torch.Generator().manual_seed(4)
    targets = _targets(gen, 4, trial=6)
    seen = {}
    for dense in (False, True):
        cls = torch.randn(4, anchors.shape[0], 5, generator=gen, requires_grad=True)
        box = torch.randn(4, anchors.shape[0], 4, generator=gen, requires_grad=True)
        with _Ops() as ops:
            DetectionLoss(5, box_loss=box_loss, dense=dense)(cls, box, anchors, targets)["loss"].backward()
        seen[dense] = ops.names & HOST_SYNC_OPS
    assert {"nonzero", "index_by_mask"} <= seen[False]  # the indexed form synchronises: the recorder sees it
    # torchvision's generalized_box_iou_loss indexes its intersections by mask: the GIoU box loss keeps that one
    assert seen[True] == (set() if box_loss == "huber" else {"index_by_mask"}), seen[True]


def test_the_trainer_uses_the_dense_loss_on_cuda_only():
    assert dense_loss(torch.device("cuda"), batched_targets=True)
    assert dense_loss(torch.device("cuda", 1), batched_targets=True)
    assert not dense_loss(torch.device("cpu"), batched_targets=True)
    assert not dense_loss(torch.device("cuda"), batched_targets=False)  # the per-image assignment lists positives
    with pytest.raises(ValueError, match="dense=True needs batched=True"):
        DetectionLoss(5, batched=False, dense=True)
