"""Our EfficientDet D0 training step against efficientdet-pytorch's ``DetBenchTrain``, in one process (issue 24).

    pip install -e ".[bench]"                          # effdet (efficientdet-pytorch), the peer
    python scripts/bench_peer.py                       # 256 and 512 px, batch 2 (~2 min on 2 cores)
    python scripts/bench_peer.py --sizes 512 --steps 3 --profile 2>/dev/null   # where each phase's time goes

Every side trains the EfficientDet D0 configuration at 90 classes from random weights on one fixed
batch (``--batch`` random images, 3 random boxes each), with the same optimizer: ``make_optimizer`` of
``TrainConfig(batch_size=--batch)`` (AdamW lr 6e-3, weight decay 1e-4, fused), zero_grad(set_to_none)
and gradient clipping at norm 10 (foreach). The process's malloc is tuned first
(:func:`~archbench.train.allocator.tune_malloc`, which our trainer applies anyway): it is process-wide, so
every side runs with it.

- ``ours``: :class:`~archbench.models.detector.Detector` with the ``bifpn`` spec at
  ``EFFICIENTDET.config(0)`` (timm ``efficientnet_b0``, 64 channels, 3 cells, 3 head repeats), one
  step of :class:`~archbench.train.det_trainer.DetectionTrainer` exactly as ``archbench run`` runs
  it: prepare (channels_last), forward, focal + box loss with target assignment, backward, clip,
  AdamW, schedule.
- ``effdet``: ``efficientdet_d0`` (the PyTorch-padding variant, the same ``efficientnet_b0``) as
  shipped (NCHW), its model, anchor labeler and loss called one after the other the way
  ``DetBenchTrain.forward`` calls them (checked to give the same loss before timing).
- ``effdet_cl``: the same in channels_last (the model and the input), the one line an effdet user
  adds to get our memory layout.
- ``effdet_cl_nodp``: ``effdet_cl`` without the stochastic depth (rate 0.1) effdet's D0 config puts in its
  backbone (``config.backbone_args["drop_path_rate"] = 0.0`` before ``create_model_from_config``):
  our backbone has none, so this arm does the same work as ours.

The steps alternate in rotated order after ``--warmup`` rounds (``time_interleaved``); a ratio is
the median of per-round ratios ours / arm, with its interquartile range. Each step is also timed
phase by phase: forward, loss (target assignment + loss), backward (zero_grad + backward),
optimizer (clip, AdamW, our schedule). With ``--profile`` nothing is timed: the script prints, per side
and phase, the ops of most self CPU time (torch.profiler over ``--steps`` steps). The last line is
``ratios peer_<size>=X ... peer_cl_<size>=Y ...``: ours / effdet and ours / effdet_cl.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.autograd.profiler_util import EventList
from torch.profiler import ProfilerActivity, profile

from archbench.costs.flops import param_count
from archbench.costs.perf.timing import Spread, paired_ratios, time_interleaved
from archbench.errors import UserError
from archbench.models.detector import Detector
from archbench.models.scaling import EFFICIENTDET
from archbench.spec import builtin_spec
from archbench.train.allocator import tune_malloc
from archbench.train.det_trainer import DetectionTrainer
from archbench.train.trainer import TrainConfig, make_optimizer

NUM_CLASSES = 90  # efficientdet_d0's (COCO's 90 ids)
BOXES_PER_IMAGE = 3
PHASES = ("forward", "loss", "backward", "optimizer")
#: The effdet arms: name -> (channels_last, backbone drop-path rate or None for the shipped config).
PEER_ARMS: dict[str, tuple[bool, float | None]] = {
    "effdet": (False, None),
    "effdet_cl": (True, None),
    "effdet_cl_nodp": (True, 0.0),
}


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


class Side:
    """One training step split into :data:`PHASES` (methods of the same names, sharing state on ``self``).

    :meth:`step` runs them in order and appends each one's wall time (ms) to ``phase_ms[phase]``.
    """

    model: nn.Module

    def __init__(self) -> None:
        self.phase_ms: dict[str, list[float]] = {p: [] for p in PHASES}

    def phase(self, name: str) -> Callable[[], None]:
        return getattr(self, name)  # type: ignore[no-any-return]

    def step(self) -> None:
        for name in PHASES:
            t0 = time.perf_counter()
            self.phase(name)()
            self.phase_ms[name].append((time.perf_counter() - t0) * 1e3)


class Ours(Side):
    """One DetectionTrainer step of our D0 detector on the fixed batch."""

    def __init__(self, size: int, cfg: TrainConfig, batch: tuple[torch.Tensor, ...]) -> None:
        super().__init__()
        model_cfg = replace(EFFICIENTDET.config(0), resolution=size)
        self.model = Detector(builtin_spec("bifpn"), model_cfg, NUM_CLASSES)
        # the trainer reads only the length of its data set here: the batch is fixed and passed in
        self.trainer = DetectionTrainer(self.model, [None] * cfg.batch_size, cfg, seed=0, device=torch.device("cpu"))
        self.trainer.model.train()
        images, boxes, labels = batch
        self.images = images
        self.targets = [{"boxes": b, "labels": lab} for b, lab in zip(boxes, labels)]

    def forward(self) -> None:
        t = self.trainer
        self.outputs = t._forward(t._prepare(self.images))

    def loss(self) -> None:
        t = self.trainer
        self.value = t._criterion(self.outputs, t._to_device(self.targets))["loss"]
        del self.outputs

    def backward(self) -> None:
        self.trainer._backward(self.value)
        del self.value

    def optimizer(self) -> None:
        self.trainer._optimizer_step()


class Peer(Side):
    """One step of effdet's ``DetBenchTrain(efficientdet_d0)`` on the same batch, with the same optimizer.

    ``channels_last``: model and input in that layout; ``drop_path``: the backbone's stochastic-depth
    rate (None: the shipped config's).
    """

    def __init__(
        self,
        size: int,
        cfg: TrainConfig,
        batch: tuple[torch.Tensor, ...],
        channels_last: bool = False,
        drop_path: float | None = None,
    ) -> None:
        super().__init__()
        effdet = _effdet()
        config = effdet.get_efficientdet_config("efficientdet_d0")
        if drop_path is not None:
            config.backbone_args = {**config.backbone_args, "drop_path_rate": drop_path}
        self.bench: nn.Module = effdet.create_model_from_config(
            config,
            bench_task="train",
            bench_labeler=True,  # effdet assigns its anchor targets inside the step, as ours does
            num_classes=NUM_CLASSES,
            pretrained=False,
            pretrained_backbone=False,
            image_size=(size, size),
        )
        layout = torch.channels_last if channels_last else torch.contiguous_format
        self.bench = self.bench.to(memory_format=layout).train()
        self.model = self.bench.model
        self.optimizer_ = make_optimizer(self.bench.parameters(), cfg)
        self.clip = cfg.grad_clip
        images, boxes, labels = batch
        self.images = images.contiguous(memory_format=layout)
        # effdet's targets: boxes as y0, x0, y1, x1 px and classes from 1 (its labeler subtracts one)
        self.target = {"bbox": boxes[..., [1, 0, 3, 2]].contiguous(), "cls": (labels + 1).float()}

    def forward(self) -> None:
        self.outputs = self.model(self.images)

    def loss(self) -> None:
        """What ``DetBenchTrain.forward`` does after its model: label the anchors, then the loss."""
        cls_out, box_out = self.outputs
        del self.outputs
        labeler = self.bench.anchor_labeler
        cls_targets, box_targets, num_positives = labeler.batch_label_anchors(self.target["bbox"], self.target["cls"])
        self.value = self.bench.loss_fn(cls_out, box_out, cls_targets, box_targets, num_positives)[0]

    def backward(self) -> None:
        self.optimizer_.zero_grad(set_to_none=True)
        self.value.backward()
        del self.value

    def optimizer(self) -> None:
        torch.nn.utils.clip_grad_norm_(self.bench.parameters(), self.clip, foreach=True)
        self.optimizer_.step()

    @torch.no_grad()
    def split_loss_error(self) -> float:
        """|loss of ``DetBenchTrain.forward`` - loss of :meth:`forward` then :meth:`loss`| from the same RNG state
        (drop path draws from it); 0.0 when the split does what the bench does."""
        state = torch.get_rng_state()
        whole = self.bench(self.images, self.target)["loss"]
        torch.set_rng_state(state)
        self.forward()
        self.loss()
        split = self.value
        del self.value
        return float((whole - split).abs())


def make_sides(size: int, batch: int) -> dict[str, Side]:
    """Ours and every effdet arm of :data:`PEER_ARMS`, each from ``torch.manual_seed(0)``, on one fixed batch."""
    cfg = TrainConfig(batch_size=batch)
    data = fixed_batch(size, batch)
    torch.manual_seed(0)
    sides: dict[str, Side] = {"ours": Ours(size, cfg, data)}
    for name, (channels_last, drop_path) in PEER_ARMS.items():
        torch.manual_seed(0)
        peer = Peer(size, cfg, data, channels_last, drop_path)
        error = peer.split_loss_error()
        if error > 1e-5:
            raise RuntimeError(f"{name}: the phase split's loss differs from DetBenchTrain's by {error}")
        sides[name] = peer
    return sides


def bench_size(size: int, batch: int, steps: int, warmup: int) -> dict[str, Any]:
    """Interleaved steps of every side at ``size`` px.

    Returns ``ms`` (side -> Spread of step times), ``phases`` (side -> phase -> Spread, ms), ``ratio``
    (arm -> Spread of the paired ratios ours / arm) and ``params`` (side -> parameter count).
    """
    sides = make_sides(size, batch)
    samples = time_interleaved({name: side.step for name, side in sides.items()}, runs=steps, warmup=warmup)
    return {
        "size": size,
        "params": {name: param_count(side.model) for name, side in sides.items()},
        "ms": {name: Spread.of(v) for name, v in samples.items()},
        "phases": {name: {p: Spread.of(v[warmup:]) for p, v in side.phase_ms.items()} for name, side in sides.items()},
        "ratio": {arm: Spread.of(paired_ratios(samples["ours"], samples[arm])) for arm in PEER_ARMS},
    }


def _ms(s: Spread) -> str:
    """``median [q1, q3]`` in whole ms (one decimal below 100 ms)."""
    digits = 0 if s.median >= 100 else 1
    return f"{s.median:.{digits}f} [{s.q1:.{digits}f}, {s.q3:.{digits}f}]"


def profile_phases(sides: dict[str, Side], steps: int, top: int) -> None:
    """Per side and phase, the ``top`` ops by self CPU time over ``steps`` steps (ms per step)."""
    for name, side in sides.items():
        side.step()  # warm
        per_phase: dict[str, list[EventList]] = {p: [] for p in PHASES}
        for _ in range(steps):
            for phase in PHASES:
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    side.phase(phase)()
                per_phase[phase].append(prof.key_averages())
        for phase, averages in per_phase.items():
            self_us: dict[str, float] = {}
            for avg in averages:
                for e in avg:
                    self_us[e.key] = self_us.get(e.key, 0.0) + e.self_cpu_time_total / steps
            total = sum(self_us.values()) / 1e3
            rows = sorted(self_us.items(), key=lambda kv: -kv[1])[:top]
            print(f"\n{name} / {phase}: {total:.1f} ms self CPU per step; top {top} ops (ms per step)")
            for key, us in rows:
                print(f"  {us / 1e3:8.2f}  {key}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,512", help="comma list of image sizes in px (default 256,512)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed rounds (each runs every side once)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--profile", action="store_true", help="profile each phase (--steps steps) instead of timing")
    parser.add_argument("--top", type=int, default=15, help="ops per phase listed by --profile")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.threads < 1 or args.batch < 1 or args.top < 1:
        parser.error("--steps, --threads, --batch and --top must be >= 1 and --warmup >= 0")
    _effdet()
    torch.set_num_threads(args.threads)
    tuned = tune_malloc()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}, ", end="")
    print(f"{args.threads} threads, batch {args.batch}, malloc tuned: {tuned}; ", end="")
    print(f"times are median [q1, q3] ms over {args.steps} rounds")
    if args.profile:
        for size in sizes:
            print(f"\n=== {size} px")
            profile_phases(make_sides(size, args.batch), args.steps, args.top)
        return
    ratios: dict[str, list[str]] = {"peer": [], "peer_cl": []}
    for size in sizes:
        r = bench_size(size, args.batch, args.steps, args.warmup)
        params = ", ".join(f"{name} {n / 1e6:.3f}M" for name, n in r["params"].items())
        print(f"\n{size} px (params: {params})")
        print(f"  {'side':<16}{'step':>22}" + "".join(f"{p:>22}" for p in PHASES) + f"{'ours / side':>26}")
        for name, ms in r["ms"].items():
            cells = "".join(f"{_ms(r['phases'][name][p]):>22}" for p in PHASES)
            ratio = r["ratio"][name].format() if name in r["ratio"] else ""
            print(f"  {name:<16}{_ms(ms):>22}{cells}{ratio:>26}")
        ratios["peer"].append(f"peer_{size}={r['ratio']['effdet'].median:.3f}")
        ratios["peer_cl"].append(f"peer_cl_{size}={r['ratio']['effdet_cl'].median:.3f}")
    print("ratios " + " ".join(ratios["peer"] + ratios["peer_cl"]))


if __name__ == "__main__":
    main()
