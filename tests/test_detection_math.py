"""Detection math: anchors vs. head flattening, box coding, assignment, loss, NMS, COCO eval."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from torch import nn
from torchvision.ops import box_iou

from archbench.detection.anchors import AnchorConfig, anchors_for, cell_anchors, feature_sizes_of, flatten_head_outputs
from archbench.detection.assign import BACKGROUND, IGNORE, assign, assign_batch, pad_targets
from archbench.detection.coding import decode_boxes, encode_boxes
from archbench.detection.evaluate import coco_evaluate, resampled_ap, to_dataset_frame
from archbench.detection.loss import DetectionLoss
from archbench.detection.postprocess import decode

# ---------------------------------------------------------------- anchors / flattening


def test_anchor_count_and_order_match_head_flattening():
    cfg = AnchorConfig()
    a_n = cfg.num_anchors
    sizes, strides = [(5, 3), (3, 2), (2, 1)], [8, 16, 32]  # non-square: catches an H/W swap
    anchors = anchors_for(sizes, strides, cfg)
    assert anchors.shape == (sum(h * w * a_n for h, w in sizes), 4)

    # fake head outputs: channel a*C + c holds (level, y, x, a)[c] at cell (y, x)
    b, c = 2, 4
    outs = []
    for level, (h, w) in enumerate(sizes):
        o = torch.zeros(b, a_n, c, h, w)
        o[:, :, 0] = level
        o[:, :, 1] = torch.arange(h, dtype=torch.float32)[:, None]
        o[:, :, 2] = torch.arange(w, dtype=torch.float32)[None, :]
        o[:, :, 3] = torch.arange(a_n, dtype=torch.float32)[:, None, None]
        outs.append(o.reshape(b, a_n * c, h, w))
    box_outs = [o.clone() for o in outs]  # 4 channels per anchor, same encoding
    cls, box = flatten_head_outputs(outs, box_outs, num_classes=c)
    assert cls.shape == (b, anchors.shape[0], c) and box.shape == (b, anchors.shape[0], 4)
    assert torch.equal(cls, box)

    ids = cls[0].long()
    stride = torch.tensor(strides, dtype=torch.float32)[ids[:, 0]]
    centre = (anchors[:, :2] + anchors[:, 2:]) / 2
    torch.testing.assert_close(centre[:, 0], (ids[:, 2] + 0.5) * stride)
    torch.testing.assert_close(centre[:, 1], (ids[:, 1] + 0.5) * stride)
    for i in range(anchors.shape[0]):  # anchor a's shape is cell anchor a of its level
        lvl, a = int(ids[i, 0]), int(ids[i, 3])
        expect = cell_anchors(strides[lvl], cfg)[a].float()
        torch.testing.assert_close(anchors[i] - centre[i].repeat(2), expect, atol=1e-4, rtol=0)
    assert feature_sizes_of(outs) == sizes


def test_anchor_shapes_and_cache():
    cfg = AnchorConfig()
    cell = cell_anchors(8, cfg)
    w, h = cell[:, 2] - cell[:, 0], cell[:, 3] - cell[:, 1]
    sides = torch.tensor([4 * 8 * s for s in cfg.scales for _ in cfg.ratios], dtype=torch.float64)
    ratios = torch.tensor([r for _ in cfg.scales for r in cfg.ratios], dtype=torch.float64)
    torch.testing.assert_close(w * h, sides**2)  # area kept
    torch.testing.assert_close(h / w, ratios)  # ratio = h / w
    assert anchors_for([(4, 4)], [8], cfg) is anchors_for([(4, 4)], [8], cfg)


# ---------------------------------------------------------------- box coding


def test_encode_decode_round_trip():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(200, 2, generator=g) * 100
    anchors = torch.cat([xy, xy + 5 + torch.rand(200, 2, generator=g) * 60], 1)
    xy2 = torch.rand(200, 2, generator=g) * 100
    boxes = torch.cat([xy2, xy2 + 1 + torch.rand(200, 2, generator=g) * 80], 1)
    torch.testing.assert_close(decode_boxes(anchors, encode_boxes(anchors, boxes)), boxes, atol=1e-3, rtol=1e-5)
    w = (2.0, 3.0, 0.5, 4.0)
    torch.testing.assert_close(decode_boxes(anchors, encode_boxes(anchors, boxes, w), w), boxes, atol=1e-3, rtol=1e-5)
    assert torch.allclose(encode_boxes(anchors, anchors), torch.zeros(200, 4), atol=1e-6)


def test_decode_clamps_log_scale():
    anchor = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    out = decode_boxes(anchor, torch.tensor([[0.0, 0.0, 100.0, 100.0]]))
    torch.testing.assert_close(out[0, 2] - out[0, 0], torch.tensor(1000.0), rtol=1e-4, atol=0)


# ---------------------------------------------------------------- assignment


def test_assignment_thresholds():
    gt = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
    anchors = torch.tensor(
        [
            [0.0, 0.0, 100.0, 100.0],  # IoU 1    -> positive
            [0.0, 0.0, 100.0, 45.0],  # IoU 0.45 -> ignored
            [0.0, 0.0, 100.0, 10.0],  # IoU 0.1  -> background
            [200.0, 200.0, 300.0, 300.0],  # IoU 0  -> background
        ]
    )
    torch.testing.assert_close(box_iou(anchors, gt)[:, 0], torch.tensor([1.0, 0.45, 0.1, 0.0]))
    a = assign(anchors, gt, torch.tensor([3]))
    assert a.labels.tolist() == [3, IGNORE, BACKGROUND, BACKGROUND]
    assert a.matched.tolist() == [0, -1, -1, -1]
    assert a.positive.tolist() == [True, False, False, False]


def test_assignment_no_gt_is_all_background():
    anchors = anchors_for([(2, 2)], [8])
    a = assign(anchors, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    assert (a.labels == BACKGROUND).all() and (a.matched == -1).all()


def test_best_anchor_rule_for_tiny_box():
    anchors = anchors_for([(8, 8), (4, 4)], [8, 16])  # 64 px input, smallest anchor 32 x 32
    gt = torch.tensor([[20.0, 20.0, 26.0, 26.0]])  # 6 x 6 px: best IoU 36 / 1024, far below 0.4
    assert box_iou(anchors, gt).max() < 0.05
    a = assign(anchors, gt, torch.tensor([1]))
    pos = torch.nonzero(a.positive).squeeze(1)
    assert pos.numel() == 1 and a.labels[pos].item() == 1 and a.matched[pos].item() == 0
    centre = (anchors[pos, :2] + anchors[pos, 2:]) / 2  # tie broken by the nearest cell centre
    torch.testing.assert_close(centre, torch.tensor([[20.0, 20.0]]))
    # the rest is background (nothing reaches neg_iou), and the floor can switch the rule off
    assert (a.labels[a.labels != 1] == BACKGROUND).all()
    assert not assign(anchors, gt, torch.tensor([1]), min_best_iou=0.2).positive.any()


def test_shared_best_anchor_goes_to_larger_iou():
    anchors = torch.tensor([[0.0, 0.0, 32.0, 32.0], [100.0, 100.0, 132.0, 132.0]])
    gt = torch.tensor([[10.0, 10.0, 16.0, 16.0], [8.0, 8.0, 20.0, 20.0]])  # both best on anchor 0
    a = assign(anchors, gt, torch.tensor([0, 1]))
    assert a.labels.tolist() == [1, BACKGROUND] and a.matched.tolist() == [1, -1]


# ---------------------------------------------------------------- loss


def _toy_problem(seed: int = 0):
    torch.manual_seed(seed)
    sizes, strides = [(8, 8), (4, 4), (2, 2)], [8, 16, 32]  # 64 x 64 input
    feats = [torch.randn(1, 8, h, w) for h, w in sizes]
    target = {"boxes": torch.tensor([[10.0, 14.0, 44.0, 40.0]]), "labels": torch.tensor([2])}
    return sizes, strides, feats, target


def test_loss_finite_positive_and_keys():
    sizes, strides, _, target = _toy_problem()
    anchors = anchors_for(sizes, strides)
    n = anchors.shape[0]
    cls, box = torch.randn(2, n, 3, requires_grad=True), torch.randn(2, n, 4, requires_grad=True)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    for box_loss in ("huber", "giou"):
        out = DetectionLoss(3, box_loss=box_loss)(cls, box, anchors, [target, empty])
        assert set(out) == {"loss", "cls_loss", "box_loss", "num_pos"}
        assert torch.isfinite(out["loss"]) and out["loss"] > 0 and out["cls_loss"] > 0 and out["box_loss"] > 0
        assert out["num_pos"].item() >= 1
        out["loss"].backward()
        assert torch.isfinite(cls.grad).all() and torch.isfinite(box.grad).all()
        cls.grad = box.grad = None
    # no objects at all: only the (finite) classification term, normalised by 1
    out = DetectionLoss(3)(cls, box, anchors, [empty, empty])
    assert out["num_pos"].item() == 0 and out["box_loss"] == 0 and torch.isfinite(out["loss"])


def test_loss_decreases_and_head_learns_the_box():
    sizes, strides, feats, target = _toy_problem()
    cfg = AnchorConfig()
    a_n, k = cfg.num_anchors, 3
    head = nn.Conv2d(8, a_n * (k + 4), 1)  # one conv shared by all levels
    with torch.no_grad():
        head.bias.view(a_n, k + 4)[:, :k] = -math.log((1 - 0.01) / 0.01)
    anchors = anchors_for(sizes, strides, cfg)
    loss_fn = DetectionLoss(k)
    opt = torch.optim.SGD(head.parameters(), lr=0.05, momentum=0.9)

    def forward():
        outs = [head(f).reshape(1, a_n, k + 4, *f.shape[-2:]) for f in feats]
        cls_outs = [o[:, :, :k].reshape(1, a_n * k, *o.shape[-2:]) for o in outs]
        box_outs = [o[:, :, k:].reshape(1, a_n * 4, *o.shape[-2:]) for o in outs]
        return flatten_head_outputs(cls_outs, box_outs, k)

    losses = []
    for _ in range(60):
        cls, box = forward()
        out = loss_fn(cls, box, anchors, [target])
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.2 * losses[0], losses
    cls, box = forward()
    det = decode(cls, box, anchors, image_size=64)[0]
    assert det["labels"][0].item() == 2 and det["scores"][0] > 0.5
    assert box_iou(det["boxes"][:1], target["boxes"]).item() > 0.8


# ---------------------------------------------------------------- post-processing


def _nms_case(labels: tuple[int, int]):
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0], [30.0, 30.0, 40.0, 40.0]])
    cls = torch.full((1, 3, 2), -10.0)
    cls[0, 0, labels[0]], cls[0, 1, labels[1]], cls[0, 2, 0] = 3.0, 2.0, 1.0
    return cls, torch.zeros(1, 3, 4), anchors


def test_nms_removes_duplicates_and_respects_classes():
    cls, box, anchors = _nms_case((0, 0))  # two overlapping boxes (IoU 0.82) of one class
    det = decode(cls, box, anchors, image_size=64)[0]
    assert det["boxes"].shape == (2, 4)
    torch.testing.assert_close(det["boxes"], anchors[[0, 2]])
    assert det["labels"].tolist() == [0, 0]
    assert torch.all(det["scores"][:-1] >= det["scores"][1:])

    cls, box, anchors = _nms_case((0, 1))  # same overlap, different classes: both kept
    det = decode(cls, box, anchors, image_size=64)[0]
    assert det["labels"].tolist() == [0, 1, 0]
    det = decode(cls, box, anchors, image_size=64, class_agnostic=True)[0]
    assert det["labels"].tolist() == [0, 0]


def test_decode_threshold_topk_maxdet_and_clip():
    cls, box, anchors = _nms_case((0, 1))
    assert decode(cls, box, anchors, image_size=64, score_thresh=0.9)[0]["boxes"].shape == (1, 4)
    assert decode(cls, box, anchors, image_size=64, topk=2)[0]["labels"].tolist() == [0, 1]
    assert decode(cls, box, anchors, image_size=64, max_det=1)[0]["scores"].numel() == 1
    det = decode(cls, box, anchors, image_size=35)[0]
    assert det["boxes"].max() <= 35.0 and det["boxes"].min() >= 0.0
    assert decode(torch.full((2, 3, 2), -10.0), box.expand(2, 3, 4), anchors, image_size=64)[1]["boxes"].shape == (0, 4)


# ---------------------------------------------------------------- COCO evaluation


def _coco(annotations: list[tuple[int, int, list[float], float | None]], images: tuple[int, ...] = (1, 2)) -> COCO:
    """(image_id, category_id, xywh bbox, area or None for w*h) -> an in-memory COCO of ``images``."""
    coco = COCO()
    coco.dataset = {
        "images": [{"id": i, "width": 200, "height": 200, "file_name": f"{i}.png"} for i in images],
        "categories": [{"id": 1, "name": "a"}, {"id": 3, "name": "b"}],
        "annotations": [
            {
                "id": n + 1,
                "image_id": img,
                "category_id": cat,
                "bbox": bb,
                "iscrowd": 0,
                "area": bb[2] * bb[3] if area is None else area,
            }
            for n, (img, cat, bb, area) in enumerate(annotations)
        ],
    }
    coco.createIndex()
    return coco


def _xyxy(bb: list[float]) -> list[float]:
    return [bb[0], bb[1], bb[0] + bb[2], bb[1] + bb[3]]


ANNS = [
    (1, 1, [10.0, 10.0, 8.0, 8.0], None),
    (1, 3, [50.0, 40.0, 40.0, 50.0], None),
    (2, 1, [20.0, 30.0, 110.0, 100.0], None),
]


def _perfect(anns, cat_map=lambda c: c):
    dets = {}
    for img, cat, bb, _ in anns:
        d = dets.setdefault(img, {"image_id": img, "boxes": [], "scores": [], "labels": []})
        d["boxes"].append(_xyxy(bb))
        d["scores"].append(0.9)
        d["labels"].append(cat_map(cat))
    return [{**d, "boxes": torch.tensor(d["boxes"])} for d in dets.values()]


def test_coco_perfect_wrong_class_and_empty(capsys):
    coco = _coco(ANNS)
    capsys.readouterr()
    stats = coco_evaluate(coco, _perfect(ANNS))
    assert set(stats) == {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"}
    for name in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"):
        assert stats[name] == pytest.approx(1.0), name
    assert all(isinstance(v, float) for v in stats.values())

    wrong = coco_evaluate(coco, _perfect(ANNS, lambda c: 3 if c == 1 else 1))
    assert wrong["AP"] == pytest.approx(0.0) and wrong["AR100"] == pytest.approx(0.0)

    empty = coco_evaluate(coco, [])
    assert all(v == 0.0 for v in empty.values()), empty
    empty = coco_evaluate(coco, [{"image_id": 1, "boxes": torch.zeros(0, 4), "scores": [], "labels": []}])
    assert empty["AP"] == 0.0
    assert capsys.readouterr().out == ""  # pycocotools' prints are silenced


def test_coco_image_subset():
    coco = _coco(ANNS)
    dets = [d for d in _perfect(ANNS) if d["image_id"] == 1]  # image 2 missed
    assert coco_evaluate(coco, dets)["AR100"] < 1.0
    assert coco_evaluate(coco, dets, image_ids=[1])["AP"] == pytest.approx(1.0)


def _imperfect(anns):
    """Per image: each box found but shifted by 3 px, plus a confident false box: 0 < AP < 1."""
    dets = _perfect([(i, c, [b[0] + 3.0, b[1], b[2], b[3]], a) for i, c, b, a in anns])
    for d in dets:
        d["boxes"] = torch.cat([d["boxes"], torch.tensor([[150.0, 150.0, 190.0, 190.0]])])
        d["scores"], d["labels"] = [*d["scores"], 0.95], [*d["labels"], 1]
    return dets


def _twice(image: int, dets: list[dict]) -> tuple[COCO, list[dict]]:
    """The data set holding ``image`` and a copy of it (id 9), with its detections copied too."""
    anns = [a for a in ANNS if a[0] == image]
    coco = _coco(anns + [(9, c, b, a) for _, c, b, a in anns], images=(image, 9))
    mine = [d for d in dets if d["image_id"] == image]
    return coco, mine + [{**d, "image_id": 9} for d in mine]


def test_resampled_ap_equals_evaluating_the_resampled_set(capsys):
    coco = _coco(ANNS)
    dets = _imperfect(ANNS)
    whole = coco_evaluate(coco, dets)["AP"]
    assert 0.05 < whole < 0.95
    draws = np.array([[0, 1], [1, 0], [0, 0], [1, 1]])  # positions into the sorted image ids (1, 2)
    capsys.readouterr()
    ap = resampled_ap(coco, dets, draws)
    assert capsys.readouterr().out == ""  # pycocotools' prints are silenced
    assert ap[0] == pytest.approx(whole) and ap[1] == pytest.approx(whole)
    for drawn, image in ((2, 1), (3, 2)):  # an image drawn twice = the set of that image and a copy of it
        assert ap[drawn] == pytest.approx(coco_evaluate(*_twice(image, dets))["AP"])
    assert ap[2] != pytest.approx(ap[3])  # the two images do score differently
    (one,) = resampled_ap(coco, dets, np.array([[1]]))
    assert one == pytest.approx(coco_evaluate(coco, dets, image_ids=[2])["AP"])


def test_coco_custom_area_ranges():
    anns = [(1, 1, [10.0, 10.0, 40.0, 50.0], 2000.0)]  # 2000 px^2: medium for COCO, large for (163.84, 1024)
    coco = _coco(anns)
    default = coco_evaluate(coco, _perfect(anns))
    assert default["APm"] == pytest.approx(1.0) and default["APl"] == -1.0 and default["APs"] == -1.0
    custom = coco_evaluate(coco, _perfect(anns), area_ranges=(163.84, 1024.0))
    assert custom["APl"] == pytest.approx(1.0) and custom["APm"] == -1.0 and custom["APs"] == -1.0
    assert custom["AP"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        coco_evaluate(coco, _perfect(anns), area_ranges=(1024.0, 100.0))


def test_to_dataset_frame_recovers_original_boxes():
    coco = _coco(ANNS)
    cat_ids = [1, 3]
    scale = 0.64  # e.g. 200 px original letterboxed into 128 px
    dets = []
    for img in (1, 2):
        anns = [a for a in ANNS if a[0] == img]
        resized = {
            "boxes": torch.tensor([_xyxy(bb) for _, _, bb, _ in anns]) * scale,
            "scores": torch.full((len(anns),), 0.8),
            "labels": torch.tensor([cat_ids.index(c) for _, c, _, _ in anns]),
        }
        out = to_dataset_frame(resized, scale, cat_ids, image_id=img, orig_size=(200, 200))
        torch.testing.assert_close(out["boxes"], torch.tensor([_xyxy(bb) for _, _, bb, _ in anns]))
        assert out["labels"].tolist() == [c for _, c, _, _ in anns] and out["image_id"] == img
        dets.append(out)
    assert coco_evaluate(coco, dets)["AP"] == pytest.approx(1.0)
    clipped = to_dataset_frame(
        {
            "boxes": torch.tensor([[100.0, 0.0, 140.0, 20.0]]),
            "scores": torch.ones(1),
            "labels": torch.zeros(1, dtype=torch.int64),
        },
        0.64,
        cat_ids,
        orig_size=(200, 200),
    )
    assert clipped["boxes"][0, 2].item() == 200.0 and "image_id" not in clipped


def _random_targets(gen: torch.Generator, images: int, trial: int) -> list[dict[str, torch.Tensor]]:
    """Random GT of ``images`` images (0..6 boxes each), some degenerate or duplicated, in a 128 px frame."""
    targets = []
    for _ in range(images):
        m = int(torch.randint(0, 7, (), generator=gen))
        xy, wh = torch.rand(m, 2, generator=gen) * 120, torch.rand(m, 2, generator=gen) * 60
        if trial % 4 == 0 and m:
            wh[0] = 0.0  # a degenerate box: IoU 0 everywhere, forces nothing
        if trial % 3 == 0 and m > 1:
            xy[1], wh[1] = xy[0], wh[0]  # two GTs competing for the same best anchor
        targets.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.randint(0, 5, (m,), generator=gen)})
    return targets


def test_batched_assignment_gives_exactly_the_per_image_targets():
    anchors = anchors_for([(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)], [8, 16, 32, 64, 128])
    gen = torch.Generator().manual_seed(0)
    for trial in range(40):
        targets = _random_targets(gen, 6, trial)
        boxes, labels, valid = pad_targets(targets, anchors.device)
        got = assign_batch(anchors, boxes, labels, valid)
        for i, t in enumerate(targets):
            want = assign(anchors, t["boxes"], t["labels"])
            assert torch.equal(got.labels[i], want.labels) and torch.equal(got.matched[i], want.matched), (trial, i)


@pytest.mark.parametrize("box_loss", ["huber", "giou"])
def test_batched_loss_equals_the_per_image_loss(box_loss, monkeypatch):
    anchors = anchors_for([(8, 8), (4, 4), (2, 2)], [8, 16, 32])
    gen = torch.Generator().manual_seed(1)
    targets = _random_targets(gen, 5, trial=3)
    cls = torch.randn(5, anchors.shape[0], 5, generator=gen)
    box = torch.randn(5, anchors.shape[0], 4, generator=gen) * 0.1
    per_image = DetectionLoss(5, box_loss=box_loss, batched=False)(cls, box, anchors, targets)
    batched = DetectionLoss(5, box_loss=box_loss)(cls, box, anchors, targets)
    monkeypatch.setattr("archbench.detection.loss.ASSIGN_CHUNK_ELEMENTS", 1)  # one image per chunk
    chunked = DetectionLoss(5, box_loss=box_loss)(cls, box, anchors, targets)
    for key in ("loss", "cls_loss", "box_loss", "num_pos"):
        assert torch.equal(batched[key], per_image[key]) and torch.equal(chunked[key], per_image[key]), key
