"""The COCO-format detection data layer: validation, cleaning, letterbox geometry, augmentation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from archbench.data import synthetic
from archbench.data.coco import CocoDetection, collate_detection, open_detection_data, open_detection_val
from archbench.data.transforms import IMAGENET_MEAN, IMAGENET_STD, sample_augment
from archbench.errors import UserError

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

CATS = [{"id": 3, "name": "cat"}, {"id": 10, "name": "dog"}, {"id": 90, "name": "toothbrush"}]


def _ann(aid: int, image_id: int, bbox: list[float], cat: int = 3, **extra: Any) -> dict[str, Any]:
    return {"id": aid, "image_id": image_id, "category_id": cat, "bbox": bbox, **extra}


def _write(
    root: Path,
    images: dict[int, Image.Image],
    anns: list[dict[str, Any]],
    cats: list[dict[str, Any]] = CATS,
    *,
    ext: dict[int, str] | None = None,
) -> tuple[Path, Path]:
    """Write a COCO data set: images/<id>.<ext> and ann.json; returns (ann_file, images_dir)."""
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for image_id, image in images.items():
        name = f"{image_id}.{(ext or {}).get(image_id, 'png')}"
        image.save(img_dir / name)
        entries.append({"id": image_id, "file_name": name, "width": image.width, "height": image.height})
    ann_file = root / "ann.json"
    ann_file.write_text(json.dumps({"images": entries, "annotations": anns, "categories": cats}))
    return ann_file, img_dir


def _rgb(w: int = 40, h: int = 30) -> Image.Image:
    return Image.new("RGB", (w, h), (10, 20, 30))


def _denorm(image: torch.Tensor) -> np.ndarray:
    """[3, R, R] normalised tensor -> float (R, R, 3) pixel values 0..255."""
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    return (image.permute(1, 2, 0).numpy() * std + mean) * 255.0


@pytest.fixture
def simple(tmp_path: Path) -> tuple[Path, Path]:
    return _write(tmp_path, {1: _rgb(), 2: _rgb()}, [_ann(1, 1, [1, 2, 10, 10]), _ann(2, 2, [5, 5, 8, 6], cat=90)])


# ---------------------------------------------------------------------------- bad data


def test_malformed_json_names_file_and_position(simple: tuple[Path, Path]) -> None:
    ann_file, img_dir = simple
    ann_file.write_text('{"images": [],\n "annotations": [,]}')
    with pytest.raises(UserError, match=r"ann\.json: not valid JSON: .* line 2, column") as err:
        CocoDetection(ann_file, img_dir, resolution=32, train=False)
    assert str(ann_file) in err.value.message


def test_missing_top_level_key(simple: tuple[Path, Path]) -> None:
    ann_file, img_dir = simple
    data = json.loads(ann_file.read_text())
    del data["categories"]
    ann_file.write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"ann\.json: .*missing top-level key\(s\) 'categories'"):
        CocoDetection(ann_file, img_dir, resolution=32, train=False)


@pytest.mark.parametrize(
    ("bad", "pattern"),
    [
        ({"image_id": 99}, r"annotation id 2 \(entry 1 of 'annotations'\): image_id 99 is not an id in 'images'"),
        ({"bbox": [1, 2, 3]}, r"annotation id 2 \(entry 1 of 'annotations'\): 'bbox' must be 4 finite numbers"),
        ({"bbox": [1, 2, "3", 4]}, r"annotation id 2 .*'bbox' must be 4 finite numbers"),
        ({"category_id": 4}, r"annotation id 2 .*category_id 4 is not an id in 'categories'"),
    ],
)
def test_bad_annotation_is_named(simple: tuple[Path, Path], bad: dict[str, Any], pattern: str) -> None:
    ann_file, img_dir = simple
    data = json.loads(ann_file.read_text())
    data["annotations"][1].update(bad)
    ann_file.write_text(json.dumps(data))
    with pytest.raises(UserError, match=pattern) as err:
        CocoDetection(ann_file, img_dir, resolution=32, train=False)
    assert err.value.message.startswith(str(ann_file))


def test_missing_image_file_names_file_and_id(simple: tuple[Path, Path]) -> None:
    ann_file, img_dir = simple
    (img_dir / "2.png").unlink()
    with pytest.raises(UserError, match=r"image id 2: image file .*2\.png does not exist"):
        CocoDetection(ann_file, img_dir, resolution=32, train=False)


def test_unreadable_image_file(simple: tuple[Path, Path]) -> None:
    ann_file, img_dir = simple
    (img_dir / "1.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match=r"image id 1: .*1\.png is not a readable image"):
        CocoDetection(ann_file, img_dir, resolution=32, train=False)


def test_unknown_category_lists_valid_ones(simple: tuple[Path, Path]) -> None:
    ann_file, img_dir = simple
    valid = r"valid categories .*cat \(3\), dog \(10\), toothbrush \(90\)"
    with pytest.raises(UserError, match=rf"unknown category 'horse'; {valid}"):
        CocoDetection(ann_file, img_dir, resolution=32, train=False, categories=["cat", "horse"])


def test_bad_data_reference(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown data reference 'imagenet'; accepted: 'synthetic' .* 'coco:PATH'"):
        open_detection_data("imagenet", resolution=32, cache_root=tmp_path)
    with pytest.raises(UserError, match=r"no such folder"):
        open_detection_data(f"coco:{tmp_path / 'nope'}", resolution=32, cache_root=tmp_path)


# ---------------------------------------------------------------------------- robustness


@pytest.fixture
def messy(tmp_path: Path) -> tuple[Path, Path]:
    """Image 1 (RGB 40x30) with every kind of box; 2 without annotations; 3..6 in odd modes."""
    images = {
        1: _rgb(40, 30),
        2: _rgb(),
        3: Image.new("L", (20, 20), 128),
        4: Image.new("CMYK", (20, 20), (0, 255, 255, 0)),
        5: Image.new("RGBA", (20, 20), (255, 0, 0, 100)),
        6: Image.new("P", (20, 20), 3),
    }
    anns = [
        _ann(1, 1, [2, 3, 10, 5], cat=10),  # fine
        _ann(2, 1, [0, 0, 20, 20], cat=3, iscrowd=1, area=100.0),  # crowd
        _ann(3, 1, [5, 5, 0, 4]),  # zero width
        _ann(4, 1, [5, 5, 4, -1]),  # negative height
        _ann(5, 1, [30, 20, 20, 20], cat=90),  # partly outside: clipped to [30, 20, 40, 30]
        _ann(6, 1, [50, 5, 5, 5]),  # fully outside
        _ann(7, 3, [1, 1, 5, 5], cat=90),
        _ann(8, 4, [1, 1, 5, 5]),
    ]
    return _write(tmp_path, images, anns, ext={4: "jpg"})


def test_robustness_cases_are_counted_and_handled(messy: tuple[Path, Path]) -> None:
    ann_file, img_dir = messy
    ds = CocoDetection(ann_file, img_dir, resolution=40, train=False)
    st = ds.stats
    assert (st["images"], st["annotations"], st["images_without_annotations"]) == (6, 4, 3)
    assert (st["crowd"], st["degenerate"], st["clipped"], st["outside"]) == (1, 2, 1, 1)
    assert (st["mode_L"], st["mode_CMYK"], st["mode_RGBA"], st["mode_P"]) == (1, 1, 1, 1)
    _, target = ds[0]  # scale 1 (longer side already 40)
    assert target["scale"] == 1.0 and target["orig_size"] == (30, 40)
    assert torch.equal(target["labels"], torch.tensor([1, 2]))  # dog -> 1, toothbrush -> 2; crowd excluded
    assert torch.allclose(target["boxes"], torch.tensor([[2.0, 3.0, 12.0, 8.0], [30.0, 20.0, 40.0, 30.0]]))
    assert [ds.cat_ids[k] for k in target["labels"].tolist()] == [10, 90]
    assert ds.cat_ids == [3, 10, 90] and ds.class_names == ["cat", "dog", "toothbrush"]
    for i in range(len(ds)):
        image, _ = ds[i]
        assert image.shape == (3, 40, 40) and image.dtype == torch.float32
    rgba = _denorm(ds[4][0])[5, 5]
    assert np.allclose(rgba, [255, 0, 0], atol=1.5)  # alpha dropped, colour kept
    # evaluation ground truth: crowd kept (COCOeval ignores matches to it), dropped boxes gone
    gt = ds.coco.loadAnns(ds.coco.getAnnIds(imgIds=[1]))
    assert sorted((a["id"], a["iscrowd"]) for a in gt) == [(1, 0), (2, 1), (5, 0)]
    assert next(a for a in gt if a["id"] == 5)["bbox"] == [30.0, 20.0, 10.0, 10.0]


def test_category_filter_keeps_emptied_images(messy: tuple[Path, Path]) -> None:
    ann_file, img_dir = messy
    ds = CocoDetection(ann_file, img_dir, resolution=40, train=True, categories=["toothbrush", "3"])
    assert ds.cat_ids == [3, 90] and ds.class_names == ["cat", "toothbrush"]
    assert len(ds) == 6 and ds.stats["other_category"] == 1
    assert ds.stats["images_without_annotations"] == 3  # images 2, 5 and 6
    assert ds.coco.getCatIds() == [3, 90]


def test_coco_eval_on_ground_truth_is_perfect(messy: tuple[Path, Path]) -> None:
    from pycocotools.cocoeval import COCOeval

    ann_file, img_dir = messy
    ds = CocoDetection(ann_file, img_dir, resolution=40, train=False)
    dets = []
    for i in range(len(ds)):
        _, t = ds[i]
        for box, label in zip((t["boxes"] / t["scale"]).tolist(), t["labels"].tolist()):
            xywh = [box[0], box[1], box[2] - box[0], box[3] - box[1]]
            dets.append({"image_id": t["image_id"], "category_id": ds.cat_ids[label], "bbox": xywh, "score": 1.0})
    ev = COCOeval(ds.coco, ds.coco.loadRes(dets), "bbox")
    ev.params.imgIds = ds.image_ids
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


# ---------------------------------------------------------------------------- geometry


def _boxed_image(tmp_path: Path) -> tuple[Path, Path]:
    """A black 200x100 image with a white rectangle exactly filling bbox [40, 20, 80, 40]."""
    image = Image.new("RGB", (200, 100), (0, 0, 0))
    image.paste((255, 255, 255), (40, 20, 120, 60))
    return _write(tmp_path, {7: image}, [_ann(1, 7, [40, 20, 80, 40])])


def test_letterbox_geometry(tmp_path: Path) -> None:
    ds = CocoDetection(*_boxed_image(tmp_path), resolution=64, train=False)
    image, target = ds[0]
    scale = 64 / 200
    assert target["scale"] == pytest.approx(scale) and target["orig_size"] == (100, 200)
    assert torch.allclose(target["boxes"], torch.tensor([[40, 20, 120, 60]]) * scale)
    pixels = _denorm(image)
    x1, y1, x2, y2 = (target["boxes"][0]).tolist()
    assert pixels[int(y1) + 2 : int(y2) - 2, int(x1) + 2 : int(x2) - 2].min() > 250  # inside: white
    assert pixels[: int(y1) - 2].max() < 5 and pixels[:32, : int(x1) - 2].max() < 5  # content: black
    assert torch.all(image[:, 32:, :] == 0)  # bottom padding: 0 after normalisation


def test_augmentation_boxes_follow_pixels(tmp_path: Path) -> None:
    ds = CocoDetection(*_boxed_image(tmp_path), resolution=64, train=True, seed=5)
    flips = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        image, target = ds[0]
        assert image.shape == (3, 64, 64)
        (x1, y1, x2, y2) = target["boxes"][0].tolist()
        assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
        assert 0.8 * 64 / 200 <= target["scale"] <= 1.2 * 64 / 200
        pixels = _denorm(image)
        assert pixels[int(y1) + 2 : int(y2) - 1, int(x1) + 2 : int(x2) - 1].min() > 240  # inside: white
        if x1 > 4:  # just left of the box: black background
            assert pixels[int(y1) + 2 : int(y2) - 1, int(x1) - 3 : int(x1) - 1].max() < 15
        if y1 > 4:  # just above the box
            assert pixels[int(y1) - 3 : int(y1) - 1, int(x1) + 2 : int(x2) - 1].max() < 15
        flips.add(sample_augment(np.random.default_rng([5, epoch, 0])).flip)
    assert flips == {True, False}


def test_augmentation_crop_drops_tiny_leftovers(tmp_path: Path) -> None:
    image = Image.new("RGB", (100, 100), (0, 0, 0))
    anns = [_ann(1, 1, [97, 97, 3, 3]), _ann(2, 1, [10, 10, 20, 20])]  # a corner box the crop cuts
    ann_file, img_dir = _write(tmp_path, {1: image}, anns)
    ds = CocoDetection(ann_file, img_dir, resolution=100, train=True)
    counts = set()
    for epoch in range(20):
        ds.set_epoch(epoch)
        _, target = ds[0]
        boxes = target["boxes"]
        counts.add(len(boxes))
        assert len(boxes) == len(target["labels"]) and len(boxes) >= 1
        assert torch.all(boxes[:, 2:] - boxes[:, :2] >= 1.0)
        assert torch.all((boxes >= 0) & (boxes <= 100))
    assert counts == {1, 2}  # the corner box is kept whole (zoom out) and dropped when cut


def test_augmentation_is_deterministic_per_seed_epoch_index(messy: tuple[Path, Path]) -> None:
    ann_file, img_dir = messy

    def run(seed: int, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        ds = CocoDetection(ann_file, img_dir, resolution=32, train=True, seed=seed)
        ds.set_epoch(epoch)
        torch.manual_seed(epoch * 7 + 1)  # global RNG state must not matter
        np.random.seed(epoch)
        return [(ds[i][0], ds[i][1]["boxes"]) for i in range(len(ds))]

    a, b = run(0, 3), run(0, 3)
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))
    c = run(0, 4)
    assert not all(torch.equal(x[0], y[0]) for x, y in zip(a, c))
    ds = CocoDetection(ann_file, img_dir, resolution=32, train=False)
    assert torch.equal(ds[0][0], ds[0][0])  # eval: no augmentation


def test_subset_is_deterministic(tmp_path: Path) -> None:
    images = {i: _rgb(8, 8) for i in range(1, 21)}
    ann_file, img_dir = _write(tmp_path, images, [_ann(i, i, [1, 1, 3, 3]) for i in range(1, 21)])

    def ids(seed: int) -> list[int]:
        np.random.seed(seed + 123)
        return CocoDetection(ann_file, img_dir, resolution=8, train=False, subset=5, seed=seed).image_ids

    assert ids(0) == ids(0) and ids(0) == sorted(ids(0)) and len(ids(0)) == 5
    assert ids(0) != ids(1)
    ds = CocoDetection(ann_file, img_dir, resolution=8, train=False, subset=5, seed=0)
    assert sorted(ds.coco.getImgIds()) == ds.image_ids
    full = CocoDetection(ann_file, img_dir, resolution=8, train=False)
    assert ds.fingerprint != full.fingerprint and len(full) == 20


def test_collate_shapes(messy: tuple[Path, Path]) -> None:
    ann_file, img_dir = messy
    ds = CocoDetection(ann_file, img_dir, resolution=48, train=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate_detection)
    images, targets = next(iter(loader))
    assert images.shape == (4, 3, 48, 48) and images.dtype == torch.float32
    assert len(targets) == 4 and [t["image_id"] for t in targets] == ds.image_ids[:4]
    for t in targets:
        assert t["boxes"].dtype == torch.float32 and t["boxes"].shape[1:] == (4,)
        assert t["labels"].dtype == torch.int64 and t["labels"].shape == t["boxes"].shape[:1]


# ---------------------------------------------------------------------------- references


@pytest.fixture(scope="module")
def tiny_synthetic(tmp_path_factory: pytest.TempPathFactory) -> synthetic.SyntheticInfo:
    return synthetic.generate(tmp_path_factory.mktemp("syn") / "ds", n_train=6, n_val=3, size=64, workers=1)


def test_synthetic_reference(
    tiny_synthetic: synthetic.SyntheticInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(synthetic, "ensure_synthetic", lambda cache_root, progress=None: tiny_synthetic.path)
    train, val, info = open_detection_data("synthetic", resolution=64, cache_root=tmp_path)
    assert (info["name"], info["n_train"], info["n_val"]) == ("synthetic", 6, 3)
    assert info["fingerprint"] == tiny_synthetic.fingerprint == train.fingerprint
    assert info["cat_ids"] == [c.category_id for c in synthetic.CLASSES]
    assert info["class_names"] == tiny_synthetic.classes and info["num_classes"] == len(synthetic.CLASSES)
    small, medium = synthetic.area_thresholds(64)
    assert info["area_ranges"] == [[0.0, 1e10], [0.0, small], [small, medium], [medium, 1e10]]
    assert set(info["stats"]) == {"train", "val"} and info["stats"]["train"]["images"] == 6
    image, target = val[0]
    assert image.shape == (3, 64, 64) and target["scale"] == 1.0
    raw = [a for a in val.coco.loadAnns(val.coco.getAnnIds(imgIds=[target["image_id"]])) if not a["iscrowd"]]
    assert len(raw) == len(target["boxes"])
    # the same folder through coco:PATH (instances_train.json layout) is recognised as synthetic
    train2, _, info2 = open_detection_data(f"coco:{tiny_synthetic.path}", resolution=64, cache_root=tmp_path)
    assert info2["fingerprint"] == info["fingerprint"] and info2["area_ranges"] == info["area_ranges"]
    sub, _, info3 = open_detection_data("synthetic", resolution=64, subset=3, cache_root=tmp_path)
    assert len(sub) == 3 and info3["fingerprint"] != info["fingerprint"]


def test_coco2017_layout(tmp_path: Path) -> None:
    for split, image_id in (("train", 1), ("val", 2)):
        ann_file, img_dir = _write(tmp_path / split, {image_id: _rgb()}, [_ann(image_id, image_id, [1, 1, 5, 5])])
        (tmp_path / "annotations").mkdir(exist_ok=True)
        ann_file.rename(tmp_path / "annotations" / f"instances_{split}2017.json")
        img_dir.rename(tmp_path / f"{split}2017")
    train, val, info = open_detection_data(f"coco:{tmp_path}", resolution=32, cache_root=tmp_path / "cache")
    assert (info["n_train"], info["n_val"], info["cat_ids"]) == (1, 1, [3, 10, 90])
    assert info["area_ranges"] is None and len(info["fingerprint"]) == 64
    assert train.train and not val.train
    (tmp_path / "val2017" / "2.png").unlink()
    with pytest.raises(UserError, match="instances_val2017.json: image id 2: image file"):
        open_detection_data(f"coco:{tmp_path}", resolution=32, cache_root=tmp_path / "cache")


def test_the_validation_split_opens_alone_without_a_train_split(tmp_path: Path) -> None:
    ann_file, img_dir = _write(tmp_path / "val", {2: _rgb()}, [_ann(2, 2, [1, 1, 5, 5], cat=10)])
    (tmp_path / "annotations").mkdir()
    ann_file.rename(tmp_path / "annotations" / "instances_val2017.json")
    img_dir.rename(tmp_path / "val2017")
    val, info = open_detection_val(f"coco:{tmp_path}", resolution=32, categories=["dog"], cache_root=tmp_path)
    assert not val.train and val.image_ids == [2] and info["stats"]["val"]["annotations"] == 1
    assert info == {
        "name": f"coco:{tmp_path}",
        "n_val": 1,
        "num_classes": 1,
        "class_names": ["dog"],
        "cat_ids": [10],
        "area_ranges": None,
        "stats": info["stats"],
    }
    with pytest.raises(UserError, match="instances_train2017.json not found"):  # a run needs both splits
        open_detection_data(f"coco:{tmp_path}", resolution=32, cache_root=tmp_path)
