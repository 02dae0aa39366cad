"""The compiled necks: shapes for any input size, gradients everywhere, tracing, fusion maths."""

from __future__ import annotations

import warnings

import pytest
import torch

from archbench.neck.compiler import Cell, compile_neck
from archbench.neck.fusion import AttentionFusion, WeightedFusion
from archbench.neck.layers import ConvDown, DeconvUp, NodeOp
from archbench.spec import builtin_names, builtin_spec
from archbench.spec.schema import OpSpec

from helpers import pyramid

SIZES = [(128, 128), (333, 517)]


@pytest.mark.parametrize("name", builtin_names())
@pytest.mark.parametrize("width,repeats", [(16, 1), (24, 2), (40, 3)])
def test_every_builtin_compiles_runs_and_trains_everywhere(name, width, repeats):
    torch.manual_seed(0)
    neck = compile_neck(builtin_spec(name), [40, 112, 320], width, repeats)
    for h, w in SIZES:
        ys = neck(pyramid(h, w))
        assert [tuple(y.shape) for y in ys] == [(2, width, -(-h // 2**lvl), -(-w // 2**lvl)) for lvl in range(3, 8)]
    sum(y.pow(2).mean() for y in ys).backward()
    dead = [n for n, p in neck.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []
    assert len(neck.cells) == repeats


@pytest.mark.parametrize("name", ["bifpn", "nasfpn", "ida", "hda_residual", "panet", "fpn"])
def test_trace_is_clean_and_generalises_to_other_sizes(name):
    torch.manual_seed(0)
    neck = compile_neck(builtin_spec(name), [40, 112, 320], 16, 2).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        traced = torch.jit.trace(neck, (pyramid(128, 128),), strict=False)
    xs = pyramid(333, 517)
    with torch.no_grad():
        for a, b in zip(traced(xs), neck(xs)):
            assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5)


def test_backbone_with_floored_sizes_and_other_level_ranges():
    # levels 2..6 from a backbone giving 2..4 with floor-halved sizes (e.g. 'valid' padding)
    neck = compile_neck(builtin_spec("bifpn", (2, 3, 4, 5, 6)), [24, 40, 112], 16, 1)
    feats = [torch.randn(1, 24, 83, 129), torch.randn(1, 40, 41, 64), torch.randn(1, 112, 20, 32)]
    ys = neck(feats)
    assert [tuple(y.shape[-2:]) for y in ys] == [(83, 129), (41, 64), (20, 32), (10, 16), (5, 8)]


def test_bifpn_d0_parameter_count_matches_efficientdet():
    # tf_efficientdet_d0's BiFPN (incl. the P6 stem) has 196,281 parameters: 64 ch, 3 cells, B0 features.
    neck = compile_neck(builtin_spec("bifpn"), [40, 112, 320], 64, 3)
    assert sum(p.numel() for p in neck.parameters()) == 196_281


def test_shared_projection_is_computed_once_and_per_edge_when_asked():
    shared = compile_neck(builtin_spec("bifpn"), [40, 112, 320], 16, 1, input_projection="shared").cells[0]
    per_edge = compile_neck(builtin_spec("bifpn"), [40, 112, 320], 16, 1).cells[0]
    count = lambda cell: sum(1 for s in cell.program if s.kind == "proj")  # noqa: E731
    assert count(shared) == 3  # in3, in4, in5 once each
    assert count(per_edge) == 5  # in3 -> out3; in4 -> td4, out4; in5 -> td5, out5
    outs = [s.out for s in shared.program]
    assert len(outs) == len(set(outs))  # no tensor is produced twice


def test_resampling_shared_by_consumers_is_computed_once():
    cell = compile_neck(builtin_spec("ida"), [16] * 3, 16, 1).cells[0]
    ups = [s for s in cell.program if s.kind == "up"]
    assert len(ups) == len({s.out for s in ups})
    # in5 feeds ida4_1 (up to 4) and ida5_1 (same level): one upsample of in5 to level 4
    assert sum(1 for s in ups if s.args[0] == "in5") == 1


def test_build_time_overrides_apply_to_every_neck():
    base = compile_neck(builtin_spec("panet"), [40, 112, 320], 32, 1)
    sep = compile_neck(builtin_spec("panet"), [40, 112, 320], 32, 1, op_type="sepconv", act="swish", norm="gn")
    n_base = sum(p.numel() for p in base.parameters())
    n_sep = sum(p.numel() for p in sep.parameters())
    assert n_sep < 0.8 * n_base  # the strided down-convs and the RetinaNet P6/P7 convs stay dense
    kinds = {type(m).__name__ for m in sep.modules()}
    assert "GroupNorm" in kinds and "SiLU" in kinds and "BatchNorm2d" not in kinds
    summed = compile_neck(builtin_spec("bifpn"), [40, 112, 320], 32, 1, fuse="sum")
    assert not any(isinstance(m, WeightedFusion) for m in summed.modules())


def test_down_conv_act_ends_with_the_activation():
    cell = compile_neck(builtin_spec("panet"), [16] * 3, 16, 1).cells[0]  # PANet: 3x3/2 conv + BN + ReLU
    downs = [m for m in cell.mods.values() if isinstance(m, ConvDown)]
    assert len(downs) == 2 and all(isinstance(d.body[-1], torch.nn.ReLU) for d in downs)
    plain = compile_neck(builtin_spec("panet").with_overrides(down="conv"), [16] * 3, 16, 1).cells[0]
    assert not any(isinstance(m.body[-1], torch.nn.ReLU) for m in plain.mods.values() if isinstance(m, ConvDown))


def test_weighted_fusion_is_fast_normalized():
    f = WeightedFusion(2)
    with torch.no_grad():
        f.weight.copy_(torch.tensor([3.0, -1.0]))
    a, b = torch.ones(1, 1, 2, 2), torch.full((1, 1, 2, 2), 5.0)
    assert torch.allclose(f([a, b]), a * 3.0 / (3.0 + 1e-4))


def test_attention_gates_tf_and_mmdet():
    coarse = torch.tensor([[[[1.0, 3.0]]]])
    fine = torch.tensor([[[[2.0, 2.0]]]])
    tf = AttentionFusion(gate=0, pool="max")([coarse, fine])
    assert torch.allclose(tf, coarse + fine * torch.sigmoid(torch.tensor(3.0)))
    mm = AttentionFusion(gate=1, pool="avg")([coarse, fine])
    assert torch.allclose(mm, fine + coarse * torch.sigmoid(torch.tensor(2.0)))


def test_nasfpn_gate_follows_the_coarser_input():
    # TF lists p4_1's inputs as (in4, in6) and gates with the coarser in6
    cell = compile_neck(builtin_spec("nasfpn"), [16] * 3, 16, 1).cells[0]
    assert cell.mods["node_p4_1"].fusion.gate == 1
    # mmdetection lists them as (in6, in4) and gates with the second, in4
    mm = compile_neck(builtin_spec("nasfpn_mmdet"), [16] * 3, 16, 1).cells[0]
    assert mm.mods["node_p4_1"].fusion.gate == 1
    coarser = compile_neck(builtin_spec("nasfpn_mmdet"), [16] * 3, 16, 1, attention_gate="coarser").cells[0]
    assert coarser.mods["node_p4_1"].fusion.gate == 0


def test_cell_program_is_flat_and_ordered():
    cell = Cell(builtin_spec("bifpn"), [16] * 5, 16)
    produced = {"in3", "in4", "in5", "in6", "in7"}
    for step in cell.program:
        assert all(a in produced for a in step.args), step
        produced.add(step.out)


def test_deconv_upsampling_starts_as_bilinear_and_fits_odd_sizes():
    up = DeconvUp(2, 1)  # DLA's IDAUp: kernel 4, stride 2, padding 1, depthwise
    assert up.up.weight.shape == (2, 1, 4, 4) and up.up.weight.requires_grad
    assert torch.allclose(up.up.weight[0, 0, 1], torch.tensor([0.1875, 0.5625, 0.5625, 0.1875]))
    y = up(torch.ones(1, 2, 6, 5), torch.zeros(1, 1, 13, 9))  # 12 x 10 -> padded 13, cropped 9
    assert y.shape == (1, 2, 13, 9) and torch.allclose(y[:, :, 2:-2, 2:-2], torch.ones(1, 2, 9, 5))


def test_two_conv_op_with_residual_is_a_basic_block():
    torch.manual_seed(0)
    op = NodeOp(8, 8, OpSpec(convs=2)).eval()
    x = torch.randn(1, 8, 5, 5)
    conv1, bn1 = op.stem[0], op.stem[1]
    expected = torch.relu(op.norm(op.conv(torch.relu(bn1(conv1(x))))) + x)
    assert torch.allclose(op(x, x), expected)


def test_upsample_to_refuses_an_unknown_mode():
    from archbench.neck.layers import upsample_to

    with pytest.raises(ValueError, match="unknown mode 'bicubic'"):
        upsample_to(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 4, 4), "bicubic")
