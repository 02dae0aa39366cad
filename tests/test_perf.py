"""Speed work keeps the numbers: BN folding, constant folding, channels_last and in-place activations
give the same outputs; the timing, memory and profile tools measure what they say. No timings are
asserted here (speed targets live in scripts/bench_necks.py)."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from archbench.costs.perf.inference import fold_batchnorm, fold_constants, prepare, to_graph
from archbench.costs.perf.memory import peak_bytes
from archbench.costs.perf.roofline import op_breakdown
from archbench.costs.perf.timing import Spread, paired_ratios, time_interleaved
from archbench.errors import UserError
from archbench.models.detector import Detector
from archbench.models.scaling import EFFICIENTDET
from archbench.neck.compiler import compile_neck
from archbench.neck.fusion import WeightedFusion
from archbench.neck.layers import make_act
from archbench.spec import builtin_names, builtin_spec
from archbench.spec.loader import parse_yaml

from helpers import pyramid, run_cli
from scriptkit import load_script

ROOT = Path(__file__).resolve().parents[1]


def _randomise_norms(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics and affine terms, so that folding them is really tested."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
        if isinstance(m, WeightedFusion):
            m.weight.data.uniform_(-0.5, 2)
    return model.eval()


def _rel_err(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(((x - y).abs().max() / x.abs().max()).item() for x, y in zip(a, b))


@pytest.mark.parametrize("name", builtin_names())
def test_fused_neck_matches_unfused_and_has_no_norm_left(name):
    neck = _randomise_norms(compile_neck(builtin_spec(name), [40, 112, 320], 24, 2))
    norms = lambda m: sum(isinstance(x, nn.BatchNorm2d) for x in m.modules())  # noqa: E731
    before = norms(neck)
    fused = prepare(neck, fuse=True, list_input=3)
    xs = pyramid(96, 130, batch=1)
    with torch.no_grad():
        assert _rel_err(neck(xs), fused(xs)) < 1e-5
    assert norms(fused) == 0 and norms(neck) == before  # the original is untouched


def test_fold_counts_every_norm_and_constant_folding_removes_the_fusion_weight_ops():
    neck = _randomise_norms(compile_neck(builtin_spec("bifpn"), [40, 112, 320], 16, 3))
    gm = to_graph(copy.deepcopy(neck), list_input=3)
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in neck.modules())
    assert fold_batchnorm(gm) == norms == 3 * 8 + 5 + 1  # 8 nodes per cell, 5 per-edge projections, the P6 stem
    relus = lambda g: sum(n.target is torch.nn.functional.relu for n in g.graph.nodes)  # noqa: E731
    assert relus(gm) == 3 * 8  # the fast-normalised weights, recomputed every call
    assert fold_constants(gm) == 3 * (2 * 5 + 3 * 3)  # one stored weight per input of every node
    assert relus(gm) == 0
    xs = pyramid(64, 64, batch=1)
    with torch.no_grad():
        assert _rel_err(neck(xs), gm(xs)) < 1e-5


def test_fused_detector_matches_and_shared_head_convs_get_a_fold_per_level():
    # efficientnet_b0 (timm's BatchNormAct2d) at D0 width, a small image to keep it quick
    model = _randomise_norms(Detector(builtin_spec("bifpn"), EFFICIENTDET.config(0), 5))
    fused = prepare(model, fuse=True, channels_last=True)
    x = torch.randn(1, 3, 160, 224)
    with torch.no_grad():
        (cls_a, box_a), (cls_b, box_b) = model(x), fused(x)
    assert _rel_err(cls_a + box_a, cls_b + box_b) < 1e-5
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    # the class net's 3 shared separable convs x 5 levels: one folded pointwise conv per (conv, level)
    folded = [n for n, m in fused.named_modules() if n.startswith("class_net.norms") and isinstance(m, nn.Conv2d)]
    assert len(folded) == 3 * 5


def test_fuse_needs_eval_mode():
    with pytest.raises(ValueError, match="eval"):
        prepare(compile_neck(builtin_spec("bifpn"), [8, 8, 8], 8).train(), fuse=True, list_input=3)


def test_channels_last_training_step_matches():
    torch.manual_seed(0)
    neck = compile_neck(builtin_spec("bifpn"), [40, 112, 320], 16, 2)
    cl = prepare(neck, channels_last=True)
    xs = pyramid(64, 80, batch=2)
    losses = []
    for model in (neck, cl):
        loss = sum(y.square().mean() for y in model(xs))
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    # summation orders differ; conv biases before a BN have ~0 gradients, so compare on one scale
    scale = max(p.grad.abs().max().item() for p in neck.parameters())
    for (name, p), q in zip(neck.named_parameters(), cl.parameters()):
        assert (p.grad - q.grad).abs().max().item() < 1e-4 * scale, name


@pytest.mark.parametrize("name", builtin_names())
def test_inplace_activations_never_touch_a_tensor_someone_else_reads(name):
    torch.manual_seed(0)
    neck = compile_neck(builtin_spec(name), [40, 112, 320], 16, 2)
    reference = copy.deepcopy(neck)
    for m in reference.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    xs = pyramid(64, 96)
    kept = [x.clone() for x in xs]
    ys, ref = neck(xs), reference(kept)
    assert all(torch.equal(a, b) for a, b in zip(xs, kept))  # inputs untouched
    assert all(torch.equal(a, b) for a, b in zip(ys, ref))
    sum(y.square().mean() for y in ys).backward()
    sum(y.square().mean() for y in ref).backward()
    for p, q in zip(neck.parameters(), reference.parameters()):
        assert torch.equal(p.grad, q.grad)


def test_interleaved_timing_rotates_the_order_and_keeps_runs_after_warmup():
    calls: list[str] = []
    samples = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, runs=3, warmup=1)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert [len(v) for v in samples.values()] == [3, 3]
    s = Spread.of([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s.median, s.q1, s.q3, s.n) == (3.0, 2.0, 4.0, 5)
    assert paired_ratios([2.0, 3.0], [4.0, 3.0]) == [0.5, 1.0]


def test_peak_bytes_counts_new_storage_not_views_or_in_place_results():
    def fn() -> torch.Tensor:
        a = torch.empty(1_000_000)  # 4 MB
        b = torch.empty(2_000_000)  # 8 MB: 12 MB live
        del a
        b.add_(1)  # in place: nothing new
        view = b[:10]  # a view: nothing new
        torch.empty(500_000)  # 2 MB, freed at once: 10 MB peak at most here
        return view

    assert peak_bytes(fn) == 12_000_000
    w = torch.randn(256, 256, requires_grad=True)
    x = torch.randn(64, 256)
    # forward saves x @ w (64 KiB) for relu's backward; backward adds w.grad (256 KiB), among others
    assert peak_bytes(lambda: (x @ w).relu().sum().backward()) >= 256 * 256 * 4 + 64 * 256 * 4


def test_op_breakdown_splits_depthwise_dense_and_the_rest():
    model = nn.Sequential(
        nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.Conv2d(16, 32, 1), nn.SiLU()
    ).eval()
    x = torch.randn(1, 16, 20, 20)
    with torch.inference_mode():
        b = op_breakdown(lambda: model(x), runs=2)
    dw, dense, other = (b.classes[k] for k in ("depthwise conv", "dense conv / matmul", "other"))
    assert (dw.calls, dense.calls, other.calls) == (1, 1, 1)
    assert dw.flops == 2 * 16 * 20 * 20 * 9 and dense.flops == 2 * 16 * 32 * 20 * 20
    assert dw.bytes == (2 * 16 * 20 * 20 + 16 * 9) * 4
    assert other.bytes == 2 * 32 * 20 * 20 * 4  # SiLU: read once, written once
    assert b.wall_ms > 0 and dw.ms > 0


def test_bench_ratios_line_reports_eager_ours_unless_a_rewrite_was_asked_for():
    bench = load_script("bench_necks")
    plain = bench.Result("neck_fwd", {"effdet": [2.0], bench.EAGER: [1.0], bench.FLAT: [1.5]})
    assert plain.ours() == bench.EAGER and plain.ratio(plain.ours()).median == 0.5  # not the FX graph's 0.75
    fused = bench.Result("neck_fwd", {"effdet": [2.0], bench.EAGER: [1.0], bench.FLAT: [1.5], "ours (fuse)": [0.5]})
    assert fused.ours() == "ours (fuse)"


def test_bench_script_refuses_bad_input_without_a_traceback():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_necks.py"), "--phi", "9"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr and "0..7" in proc.stderr
    bench = load_script("bench_necks")
    for args, message in (
        (["--runs", "0"], "at least 1"),
        (["--resolution", "128"], "256 px"),
        (["--phi", "x"], "comma list"),
    ):
        with pytest.raises(UserError, match=message):
            bench.main(args)


def test_bifpn_matches_effdet_parameter_for_parameter():
    effdet = pytest.importorskip("effdet")
    theirs = effdet.create_model("tf_efficientdet_d1", pretrained=False, pretrained_backbone=False)
    cfg = EFFICIENTDET.config(1)
    ours = compile_neck(builtin_spec("bifpn"), [40, 112, 320], cfg.width, cfg.repeats)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(ours) == count(theirs.fpn)


@pytest.mark.slow
def test_bench_script_end_to_end_small():
    pytest.importorskip("effdet")
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_necks.py"),
            "--phi",
            "0",
            "--resolution",
            "256",
            "--runs",
            "2",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--fuse",
            "--channels-last",
            "--no-cuda",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1].split()
    assert last[0] == "ratios" and [kv.split("=")[0] for kv in last[1:]] == ["neck_fwd", "neck_fwd_bwd", "detector_fwd"]
    assert all(float(kv.split("=")[1]) > 0 for kv in last[1:])
    assert "ours (fuse+cl)" in proc.stdout and "peak memory" in proc.stdout and "GFLOP/s" in proc.stdout


def test_profile_latency_on_the_harness_with_rewrites():
    res = run_cli(
        "profile",
        "--neck",
        "bifpn",
        "--phi",
        "0",
        "--preset",
        "proxy",
        "--latency",
        "--latency-runs",
        "2",
        "--fuse-bn",
        "--channels-last",
        "--format",
        "json",
    )
    assert res.returncode == 0, res.stderr
    (row,) = json.loads(res.stdout)
    assert row["latency_mode"] == "fuse+cl" and row["latency_runs"] == 2 and row["latency_ms"] > 0
    bad = run_cli("profile", "--neck", "bifpn", "--fuse-bn")
    assert bad.returncode == 2 and "--latency" in bad.stderr


class _OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def test_a_training_forward_copies_no_activation_input():
    """An in-place SiLU makes autograd clone its input first (its gradient needs it): the D0 detector's timm
    backbone, neck and heads run theirs out of place; ReLU, whose gradient needs only its output, stays in place."""
    torch.manual_seed(0)
    model = Detector(builtin_spec("bifpn"), dataclasses.replace(EFFICIENTDET.config(0), resolution=64), 3).train()
    images = torch.randn(2, 3, 64, 64)
    counter = _OpCounter()
    with counter:
        model(images)
    assert counter.calls["silu"] > 0 and counter.calls["silu_"] == 0 and counter.calls["clone"] == 0
    assert make_act("relu", inplace=True).inplace and not make_act("swish", inplace=True).inplace
    for m in model.modules():  # the control: in place, every SiLU costs a clone
        if isinstance(m, nn.SiLU):
            m.inplace = True
    counter = _OpCounter()
    with counter:
        model(images)
    assert counter.calls["clone"] == counter.calls["silu_"] > 0


def test_an_input_read_by_several_nodes_is_resampled_and_projected_once_at_run_time():
    spec, problems = parse_yaml(
        """
name: shared_reads
levels: [3, 4, 5]
nodes:
  - {id: a4, level: 4, inputs: [in4, in5]}
  - {id: b4, level: 4, inputs: [a4, in5, in3]}
  - {id: c4, level: 4, inputs: [b4, in3]}
outputs: {3: in3, 4: c4, 5: in5}
""",
        "test",
    )
    assert spec is not None, problems
    neck = compile_neck(spec, [16, 24, 32], 8).eval()
    counter = _OpCounter()
    with torch.no_grad(), counter:
        neck(pyramid(64, 64, channels=(16, 24, 32), batch=1))
    # in5 -> level 4 for a4 and b4: one upsample; in3 -> level 4 for b4 and c4: one max-pool
    assert counter.calls["upsample_nearest2d"] == 1
    assert counter.calls["max_pool2d_with_indices"] + counter.calls["max_pool2d"] == 1
    # one 1x1 projection per backbone input (3) + one 3x3 conv per node (3)
    assert counter.calls["convolution"] == 3 + 3
