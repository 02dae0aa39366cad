"""Our EfficientDet D0 training step against efficientdet-pytorch's ``DetBenchTrain``, in one process (issue 16).

    pip install -e ".[bench]"                          # effdet (efficientdet-pytorch), the peer
    python scripts/bench_peer.py                       # 256 and 512 px, batch 2 (~3 min on 2 cores)
    python scripts/bench_peer.py --sizes 256 --steps 10

Both sides train the EfficientDet D0 configuration at 90 classes from random weights on one fixed
batch (``--batch`` random images, 3 random boxes each), with the same optimizer: ``make_optimizer`` of
``TrainConfig(batch_size=--batch)`` (AdamW lr 6e-3, weight decay 1e-4, fused) and gradient
clipping at norm 10.

- **ours**: :class:`~archbench.models.detector.Detector` with the ``bifpn`` spec at
  ``EFFICIENTDET.config(0)`` (timm ``efficientnet_b0``, 64 channels, 3 cells, 3 head repeats), one
  step of :class:`~archbench.train.det_trainer.DetectionTrainer` exactly as ``archbench run`` runs
  it: prepare (channels_last), forward, focal + box loss with target assignment, backward, clip,
  AdamW, schedule.
- **effdet**: ``efficientdet_d0`` (the PyTorch-padding variant, the same ``efficientnet_b0``),
  wrapped in ``DetBenchTrain`` (its anchor labeler, focal + box loss), then backward, the same
  clipping and optimizer. Run as shipped (NCHW).

The steps alternate in rotated order after ``--warmup`` rounds (``time_interleaved``); a ratio is
the median of per-round ratios ours / effdet, with its interquartile range. The last line is
``ratios peer_<size>=X ...`` for each size.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from archbench.costs.flops import param_count
from archbench.costs.perf.timing import Spread, paired_ratios, time_interleaved
from archbench.errors import UserError
from archbench.models.detector import Detector
from archbench.models.scaling import EFFICIENTDET
from archbench.spec import builtin_spec
from archbench.train.det_trainer import DetectionTrainer
from archbench.train.trainer import TrainConfig, make_optimizer

NUM_CLASSES = 90  # efficientdet_d0's (COCO's 90 ids)
BOXES_PER_IMAGE = 3


def _effdet() -> Any:
    try:
        import effdet
    except ImportError:
        raise UserError("the peer is not installed: pip install -e '.[bench]' (effdet, efficientdet-pytorch)") from None
    return effdet


def fixed_batch(size: int, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images [B, 3, size, size], boxes [B, 3, 4] (xyxy px, at least 8 px wide) and labels [B, 3] (0-based)."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, size, size, generator=gen)
    corner = torch.rand(batch, BOXES_PER_IMAGE, 2, generator=gen) * (size * 0.6)
    extent = 8 + torch.rand(batch, BOXES_PER_IMAGE, 2, generator=gen) * (size * 0.35)
    boxes = torch.cat([corner, corner + extent], dim=-1)
    labels = torch.randint(0, NUM_CLASSES, (batch, BOXES_PER_IMAGE), generator=gen)
    return images, boxes, labels


class Ours:
    """One DetectionTrainer step of our D0 detector on the fixed batch."""

    def __init__(self, size: int, cfg: TrainConfig, batch: tuple[torch.Tensor, ...]) -> None:
        model_cfg = replace(EFFICIENTDET.config(0), resolution=size)
        self.model = Detector(builtin_spec("bifpn"), model_cfg, NUM_CLASSES)
        # the trainer reads only the length of its data set here: the batch is fixed and passed in
        self.trainer = DetectionTrainer(self.model, [None] * cfg.batch_size, cfg, seed=0, device=torch.device("cpu"))
        self.trainer.model.train()
        images, boxes, labels = batch
        self.images = images
        self.targets = [{"boxes": b, "labels": lab} for b, lab in zip(boxes, labels)]

    def step(self) -> None:
        t = self.trainer
        loss = t._criterion(t._forward(t._prepare(self.images)), t._to_device(self.targets))["loss"]
        t._backward(loss)
        t._optimizer_step()


class Peer:
    """One step of effdet's ``DetBenchTrain(efficientdet_d0)`` on the same batch, with the same optimizer."""

    def __init__(self, size: int, cfg: TrainConfig, batch: tuple[torch.Tensor, ...]) -> None:
        self.bench: nn.Module = _effdet().create_model(
            "efficientdet_d0",
            bench_task="train",
            bench_labeler=True,  # effdet assigns its anchor targets inside the step, as ours does
            num_classes=NUM_CLASSES,
            pretrained=False,
            pretrained_backbone=False,
            image_size=(size, size),
        )
        self.bench.train()
        self.model = self.bench.model
        self.optimizer = make_optimizer(self.bench.parameters(), cfg)
        self.clip = cfg.grad_clip
        images, boxes, labels = batch
        self.images = images
        # effdet's targets: boxes as y0, x0, y1, x1 px and classes from 1 (its labeler subtracts one)
        self.target = {"bbox": boxes[..., [1, 0, 3, 2]].contiguous(), "cls": (labels + 1).float()}

    def step(self) -> None:
        loss = self.bench(self.images, self.target)["loss"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.bench.parameters(), self.clip, foreach=True)
        self.optimizer.step()


def bench_size(size: int, batch: int, steps: int, warmup: int, legacy: bool = False) -> dict[str, Any]:
    """Interleaved steps of ours and effdet at ``size`` px; medians in ms and the paired ratio ours / effdet.

    ``legacy``: our step as it ran before issue 16 (:meth:`TrainConfig.legacy_step`), for the before / after.
    """
    cfg = TrainConfig(batch_size=batch)
    cfg = TrainConfig.legacy_step(cfg) if legacy else cfg
    data = fixed_batch(size, batch)
    torch.manual_seed(0)
    ours = Ours(size, cfg, data)
    torch.manual_seed(0)
    peer = Peer(size, cfg, data)
    samples = time_interleaved({"ours": ours.step, "effdet": peer.step}, runs=steps, warmup=warmup)
    return {
        "size": size,
        "params": {"ours": param_count(ours.model), "effdet": param_count(peer.model)},
        "ms": {name: Spread.of(v) for name, v in samples.items()},
        "ratio": Spread.of(paired_ratios(samples["ours"], samples["effdet"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,512", help="comma list of image sizes in px (default 256,512)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed rounds (each runs both sides once)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--legacy-step", action="store_true", help="our step as before issue 16 (NCHW, loop AdamW)")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.threads < 1 or args.batch < 1:
        parser.error("--steps, --threads and --batch must be >= 1 and --warmup >= 0")
    _effdet()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} threads, batch {args.batch}; step times are median [q1, q3] ms")
    ratios = []
    for size in (int(s) for s in args.sizes.split(",")):
        r = bench_size(size, args.batch, args.steps, args.warmup, args.legacy_step)
        p = r["params"]
        print(
            f"{size} px: ours {r['ms']['ours'].format()} ms, effdet {r['ms']['effdet'].format()} ms, "
            f"ours / effdet {r['ratio'].format()}; params {p['ours'] / 1e6:.3f}M vs {p['effdet'] / 1e6:.3f}M"
        )
        ratios.append(f"peer_{size}={r['ratio'].median:.3f}")
    print("ratios " + " ".join(ratios))


if __name__ == "__main__":
    main()
