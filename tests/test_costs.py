"""Costs: the meta-tensor FLOP counter equals fvcore, and the EfficientDet fidelity table holds."""

from __future__ import annotations

import pytest
import torch
from fvcore.nn import FlopCountAnalysis

from archbench.costs.flops import count_flops, param_count
from archbench.costs.profile import profile, profile_model
from archbench.errors import UserError
from archbench.models.backbone import Backbone
from archbench.models.detector import Detector
from archbench.models.scaling import EFFICIENTDET, PROXY, get_rule
from archbench.spec import builtin_names, dump_yaml, resolve_spec
from archbench.train.tasks import get_task

# tf_efficientdet_d0..d3 as counted by the reference implementation (effdet 0.4.1, fvcore, 90 classes).
REFERENCE = {0: (3.880e6, 2.571), 1: (6.626e6, 6.176), 2: (8.097e6, 11.105), 3: (12.032e6, 25.087)}


def fvcore_total(model: torch.nn.Module, x: torch.Tensor) -> int:
    analysis = FlopCountAnalysis(model, (x,))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return analysis.total()


@pytest.mark.parametrize("neck", builtin_names())
def test_meta_counter_equals_fvcore_on_real_tensors(neck):
    torch.manual_seed(0)
    cfg = PROXY.config(0)
    model = Detector(resolve_spec(neck), cfg, 7).eval()
    x = torch.randn(1, 3, 96, 160)
    expected = fvcore_total(model, x)
    real, _ = count_flops(model, x)
    with torch.device("meta"):
        meta_model = Detector(resolve_spec(neck), cfg, 7).eval()
        meta_x = torch.empty(1, 3, 96, 160)
    meta, _ = count_flops(meta_model, meta_x)
    assert real.fvcore == expected == meta.fvcore
    assert meta.elementwise > 0


def test_counter_follows_fvcore_for_group_norm_and_training_mode_batch_norm():
    gn_model = Detector(resolve_spec("ida"), PROXY.config(0), 3, neck_overrides={"norm": "gn"})
    feats = [torch.randn(2, c, s, s) for c, s in zip(gn_model.backbone.channels, [16, 8, 4])]
    gn = gn_model.neck.eval()
    assert count_flops(gn, feats)[0].fvcore == fvcore_total(gn, feats)
    bn = Detector(resolve_spec("bifpn"), PROXY.config(0), 3).neck.train()
    assert count_flops(bn, feats)[0].fvcore == fvcore_total(bn, feats)


@pytest.mark.parametrize("phi", [0, 1, 2, 3])
def test_efficientdet_fidelity(phi):
    (row,) = profile(["bifpn"], [phi], "efficientdet", num_classes=90)
    ref_params, ref_gflops = REFERENCE[phi]
    assert abs(row["params_total"] / ref_params - 1) < 0.005
    assert abs(row["gflops"] / ref_gflops - 1) < 0.02
    assert row["params_total"] == row["params_backbone"] + row["params_neck"] + row["params_head"]


def test_d0_fidelity_against_fvcore_on_the_real_model():
    torch.manual_seed(0)
    model = Detector(resolve_spec("bifpn"), EFFICIENTDET.config(0), 90).eval()
    assert param_count(model) == 3_880_067
    assert abs(fvcore_total(model, torch.randn(1, 3, 512, 512)) / 2.571e9 - 1) < 0.02


def test_relative_ratios_and_part_split():
    rows = profile(["fpn", "bifpn", "nasfpn"], [0], "proxy", num_classes=10, relative_to="fpn")
    by = {r["neck"]: r for r in rows}
    assert by["fpn"]["neck_params_ratio"] == pytest.approx(1.0)
    assert by["bifpn"]["neck_gflops_ratio"] == pytest.approx(by["bifpn"]["gflops_neck"] / by["fpn"]["gflops_neck"])
    assert by["bifpn"]["params_backbone"] == by["fpn"]["params_backbone"]  # shared parts costed once
    assert by["bifpn"]["gflops_head"] == by["fpn"]["gflops_head"]


@pytest.mark.parametrize("task", ["det", "seg"])
def test_a_prepared_model_costs_as_profile_does_with_the_models_own_head(task):
    row = profile_model(resolve_spec("panet"), PROXY.config(1), 5, get_task(task))
    assert row == profile(["panet"], [1], PROXY, num_classes=5, task=task)[0]
    with torch.device("meta"):
        model = get_task(task).model(resolve_spec("panet"), PROXY.config(1), 5)
    assert row["params_total"] == param_count(model)
    assert row["params_head"] == param_count(model) - param_count(model.backbone) - param_count(model.neck)


def test_profile_refuses_a_spec_on_other_levels_than_the_preset_builds(tmp_path):
    spec = tmp_path / "three.yaml"
    spec.write_text(dump_yaml(resolve_spec("fpn", (3, 4, 5))))
    with pytest.raises(UserError, match=r"is defined on levels \[3, 4, 5\] but preset 'proxy' builds levels"):
        profile(["bifpn", str(spec)], [0], "proxy", num_classes=3)


def test_scaling_rules():
    d3 = EFFICIENTDET.config(3)
    assert (d3.backbone, d3.width, d3.repeats, d3.head_depth, d3.resolution) == ("efficientnet_b3", 160, 6, 4, 896)
    d7 = EFFICIENTDET.config(7)
    assert (d7.backbone, d7.width, d7.repeats, d7.head_depth, d7.resolution) == ("efficientnet_b6", 384, 8, 5, 1536)
    widths = [PROXY.config(p).width for p in range(4)]
    assert widths == sorted(widths) and widths[0] == 32 and all(w % 8 == 0 for w in widths)
    assert [PROXY.config(p).repeats for p in range(4)] == [2, 2, 3, 3]
    assert [PROXY.config(p).resolution for p in range(4)] == [128, 144, 160, 176]  # multiples of 16, not 32
    with pytest.raises(UserError):
        EFFICIENTDET.config(8)
    with pytest.raises(UserError):
        get_rule("nope")


def test_narrow_resnets_are_timm_models_without_pretrained_weights():
    backbone = Backbone("resnet10t_c24")
    assert backbone.channels == [48, 96, 192]  # stage widths (C, 2C, 4C, 8C) at strides 4..32
    features = backbone(torch.zeros(1, 3, 72, 72))  # not a multiple of 32: sizes round up
    assert [tuple(f.shape[-2:]) for f in features] == [(9, 9), (5, 5), (3, 3)]
    with pytest.raises(UserError, match="no pretrained weights"):
        Backbone("resnet10t_c16", pretrained=True)


def test_backbone_levels_are_chosen_by_stride_not_index():
    assert Backbone("dla34").channels == [128, 256, 512]  # dla34's stage indices are off by one
    assert Backbone("efficientnet_b0").channels == [40, 112, 320]
    with pytest.raises(UserError, match="no features at level"):
        Backbone("lcnet_050", (3, 4, 5, 6))
