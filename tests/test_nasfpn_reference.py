"""The NAS-FPN built-ins compute what TF Model Garden's and mmdetection's forward passes compute.

Each reference's forward is transcribed here from its source (the wiring, resampling, gates and
extra levels), runs with the compiled neck's own weights, and must give the same outputs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archbench.neck.compiler import GraphNeck, compile_neck
from archbench.neck.layers import pool_same
from archbench.spec import builtin_spec, dump_yaml, parse_yaml

#: tensorflow/models official/vision/modeling/decoders/nasfpn.py, with our node ids.
TF_BLOCKS = (
    ("p4_1", 4, "attention", (1, 3), False),
    ("p4_2", 4, "sum", (1, 5), False),
    ("out3", 3, "sum", (0, 6), True),
    ("out4", 4, "sum", (6, 7), True),
    ("out5", 5, "attention", (7, 8), True),
    ("out7", 7, "attention", (6, 9), True),
    ("out6", 6, "attention", (9, 10), True),
)
CHANNELS, WIDTH, SIZE = [24, 40, 80], 16, 128


def _cell_op(neck: GraphNeck, cell: int, node: str, x: torch.Tensor) -> torch.Tensor:
    """Both references' cell op, act -> conv -> norm, with the compiled node's conv and norm."""
    op = neck.cells[cell].mods[f"node_{node}"].op
    return op.norm(op.conv(F.relu(x)))


def _tf_resample(x: torch.Tensor, src: int, dst: int) -> torch.Tensor:
    s = 2 ** abs(dst - src)
    if src < dst:
        return F.max_pool2d(x, s, s)
    return x.repeat_interleave(s, 2).repeat_interleave(s, 3) if src > dst else x


def _tf_forward(neck: GraphNeck, c3: torch.Tensor, c4: torch.Tensor, c5: torch.Tensor) -> list[torch.Tensor]:
    lat = neck.cells[0].mods
    feats = [lat["proj_in3"](c3), lat["proj_in4"](c4), neck.extra.proj(c5)]
    feats += [F.max_pool2d(feats[-1], 2, 2)]
    feats += [F.max_pool2d(feats[-1], 2, 2)]
    for cell in range(len(neck.cells)):
        levels, used = [3, 4, 5, 6, 7], [0] * 5
        for nid, level, combine, (i0, i1), is_output in TF_BLOCKS:
            n0, n1 = (_tf_resample(feats[i], levels[i], level) for i in (i0, i1))
            used[i0] += 1
            used[i1] += 1
            if combine == "sum":
                new = n0 + n1
            else:
                f0, f1 = (n0, n1) if levels[i0] >= levels[i1] else (n1, n0)
                new = f0 + f1 * torch.sigmoid(f0.amax(dim=(2, 3), keepdim=True))
            if is_output:
                for j, (feat, feat_level) in enumerate(zip(feats, levels)):
                    if used[j] == 0 and feat_level == level:
                        used[j] += 1
                        new = new + feat
            feats.append(_cell_op(neck, cell, nid, new))
            levels.append(level)
            used.append(0)
        by_level = dict(zip(levels[-5:], feats[-5:]))
        feats = [by_level[lvl] for lvl in range(3, 8)]
    return feats


def _mm_merge(x1: torch.Tensor, x2: torch.Tensor, size: torch.Size, kind: str) -> torch.Tensor:
    """mmcv BaseMergeCell: _resize both inputs, then SumCell / GlobalPoolingCell's binary op."""
    x1, x2 = (_mm_resize(x, size) for x in (x1, x2))
    return x1 + x2 if kind == "sum" else x2 + x1 * torch.sigmoid(F.adaptive_avg_pool2d(x2, 1))


def _mm_resize(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    if x.shape[-2:] == size:
        return x
    if x.shape[-2] < size[-2]:
        return F.interpolate(x, size=size, mode="nearest")
    k = x.shape[-2] // size[-2]
    return F.max_pool2d(x, k, k)


def _mm_forward(neck: GraphNeck, c3: torch.Tensor, c4: torch.Tensor, c5: torch.Tensor) -> list[torch.Tensor]:
    lat = neck.cells[0].mods
    feats = [lat["proj_in3"](c3), lat["proj_in4"](c4), neck.extra.proj(c5)]
    for conv in neck.extra.convs:
        feats.append(F.max_pool2d(conv(feats[-1]), 2, 2))
    p3, p4, p5, p6, p7 = feats
    for i in range(len(neck.cells)):
        s3, s4, s5, s6, s7 = (t.shape[-2:] for t in (p3, p4, p5, p6, p7))
        p4_1 = _cell_op(neck, i, "p4_1", _mm_merge(p6, p4, s4, "gp"))
        p4_2 = _cell_op(neck, i, "p4_2", _mm_merge(p4_1, p4, s4, "sum"))
        p3 = _cell_op(neck, i, "out3", _mm_merge(p4_2, p3, s3, "sum"))
        p4 = _cell_op(neck, i, "out4", _mm_merge(p3, p4_2, s4, "sum"))
        p5 = _cell_op(neck, i, "out5", _mm_merge(p5, _mm_merge(p4, p3, s5, "gp"), s5, "sum"))
        p7 = _cell_op(neck, i, "out7", _mm_merge(p7, _mm_merge(p5, p4_2, s7, "gp"), s7, "sum"))
        p6 = _cell_op(neck, i, "out6", _mm_merge(p7, p5, s6, "gp"))
    return [p3, p4, p5, p6, p7]


def _randomize(neck: nn.Module) -> None:
    """Non-trivial norms and biases, so that a swapped or missing one shows."""
    for m in neck.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.running_mean)
            nn.init.uniform_(m.running_var, 0.5, 2.0)
            nn.init.normal_(m.weight)
            nn.init.normal_(m.bias)
        elif isinstance(m, nn.Conv2d) and m.bias is not None:
            nn.init.normal_(m.bias)


@pytest.mark.parametrize("name,reference", [("nasfpn", _tf_forward), ("nasfpn_mmdet", _mm_forward)])
def test_nasfpn_matches_its_reference_forward(name, reference):
    torch.manual_seed(0)
    neck = compile_neck(builtin_spec(name), CHANNELS, WIDTH, repeats=2).eval()
    _randomize(neck)
    feats = [torch.randn(1, c, SIZE >> lvl, SIZE >> lvl) for c, lvl in zip(CHANNELS, (3, 4, 5))]
    with torch.no_grad():
        ours = neck([f.clone() for f in feats])
        theirs = reference(neck, *feats)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-4)


def test_nasfpn_biases_follow_the_references():
    tf = compile_neck(builtin_spec("nasfpn"), CHANNELS, WIDTH)
    mm = compile_neck(builtin_spec("nasfpn_mmdet"), CHANNELS, WIDTH)
    # TF: Keras convs keep use_bias=True everywhere; mmdetection: only the merge cells' out_conv
    assert tf.cells[0].mods["proj_in3"][0].bias is not None and tf.extra.proj[0].bias is not None
    assert tf.cells[0].mods["node_out3"].op.conv.bias is not None
    assert mm.cells[0].mods["proj_in3"][0].bias is None and mm.extra.proj[0].bias is None
    assert mm.extra.convs[0][0].bias is None
    assert mm.cells[0].mods["node_out3"].op.conv.bias is not None


@pytest.mark.parametrize("stride", [2, 4, 8])
def test_pool_same_is_tf_same_padding(stride):
    """kernel = stride with 'same' padding: TF pads ceil(H/s)*s - H, the smaller half first, never selected."""
    for h in range(1, 19):
        x = torch.randn(1, 2, h, h + 3)
        pads = [-n % stride for n in (h + 3, h)]
        padded = F.pad(x, (pads[0] // 2, pads[0] - pads[0] // 2, pads[1] // 2, pads[1] - pads[1] // 2), value=-1e9)
        assert torch.equal(pool_same(x, stride), F.max_pool2d(padded, stride, stride))


def test_down_pool_is_written_only_when_set_and_checked():
    spec = builtin_spec("nasfpn")
    assert "down_pool: single" in dump_yaml(spec)
    assert parse_yaml(dump_yaml(spec), "nasfpn.yaml")[0] == spec
    assert "down_pool" not in dump_yaml(builtin_spec("bifpn"))  # the default keeps older hashes
    bad = dump_yaml(spec).replace("down_pool: single", "down_pool: once")
    _, problems = parse_yaml(bad, "bad.yaml")
    assert any("down_pool" in (p.field or "") for p in problems)
