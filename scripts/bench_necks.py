"""Compiled BiFPN vs effdet's hand-written one, timed side by side in one process (issue #7).

    pip install -e ".[bench]"                       # effdet (efficientdet-pytorch), the reference
    python scripts/bench_necks.py --fuse --channels-last
    python scripts/bench_necks.py --phi 0 --runs 40 --compile

For each phi (default D0 and D1), with fixed random inputs and every candidate interleaved round
by round after a warm-up (see ``archbench.costs.perf.timing``):

- neck forward: our ``bifpn`` compiled at the EfficientDet configuration (width, repeats,
  resolution and EfficientNet features of that phi) vs effdet's ``BiFpn`` of tf_efficientdet_dN;
- neck forward + backward (training mode, loss = sum of the output means);
- whole detector forward: our Detector vs effdet's tf_efficientdet_dN (random weights both);
- peak memory of one training step per neck, and achieved GFLOP/s of each neck's forward next
  to the machine's dense matmul GFLOP/s and copy bandwidth, with a profile split of our forward.

Candidates: ``effdet`` (as shipped, the denominator of every ratio), ``effdet+cl`` (effdet in
channels_last, for reference), ``ours eager`` (the model ``archbench run`` trains) and ``ours``
(with ``--fuse`` / ``--channels-last`` / ``--compile``; absent when no flag is given). Where CUDA is
available the same cases run there too, with AMP and channels_last for both sides. The last line
is ``ratios neck_fwd=X neck_fwd_bwd=Y detector_fwd=Z``: medians of paired ratios ours / effdet on
the CPU at the first phi.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from archbench.costs.flops import count_flops
from archbench.costs.perf.inference import prepare, to_graph
from archbench.costs.perf.memory import peak_bytes
from archbench.costs.perf.roofline import Ceilings, op_breakdown
from archbench.costs.perf.timing import Spread, paired_ratios, time_interleaved
from archbench.errors import UserError
from archbench.models.backbone import Backbone
from archbench.models.detector import Detector
from archbench.models.scaling import EFFICIENTDET, ModelConfig
from archbench.spec import builtin_spec

REFERENCE = "effdet"
EAGER = "ours (eager)"  # the module archbench run trains
FLAT = "ours (eager, FX graph)"  # the same as one flat FX graph: shows per-node Python overhead, if any
NUM_CLASSES = 90  # tf_efficientdet_dN's (COCO's 90 ids)


@dataclass(frozen=True)
class Setup:
    """Where and how to run: device, AMP dtype (None = fp32), threads, runs, and our optimisations."""

    device: torch.device
    amp: torch.dtype | None
    runs: int
    warmup: int
    batch: int
    resolution: int | None  # None: the phi's own
    fuse: bool
    channels_last: bool
    compile: bool

    @property
    def optimised(self) -> bool:
        return self.fuse or self.channels_last or self.compile

    def label(self, training: bool) -> str:
        flags = [
            f
            for f, on in (("fuse", self.fuse and not training), ("cl", self.channels_last), ("compile", self.compile))
            if on
        ]
        return f"ours ({'+'.join(flags) or 'eager'})"

    @contextmanager
    def autocast(self) -> Iterator[None]:
        with torch.autocast(self.device.type, dtype=self.amp) if self.amp else nullcontext():
            yield

    def sync(self) -> Callable[[], None] | None:
        return torch.cuda.synchronize if self.device.type == "cuda" else None


@dataclass
class Models:
    """One phi's models on the device: ours and effdet's, detectors and their necks."""

    cfg: ModelConfig
    ours: Detector
    theirs: nn.Module
    features: list[torch.Tensor]
    image: torch.Tensor


def _effdet() -> Any:
    try:
        import effdet
    except ImportError:
        raise UserError(
            "the reference implementation is not installed: pip install -e '.[bench]' (effdet, efficientdet-pytorch)"
        ) from None
    return effdet


def build_models(phi: int, setup: Setup, seed: int = 0) -> Models:
    """Our D``phi`` detector and tf_efficientdet_d``phi`` (random weights, BN stats at init), fixed inputs."""
    cfg = EFFICIENTDET.config(phi)
    if setup.resolution:
        cfg = replace(cfg, resolution=setup.resolution)
    torch.manual_seed(seed)
    ours = Detector(builtin_spec("bifpn"), cfg, NUM_CLASSES)
    theirs = _effdet().create_model(
        f"tf_efficientdet_d{phi}",
        pretrained=False,
        pretrained_backbone=False,
        image_size=(cfg.resolution, cfg.resolution),
    )
    with torch.device("meta"):
        shapes = [
            f.shape
            for f in Backbone(cfg.backbone, cfg.backbone_levels)(
                torch.empty(setup.batch, 3, cfg.resolution, cfg.resolution)
            )
        ]
    gen = torch.Generator().manual_seed(seed)
    features = [torch.randn(s, generator=gen).to(setup.device) for s in shapes]
    image = torch.randn(setup.batch, 3, cfg.resolution, cfg.resolution, generator=gen).to(setup.device)
    return Models(cfg, ours.to(setup.device), theirs.to(setup.device), features, image)


def _candidates(
    ours: nn.Module, theirs: nn.Module, setup: Setup, training: bool, list_input: int | None, flat: bool = False
) -> dict[str, nn.Module]:
    """effdet as shipped, effdet in channels_last, ours eager, (``flat``: ours eager as one FX graph,
    which has no Python between ops), ours optimised (last). Each is its own copy."""
    mode = (lambda m: m.train()) if training else (lambda m: m.eval())
    ours, theirs = mode(copy.deepcopy(ours)), mode(copy.deepcopy(theirs))
    out = {REFERENCE: theirs, f"{REFERENCE}+cl": prepare(theirs, channels_last=True), EAGER: ours}
    if flat:
        out[FLAT] = to_graph(copy.deepcopy(ours), list_input)
    if setup.optimised:
        out[setup.label(training)] = prepare(
            ours,
            fuse=setup.fuse and not training,
            channels_last=setup.channels_last,
            compile=setup.compile,
            list_input=list_input,
        )
    return out


def _train_step(model: nn.Module, features: list[torch.Tensor], setup: Setup) -> None:
    for p in model.parameters():
        p.grad = None
    with setup.autocast():
        loss = sum(y.float().mean() for y in model(list(features)))
    loss.backward()


@dataclass
class Result:
    """One case's samples (ms) per candidate, in the order they were given."""

    case: str
    samples: dict[str, list[float]]

    def ratio(self, label: str) -> Spread:
        return Spread.of(paired_ratios(self.samples[label], self.samples[REFERENCE]))

    def ours(self) -> str:
        """The candidate the ratios line reports: the optimised one when flags asked for it, else eager."""
        return next(label for label in reversed(self.samples) if label != FLAT)


def run_case(case: str, fns: dict[str, Callable[[], Any]], setup: Setup, inference: bool) -> Result:
    with torch.inference_mode() if inference else nullcontext():
        return Result(case, time_interleaved(fns, setup.runs, setup.warmup, setup.sync()))


def bench_phi(phi: int, setup: Setup) -> tuple[list[Result], dict[str, Any]]:
    """The three timed cases at one phi, plus memory and throughput figures (``extras``)."""
    m = build_models(phi, setup)
    n_in = len(m.features)
    necks = _candidates(m.ours.neck, m.theirs.fpn, setup, training=False, list_input=n_in, flat=True)
    trained = _candidates(m.ours.neck, m.theirs.fpn, setup, training=True, list_input=n_in)
    detectors = _candidates(m.ours, m.theirs, setup, training=False, list_input=None)

    def forward(model: nn.Module, x: Any) -> Callable[[], Any]:
        def call() -> Any:
            with setup.autocast():
                return model(list(x) if isinstance(x, list) else x)

        return call

    results = [
        run_case("neck_fwd", {k: forward(v, m.features) for k, v in necks.items()}, setup, inference=True),
        run_case(
            "neck_fwd_bwd",
            {k: (lambda v=v: _train_step(v, m.features, setup)) for k, v in trained.items()},
            setup,
            inference=False,
        ),
        run_case("detector_fwd", {k: forward(v, m.image) for k, v in detectors.items()}, setup, inference=True),
    ]
    extras: dict[str, Any] = {"cfg": m.cfg}
    # the CPU count watches every op at the dispatcher, which a compiled graph does not go through
    countable = {
        k: v
        for k, v in trained.items()
        if not (setup.compile and setup.device.type == "cpu" and k == setup.label(training=True))
    }
    extras["peak_mb"] = {
        k: peak_bytes(lambda v=v: _train_step(v, m.features, setup), setup.device) / 2**20 for k, v in countable.items()
    }
    with torch.no_grad():
        flops, _ = count_flops(m.ours.neck.eval(), list(m.features))
    extras["neck_flops"] = 2 * flops.fvcore  # hardware convention: a multiply-add is 2 FLOPs
    if setup.device.type == "cpu":  # a compiled graph's kernels are not aten ops: profile our eager neck then
        profiled = (REFERENCE, EAGER if setup.compile else results[0].ours())
        with torch.inference_mode():
            extras["breakdown"] = {k: op_breakdown(forward(necks[k], m.features)) for k in dict.fromkeys(profiled)}
    return results, extras


def print_phi(phi: int, results: list[Result], extras: dict[str, Any], setup: Setup, roofs: Ceilings) -> None:
    cfg = extras["cfg"]
    precision = f"AMP {str(setup.amp).removeprefix('torch.')}" if setup.amp else "fp32"
    print(
        f"\nD{phi}: bifpn {cfg.width} ch x {cfg.repeats} cells at {cfg.resolution} px on {cfg.backbone} features, "
        f"batch {setup.batch}, vs tf_efficientdet_d{phi}; {setup.device.type} {precision}, "
        f"{torch.get_num_threads()} threads, median [IQR] of {setup.runs} interleaved runs"
    )
    titles = {"neck_fwd": "neck forward", "neck_fwd_bwd": "neck forward+backward", "detector_fwd": "detector forward"}
    for r in results:
        print(f"  {titles[r.case]:<24} {'ms':>22}   {'ours/effdet (paired)':>22}")
        for label, samples in r.samples.items():
            ratio = "" if label == REFERENCE else r.ratio(label).format()
            print(f"    {label:<22} {Spread.of(samples).format():>22}   {ratio:>22}")
    print("  peak memory of a training step (activations, gradients, temporaries; not weights or inputs):")
    for label, mb in extras["peak_mb"].items():
        print(f"    {label:<22} {mb:8.1f} MB")
    neck = results[0]
    gflop = extras["neck_flops"] / 1e9
    print(
        f"  neck forward throughput ({gflop:.3f} GFLOP, 2 per multiply-add; dense matmul: "
        f"{roofs.matmul_gflops:.1f} GFLOP/s):"
    )
    for label, samples in neck.samples.items():
        achieved = gflop / Spread.of(samples).median * 1e3
        print(f"    {label:<22} {achieved:8.1f} GFLOP/s = {achieved / roofs.matmul_gflops:5.1%} of matmul")
    for label, b in extras.get("breakdown", {}).items():
        print(
            f"  profile of {label} neck forward: {b.wall_ms:.1f} ms per call under the profiler, "
            f"{b.overhead_ms:.1f} ms outside ops (Python, module calls, profiler)"
        )
        for name, c in b.classes.items():
            line = (
                f"    {name:<20} {c.calls:4d} calls {c.ms:7.2f} ms {c.gflops_per_s():6.1f} GFLOP/s "
                f"{c.gbytes_per_s():5.1f} GB/s"
            )
            if name == "other":  # element-wise: bytes estimated, the copy bandwidth is its roof
                line += f" (~{c.gbytes_per_s() / roofs.copy_gbs:.0%} of copy bandwidth)"
            elif c.bytes:
                attainable = roofs.attainable_gflops(c.flops, c.bytes)
                bound = "memory" if attainable < roofs.matmul_gflops else "compute"
                line += (
                    f"; {c.flops / c.bytes:5.2f} FLOP/byte: {bound}-bound roof {attainable:6.1f} GFLOP/s, "
                    f"{c.gflops_per_s() / attainable:4.0%} of it"
                )
            print(line)


def run_device(setup: Setup, phis: list[int]) -> dict[int, list[Result]]:
    dtype = setup.amp or torch.float32
    roofs = Ceilings.measure(setup.device, dtype)
    print(
        f"\n== {setup.device.type}: dense {str(dtype).removeprefix('torch.')} matmul {roofs.matmul_gflops:.1f} "
        f"GFLOP/s, copy {roofs.copy_gbs:.1f} GB/s (read + write)"
    )
    out = {}
    for phi in phis:
        results, extras = bench_phi(phi, setup)
        print_phi(phi, results, extras, setup, roofs)
        out[phi] = results
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--phi", default="0,1", help="comma list of EfficientDet phis (default 0,1)")
    p.add_argument("--runs", type=int, default=20, help="timed runs per candidate (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--batch", type=int, default=1, help="images per call (default 1)")
    p.add_argument(
        "--resolution", type=int, default=None, help="image side in px instead of the phi's own (for quick checks only)"
    )
    p.add_argument("--fuse", action="store_true", help="ours: batch norms folded into convs (inference cases)")
    p.add_argument("--channels-last", action="store_true", help="ours: NHWC memory format")
    p.add_argument("--compile", action="store_true", help="ours: torch.compile (slow first call)")
    p.add_argument("--no-cuda", action="store_true", help="skip the CUDA section even where a GPU exists")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    for name in ("runs", "threads", "batch"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} {getattr(args, name)}: must be at least 1")
    if args.resolution is not None and args.resolution < 256:
        raise UserError(
            f"--resolution {args.resolution}: use 256 px or more (below that P7 is a single pixel, "
            "which training-mode batch norm refuses at batch 1)"
        )
    if args.warmup < 0:
        raise UserError(f"--warmup {args.warmup}: must be 0 or more")
    try:
        phis = sorted({int(x) for x in args.phi.split(",") if x.strip()})
    except ValueError:
        raise UserError(f"--phi {args.phi!r}: expected a comma list of integers such as 0,1") from None
    if not phis:
        raise UserError("--phi: no values given")
    for phi in phis:
        EFFICIENTDET.config(phi)  # refuses phi outside 0..7 before any work
    _effdet()
    torch.set_num_threads(args.threads)
    common = dict(
        runs=args.runs,
        warmup=args.warmup,
        batch=args.batch,
        resolution=args.resolution,
        fuse=args.fuse,
        channels_last=args.channels_last,
        compile=args.compile,
    )
    cpu = run_device(Setup(torch.device("cpu"), None, **common), phis)
    if torch.cuda.is_available() and not args.no_cuda:
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        run_device(Setup(torch.device("cuda"), amp, **{**common, "channels_last": True}), phis)
    first = {r.case: r.ratio(r.ours()).median for r in cpu[phis[0]]}
    print(
        f"\nratios neck_fwd={first['neck_fwd']:.3f} neck_fwd_bwd={first['neck_fwd_bwd']:.3f} "
        f"detector_fwd={first['detector_fwd']:.3f}"
    )


if __name__ == "__main__":
    try:
        main()
    except UserError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
