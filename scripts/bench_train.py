"""Training steps of the default proxy run, the step as it ran before issue 16 vs today's default, in one process.

    python scripts/bench_train.py                      # phi 0, 1, 2; about 1.5 min on 2 cores
    python scripts/bench_train.py --phi 0 --steps 6    # quicker

For each phi, two :class:`~archbench.train.det_trainer.DetectionTrainer` of the default proxy
configuration (bifpn, batch 16, the proxy resolution, the built-in data) start from the same
weights and draw the same batches: ``old`` runs with ``TrainConfig.legacy_step`` (NCHW, AdamW and
clipping one tensor at a time, targets assigned image by image), ``new`` with ``TrainConfig()``'s
defaults. Their steps alternate (old new, new old, ...) after ``--warmup`` rounds, so a slow phase
of a shared machine hits both. Each step is timed in phases: data (the loader's next batch, moved
and laid out), forward, loss (flattening, anchors, target assignment, focal + box loss), backward
and optimizer (clipping, AdamW, the schedule). Every time is the median over the timed rounds;
the ratios are medians of the per-round ratios new / old.

Achieved GFLOP/s counts a training step as 3 forwards (backward ~ 2 forwards), 2 FLOPs per
multiply-add, against the dense fp32 matmul ceiling measured in the same process. The last line is
``ratios train_step=X img_s=Y`` at the first phi: X = new / old seconds per step, Y = new / old
images per second.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from typing import Any

import torch

from archbench.costs.flops import count_flops
from archbench.costs.perf.roofline import matmul_gflops
from archbench.data.coco import open_detection_data
from archbench.models.detector import Detector
from archbench.models.scaling import get_rule
from archbench.runs.layout import cache_root
from archbench.spec import resolve_spec
from archbench.train.det_trainer import DetectionTrainer
from archbench.train.trainer import TrainConfig

PHASES = ("data", "forward", "loss", "backward", "optimizer")


class Stepper:
    """One trainer and its batches; :meth:`step` runs one optimizer step and returns ms per phase."""

    def __init__(self, model: Detector, train_ds: Any, cfg: TrainConfig) -> None:
        self.trainer = DetectionTrainer(model, train_ds, cfg, seed=0, device=torch.device("cpu"))
        self.trainer.model.train()
        self.batches: Iterator[Any] = iter(())
        self.losses: list[float] = []

    def _next_batch(self) -> Any:
        batch = next(self.batches, None)
        if batch is None:  # a new epoch of the same seeded order
            self.batches = iter(self.trainer._loader(0))
            batch = next(self.batches)
        return batch

    def step(self) -> dict[str, float]:
        t, marks = self.trainer, [time.perf_counter()]
        batch = self._next_batch()
        images, targets = t._prepare(batch[0]), t._to_device(batch[1])
        marks.append(time.perf_counter())
        outputs = t._forward(images)
        marks.append(time.perf_counter())
        loss = t._criterion(outputs, targets)["loss"]
        self.losses.append(loss.item())
        marks.append(time.perf_counter())
        t._backward(loss)
        marks.append(time.perf_counter())
        t._optimizer_step()
        t.step += 1
        marks.append(time.perf_counter())
        return {name: (b - a) * 1e3 for name, a, b in zip(PHASES, marks, marks[1:])}


def train_gflop(model: Detector, resolution: int, batch: int) -> float:
    """GFLOP of one training step: 3 forwards of ``batch`` images, 2 FLOPs per multiply-add."""
    counts, _ = count_flops(model.eval(), torch.zeros(1, 3, resolution, resolution))
    model.train()
    return 3 * 2 * counts.fvcore * batch / 1e9


def bench_phi(phi: int, steps: int, warmup: int, batch: int) -> dict[str, Any]:
    """Interleaved old / new steps at ``phi``; per-phase medians (ms) and per-round ratios."""
    config = get_rule("proxy").config(phi)
    train_ds, _, info = open_detection_data("synthetic", resolution=config.resolution, cache_root=cache_root())
    base = TrainConfig(batch_size=batch)
    cfgs = {"old": TrainConfig.legacy_step(base), "new": base}
    steppers = {}
    for name, cfg in cfgs.items():
        torch.manual_seed(0)
        steppers[name] = Stepper(Detector(resolve_spec("bifpn"), config, info["num_classes"]), train_ds, cfg)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in cfgs}
    for round_ in range(warmup + steps):
        order = list(cfgs) if round_ % 2 == 0 else list(cfgs)[::-1]
        for name in order:
            phases = steppers[name].step()
            if round_ >= warmup:
                samples[name].append(phases)
    totals = {name: [sum(p.values()) for p in rows] for name, rows in samples.items()}
    ratios = [n / o for n, o in zip(totals["new"], totals["old"])]
    return {
        "phi": phi,
        "resolution": config.resolution,
        "gflop": train_gflop(steppers["new"].trainer.model, config.resolution, batch),
        "phases": {name: {p: statistics.median(r[p] for r in rows) for p in PHASES} for name, rows in samples.items()},
        "total": {name: statistics.median(v) for name, v in totals.items()},
        "train_step": statistics.median(ratios),
        "img_s": statistics.median(1 / r for r in ratios),
        "loss_gap": max(abs(a - b) for a, b in zip(steppers["old"].losses, steppers["new"].losses)),
    }


def report(r: dict[str, Any], batch: int, ceiling: float) -> None:
    print(f"\nphi {r['phi']} ({r['resolution']} px, batch {batch}, {r['gflop']:.1f} GFLOP per training step)")
    print(
        f"  {'path':<5}"
        + "".join(f"{p:>11}" for p in PHASES)
        + f"{'step ms':>10}{'img/s':>8}{'GFLOP/s':>9}{'% ceil':>8}"
    )
    for name, phases in r["phases"].items():
        total = r["total"][name]
        gflops = r["gflop"] / (total / 1e3)
        cells = "".join(f"{phases[p]:>11.1f}" for p in PHASES)
        print(f"  {name:<5}{cells}{total:>10.1f}{batch / total * 1e3:>8.1f}{gflops:>9.1f}{gflops / ceiling:>8.1%}")
    print(
        f"  new / old: step {r['train_step']:.3f}, images/s {r['img_s']:.3f}; "
        f"largest loss difference over the steps {r['loss_gap']:.2e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phi", default="0,1,2", help="comma list of proxy phi values (default 0,1,2)")
    parser.add_argument("--steps", type=int, default=20, help="timed rounds per phi (each runs old and new once)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--batch", type=int, default=TrainConfig().batch_size)
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.threads < 1 or args.batch < 1:
        parser.error("--steps, --threads and --batch must be >= 1 and --warmup >= 0")
    torch.set_num_threads(args.threads)
    ceiling = matmul_gflops()
    print(f"{args.threads} threads; dense fp32 matmul ceiling {ceiling:.1f} GFLOP/s; times are medians in ms")
    results = [bench_phi(int(p), args.steps, args.warmup, args.batch) for p in args.phi.split(",")]
    for r in results:
        report(r, args.batch, ceiling)
    first = results[0]
    print(f"ratios train_step={first['train_step']:.3f} img_s={first['img_s']:.3f}")


if __name__ == "__main__":
    main()
